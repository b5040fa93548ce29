"""`pointcalip download`: fetch or install a dataset (or PointCLIP V2's prompt files) into the
data folder."""
from __future__ import annotations

import argparse
import sys

from . import COMMANDS
from pointcalip.core.paths import data_dir
from pointcalip.datasets.catalog import DATASETS

from .options import user_folder


@COMMANDS.register("download", order=70)
def register(subparsers) -> argparse.ArgumentParser:
    p = subparsers.add_parser(
        "download",
        help="download or install a dataset (" + ", ".join(DATASETS.names()) + ") or "
             "PointCLIP V2's prompt files (v2_prompts)",
        description=(
            "Install a dataset under --root (default: $POINTCALIP_HOME/data). ModelNet40 is "
            "downloaded from the published URL or a mirror (resumable; run again to resume). "
            "ScanObjectNN needs its terms accepted at https://hkust-vgd.github.io/scanobjectnn/ "
            "first: pass the h5_files.zip you received with --from (or its link with --url). "
            "ModelNet10 is read from the ModelNet40 folder. v2_prompts: PointCLIP V2's GPT-3 "
            "prompt files, fetched from its repository at a pinned commit and checked (or "
            "copied from a checkout with --from), for --set templates=v2."
        ),
    )
    p.add_argument("dataset", choices=[*DATASETS.names(), "v2_prompts"])
    src = p.add_mutually_exclusive_group()
    src.add_argument("--url", help="download from this URL instead of the known ones")
    src.add_argument("--from", dest="from_path", metavar="PATH", type=user_folder,
                     help="install from a local zip/tar archive or an extracted folder")
    p.add_argument("--root", default=None, type=user_folder, help=f"data folder (default: {data_dir()})")
    p.add_argument("--force", action="store_true", help="reinstall even if already present")
    p.add_argument("--no-verify", dest="verify", action="store_false",
                   help="skip the per-file checksum check against the published release")
    p.set_defaults(func=run)
    return p


def run(args: argparse.Namespace) -> int:
    from pointcalip.datasets.download import check_origin, dataset_folder, ensure_dataset

    if args.dataset == "v2_prompts":
        from pointcalip.prompt_downloads import install_v2_prompts

        if args.url:
            raise ValueError("--url does not apply to v2_prompts (fetched from PointCLIP V2's "
                             "repository at a pinned commit); use --from CHECKOUT offline")
        print(install_v2_prompts(args.root, args.from_path, args.force))
        return 0
    if args.from_path is not None:
        check_origin(args.from_path)              # a mistyped --from fails even if installed
    if not args.force and (args.url or args.from_path):
        try:
            folder = dataset_folder(args.dataset, args.root)
        except FileNotFoundError:
            pass
        else:
            given = "--url" if args.url else "--from"
            print(f"{args.dataset} is already installed at {folder}; {given} was not used: "
                  f"add --force to reinstall from it", file=sys.stderr)
            print(folder)
            return 0
    folder = ensure_dataset(args.dataset, root=args.root, url=args.url,
                            from_path=args.from_path, force=args.force, verify=args.verify)
    print(folder)
    return 0
