"""The tasks registry (pointcalip/tasks.py): every task declares its config class, what
`extract` encodes for it and its runner in its command module; config kinds, extract's plan
and the compact-store rule are read from there, so a new task is its package, its config
YAML and its command module."""
import json
import subprocess
import sys
import textwrap

import pytest

from pointcalip.commands import COMMANDS
from pointcalip.config import ConfigError, config_kinds, load_any_config
from pointcalip.tasks import TASKS, resolve, task_names
from messages import error_block


def test_every_task_declares_what_it_is_and_each_reference_resolves():
    assert set(task_names()) <= set(COMMANDS.names())         # each task is a command
    for entry in TASKS.entries():
        task = entry.target
        assert task.config_class().COMMAND == entry.name        # `command:` of its YAML
        for ref in (task.run, task.datasets, task.pairs, task.after_encode):
            assert ref is None or callable(resolve(ref)), (entry.name, ref)
    assert config_kinds() == {entry.name: entry.target.config for entry in TASKS.entries()}


def test_config_kinds_follow_the_registry(tmp_path):
    path = tmp_path / "x.yaml"
    path.write_text("command: nosuchtask\n")
    with pytest.raises(ConfigError, match="configs are for one of zeroshot, fewshot, ablate, "
                                          "segment, benchmark"):
        load_any_config([path])


# the scratch task's package: its config, what it reads, its runner (torch only inside)
SCRATCH_PACKAGE = '''
"""Counting: how many TEST clouds the store answers (a scratch task)."""
from dataclasses import dataclass
from typing import ClassVar

from pointcalip.config import RunConfig


@dataclass
class CountConfig(RunConfig):
    COMMAND: ClassVar[str] = "count"
    name: str = "count"


def feature_datasets(cfg, splits):
    from pointcalip.pipeline import load_data
    test = load_data(cfg.data, cfg.download, train=False).test
    return [("test", test, None)] if "test" in splits else []


def run_count(cfg, argv=None):
    from pointcalip.backbones import load_clip
    from pointcalip.extract import extract
    from pointcalip.pipeline import load_data, open_store, split_store
    test = load_data(cfg.data, cfg.download, train=False).test
    projector, backbone = cfg.projector.build(), load_clip(cfg.backbone, device="cpu")
    store = split_store(open_store(cfg.cache_dir), "tokens", test, projector, backbone, None)
    return extract(store, test, None, projector, backbone, cfg.batch_size).stats.to_dict()
'''

# its command module, dropped into pointcalip/commands/ (here: a folder added to its path)
SCRATCH_COMMAND = '''
"""`pointcalip count`: the scratch task's command."""
import json

from pointcalip.tasks import TASKS, Task
from pointcalip.commands import COMMANDS
from pointcalip.commands.options import add_config_options

TASKS.register("count", Task(config="counting:CountConfig", run="counting:run_count",
                             datasets="counting:feature_datasets"), order=50)


@COMMANDS.register("count", order=50)
def register(subparsers):
    p = subparsers.add_parser("count", help="count stored TEST clouds")
    add_config_options(p, "config file(s)", "--set backbone=RN50")
    p.set_defaults(func=run)
    return p


def run(args):
    from pointcalip.config import load_any_config
    from counting import run_count
    print(json.dumps(run_count(load_any_config(args.config, args.overrides))))
    return 0
'''

# the command line, with the command folder's copy seen as part of pointcalip.commands
MAIN = '''
import sys
import pointcalip.commands
pointcalip.commands.__path__.append(sys.argv[1])
from pointcalip.cli import main
sys.exit(main(sys.argv[2:]))
'''


def test_a_new_task_is_its_package_yaml_and_command_module(small_modelnet, tiny_checkpoints,
                                                           tmp_path):
    """A task registered from its own command module, with its package and YAML and no other
    file edited: `pointcalip count` runs, `extract` reads its config kind and its plan (TEST
    only: it declares no tuning set) from the registry, and it may not ask for a compact
    store (it does not declare compact_stores)."""
    (tmp_path / "counting.py").write_text(textwrap.dedent(SCRATCH_PACKAGE))
    (tmp_path / "commands").mkdir()
    (tmp_path / "commands" / "count.py").write_text(textwrap.dedent(SCRATCH_COMMAND))
    (tmp_path / "count.yaml").write_text(
        f"command: count\ndata:\n  name: modelnet40\n  root: {small_modelnet}\n"
        f"backbone: {tiny_checkpoints['vit']}\ncache_dir: {tmp_path / 'store'}\nbatch_size: 6\n")

    def cli(*argv):
        done = subprocess.run([sys.executable, "-c", MAIN, str(tmp_path / "commands"), *argv],
                              capture_output=True, text=True, cwd=tmp_path,
                              env={**__import__("os").environ, "PYTHONPATH": str(tmp_path)})
        return done.returncode, done.stdout, done.stderr

    rc, out, err = cli("extract", "--config", "count.yaml")          # TEST and `val` asked
    assert rc == 0, err[-2000:]
    table = [line.split("|") for line in out.splitlines()[2:] if line.startswith("| ")]
    assert len(table) == 1 and table[0][1].endswith(" test ")      # no tuning set declared
    assert table[0][4:7] == [" 12 ", " 12 ", " 0 "]                # 4 classes x 3 TEST clouds
    rc, out, err = cli("count", "--config", "count.yaml")
    assert rc == 0, err[-2000:]
    stats = json.loads(out.strip().splitlines()[-1])
    assert (stats["rows"], stats["encoded_now"], stats["from_store"]) == (12, 0, 12)
    rc, _, err = cli("count", "--config", "count.yaml", "--set", "store=tokens8")
    err = error_block(err)
    assert rc == 2 and "`pointcalip count` reads float16 tokens only" in err
    assert "compact stores serve zeroshot and benchmark" in err
    rc, _, err = cli("count", "--help")
    assert rc == 0
