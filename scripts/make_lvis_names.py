#!/usr/bin/env python
"""Write configs/data/objaverse_lvis_names.yaml from OpenShape's Objaverse-LVIS split: every
category of the split (OpenShape's label order) with the class name CLIP will read, so the
table can be reviewed and edited as data.

    python scripts/make_lvis_names.py PATH/TO/meta_data/split/lvis.json [-o FILE]

A category the current file already names keeps that name (a hand edit survives); the others
take the rule of `pointcalip.datasets.objaverse_lvis.prompt_name` ('_' -> space). The file's
comment block is kept. The names are checked to give distinct prompts before anything is
written.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import yaml

from pointcalip.datasets.objaverse_lvis import NAMES_FILE, categories_of, class_names, load_names, read_split
from pointcalip.prompts import configs_root


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("split", type=Path, help="OpenShape's meta_data/split/lvis.json")
    parser.add_argument("-o", "--output", type=Path, default=configs_root() / NAMES_FILE,
                        help="the names file to write (default: the shipped one, updated in place)")
    args = parser.parse_args(argv)
    try:
        categories = categories_of(read_split(args.split))
        current = load_names(args.output) if args.output.is_file() else {}
        names = dict(zip(categories, class_names(categories, current)))
        header = "".join(line for line in (args.output.read_text(encoding="utf-8").splitlines(True)
                                           if args.output.is_file() else [])
                         if line.startswith("#"))
        args.output.write_text(header + yaml.safe_dump({"names": names}, sort_keys=False,
                                                       allow_unicode=True, width=1000),
                               encoding="utf-8")
    except (OSError, ValueError) as err:
        print(f"make_lvis_names: {err}", file=sys.stderr)
        return 2
    print(f"{len(names)} categories -> {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
