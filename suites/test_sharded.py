"""Sharded training of a decoder: one process vs DDP vs FSDP2, activation checkpointing, each
proven equal to one process on the whole batch before it is timed -> sharded.csv."""
import pytest

from bench.core.profiles import cases_from
from bench.sharded import scenario


@pytest.mark.distributed
@cases_from(scenario.cases)
def test_sharded(c, bench_row, benchmark, bench_session):
    scenario.run_case(c, benchmark, bench_row, bench_session)
