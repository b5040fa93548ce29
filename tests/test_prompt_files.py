"""Per-class prompt files (`templates: my_prompts.json`): reading, checks, ensembling."""
import json

import pytest
import torch

from pointcalip.config import ConfigError, ZeroShotConfig, load_config
from pointcalip.prompts import (check_classnames, check_templates, class_prompts, is_prompt_file,
                                load_classnames, load_templates, prompt_name,
                                read_prompt_file)

CLASSES = ["airplane", "flower_pot", "cup"]


def write(path, data):
    path.write_text(json.dumps(data) if path.suffix == ".json" else data)
    return path


@pytest.fixture
def prompt_json(tmp_path):
    return write(tmp_path / "gpt.json", {
        "airplane": ["a depth map of an airplane.", "an airplane seen from above."],
        "flower pot": ["a depth map of a flower pot."],       # found for flower_pot
        "cup": ["a cup."],
        "xbox": ["a game console."],                          # extra classes are ignored
    })


def test_a_prompt_file_gives_each_class_its_sentences(prompt_json):
    assert is_prompt_file(str(prompt_json)) and not is_prompt_file("pointclip")
    assert class_prompts(CLASSES, str(prompt_json)) == [
        ["a depth map of an airplane.", "an airplane seen from above."],
        ["a depth map of a flower pot."], ["a cup."]]
    assert load_templates(str(prompt_json)) == [str(prompt_json.resolve())]   # what runs record


def test_yaml_prompt_files_and_exact_names_first(tmp_path):
    path = write(tmp_path / "p.yml", "flower_pot: [exact key wins.]\nflower pot: [spaced key.]\n"
                                     "airplane: [a plane.]\ncup:\n  - a cup.\n  - a mug.\n")
    assert class_prompts(CLASSES, str(path)) == [["a plane."], ["exact key wins."], ["a cup.", "a mug."]]


def test_a_missing_class_is_an_error_naming_it_and_the_file(tmp_path):
    path = write(tmp_path / "two.json", {"airplane": ["a plane."], "cup": ["a cup."]})
    with pytest.raises(ValueError, match=r"two\.json has no prompts for class 'flower_pot' "
                                         r"\(nor under 'flower pot'\)"):
        class_prompts(CLASSES, str(path))


@pytest.mark.parametrize("name, content, message", [
    ("a.json", "[1, 2]", r"must map class names to lists of prompts"),
    ("b.json", "{}", r"must map class names to lists of prompts.*an empty file"),
    ("c.json", '{"cup": "a cup."}', r"class 'cup': needs a non-empty list of prompts"),
    ("d.json", '{"cup": []}', r"class 'cup': needs a non-empty list of prompts"),
    ("e.json", '{"cup": ["a cup.", ""]}', r"class 'cup': prompt 1 must be a non-empty string"),
    ("f.json", '{"cup": ["a cup.", 3]}', r"class 'cup': prompt 1 must be a non-empty string"),
    ("g.json", '{"cup": ["a cup."', r"g\.json is not valid JSON"),
    ("h.yaml", "cup: [a cup\n", r"h\.yaml is not valid YAML"),
    ("i.json", '{"cup": ["' + "very " * 80 + 'long."]}',
     r"class 'cup': prompt 0 is longer than CLIP's 77-token text context"),
])
def test_broken_prompt_files_name_the_file_and_the_class(tmp_path, name, content, message):
    path = tmp_path / name
    path.write_text(content)
    with pytest.raises(ValueError, match=message):
        read_prompt_file(path)
    assert str(path) in str(pytest.raises(ValueError, read_prompt_file, path).value)


def test_zeroshot_configs_take_a_prompt_file(prompt_json, tmp_path):
    cfg = load_config(ZeroShotConfig, ["modelnet40"], [f"templates={prompt_json}"])
    assert cfg.templates == str(prompt_json)
    with pytest.raises(ConfigError, match=r"config key templates is not usable: per-class prompt "
                                          r"file not found: .*nowhere\.json"):
        load_config(ZeroShotConfig, ["modelnet40"], [f"templates={tmp_path / 'nowhere.json'}"])
    with pytest.raises(ConfigError, match=r"templates is not usable: .*has no prompts|templates "
                                          r"is not usable: .*must map"):
        load_config(ZeroShotConfig, ["modelnet40"], [f"templates={write(tmp_path / 'x.json', [1])}"])


def test_a_prompt_file_inside_a_template_list_is_explained(prompt_json):
    with pytest.raises(ValueError, match=r"names a per-class prompt file, which is not a template"):
        check_templates([str(prompt_json)])


def test_sentences_of_a_class_are_ensembled(tiny_vit, tmp_path):
    one = write(tmp_path / "one.json", {c: [f"point cloud depth map of a {c.replace('_', ' ')}."]
                                        for c in CLASSES})
    two = write(tmp_path / "two.json", {c: [f"a {c}.", f"a model of a {c}."] for c in CLASSES})
    # one sentence per class: exactly the single-template text features
    assert torch.allclose(tiny_vit.encode_prompts(class_prompts(CLASSES, str(one))),
                          tiny_vit.encode_text(CLASSES, ["point cloud depth map of a {}."]), atol=1e-6)
    # two: the normalised mean of the two normalised sentence features
    got = tiny_vit.encode_prompts(class_prompts(CLASSES, str(two)))
    a = tiny_vit.encode_prompts([[f"a {c}."] for c in CLASSES])
    b = tiny_vit.encode_prompts([[f"a model of a {c}."] for c in CLASSES])
    assert torch.allclose(got, torch.nn.functional.normalize(a + b, dim=-1), atol=1e-6)


def test_classify_reads_prompt_files_given_or_recorded(tmp_path, tiny_checkpoints, capsys):
    import numpy as np

    from pointcalip import PointCALIP, load_clip
    from pointcalip.cli import main
    from pointcalip.datasets import load_point_cloud
    from pointcalip.projection import PointCLIPProjector

    prompts = write(tmp_path / "p.json", {"chair": ["a chair.", "a seat with a back."], "lamp": ["a lamp."]})
    cloud = tmp_path / "c.npy"
    np.save(cloud, np.random.default_rng(0).normal(size=(500, 3)))
    model = PointCALIP(load_clip(tiny_checkpoints["vit"], device="cpu"), ["chair", "lamp"],
                       PointCLIPProjector(), templates=str(prompts))
    with torch.no_grad():
        probs = model(load_point_cloud(cloud)).softmax(-1)[0]
    want = ", ".join(f"{n} {p:.1%}" for n, p in sorted(zip(["chair", "lamp"], probs.tolist()),
                                                       key=lambda x: -x[1]))
    recorded = tmp_path / "results.json"          # a zero-shot run records the file as [path]
    recorded.write_text(json.dumps({"backbone": str(tiny_checkpoints["vit"]),
                                    "projector_config": {"name": "pointclip"}, "views": None,
                                    "view_weights": None, "templates": [str(prompts.resolve())],
                                    "beta2": 0.0, "beta3": 0.0}))
    for how in (["--templates", str(prompts), "--backbone", str(tiny_checkpoints["vit"])],
                ["--results", str(recorded)]):
        assert main(["classify", str(cloud), "--classes", "chair", "lamp", *how]) == 0
        assert capsys.readouterr().out.strip() == f"{cloud}: {want}"
    plain = PointCALIP(load_clip(tiny_checkpoints["vit"], device="cpu"), ["chair", "lamp"], PointCLIPProjector())
    assert not torch.allclose(plain.text_features, model.text_features)


# ----------------------------------------------------------- class names that are one prompt

@pytest.mark.parametrize("names, first, second, word", [
    (["night_stand", "night stand"], "night_stand", "night stand", "night stand"),
    (["chair", "sofa", "chair "], "chair", "chair ", "chair"),
    (["Lamp", "cup", "lamp"], "Lamp", "lamp", "lamp"),
    (["flower__pot", " flower pot"], "flower__pot", " flower pot", "flower pot"),
])
def test_names_giving_one_prompt_are_duplicates(names, first, second, word):
    with pytest.raises(ValueError) as err:
        check_classnames(names)
    assert str(err.value) == (
        f"class names {first!r} and {second!r} are the same class to CLIP: both become the "
        f"prompt word {word!r} ('_' reads as a space; case and extra spaces are ignored), so "
        f"they would get the same probability; keep one")
    # they really are one prompt: CLIP's tokens of their filled templates are equal
    import clip

    assert prompt_name(first) == prompt_name(second) == word
    a, b = class_prompts([first], "pointclip")[0], class_prompts([second], "pointclip")[0]
    assert torch.equal(clip.tokenize(a), clip.tokenize(b))


def test_distinct_prompts_pass_and_shipped_lists_are_clean():
    assert check_classnames(["night_stand", "nightstand", "stand"]) == ["night_stand", "nightstand", "stand"]
    assert check_classnames(["chair"]) == ["chair"]                    # one class is allowed
    for dataset in ("modelnet40", "modelnet10", "scanobjectnn"):
        names = load_classnames(dataset)
        assert len({prompt_name(n) for n in names}) == len(names)


def test_classify_refuses_one_prompt_twice_before_clip_loads(tmp_path, capsys, monkeypatch):
    import numpy as np

    from pointcalip.cli import main

    def no_clip(*args, **kwargs):
        raise AssertionError("CLIP must not load before the class names are checked")

    monkeypatch.setattr("pointcalip.backbones.load_clip", no_clip)
    cloud = tmp_path / "c.npy"
    np.save(cloud, np.random.default_rng(0).normal(size=(200, 3)))
    for classes, both in ((["night_stand", "night stand"], "'night_stand' and 'night stand'"),
                          (["chair", "chair "], "'chair' and 'chair '")):
        assert main(["classify", str(cloud), "--classes", *classes]) == 2
        err = capsys.readouterr().err
        assert f"pointcalip classify: error: class names {both} are the same class to CLIP" in err
        assert "Traceback" not in err


def test_classify_one_class_says_its_probability_means_nothing(tmp_path, tiny_checkpoints, capsys):
    import numpy as np

    from pointcalip.cli import main

    cloud = tmp_path / "c.npy"
    np.save(cloud, np.random.default_rng(0).normal(size=(500, 3)))
    assert main(["classify", str(cloud), "--classes", "chair", "--backbone",
                 str(tiny_checkpoints["vit"])]) == 0
    captured = capsys.readouterr()
    assert captured.out.strip() == f"{cloud}: chair 100.0%"
    assert ("pointcalip classify: warning: only one class ('chair'): its probability is 100% "
            "whatever the cloud, a softmax over one class means nothing; give two or more "
            "--classes to compare") in captured.err
    assert main(["classify", str(cloud), "--classes", "chair", "lamp", "--backbone",
                 str(tiny_checkpoints["vit"])]) == 0
    assert "only one class" not in capsys.readouterr().err
