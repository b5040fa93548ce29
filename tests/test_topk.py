"""Top-3 and top-5 accuracy beside top-1: pointcalip.report.metrics and the zero-shot stages,
checked against a direct recomputation (the rank of each label among its logits)."""
import numpy as np
import torch

import planted as P
from pointcalip.report.metrics import accuracy
from pointcalip.search import SearchResult
from pointcalip.pipeline import ViewLogits, evaluate


def rank_of_label(logits: torch.Tensor, labels) -> np.ndarray:
    """How many classes score strictly higher than the label: 0 = top-1 (no ties planted)."""
    logits = logits.double().numpy()
    labels = np.asarray(labels)
    own = logits[np.arange(len(labels)), labels]
    return (logits > own[:, None]).sum(axis=1)


def planted_ranks(n=70, k=8, seed=0):
    """Logits [n, k] in which the label of sample i is at a known rank r[i] (0..k-1)."""
    g = torch.Generator().manual_seed(seed)
    labels = torch.randint(0, k, (n,), generator=g).numpy()
    ranks = np.arange(n) % k
    logits = torch.zeros(n, k, dtype=torch.float64)
    for i in range(n):
        order = torch.randperm(k, generator=g).numpy()
        order = order[order != labels[i]]
        order = np.insert(order, ranks[i], labels[i])        # label at position ranks[i]
        logits[i, torch.as_tensor(order)] = torch.arange(k, 0, -1, dtype=torch.float64)
    return logits, labels, ranks


def test_topk_equals_the_share_of_labels_at_rank_below_k():
    logits, labels, ranks = planted_ranks()
    acc = accuracy(logits, labels)
    assert np.array_equal(rank_of_label(logits, labels), ranks)
    assert acc.top1 == 100 * np.mean(ranks < 1)
    assert acc.top3 == 100 * np.mean(ranks < 3)
    assert acc.top5 == 100 * np.mean(ranks < 5)
    assert acc.top1 < acc.top3 < acc.top5 < 100          # planted so the three differ
    assert acc.topk() == {"top1": acc.top1, "macc": acc.mean_per_class, "top3": acc.top3, "top5": acc.top5}


def test_topk_with_fewer_classes_than_k_counts_every_class():
    logits = torch.tensor([[0.0, 1.0], [1.0, 0.0], [0.2, 0.1]])
    acc = accuracy(logits, [0, 0, 1])
    assert abs(acc.top1 - 100 / 3) < 1e-9 and acc.top3 == 100.0 and acc.top5 == 100.0


def test_ties_never_make_topk_lower_than_top1():
    logits = torch.zeros(4, 9)                            # every class tied
    acc = accuracy(logits, [0, 0, 0, 0])
    assert acc.top1 == 100.0 and acc.top3 == 100.0 and acc.top5 == 100.0


def test_evaluate_reports_topk_of_pointclip_and_calip_as_recomputed():
    g = torch.Generator().manual_seed(3)
    n, v, k = 60, 4, 9
    l0, l1, l2 = (torch.randn(n, v, k, generator=g) * s for s in (3.0, 20.0, 40.0))
    labels = torch.randint(0, k, (n,), generator=g).numpy()
    weights = [1.0, 0.25, 0.75, 0.5]
    found = SearchResult(beta2=0.7, beta3=0.03, view_weights=weights, accuracy=0.0,
                         grid_shape=(1, 1), seconds=0.0)
    pointclip, calip = evaluate(ViewLogits(l0, l1, l2, labels), torch.randn(k, 8), found)
    for acc, want in ((pointclip, P.reference_logits(l0, l1, l2, 0.0, 0.0)),
                      (calip, P.reference_logits(l0, l1, l2, 0.7, 0.03, weights))):
        ranks = rank_of_label(want, labels)
        assert acc.top1 == 100 * np.mean(ranks < 1)
        assert acc.top3 == 100 * np.mean(ranks < 3)
        assert acc.top5 == 100 * np.mean(ranks < 5)
        assert acc.top1 < acc.top3 < acc.top5
    assert calip.top3 != pointclip.top3                   # the betas change the ranking
