"""Graph modes: eager vs script / trace / compile / export, parity first, then speed ->
graph_modes.csv."""
import pytest

from bench.core.profiles import cases_from
from bench.graphs import scenario as gb


@cases_from(gb.cases)
def test_graph_mode(c, bench_row, benchmark, bench_session):
    gb.run_case(c, benchmark, bench_row, bench_session)


# ---- correctness of the parity checker itself (plain tests: fast, no compile) ----

@pytest.mark.bench_check("graph_modes", check="trace_pitfalls_caught", device="cpu")
def test_trace_pitfalls_are_mismatches_with_the_probe_that_exposed_them(bench_session):
    for name in ("data_dependent", "shape_arith"):
        _, _, _, results = gb.parity(name, "cpu", ("eager", "script", "trace", "export"),
                                     profile=bench_session.profile)
        assert results["eager"].status == "ok"
        assert results["trace"].status == "mismatch", results["trace"]
        assert "probe 0" in results["trace"].detail
        assert results["script"].status == "ok", results["script"]  # script keeps the control flow


@pytest.mark.bench_check("graph_modes", check="script_unsupported_named", model="tiny_bert", device="cpu")
def test_script_unsupported_model_reports_torchscripts_reason(bench_session):
    _, _, _, results = gb.parity("tiny_bert", "cpu", ("eager", "script"), profile=bench_session.profile)
    assert results["script"].status == "unsupported"
    assert results["script"].detail  # TorchScript's own error, not a crash
    assert any("deprecated" in w for w in results["script"].warnings)


@pytest.mark.bench_check("graph_modes", check="save_load_roundtrip", model="custom_ops_mlp", device="cpu")
def test_save_load_roundtrip_is_checked(bench_session):
    _, _, _, results = gb.parity("custom_ops_mlp", "cpu", ("eager", "trace", "export"), profile=bench_session.profile)
    assert results["trace"].status == "unsupported" and "save/load" in results["trace"].detail
    assert results["export"].status == "ok"
