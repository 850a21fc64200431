"""Custom autograd ops: correctness (every check, hypothesis shapes), opcheck, compile and
export, and forward+backward speed against the native composite -> autograd_ops.csv."""
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bench.core.numerics import OP_COMPILE_TOL
from bench.core.profiles import current, devices
from bench.ops import scenario as op_scenario
from bench.ops.compile_export import compile_and_export_parity
from bench.registry import get_op, ops

PROFILE = current().profile
OPS = sorted(ops())


@pytest.mark.parametrize("device", [pytest.param(d, marks=[pytest.mark.cuda] if d != "cpu" else [])
                                    for d in devices()])
@pytest.mark.parametrize("op", OPS)
@settings(max_examples=PROFILE.hypothesis_examples, derandomize=True, deadline=None, database=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(data=st.data())
def test_op_is_correct(op, device, data):
    """Every check the op declares passes on hypothesis-drawn shapes (broadcasting included)."""
    spec = get_op(op)
    params = data.draw(spec.params_strategy()) if spec.params_strategy else spec.check_params
    report = op_scenario.report(spec, device, params, compile_checks=False)  # the benchmark case runs it once per op
    assert report.passed, f"{op} {params}:\n{report}"


@pytest.mark.parametrize("device", [pytest.param(d, marks=[pytest.mark.cuda] if d != "cpu" else [])
                                    for d in devices()])
@pytest.mark.parametrize("op", [o for o in OPS if get_op(o).is_custom_op])
def test_opcheck(op, device):
    """torch.library.opcheck: schema, fake tensor, autograd registration, AOT dispatch."""
    spec = get_op(op)
    inputs = spec.make_inputs(spec.check_params, device, torch.float32)
    args = tuple(x.requires_grad_() if isinstance(x, torch.Tensor) else x for x in inputs)
    torch.library.opcheck(spec.fn, args)


@pytest.mark.compile
@pytest.mark.parametrize("op", OPS)
def test_op_compiles_and_exports(op):
    """The op under torch.compile (fullgraph) and torch.export matches eager, gradients too.
    smoke uses the aot_eager backend (traces the op, no code generation); other profiles
    inductor."""
    spec = get_op(op)
    backend = "aot_eager" if PROFILE.name == "smoke" else "inductor"
    result = compile_and_export_parity(spec, "cpu", backend)
    assert result["compile_max_abs_err"] <= OP_COMPILE_TOL, result
    assert result["export_max_abs_err"] <= OP_COMPILE_TOL, result


@pytest.mark.parametrize("c", op_scenario.cases(PROFILE, OPS))
def test_op_fwd_bwd(c, bench_row, benchmark):
    """Checks first (a wrong op is never timed as a speed-up), then forward+backward of the
    custom op vs its native composite at the same precision."""
    op_scenario.run_case(c, benchmark, bench_row, PROFILE)
