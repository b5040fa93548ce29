"""scripts/measure_v2_differences.py measures something for every difference of V2's
released segmentation code (docs/segmentation.md): each variant changes the predictions (or,
for fp16, the logits), on a planted setting where ours is far from chance."""
import pytest

from test_scripts import load_script


@pytest.fixture(scope="module")
def measured():
    script = load_script("measure_v2_differences")
    return script, script.measure(["lamp", "chair"], shapes=1, points=2048, seed=0)


def test_every_v2_difference_changes_something(measured):
    script, out = measured
    rows = out["variants"]
    assert rows["ours"]["instance_miou"] > 0.6                  # the planted signal is read
    assert 0 < out["unseen_share"] < 0.5                         # the fallback has work to do
    for name in script.VARIANTS:
        if name == "fp16_logits":                                # logits move, argmax barely
            assert 0 < rows[name]["max_logit_change"] < 1
        else:
            assert rows[name]["changed_points"] > 0.005, name
            assert rows[name]["instance_miou"] < rows["ours"]["instance_miou"], name
    # lamp alone is scored with 2 prompts: chair's predictions are untouched
    assert rows["lamp_two_prompts"]["lamp_miou"] < rows["ours"]["lamp_miou"] - 0.2
    assert rows["v2_all"]["changed_points"] > 0.3


def test_empty_part_rule_inflates_a_two_prompt_lamp(measured):
    ex = measured[0].empty_part_example()
    # parts 2 and 3 are in neither truth nor a 2-prompt prediction: IoU 1 each
    assert ex["2 prompts, 4 parts scored"] == pytest.approx((0.6 + 0.6 + 1 + 1) / 4)
    assert ex["2 prompts, 2 parts scored"] == pytest.approx(0.6)
    assert ex["4 prompts, 4 parts scored"] == pytest.approx((0.75 + 0.75 + 0 + 1) / 4)
