"""Known failures: a manifest entry turns the failure it describes into ``known_failure`` (exit
0, its link in the report), another failure of the same case stays a failure, a pass is
``fixed_upstream`` (a failure under --bench-strict-known-failures), an entry outside its scope
does nothing, a stale one warns; compare still calls ``ok -> known_failure`` a regression; the
graph suite's pitfall models keep their meaning through the same mechanism."""
import datetime
import json

import pytest

from bench.core import expectations

SUITE = """
import pytest
from bench.core.profiles import case

CASES = [case("devices", model=m, device="cpu", dtype="fp32", phase="inference", batch_size=1)
         for m in ("known", "other", "fixed", "unscoped")]

@pytest.mark.parametrize("c", CASES)
def test_case(c, bench_row, benchmark):
    if c["model"] == "known":
        raise RuntimeError("upstream kernel bug 1234 in the fused path")
    if c["model"] == "other":
        raise ValueError("a brand new failure")
    if c["model"] == "unscoped":
        raise RuntimeError("upstream kernel bug 1234 in the fused path")
    benchmark.pedantic(lambda: sum(range(100)), rounds=3, iterations=1)
"""

ENTRY = """
[[failure]]
case = {{ suite = "devices", model = "{model}" }}
link = "https://github.com/example/upstream/issues/{n}"
why = "a planted upstream bug"
added = {added}
scope = {{ device = ["cpu"], torch = "{torch}" }}
expect = {{ status = "error", exception = "RuntimeError", message = "kernel bug \\\\d+" }}
"""


def _manifest(path, *models, torch=">=1.0", added=None, stale_model=None):
    added = added or datetime.date.today().isoformat()
    text = "".join(ENTRY.format(model=m, n=i, added=added, torch=torch) for i, m in enumerate(models, 1))
    path.write_text(text)
    return str(path)


def _rows(pytester):
    data = json.loads((pytester.path / "reports" / "latest" / "results.json").read_text())
    return {r["model"]: r for r in data["bench_rows"]}, data


def test_matching_failure_is_known_another_is_real_and_a_pass_is_fixed(bench_pytester, tmp_path):
    bench_pytester.makepyfile(test_suite=SUITE)
    manifest = _manifest(tmp_path / "known.toml", "known", "other", "fixed")
    result = bench_pytester.runpytest_subprocess("--bench-device=cpu", f"--bench-known-failures={manifest}")
    rows, _ = _rows(bench_pytester)
    known = rows["known"]
    assert known["status"] == "known_failure" and "https://github.com/example/upstream/issues/1" in known["reason"]
    assert "kernel bug 1234" in known["reason"]
    other = rows["other"]  # the entry expects the RuntimeError; a ValueError is another failure
    assert other["status"] == "error" and "did not occur as expected" in other["reason"]
    assert "issues/2" in other["reason"] and "a brand new failure" in other["reason"]
    fixed = rows["fixed"]
    assert fixed["status"] == "fixed_upstream" and "issues/3" in fixed["reason"] and fixed["median_ms"] > 0
    assert rows["unscoped"]["status"] == "error"  # no entry at all: a plain failure
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    result.assert_outcomes(passed=1, failed=2, xfailed=1)
    summary = (bench_pytester.path / "reports" / "latest" / "summary.md").read_text()
    assert "## Known failures" in summary and "1 known upstream failure (https://github.com/example/upstream/" \
        "issues/1)" in summary and "1 FIXED upstream" in summary


def test_known_failure_and_fix_exit_zero_unless_strict(bench_pytester, tmp_path):
    bench_pytester.makepyfile(test_suite=SUITE)
    manifest = _manifest(tmp_path / "known.toml", "known", "fixed")
    args = ("--bench-device=cpu", f"--bench-known-failures={manifest}", "-k", "known or fixed")
    result = bench_pytester.runpytest_subprocess(*args)
    assert result.ret == pytest.ExitCode.OK
    summary = (bench_pytester.path / "reports" / "latest" / "summary.md").read_text()
    assert summary.splitlines()[2].startswith("**GOOD: no failures; 0 ok; 1 known upstream failure")
    strict = bench_pytester.runpytest_subprocess(*args, "--bench-strict-known-failures")
    assert strict.ret == pytest.ExitCode.TESTS_FAILED
    strict.assert_outcomes(failed=1, xfailed=1)
    assert "--bench-strict-known-failures" in strict.stdout.str()
    summary = (bench_pytester.path / "reports" / "latest" / "summary.md").read_text()
    assert summary.splitlines()[2].startswith("**NOT GOOD") and "update known_failures.toml" in summary


def test_an_entry_out_of_scope_leaves_the_case_judged_normally(bench_pytester, tmp_path):
    bench_pytester.makepyfile(test_suite=SUITE)
    manifest = _manifest(tmp_path / "known.toml", "unscoped", torch="<1.0")  # another torch version
    result = bench_pytester.runpytest_subprocess("--bench-device=cpu", f"--bench-known-failures={manifest}",
                                                 "-k", "unscoped")
    rows, data = _rows(bench_pytester)
    assert rows["unscoped"]["status"] == "error" and "known" not in rows["unscoped"]["reason"]
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    # and the range lies entirely below the installed torch: a note asks to check it
    assert any("entirely below the installed" in n for n in data["bench_run"]["notes"])


def test_a_stale_entry_warns():
    entry = expectations.Entry(case={"model": "x"}, test=None, scope={}, added=datetime.date(2026, 1, 1),
                               expectation=expectations.Expectation("error", "https://x.test/1", "why", "f entry 1"))
    stack = {"torch": "2.13.0"}
    assert expectations.stale([entry], stack, today=datetime.date(2026, 3, 1)) == []
    warned = expectations.stale([entry], stack, today=datetime.date(2026, 12, 1))
    assert len(warned) == 1 and "334 days ago" in warned[0] and "still true" in warned[0]


@pytest.mark.parametrize("text, complaint", [
    ('[[failure]]\ncase = {model = "x"}\nwhy = "w"\nadded = 2026-12-01\n', "'link' must be the public issue"),
    ('[[failure]]\ncase = {model = "x"}\nlink = "https://x.test/1"\nwhy = "w"\nadded = "yesterday"\n',
     "'added' must be a TOML date"),
    ('[[failure]]\ncase = {model = "x"}\nlink = "https://x.test/1"\nwhy = "w"\nadded = 2026-12-01\n'
     'scope = {torch = "two point thirteen"}\n', "scope.torch 'two point thirteen' is not a version range"),
    ('[[failure]]\ncase = {model = "x"}\nlink = "https://x.test/1"\nwhy = "w"\nadded = 2026-12-01\n'
     'expect = {status = "slow"}\n', "expect.status 'slow'; valid: mismatch, error, oom, unsupported"),
    ("[[failure]\n", "not valid TOML"),
])
def test_a_bad_manifest_is_refused_naming_the_file_and_field(tmp_path, text, complaint):
    path = tmp_path / "bad.toml"
    path.write_text(text)
    with pytest.raises(expectations.ManifestError) as refused:
        expectations.load(path)
    assert complaint in str(refused.value) and str(path) in str(refused.value)


def test_a_bad_manifest_is_a_usage_error(bench_pytester, tmp_path):
    bench_pytester.makepyfile(test_suite=SUITE)
    path = tmp_path / "bad.toml"
    path.write_text('[[failure]]\ncase = {model = "x"}\nwhy = "w"\nadded = 2026-12-01\n')
    result = bench_pytester.runpytest_subprocess(f"--bench-known-failures={path}")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    assert "--bench-known-failures" in result.stderr.str() and "'link' must be" in result.stderr.str()


def test_compare_keeps_known_failures_honest():
    from bench.report.correctness import correctness_diff

    ok = {"suite": "generation", "status": "ok", "reason": None}
    known = {"suite": "generation", "status": "known_failure",
             "reason": "known upstream failure, https://github.com/pytorch/pytorch/issues/148752: InductorError"}
    fixed = {"suite": "generation", "status": "fixed_upstream", "reason": "did not occur"}
    error = {"suite": "generation", "status": "error", "reason": "ValueError: new"}
    broke = correctness_diff("c", [ok], [known])
    assert broke["change"] == "regressed" and "148752" in broke["new_reason"]  # the upgrade brought it
    assert correctness_diff("c", [known], [ok])["change"] == "fixed"
    assert correctness_diff("c", [known], [fixed])["change"] == "fixed"
    assert correctness_diff("c", [known], [known]) is None
    assert correctness_diff("c", [ok], [fixed]) is None  # both passed
    assert correctness_diff("c", [known], [error])["change"] == "regressed"  # another failure appeared


def test_the_repository_manifest_reads_and_links_every_entry():
    from pathlib import Path

    entries = expectations.load(Path(__file__).resolve().parents[1] / expectations.MANIFEST)
    assert entries and all(e.expectation.link.startswith("https://github.com/") for e in entries)
    flex = expectations.for_row(entries, {"suite": "generation", "attention": "flex_attention", "device": "cpu"},
                                {"torch": "2.13.0+cpu", "transformers": "5.25.0"})
    assert flex is not None and flex.exception == "InductorError"
    crash = {"suite": "generation", "attention": "flex_attention", "device": "cpu", "status": "error",
             "reason": "the case killed its process with SIGABRT (terminate called recursively)"}
    capped = {"torch": "2.13.0+cpu", "transformers": "5.25.0", "cpu_capability": "AVX2"}
    assert "195402" in expectations.for_row(entries, crash, capped).link  # the entry that matches the failure
    assert not expectations.for_row(entries, crash, {**capped, "cpu_capability": "AVX512"}).matches(
        "error", crash["reason"])  # uncapped, a crash is not what is expected: another failure
    assert expectations.for_row(entries, {"suite": "generation", "attention": "flex_attention", "device": "cpu"},
                                {"torch": "2.11.0", "transformers": "5.17.0"}) is None  # the GPU image's torch
    assert expectations.for_row(entries, {"suite": "generation", "attention": "flex_attention", "device": "cuda:0"},
                                {"torch": "2.13.0", "transformers": "5.25.0"}) is None


def test_pitfall_rows_keep_their_meaning_without_a_reason_prefix():
    from bench.graphs.scenario import Config, run

    trace = run(Config(model="data_dependent", mode="trace"))
    assert trace["status"] == "known_failure" and trace["expected_upstream"] is False
    assert "torch.jit.trace.html" in trace["reason"] and not trace["reason"].startswith("expected:")
    export = run(Config(model="shape_arith", mode="export"))
    assert export["status"] == "known_failure" and "export.html" in export["reason"]
    script = run(Config(model="data_dependent", mode="script"))  # no expectation: judged as usual
    assert script["status"] == "ok" and "expected" not in script


def test_a_pitfall_model_that_stops_failing_is_an_error_and_another_status_is_a_failure():
    declared = expectations.declared("data_dependent", "mismatch", "branch on a tensor value", "https://x.test/doc")
    row = {"status": "ok", "reason": None}
    assert expectations.judge(row, declared, "") == "different"
    assert row["status"] == "error" and "built to show" in row["reason"]  # the checker lost its power
    upstream = expectations.Expectation("error", "https://x.test/1", "why", "f entry 1", exception="InductorError")
    row = {"status": "unsupported", "reason": "ImportError: this build has no flex_attention"}
    assert expectations.judge(row, upstream, "") == "different"
    assert row["status"] == "error" and row["reason"].startswith("unsupported: ")  # the row says what exit 1 says
