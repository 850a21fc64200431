"""Custom autograd ops: correctness (every check, hypothesis shapes), opcheck, compile and
export, and forward+backward speed against the native composite -> autograd_ops.csv."""
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bench.cases import case, devices
from bench.devices import DTYPES
from bench.ops import check_autograd
from bench.ops.compile_export import compile_and_export_parity
from bench.ops.measure import fwd_bwd_step, saved_tensor_mib
from bench.registry import get_op, ops
from bench.settings import current
from bench.timing import run_benchmark, run_benchmark_against, summarize_ms

PROFILE = current().profile
OPS = sorted(ops())


def _report(spec, device, params, dtype="fp32", low_precision=("fp32", "bf16", "fp16"), compile_checks=True):
    inputs = spec.make_inputs(params, device, DTYPES[dtype])
    edges = [spec.make_inputs(p, device, torch.float64) for p in spec.edge_params]
    return check_autograd(spec.fn, *inputs, reference=spec.reference, mutates=spec.mutates, edge_inputs=edges,
                          forward_ad=spec.forward_ad, low_precision=low_precision, compile_checks=compile_checks)


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
    report = _report(spec, device, params, compile_checks=False)  # the benchmark case runs it once per op
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
    assert result["compile_max_abs_err"] <= 1e-4, result
    assert result["export_max_abs_err"] <= 1e-4, result


def _bench_cases():
    out = []
    for op in OPS:
        for device in devices():
            for dtype in ("fp32", "bf16", "fp16"):
                if device == "cpu" and dtype == "fp16" and not PROFILE.cpu_fp16:
                    continue
                out.append(case("autograd_ops", op=op, device=device, dtype=dtype))
    return out


@pytest.mark.parametrize("c", _bench_cases())
def test_op_fwd_bwd(c, bench_row, benchmark):
    """Checks first (a wrong op is never timed as a speed-up), then forward+backward of the
    custom op vs its native composite at the same precision."""
    spec, device, dtype = get_op(c["op"]), c["device"], c["dtype"]
    report = _report(spec, device, spec.check_params, low_precision=(dtype,))
    bench_row["checks_passed"] = report.checks_passed
    bench_row["not_applicable"] = "; ".join(f"{x.name}: {x.message}" for x in report.checks
                                            if x.status == "not_applicable")[:500]
    bench_row.check(report.passed, "; ".join(str(f) for f in report.failures)[:500])
    inputs = spec.make_inputs(spec.bench_params, device, DTYPES[dtype])
    bench_row["saved_mib"] = saved_tensor_mib(spec.fn, inputs)
    step = fwd_bwd_step(spec.fn, inputs)
    if spec.reference is None:
        samples = run_benchmark(benchmark, step, device, PROFILE.budget)
        bench_row["fwd_bwd_median_ms"] = summarize_ms(samples).get("median_ms")
        return
    samples, native = run_benchmark_against(benchmark, step, fwd_bwd_step(spec.reference, inputs), device,
                                            PROFILE.budget)
    bench_row["native_saved_mib"] = saved_tensor_mib(spec.reference, inputs)
    if samples:
        bench_row["fwd_bwd_median_ms"] = summarize_ms(samples)["median_ms"]
        bench_row["native_median_ms"] = summarize_ms(native)["median_ms"]
        bench_row["speedup_vs_native"] = bench_row["native_median_ms"] / bench_row["fwd_bwd_median_ms"]
