"""Single process vs DistributedDataParallel under torchrun -> ddp.csv."""
import pytest

from bench.core.profiles import cases_from
from bench.distributed import scenario as runs

GRAD_TOL, PARAM_TOL = runs.GRAD_TOL, runs.PARAM_TOL


@cases_from(runs.cases)
def test_ddp(c, bench_row, benchmark, bench_session):
    runs.run_case(c, benchmark, bench_row, bench_session)


@pytest.mark.distributed
def test_two_nodes_on_localhost_merge_into_one_report(tmp_path, bench_session):
    """Two torchrun "nodes" joined by c10d rendezvous: global rank 0 writes one result with
    both nodes' ranks in it."""
    launched = runs.run_two_nodes_on_localhost("mlp", workdir=tmp_path, profile=bench_session.profile)
    assert launched.ok, launched.reason + "\n" + launched.log_tail
    assert launched.result["world_size"] == 2
    assert sorted(n[0] for n in launched.result["nodes"]) == [0, 1]
    assert launched.result["grad_max_abs_diff"] <= GRAD_TOL
