"""PointCLIP V2's GPT-3 prompt files, fetched from its repository and checked.

    pointcalip download v2_prompts              # into <data>/prompts/pointclip_v2/
    pointcalip zeroshot ... --set templates=v2  # the file for the run's dataset

V2's headline zero-shot numbers use per-class sentences generated with GPT-3, shipped in its
repository (github.com/yangyangyang127/PointCLIP_V2, ``zeroshot_cls/prompts/`` and
``zeroshot_seg/prompts/``). They are fetched at one pinned commit and each file is checked
against its git blob id at that commit (SHA-1 of ``"blob <size>\\0" + content``, what git itself
records; read from the repository, not computed from a copy we made) and, where recorded, its
SHA-256. ``templates: v2`` then names the file of the run's dataset (classification files:
ModelNet40, which ModelNet10's classes are part of, and ScanObjectNN; ShapeNetPart's part
prompts are kept for reference, `segment` reads its own part templates).
"""
from __future__ import annotations

import hashlib
import logging
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Tuple

from .core.paths import data_dir

log = logging.getLogger(__name__)

V2_REPOSITORY = "yangyangyang127/PointCLIP_V2"
V2_COMMIT = "0b5aee8eca534593a6e4a5b249e9468474f16d4c"
V2_FOLDER = Path("prompts") / "pointclip_v2"         # under the data folder


@dataclass(frozen=True)
class PromptFile:
    path: str                        # in V2's repository
    blob: str                        # git blob id at V2_COMMIT
    sha256: Optional[str]            # of the file, where recorded
    datasets: Tuple[str, ...]        # the datasets whose `templates: v2` it is

    @property
    def name(self) -> str:
        return Path(self.path).name

    @property
    def url(self) -> str:
        return f"https://raw.githubusercontent.com/{V2_REPOSITORY}/{V2_COMMIT}/{self.path}"


V2_PROMPTS = (
    PromptFile("zeroshot_cls/prompts/modelnet40_1000.json",
               "200d88739af50d5694f7416cb9d7a2200c8743b0", None, ("modelnet40", "modelnet10")),
    PromptFile("zeroshot_cls/prompts/scanobjectnn_1000.json",
               "27ba5fa87862007ab63d6133e978faabbf722c4f",
               "9e3f0aab8905b7aa3a92aec403f2a6891f88fddef71e2f9f861512bea058718a", ("scanobjectnn",)),
    PromptFile("zeroshot_seg/prompts/shapenetpart_700.json",
               "f9830d0679ac08243533c875d7e8884b4ef208cc",
               "6f2dc9a750475363a0618578e379ede8cfe7c01e3435ee41d8c7ef5a82443823", ()),
)


def git_blob_id(path: Path) -> str:
    """Git's id of a file's content: SHA-1 of ``b"blob <size>\\0" + content``."""
    data = Path(path).read_bytes()
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


def check_file(path: Path, entry: PromptFile) -> None:
    """ValueError naming ``path`` unless it is V2's file (blob id, SHA-256 where recorded)."""
    got = git_blob_id(path)
    if got != entry.blob:
        raise ValueError(f"{path} is not PointCLIP V2's {entry.name} at commit {V2_COMMIT[:7]} "
                         f"(git blob {got[:12]}, expected {entry.blob[:12]})")
    if entry.sha256 and hashlib.sha256(path.read_bytes()).hexdigest() != entry.sha256:
        raise ValueError(f"{path}: SHA-256 differs from PointCLIP V2's {entry.name}")


def v2_folder(root=None) -> Path:
    return Path(root).expanduser() / V2_FOLDER if root else data_dir() / V2_FOLDER


def install_v2_prompts(root=None, from_path=None, force: bool = False) -> Path:
    """Every V2 prompt file into :func:`v2_folder`: downloaded from the pinned commit, or
    copied from ``from_path`` (a checkout of V2's repository, or a folder holding the files),
    each checked before it is kept. -> the folder."""
    from .datasets.download import download_file

    folder = v2_folder(root)
    folder.mkdir(parents=True, exist_ok=True)
    for entry in V2_PROMPTS:
        dest = folder / entry.name
        if dest.is_file() and not force:
            check_file(dest, entry)
            log.info("%s: already there and checked", dest)
            continue
        staged = dest.with_name(dest.name + ".part")
        if from_path is not None:
            origin = Path(from_path).expanduser()
            source = next((p for p in (origin / entry.path, origin / entry.name) if p.is_file()), None)
            if source is None:
                raise FileNotFoundError(f"{origin} holds neither {entry.path} nor {entry.name}")
            shutil.copyfile(source, staged)
        else:
            download_file(entry.url, staged)
        try:
            check_file(staged, entry)
        except ValueError:
            staged.unlink()
            raise
        staged.replace(dest)
        log.info("%s: installed and checked", dest)
    return folder


def v2_prompt_file(dataset: str, root=None) -> Path:
    """The installed V2 prompt file of ``dataset`` (``templates: v2``); FileNotFoundError that
    says how to get it, ValueError for a dataset V2 has no file for."""
    entry = next((e for e in V2_PROMPTS if dataset in e.datasets), None)
    if entry is None:
        have = sorted({d for e in V2_PROMPTS for d in e.datasets})
        raise ValueError(f"PointCLIP V2 ships no prompt file for {dataset} (it has "
                         f"{', '.join(have)}); name a prompt file or a template set instead")
    path = v2_folder(root) / entry.name
    if not path.is_file():
        raise FileNotFoundError(f"{path} is not there: run `pointcalip download v2_prompts` "
                                f"(or give its path as templates)")
    return path
