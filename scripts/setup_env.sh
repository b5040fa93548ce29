#!/usr/bin/env bash
# Create .venv (if missing) and install PointCALIP with the versions known to work together.
# Rerunning is cheap: every step is skipped when already satisfied.
set -euo pipefail
cd "$(dirname "$0")/.."

# Open3D loads libusb-1.0 at import time; install the Debian package when it is missing.
if ! ldconfig -p 2>/dev/null | grep -q 'libusb-1.0.so.0'; then
  if command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
    echo "[setup] installing Debian package libusb-1.0-0 (needed by open3d)"
    (apt-get install -y -qq libusb-1.0-0 >/dev/null 2>&1 ||
      { apt-get update -qq >/dev/null && apt-get install -y -qq libusb-1.0-0 >/dev/null; })
  else
    echo "[setup] WARNING: libusb-1.0-0 is missing and cannot be installed here (need root + apt)." >&2
    echo "[setup]          Install it with your package manager (e.g. 'sudo apt-get install libusb-1.0-0')," >&2
    echo "[setup]          otherwise 'import open3d' fails and mesh/own-file loading is unavailable." >&2
  fi
fi

PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  echo "[setup] creating .venv"
  "$PY" -m venv .venv
fi
VPY=.venv/bin/python

stamp=.venv/.pointcalip-installed
if [ ! -f "$stamp" ] || [ setup.py -nt "$stamp" ] || [ scripts/setup_env.sh -nt "$stamp" ]; then
  echo "[setup] installing dependencies into .venv (first run takes a few minutes)"
  $VPY -m pip install -q --upgrade pip 'setuptools<81' wheel
  $VPY -m pip install -q torch==2.14.1 torchvision==0.29.1
  # openai-clip's setup imports pkg_resources: build it against setuptools<81.
  $VPY -m pip install -q --no-build-isolation openai-clip
  # The test extra includes open_clip_torch (OpenCLIP backbones), so its tests run, and mkdocs, which
  # builds docs/ in strict mode in tests/test_docs.py (`mkdocs serve` browses it); torch stays pinned.
  $VPY -m pip install -q -e '.[test]' --no-build-isolation \
    --constraint <(printf 'torch==2.14.1\ntorchvision==0.29.1\n')
  touch "$stamp"
fi
