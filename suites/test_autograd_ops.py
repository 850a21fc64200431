"""Custom autograd ops: correctness (every check, hypothesis shapes), opcheck, compile and
export, and forward+backward speed against the native composite -> autograd_ops.csv."""
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bench.core.numerics import OP_COMPILE_TOL
from bench.core.profiles import cases_from
from bench.ops import scenario as op_scenario
from bench.ops.compile_export import compile_and_export_parity
from bench.registry import get_op, ops


def _devices(session) -> list:
    return [pytest.param(d, marks=[pytest.mark.cuda] if d != "cpu" else []) for d in session.devices]


def _ops(session) -> list[str]:
    return sorted(ops())


def _custom_ops(session) -> list[str]:
    return [o for o in sorted(ops()) if get_op(o).is_custom_op]


@cases_from(_devices, argname="device")
@cases_from(_ops, argname="op")
def test_op_is_correct(op, device, bench_session):
    """Every check the op declares passes on hypothesis-drawn shapes (broadcasting included)."""
    spec = get_op(op)

    @settings(max_examples=bench_session.profile.hypothesis_examples, derandomize=True, deadline=None,
              database=None, suppress_health_check=[HealthCheck.too_slow])
    @given(data=st.data())
    def check(data):
        params = data.draw(spec.params_strategy()) if spec.params_strategy else spec.check_params
        report = op_scenario.report(spec, device, params, compile_checks=False)  # the benchmark case runs it once
        assert report.passed, f"{op} {params}:\n{report}"

    check()


@pytest.mark.bench_check("autograd_ops", check="opcheck")
@cases_from(_devices, argname="device")
@cases_from(_custom_ops, argname="op")
def test_opcheck(op, device):
    """torch.library.opcheck: schema, fake tensor, autograd registration, AOT dispatch."""
    spec = get_op(op)
    inputs = spec.make_inputs(spec.check_params, device, torch.float32)
    args = tuple(x.requires_grad_() if isinstance(x, torch.Tensor) else x for x in inputs)
    torch.library.opcheck(spec.fn, args)


@pytest.mark.compile
@pytest.mark.bench_check("autograd_ops", check="compile_export_parity", device="cpu")
@cases_from(_ops, argname="op")
def test_op_compiles_and_exports(op, bench_session):
    """The op under torch.compile (fullgraph) and torch.export matches eager, gradients too.
    smoke uses the aot_eager backend (traces the op, no code generation); other profiles
    inductor."""
    spec = get_op(op)
    backend = "aot_eager" if bench_session.profile.name == "smoke" else "inductor"
    result = compile_and_export_parity(spec, "cpu", backend)
    assert result["compile_max_abs_err"] <= OP_COMPILE_TOL, result
    assert result["export_max_abs_err"] <= OP_COMPILE_TOL, result


@cases_from(op_scenario.cases)
def test_op_fwd_bwd(c, bench_row, benchmark, bench_session):
    """Checks first (a wrong op is never timed as a speed-up), then forward+backward of the
    custom op vs its native composite at the same precision."""
    op_scenario.run_case(c, benchmark, bench_row, bench_session)
