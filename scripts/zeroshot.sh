#!/usr/bin/env bash
# The main job: zero-shot CALIP on ModelNet40 with CLIP RN50 (PointCLIP projector).
# Creates .venv and installs everything on first use, downloads ModelNet40 and the RN50
# weights on first use (into $POINTCALIP_HOME, default ~/.cache/pointcalip), then prints the
# results table. Offline, one error lists everything missing (the ModelNet40 folder and the
# RN50 weights), each with where to put it, and no output folder is created. Extra arguments
# go to `pointcalip zeroshot`, e.g.
#   bash scripts/zeroshot.sh --set backbone=ViT-B/16
#   bash scripts/zeroshot.sh --config configs/modelnet40_realistic.yaml
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup_env.sh
config=(--config configs/modelnet40.yaml)
for a in "$@"; do [ "$a" = "--config" ] && config=(); done
exec .venv/bin/pointcalip zeroshot "${config[@]}" "$@"
