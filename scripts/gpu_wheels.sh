#!/usr/bin/env bash
# Wheels for the GPU image that scripts/gpu_validation.sh installs offline from .whl/ (the image
# has torch, transformers, pandas, pyarrow, pytest, pytest-benchmark and hypothesis, but not
# datasets, which the Trainer suite reads its data with). Run here, where PyPI is reachable. The
# versions are pinned to ones that satisfy each other (datasets 5.2.0 wants dill < 0.4.2 and
# multiprocess < 0.70.20; they are installed there with --no-deps), the platform is the image's
# (CPython 3.12, x86-64); datasets' other needs (pyarrow, xxhash, fsspec, ...) are in the image.
set -euo pipefail
cd "$(dirname "$0")/.."
grep -qx '/.whl/' .git/info/exclude 2> /dev/null || echo '/.whl/' >> .git/info/exclude
python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
  --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
  -d .whl datasets==5.2.0 dill==0.4.1 multiprocess==0.70.19
ls -la .whl
