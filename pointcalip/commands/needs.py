"""What a run reads before it can start, checked all at once before any output folder exists.

``zeroshot``, ``fewshot`` and ``ablate`` call :func:`check_needs` right after their config is
checked: the dataset folder (installed first when the config allows downloads) and the CLIP
weights of every backbone the run loads (downloaded first when they are a CLIP name). Whatever
is missing is listed in one error, each item with where to put it, so that an offline user
learns everything on the first try. :func:`no_empty_output` removes the output folder a run
created if the run failed before writing anything into it.
"""
from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Iterator, List

from ..core.words import count, listed

# what a missing dataset or weights file raises, across the readers and downloaders
_MISSING = (OSError, ValueError, KeyError, RuntimeError)


def run_backbones(cfg) -> List[str]:
    """The backbones a run of ``cfg`` loads: its own and, for an ablation config listing the
    backbones study, those of the study's backbones whose features are all stored
    (:func:`stored_backbones`): the study loads only those (for their text encoder) and lists
    the others, unloaded, with the command that encodes them."""
    names = [cfg.backbone]
    if "backbones" in getattr(cfg, "studies", ()):
        names += stored_backbones(cfg, cfg.backbones_study.backbones)
    return list(dict.fromkeys(names))


def stored_backbones(cfg, specs) -> List[str]:
    """Those of ``specs`` whose features of every cloud the backbones study reads under
    ``cfg`` are in its store (looked up by identity, without loading them); [] when the data
    cannot be read yet (the dataset check says why). A backbone whose identity cannot be
    known without its weights counts as stored, so that the weights check names it."""
    from ..ablation.backbones import lacking_rows, study_rows
    from ..pipeline import load_splits
    from ..store import FeatureStore

    try:
        wanted = study_rows(load_splits(cfg))
    except _MISSING:
        return []
    store, projector = FeatureStore(cfg.cache_dir), cfg.projector.build()
    out = []
    for spec in specs:
        try:
            lacking = lacking_rows(store, wanted, projector, spec, cfg.device, cfg.engine)
        except _MISSING:
            lacking = {}
        if not lacking:
            out.append(spec)
    return out


def _dataset_problem(cfg) -> str | None:
    from ..core.paths import data_dir
    from ..data import build_split, resolve_data_root

    where = Path(cfg.data.root).expanduser() if cfg.data.root else data_dir()
    try:
        root = resolve_data_root(cfg.data, cfg.download)
        build_split(cfg.data, root, "test")     # opens its files: names any that is missing
    except _MISSING as err:
        return f"dataset {cfg.data.label} (read from {where}): {_text(err)}"
    return None


def _weights_problem(backbone: str) -> str | None:
    """None when ``backbone``'s weights are here (or were just downloaded), or nothing can be
    checked before loading (a checkpoint file is checked with the config; open_clip models are
    fetched by open_clip)."""
    from ..backbones.families.openai import available_models, fetch_weights

    if backbone not in available_models():
        return None
    try:
        fetch_weights(backbone)     # a no-op when the file is there with its checksum
    except _MISSING as err:
        return f"CLIP {backbone} weights: {_text(err)}"
    return None


def _text(err: BaseException) -> str:
    return str(err.args[0]) if isinstance(err, KeyError) and err.args else str(err)


def check_needs(cfg) -> None:
    """FileNotFoundError listing every input of a run of ``cfg`` that is missing (the dataset,
    the CLIP weights), each with where to put it; nothing when all are here."""
    problems = [_dataset_problem(cfg), *(_weights_problem(b) for b in run_backbones(cfg))]
    problems = [p for p in problems if p]
    if problems:
        raise FileNotFoundError(f"cannot start: {count(len(problems), 'input')} missing, nothing "
                                f"was written:{listed(problems, numbered=True)}")


@contextlib.contextmanager
def no_empty_output(folder: Path) -> Iterator[None]:
    """Remove ``folder`` (and the parents created for it) if the block fails while it is
    empty and did not exist before it."""
    folder = Path(folder).expanduser().absolute()
    created = [p for p in (folder, *folder.parents) if not p.exists()]
    try:
        yield
    except BaseException:
        for path in created:                          # deepest first
            with contextlib.suppress(OSError):        # not empty: kept
                path.rmdir()
        raise
