#!/usr/bin/env bash
# Nightly: compare tonight's results with the previous night's artifact. download-artifact
# keeps the uploaded paths, so the file lands at baseline/reports/latest/results.json (or
# wherever a layout change puts it): find it rather than assume it.
# Writes compare.md (and compare.html), appends the Markdown to the job summary, and exits
# as `python -m bench compare` does: 1 on a regression, 2 on unusable input.
set -u
new=${1:-reports/latest/results.json}
py=${BENCH_PYTHON:-}
if [ -z "$py" ]; then
  if [ -x .tox/gpu/bin/python ]; then py=.tox/gpu/bin/python; else py=python3; fi
fi
# The baseline: the newest earlier night of the same profile on the same machine (CPU and GPU
# models, device count), from last night's artifact or the rolling history: a night on
# another runner is not a baseline (its timings measure other hardware).
base=$("$py" - "$new" <<'PY'
import sys
from pathlib import Path
from bench.report.compare import latest_matching
from bench.report.runs import load_run
paths = sorted(Path("baseline").rglob("results.json")) + sorted(Path("history").glob("*.json"))
found = latest_matching(paths, load_run(sys.argv[1]))
print(found or "")
PY
)
if [ -z "$base" ]; then
  echo "No earlier night of this profile on this machine under baseline/ or history/: nothing to compare." \
    | tee compare.md
  exit 0
fi
"$py" -m bench compare "$base" "$new" --format markdown --html compare.html > compare.md
code=$?
{ echo "## Compared with the previous night ($base)"; cat compare.md; } >> "${GITHUB_STEP_SUMMARY:-/dev/null}"
exit $code
