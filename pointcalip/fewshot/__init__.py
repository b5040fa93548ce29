"""Few-shot point-cloud recognition on frozen CLIP features (docs/few-shot-methods.md).

    from pointcalip.fewshot import CALIPFS, InterViewAdapter, TipCache
    fs = CALIPFS(text, beta2=1.0, beta3=0.05, view_weights=None, rank=None, num_views=10)
    logits = fs(global_feats, spatial)            # [B, V, C], [B, V, HW, C] -> [B, K]
    ad = InterViewAdapter.from_pointclip_checkpoint("adapter/model-best.pth.tar")
    logits = ad.logits(raw_global, text)          # un-normalised [B, V, C] -> [B, K]
    cache = TipCache(keys, labels, num_classes)   # keys [M, D] unit rows
    logits = cache.logits(feats, base_logits, alpha=1.0, beta=5.5)

`pointcalip fewshot` (fewshot/run.py) runs every method (fewshot/methods/, one module each;
the models they train live in tip_cache, inter_view_adapter and calip_fs_model)
at every shot count and seed. Names are imported lazily, so that listing the methods (e.g.
for ``--help``) imports no torch.
"""
from ..core.lazy import lazy_attribute, renamed_modules

_EXPORTS = {"CALIPFS": "calip_fs_model", "InterViewAdapter": "inter_view_adapter",
            "TipCache": "tip_cache"}
# the models' modules were named as the method modules that run them (methods/tip.py, ...)
renamed_modules(__name__, {"tip": "tip_cache", "adapter": "inter_view_adapter",
                           "calip_fs": "calip_fs_model"})
renamed_modules(__name__, {"report": "result"})     # apart from pointcalip/report/

__all__ = sorted(_EXPORTS)


def __getattr__(name):
    return lazy_attribute(__name__, _EXPORTS, name)


def __dir__():
    return sorted(list(globals()) + __all__)
