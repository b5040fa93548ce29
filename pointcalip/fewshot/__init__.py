"""Few-shot point-cloud recognition on frozen CLIP features (spec/calip_fs.md).

    from pointcalip.fewshot import CALIPFS, InterViewAdapter, TipCache
    fs = CALIPFS(text, beta2=1.0, beta3=0.05, view_weights=None, rank=None, num_views=10)
    logits = fs(global_feats, spatial)            # [B, V, C], [B, V, HW, C] -> [B, K]
    ad = InterViewAdapter.from_pointclip_checkpoint("adapter/model-best.pth.tar")
    logits = ad.logits(raw_global, text)          # un-normalised [B, V, C] -> [B, K]
    cache = TipCache(keys, labels, num_classes)   # keys [M, D] unit rows
    logits = cache.logits(feats, base_logits, alpha=1.0, beta=5.5)

`pointcalip fewshot` (fewshot/run.py) runs every method at every shot count and seed.
"""
from .adapter import InterViewAdapter
from .calip_fs import CALIPFS
from .tip import TipCache

__all__ = ["CALIPFS", "InterViewAdapter", "TipCache"]
