"""Sharded training's checks can fail: a gradient lost on one rank is a mismatch naming the
parameter (in fp32 and in bf16 mixed precision); a crashed or hung rank is a row with its
error, within the bound, with no process left behind; every checkpointing mode keeps the
gradients under dropout and lowers the step's peak memory, and a recomputation that draws new
dropout masks is a mismatch naming the parameter."""
import os
import time

import pytest

from bench.core.profiles import PROFILES, Settings
from bench.core.rows import Row
from bench.core.session import Session
from bench.sharded import scenario

pytestmark = pytest.mark.distributed


def _session() -> Session:
    return Session(Settings(PROFILES["smoke"], ("cpu",)))


def _row(**keys) -> Row:
    return Row("sharded", "t", **keys)


def test_a_gradient_lost_on_one_rank_is_a_mismatch_naming_the_parameter():
    c = dict(model="llama", strategy="fsdp", world_size=2, checkpointing="none", device="cpu")
    row = _row(**c)
    with pytest.raises(AssertionError):
        scenario.run_case(c, None, row, _session(), extra=["--fault", "lose_grad:1"])
    assert row["status"] == "mismatch", row
    assert "model.layers.1." in row["reason"] and "from step 1" in row["reason"], row["reason"]


def test_tensor_parallelism_shards_the_layers_and_a_lost_gradient_shard_is_a_mismatch():
    """Llama under parallelize_module at world size 2 (gloo): each rank holds part of every
    projection, and a gradient shard lost on rank 1 is caught by the step-by-step check against
    one process (a healthy TP row passes it: the standard profile runs one, docs/measurements.md)."""
    c = dict(model="llama", strategy="tp", world_size=2, checkpointing="none", device="cpu")
    row = _row(**c)
    with pytest.raises(AssertionError):
        scenario.run_case(c, None, row, _session(), extra=["--fault", "lose_grad:1"])
    assert row["status"] == "mismatch" and "model.layers.1." in row["reason"], row
    assert 0.5 < row["sharded_fraction"] < 0.9, row  # the projections split in two, embeddings and norms whole


def test_fsdp2_with_tensor_parallelism_on_a_2d_mesh_equals_one_process():
    """FSDP2 over pairs of ranks, TP within each pair, world size 4 (gloo; oversubscribed on a
    2-core machine, which only slows it): every step's loss and every full parameter equal one
    process on the whole batch, and a rank holds less than TP alone leaves it (the projections
    split in two by TP, everything split again by FSDP2)."""
    row = scenario.run(scenario.Config(strategy="fsdp+tp", world_size=4), _session())
    assert row["status"] == "ok", row.get("reason")
    assert row["loss_max_abs_diff"] < 1e-5 and row["param_max_abs_diff"] < 1e-5
    assert row["sharded_fraction"] < 0.5, row


def test_tensor_parallel_rows_whose_heads_do_not_split_are_skipped_with_the_reason():
    assert scenario._tp_unsplit("standard", 2) is None
    assert "2 key/value heads do not split over 4 ranks" in scenario._tp_unsplit("standard", 4)


def test_a_compiled_training_row_equals_eager_and_one_that_ran_eager_is_an_error():
    """torch.compile of every layer (aot_eager here: the graphs without Inductor's code
    generation, seconds on CPU): the curve equals eager's within the tolerance and the graphs it
    captured are counted; a stack where compile silently runs eager code is an error, not a
    compiled row."""
    from bench.core.profiles import PROFILES, Settings
    from bench.core.session import Session

    session = Session(Settings(PROFILES["smoke"], ("cpu",), compile_backend="aot_eager"))
    row = scenario.run(scenario.Config(model="llama", strategy="single", world_size=1, compile=True), session)
    assert row["status"] == "ok" and row["calls_captured"] > 0 and row["recompiles"] == 0, row
    assert row["loss_max_abs_diff"] <= scenario.SHARDED_TOL and len(row["loss_curve"]) == 4, row
    c = dict(model="llama", strategy="single", world_size=1, checkpointing="none", device="cpu", compile=True)
    eager = _row(**c)
    with pytest.raises(AssertionError):
        scenario.run_case(c, None, eager, session, extra=["--fault", "no_compile:0"])
    assert eager["status"] == "error" and "captured no graph" in eager["reason"], eager


def test_a_gradient_lost_in_bf16_mixed_precision_is_a_mismatch_though_rounding_passes():
    """bf16 rounding moves parameters as far as a lost gradient does in fp32: the row judges
    each parameter's update relative to itself (numerics.SHARDED_MP_UPDATE_TOL)."""
    c = dict(model="llama", strategy="fsdp", world_size=2, checkpointing="none", dropout=0.0, mp="bf16", device="cpu")
    row = _row(**c)
    with pytest.raises(AssertionError):
        scenario.run_case(c, None, row, _session(), extra=["--fault", "lose_grad:1"])
    assert row["status"] == "mismatch" and "model.layers.1." in row["reason"], row
    assert "mixed precision" in row["reason"]


def _processes_mentioning(text: str) -> list[int]:
    found = []
    for pid in os.listdir("/proc"):
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                if text.encode() in f.read() and int(pid) != os.getpid():
                    found.append(int(pid))
        except (OSError, ValueError):
            pass
    return found


def test_a_crashed_rank_is_a_row_with_its_error_within_the_bound():
    c = dict(model="llama", strategy="fsdp", world_size=2, checkpointing="none", device="cpu")
    row = _row(**c)
    t0 = time.perf_counter()
    with pytest.raises(AssertionError):
        scenario.run_case(c, None, row, _session(), extra=["--fault", "raise:1"])
    assert row["status"] == "error" and "injected failure on rank 1" in row["reason"], row
    assert time.perf_counter() - t0 < 120


def test_a_hung_rank_ends_at_the_collective_timeout_with_no_process_left(tmp_path):
    """Rank 1 hangs after sharding; rank 0's first all-gather gives up at --timeout-s, torchrun
    takes the group down, and the row says so."""
    c = dict(model="llama", strategy="fsdp", world_size=2, checkpointing="none", device="cpu")
    t0 = time.perf_counter()
    launched = scenario.launch_run(c, _session(), ["--fault", "hang:1", "--timeout-s", "5"], timeout_s=90,
                                   workdir=tmp_path)
    assert not launched.ok and time.perf_counter() - t0 < 60, launched
    assert "rank 0" in launched.reason or "rank0" in launched.reason, launched.reason
    time.sleep(0.5)
    assert _processes_mentioning(str(tmp_path)) == []


def test_fsdp_holds_half_the_bytes_per_rank_at_world_size_two():
    row = scenario.run(scenario.Config(strategy="fsdp", world_size=2), _session())
    assert row["status"] == "ok" and row["sharded_fraction"] == pytest.approx(0.5, abs=0.01), row
    assert row["optimizer_bytes_per_rank"] == pytest.approx(row["param_bytes_per_rank"], rel=0.01)  # momentum
    assert 0 <= row["comm_share_est"] < 1 and row["compute_ms_p50"] > 0, row


@pytest.mark.parametrize("model", ["llama", "tiny_bert"])
@pytest.mark.parametrize("mode", ["non_reentrant", "reentrant", "selective"])
def test_every_checkpointing_mode_keeps_the_gradients_under_dropout_and_lowers_the_peak(model, mode):
    row = scenario.run(scenario.Config(model=model, strategy="single", world_size=1, checkpointing=mode,
                                       dropout=scenario.CHECKPOINT_DROPOUT), _session())
    assert row["status"] == "ok" and row["grad_max_abs_diff"] == 0.0, row
    assert row["forward_calls"] > row["forward_calls_no_checkpoint"], row  # the recomputation ran
    assert row["step_peak_fraction"] < 0.95, row  # measured: 0.51-0.83 (selective keeps the matmul outputs)


@pytest.mark.parametrize("model", ["llama", "tiny_bert"])
def test_a_recomputation_with_new_dropout_masks_is_a_mismatch_naming_the_parameter(model):
    c = dict(model=model, strategy="single", world_size=1, checkpointing="non_reentrant",
             dropout=scenario.CHECKPOINT_DROPOUT, mp="fp32", device="cpu")
    row = _row(**c)
    with pytest.raises(AssertionError):
        scenario.checkpoint_case(c, row, _session(), preserve_rng_state=False)
    assert row["status"] == "mismatch" and "gradient of " in row["reason"], row
    assert row["grad_worst"] in row["reason"] and "recomputation" in row["reason"]


def test_checkpointing_that_never_switched_on_is_a_mismatch_not_a_vacuous_pass(monkeypatch):
    """Before, its one check (equal gradients) held trivially with checkpointing off: ok. Now
    the step must show recomputation (module forwards run again in the backward)."""
    from bench.sharded import checkpointing

    monkeypatch.setattr(checkpointing, "enable", lambda *a, **k: None)  # a stack where enabling is a no-op
    c = dict(model="tiny_bert", strategy="single", world_size=1, checkpointing="non_reentrant",
             dropout=scenario.CHECKPOINT_DROPOUT, mp="fp32", device="cpu")
    row = _row(**c)
    with pytest.raises(AssertionError):
        scenario.checkpoint_case(c, row, _session())
    assert row["status"] == "mismatch" and "never switched on" in row["reason"], row
    assert row["grad_max_abs_diff"] == 0.0 and row["forward_calls"] == row["forward_calls_no_checkpoint"] > 0


@pytest.mark.parametrize("bad, words", [
    (dict(strategy="fsdp", dropout=0.1), "dropout"),
    (dict(strategy="ddp", mp="bf16"), "MixedPrecisionPolicy"),
    (dict(model="tiny_bert", strategy="fsdp"), "tiny_bert"),
    (dict(strategy="single", world_size=1, checkpointing="sometimes"), "non_reentrant"),
    (dict(strategy="fsdp", offload=True), "CPUOffloadPolicy"),
    (dict(model="gpt2", strategy="tp"), "tensor parallelism"),
    (dict(strategy="tp", checkpointing="reentrant"), "tensor parallelism"),
    (dict(strategy="fsdp+tp", world_size=2), "even number >= 4"),
    (dict(strategy="fsdp", mp="float8"), "compute capability 8.9"),
])
def test_config_refuses_combinations_that_cannot_be_proven(bad, words):
    with pytest.raises(ValueError, match=words):
        scenario.Config(**bad)
