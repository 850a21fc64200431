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
base=$(find baseline -name results.json 2>/dev/null | sort | head -n 1)
if [ -z "$base" ]; then
  echo "No previous night's results under baseline/: nothing to compare." | tee compare.md
  exit 0
fi
"$py" -m bench compare "$base" "$new" --format markdown --html compare.html > compare.md
code=$?
{ echo "## Compared with the previous night ($base)"; cat compare.md; } >> "${GITHUB_STEP_SUMMARY:-/dev/null}"
exit $code
