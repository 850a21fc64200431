"""Graph modes: eager vs script / trace / compile / export, parity first, then speed ->
graph_modes.csv."""
import pytest

from bench import graph_bench as gb
from bench.cases import case, devices
from bench.graphs import MODES
from bench.numerics import tf32_state
from bench.registry import get_model, models
from bench.settings import current
from bench.timing import run_benchmark, run_benchmark_against, summarize_ms

PROFILE = current().profile


def _modes(model: str) -> tuple[str, ...]:
    return tuple(m for m in MODES if m != "compile" or model in PROFILE.compile_models)


def _cases():
    out = []
    for name, spec in models("graph_modes").items():
        for device in devices():
            if spec.gpu_only and device == "cpu":
                continue
            for mode in MODES:
                marks = []
                if mode == "compile":
                    marks.append(pytest.mark.compile)
                    if name not in PROFILE.compile_models:
                        marks.append(pytest.mark.skip(
                            reason=f"torch.compile rows for {name} run in the full profile only "
                                   f"(10-20 s per graph on CPU; this is {PROFILE.name})"))
                for phase in gb.PHASES:
                    out.append(case("graph_modes", marks=marks, model=name, mode=mode, device=device, dtype="fp32",
                                    phase=phase))
    return out


@pytest.mark.parametrize("c", _cases())
def test_graph_mode(c, bench_row, benchmark):
    spec = get_model(c["model"])
    if spec.unavailable and spec.unavailable():
        bench_row.end("skipped", spec.unavailable())
    if c["device"].startswith("cuda"):
        bench_row.update(tf32_state())  # parity tolerances for fp32 widen when TF32 is on
    model, example, target, results = gb.parity(c["model"], c["device"], _modes(c["model"]))
    result = results[c["mode"]]
    bench_row.update(max_abs_err=result.max_abs_err, build_s=result.build_s, graph_breaks=result.graph_breaks,
                     compile_cache=result.compile_cache, recompiles=result.recompiles,
                     warnings="; ".join(result.warnings)[:500] or None, batch_size=gb.batch_size(spec))
    expected = (spec.expected_parity or {}).get(c["mode"])
    if result.status != "ok":
        reason = result.detail or result.status
        if expected == result.status or result.status == "unsupported":
            bench_row.end(result.status, ("expected: " if expected else "") + reason)
        bench_row.check(False, reason, status=result.status)
    bench_row.check(expected is None, f"expected {expected} (the model is built to show it) but parity is ok",
                    status="error")
    fn = gb.step_fn(spec, result, model, example, target, c["phase"])
    bench_row.update(gb.peak_mem(fn, c["device"]))
    if c["mode"] == "eager":
        samples = run_benchmark(benchmark, fn, c["device"], PROFILE.budget)
        bench_row.update(summarize_ms(samples))
        bench_row["speedup_vs_eager"] = 1.0 if samples else None
        return
    eager_fn = gb.step_fn(spec, results["eager"], model, example, target, c["phase"])
    samples, eager = run_benchmark_against(benchmark, fn, eager_fn, c["device"], PROFILE.budget)
    if samples:
        bench_row.update(summarize_ms(samples))
        bench_row["eager_median_ms"] = summarize_ms(eager)["median_ms"]
        bench_row["speedup_vs_eager"] = bench_row["eager_median_ms"] / bench_row["median_ms"]


# ---- correctness of the parity checker itself (plain tests: fast, no compile) ----

def test_trace_pitfalls_are_mismatches_with_the_probe_that_exposed_them():
    for name in ("data_dependent", "shape_arith"):
        _, _, _, results = gb.parity(name, "cpu", ("eager", "script", "trace", "export"))
        assert results["eager"].status == "ok"
        assert results["trace"].status == "mismatch", results["trace"]
        assert "probe 0" in results["trace"].detail
        assert results["script"].status == "ok", results["script"]  # script keeps the control flow


def test_script_unsupported_model_reports_torchscripts_reason():
    _, _, _, results = gb.parity("tiny_bert", "cpu", ("eager", "script"))
    assert results["script"].status == "unsupported"
    assert results["script"].detail  # TorchScript's own error, not a crash
    assert any("deprecated" in w for w in results["script"].warnings)


def test_save_load_roundtrip_is_checked():
    _, _, _, results = gb.parity("custom_ops_mlp", "cpu", ("eager", "trace", "export"))
    assert results["trace"].status == "unsupported" and "save/load" in results["trace"].detail
    assert results["export"].status == "ok"
