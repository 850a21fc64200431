"""Sharded training's checks can fail: a gradient lost on one rank is a mismatch naming the
parameter; a crashed rank is a row with its error, within the bound; checkpointing keeps the
gradients and saves the activations it says."""
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
    c = dict(model="llama", strategy="fsdp2", world_size=2, checkpoint=False, device="cpu")
    row = _row(**c)
    with pytest.raises(AssertionError):
        scenario.run_case(c, None, row, _session(), extra=["--fault", "lose_grad:1"])
    assert row["status"] == "mismatch", row
    assert "model.layers.1." in row["reason"] and "from step 1" in row["reason"], row["reason"]


def test_a_crashed_rank_is_a_row_with_its_error_within_the_bound():
    c = dict(model="llama", strategy="fsdp2", world_size=2, checkpoint=False, device="cpu")
    row = _row(**c)
    t0 = time.perf_counter()
    with pytest.raises(AssertionError):
        scenario.run_case(c, None, row, _session(), extra=["--fault", "raise:1"])
    assert row["status"] == "error" and "injected failure on rank 1" in row["reason"], row
    assert time.perf_counter() - t0 < 120


def test_checkpointing_keeps_the_gradients_and_saves_activations():
    row = scenario.run(scenario.Config(strategy="single", world_size=1, checkpoint=True), _session())
    assert row["status"] == "ok" and row["param_max_abs_diff"] <= 1e-5, row
    assert row["activation_saved_fraction"] < 0.5  # non-reentrant checkpoint of every decoder layer


def test_fsdp_holds_half_the_bytes_per_rank_at_world_size_two():
    row = scenario.run(scenario.Config(strategy="fsdp2", world_size=2), _session())
    assert row["status"] == "ok" and row["sharded_fraction"] == pytest.approx(0.5, abs=0.01), row
    assert row["optimizer_bytes_per_rank"] == pytest.approx(row["param_bytes_per_rank"], rel=0.01)  # momentum
