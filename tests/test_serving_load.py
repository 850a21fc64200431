"""The serving suite's checks: the workload and the latency figures by their definitions, the
capacity bracket, the energy meter, and planted defects caught end to end on the smoke zoo: a
scheduler that drops a request (error), a cache that keeps more than the window (named by the
KV check: a cost, the row stays ok), a mode that ignores the sliding window (parity)."""
import pandas as pd
import pytest
import torch

from bench.core.energy import Meter
from bench.core.profiles import PROFILES, Settings
from bench.core.rows import METRICS, SUITE_COLUMNS
from bench.core.session import Session
from bench.serving import figures, scenario
from bench.serving import load as L
from bench.serving.scenario import Config


def _session() -> Session:
    return Session(Settings(PROFILES["smoke"], ("cpu",)))


# ---- the workload and the figures, by definition ----

def test_every_rate_serves_the_same_requests_and_poisson_gaps_have_the_rate():
    burst = L.workload(400, 32, 16, 1000, None)
    fast = L.workload(400, 32, 16, 1000, 50.0)
    assert [r.prompt for r in burst] == [r.prompt for r in fast] and all(r.arrival_s == 0 for r in burst)
    assert all(8 <= len(r.prompt) <= 32 and 4 <= r.new_tokens <= 16 for r in burst)
    gaps = torch.tensor([b.arrival_s - a.arrival_s for a, b in zip(fast, fast[1:])])
    assert (gaps >= 0).all() and 1 / 50 * 0.85 < float(gaps.mean()) < 1 / 50 * 1.15
    with pytest.raises(ValueError, match="rate must be > 0"):
        L.workload(4, 32, 16, 1000, 0.0)


def test_latencies_and_goodput_follow_their_definitions():
    reqs = [L.Request((1, 2), 3, 0.0), L.Request((1, 2), 3, 1.0)]
    served = [L.Served([5, 6, 7], 100.0, [100.1, 100.12, 100.14]),   # TTFT 100 ms, TPOT 20 ms: meets
              L.Served([5, 6, 7], 101.0, [101.6, 101.7, 101.8])]     # TTFT 600 ms: misses
    s = L.summarize(served, reqs, ttft_target_ms=450, tpot_target_ms=40)
    assert s["duration_s"] == pytest.approx(1.8) and s["requests_per_s"] == pytest.approx(2 / 1.8)
    assert s["goodput"] == pytest.approx(1 / 1.8) and s["goodput_fraction"] == 0.5
    assert s["ttft_ms_p50"] == pytest.approx(350) and s["tpot_ms_p50"] == pytest.approx(60)
    assert s["output_tokens_per_s"] == pytest.approx(6 / 1.8)


def test_the_sweep_states_the_highest_sustained_rate_with_its_bracket():
    base = dict(model="llama", device="cpu", scheduler="continuous", scenario="poisson", ttft_target_ms=450.0,
                tpot_target_ms=40.0, tpot_ms_p90=20.0, goodput=1.0, requests_per_s=1.0)
    df = pd.DataFrame([{**base, "status": "ok", "request_rate": 2.0, "ttft_ms_p90": 100.0},
                       {**base, "status": "ok", "request_rate": 4.0, "ttft_ms_p90": 300.0},
                       {**base, "status": "ok", "request_rate": 8.0, "ttft_ms_p90": 900.0},
                       {**base, "status": "ok", "request_rate": 16.0, "ttft_ms_p90": 200.0}])  # noise: not sustained
    (s,) = figures.sweeps(df)
    assert s["best"]["rate"] == 4.0 and s["above"]["rate"] == 8.0
    (what, value, _), = figures.headline(df)
    assert "bracket [4, 8)" in value
    df.loc[0, "status"] = "mismatch"  # a wrong row ends the sustained range: nothing below it met
    assert "none" in figures.headline(df)[0][1]


def test_a_machine_without_an_energy_meter_says_why_and_reports_nothing(tmp_path, monkeypatch):
    monkeypatch.setattr("bench.core.energy.RAPL", str(tmp_path / "intel-rapl:*"))
    meter = Meter("cpu")
    meter.start()
    assert not meter.available and meter.stop() is None and "no energy meter" in meter.why
    zone = tmp_path / "intel-rapl:0"
    zone.mkdir()
    (zone / "energy_uj").write_text("999000000\n")
    (zone / "max_energy_range_uj").write_text("1000000000\n")
    core = tmp_path / "intel-rapl:0:0"  # a sub-zone: part of the package's count, never added to it
    core.mkdir()
    (core / "energy_uj").write_text("0\n")
    meter = Meter("cpu")
    meter.start()
    (zone / "energy_uj").write_text("1000000\n")  # wrapped once: 1 J up to the wrap, 1 J after it
    (core / "energy_uj").write_text("5000000\n")
    assert meter.available and meter.stop() == pytest.approx(2.0)


def test_a_bad_case_is_refused_naming_what_is_valid():
    with pytest.raises(ValueError, match="poisson rows need a load"):
        Config(scenario="poisson")
    with pytest.raises(ValueError, match="paged cache"):
        Config(scheduler="static", cache="paged")
    with pytest.raises(ValueError, match="valid: burst, poisson, capacity, long_context"):
        Config(scenario="offline")


def test_every_measured_column_is_declared():
    assert "serving" in SUITE_COLUMNS and {"goodput", "ttft_ms_p90", "tpot_ms_p90"} <= set(METRICS["serving"])


# ---- end to end on the smoke zoo, with planted defects ----

def test_the_smoke_rows_serve_eagers_tokens():
    session = _session()
    for cfg in (Config(), Config(scenario="poisson", scheduler="static", cache="dynamic", load=0.5)):
        row = scenario.run(cfg, session)
        assert row["status"] == "ok" and row["token_parity"] == "equal", row.get("reason")
        assert row["requests"] == row["completed"] == 6 and row["goodput"] > 0
    row = scenario.run(Config(model="mistral", scenario="long_context", scheduler="single", cache="dynamic",
                              prompt_len=48), session)
    assert row["status"] == "ok" and row["window_binds"] and row["kv_cache_bytes_held"] <= row["kv_cache_bytes_formula"]


def test_a_scheduler_that_drops_a_request_is_an_error(monkeypatch):
    from transformers.generation.continuous_batching.continuous_api import ContinuousBatchingManager

    add = ContinuousBatchingManager.add_request

    def drop_third(self, input_ids, request_id=None, **kw):
        return None if request_id == "r2" else add(self, input_ids, request_id=request_id, **kw)

    monkeypatch.setattr(ContinuousBatchingManager, "add_request", drop_third)
    row = scenario.run(Config(), _session())
    assert row["status"] == "error" and "request 2" in row["reason"] and "refused" in row["reason"]


def test_a_cache_that_keeps_the_whole_context_is_named_by_the_kv_check(monkeypatch):
    from transformers import cache_utils

    monkeypatch.setattr(cache_utils.DynamicSlidingWindowLayer, "update", cache_utils.DynamicLayer.update)
    row = scenario.run(Config(model="mistral", scenario="long_context", scheduler="single", cache="dynamic",
                              prompt_len=48), _session())
    # memory, not a wrong token: the row stays ok and names it; the report's headline does too
    assert row["status"] == "ok" and "over-allocated" in row["kv_finding"], row
    (named,) = [f for f in figures.headline(pd.DataFrame([row])) if "OVER-ALLOCATED" in f[0]]
    assert "over-allocated" in named[1]


def test_a_mode_that_ignores_the_sliding_window_is_a_parity_mismatch(monkeypatch):
    from bench.serving import plan

    model = plan.model

    def no_window(c, session, attn="sdpa", **overrides):
        return model(c, session, attn, **({} if attn == "sdpa" else overrides))  # the timed mode only

    monkeypatch.setattr(plan, "model", no_window)
    row = scenario.run(Config(model="mistral", scenario="long_context", scheduler="single", cache="dynamic",
                              prompt_len=48), _session())
    assert row["status"] == "mismatch" and "window" in row["reason"], row.get("reason")


def test_a_rows_samples_of_something_else_back_no_timing_metric():
    """A serving row's samples are request latencies: compare must not read them as the
    question's decode_ms_p50."""
    from bench.core.metrics import Metric
    from bench.report.runs import Run, metric_values

    timing = Metric("ms", "lower", "timing")
    for samples_of, expect in ((None, [2.0]), ("e2e latency per request", [])):
        row = {"suite": "serving", "status": "ok", "samples_of": samples_of}
        run = Run("r", "20990101-000000-smoke", "smoke", True, {}, {"case": row}, {"case": [1.0, 2.0, 3.0]})
        assert metric_values("case", "decode_ms_p50", timing, [run])[0] == expect


def test_the_capacity_search_brackets_the_highest_rate_that_meets_the_targets():
    from bench.serving.search import search

    found = search(lambda rate: rate <= 50, start=20, requests=48, profile="standard")
    assert found["trials"] == "20:met 40:met 80:missed 56.6:missed"
    assert found["max_rate_meeting"] == 40 and found["rate_bracket_high"] == pytest.approx(56.57, rel=1e-3)
    # a scheduler that never meets: halved down to the slowest rate whose trace fits the profile (48 / 8 s)
    found = search(lambda rate: False, start=20, requests=48, profile="standard")
    assert found["max_rate_meeting"] is None and found["lowest_rate_tried"] == 10 and "5:" not in found["trials"]


def test_a_capacity_row_serves_every_trial_with_eagers_tokens():
    row = scenario.run(Config(scenario="capacity"), _session())
    assert row["status"] == "ok" and row["token_parity"] == "equal", row.get("reason")
    assert row["requests"] == 12 and row["trials"] and row["capacity_requests_per_s"] > 0
