#!/usr/bin/env bash
# Run the whole PointCALIP test suite (creates .venv and installs everything on first use).
# Extra arguments are passed to pytest, e.g. `bash scripts/test.sh -k projection`.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup_env.sh
exec .venv/bin/python -m pytest tests -q "$@"
