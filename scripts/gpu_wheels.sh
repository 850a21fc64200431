#!/usr/bin/env bash
# Wheels for the GPU image that scripts/gpu_validation.sh installs offline from .whl/ (the image
# has torch, transformers, pandas, pyarrow, pytest, pytest-benchmark and hypothesis, but not
# datasets, which the Trainer suite reads its data with). Run here, where PyPI is reachable; the
# versions are this project's CPU constraints, the platform the image's (CPython 3.12, x86-64).
set -euo pipefail
cd "$(dirname "$0")/.."
grep -qx '/.whl/' .git/info/exclude 2> /dev/null || echo '/.whl/' >> .git/info/exclude
pin() { grep -i "^$1==" constraints/cpu.txt || echo "$1"; }
# datasets and the two it needs that the image lacks (the rest are in the image)
python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
  --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
  -d .whl "$(pin datasets)" "$(pin dill)" "$(pin multiprocess)"
ls -la .whl
