"""PointCLIP and CALIP at 0 shots, the baseline rows: zero-shot accuracy on TEST and on
validation, CALIP's betas and view weights searched on validation."""
from __future__ import annotations

from . import METHODS


@METHODS.register("zeroshot", section=None, trains=False, augmented=False, order=0, baseline=True)
def run(prepared, k=None, seed=None) -> list:
    """-> the rows of PointCLIP (betas 0) and CALIP (the search on validation) at 0 shots."""
    from ...pipeline import evaluate
    from ..result import FewShotRun

    zero = prepared.zero
    test = evaluate(zero.test, zero.text, zero.found)
    val = evaluate(zero.of(prepared.splits.val), zero.text, zero.found)
    f = zero.found
    calip = {"beta2": f.beta2, "beta3": f.beta3, "view_weights": f.view_weights}
    return [FewShotRun(method, 0, None, on_test.top1, on_val.top1, hp,
                       test_mean_class_accuracy=on_test.mean_per_class,
                       test_confusion=on_test.confusion.tolist())
            for method, on_test, on_val, hp in (("pointclip", test[0], val[0], {}),
                                                ("calip", test[1], val[1], calip))]
