#!/usr/bin/env bash
# Nightly: keep a rolling history of results files and look for change points in it.
# The history travels from night to night as the `bench-history` artifact (downloaded into
# history/ before the run, uploaded again after): no branch or cache to maintain, and each
# night's upload carries every earlier night, so it lives as long as nights keep running
# within the artifact retention. Adds tonight's results, writes history.md and history.html,
# and exits as `python -m bench history --recent 3` does: 1 when a change toward worse starts
# in the last 3 nights (one noisy night is not a change), 2 on unusable input.
set -u
new=${1:-reports/latest/results.json}
py=${BENCH_PYTHON:-}
if [ -z "$py" ]; then
  if [ -x .tox/gpu/bin/python ]; then py=.tox/gpu/bin/python; else py=python3; fi
fi
mkdir -p history
if [ -f "$new" ]; then
  id=$("$py" -c "import json,sys; print(json.load(open(sys.argv[1]))['bench_run']['run_id'])" "$new")
  cp "$new" "history/$id.json"
fi
"$py" -m bench history history --recent "${RECENT:-3}" --format markdown --html history.html > history.md
code=$?
{ echo "## History ($(ls history/*.json 2>/dev/null | wc -l) nights)"; cat history.md; } >> "${GITHUB_STEP_SUMMARY:-/dev/null}"
exit $code
