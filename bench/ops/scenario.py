"""Custom-op rows: every check of ``check_autograd`` on the op's fixed inputs, then its
forward+backward timed interleaved with the native composite, with the bytes each keeps
for backward -> autograd_ops.csv."""
from __future__ import annotations

import dataclasses

import torch

from bench.core.callgrind import record_instructions
from bench.core.face import one_of, run_as_row
from bench.core.hardware import DTYPES, PRECISIONS
from bench.core.timing import budget_for, run_benchmark, run_benchmark_against, summarize_ms
from bench.ops import check_autograd
from bench.ops.measure import fwd_bwd_step, saved_tensor_mib
from bench.registry import OpSpec, get_op


def report(spec: OpSpec, device: str, params, dtype: str = "fp32", low_precision=PRECISIONS,
           compile_checks: bool = True):
    inputs = spec.make_inputs(params, device, DTYPES[dtype])
    edges = [spec.make_inputs(p, device, torch.float64) for p in spec.edge_params]
    return check_autograd(spec.fn, *inputs, reference=spec.reference, mutates=spec.mutates, edge_inputs=edges,
                          forward_ad=spec.forward_ad, low_precision=low_precision, compile_checks=compile_checks,
                          deterministic=spec.deterministic, unsupported_dtypes=spec.unsupported_dtypes,
                          once_differentiable=spec.once_differentiable, compile_once=spec.compile_once)


# what each declaration is checked by (for the row's ``declared`` column)
_DECLARED_BY = {"deterministic": "determinism", "unsupported_dtypes": "low_precision_*",
                "once_differentiable": "gradgradcheck", "compile_once": "recompiles", "forward_ad": "forward_ad"}


def record_checks(checked, spec: OpSpec, bench_row) -> None:
    """The verdict and its evidence: correctness checks passed, those not applicable (with and
    without reasons), cost findings apart, and which declared properties were checked."""
    bench_row["checks_passed"] = checked.checks_passed
    bench_row["not_applicable"] = "; ".join(f"{x.name}: {x.message}" for x in checked.checks
                                            if x.status == "not_applicable")[:500]
    # the names alone, whole, for compare (the text above is cut and its messages vary by version)
    bench_row["not_applicable_checks"] = ",".join(x.name for x in checked.checks if x.status == "not_applicable")
    bench_row["cost_checks"] = checked.cost_checks
    bench_row["cost_findings"] = "; ".join(str(f) for f in checked.findings)[:500]
    graphs = next((c.detail.get("graphs_after_each_batch_size") for c in checked.checks if c.name == "recompiles"),
                  None)
    bench_row["compile_graphs"] = "/".join(map(str, graphs)) if graphs else None
    bench_row["declared"] = ", ".join(f"{k}={v} (by {_DECLARED_BY[k]})" for k, v in spec.declared().items())
    bench_row.check(checked.passed, "; ".join(str(f) for f in checked.failures)[:500])


def cases(session) -> list:
    """Every registered op x device x precision of ``session``."""
    from bench.core.profiles import case
    from bench.registry import ops

    profile, out = session.profile, []
    for op in sorted(ops()):
        for device in session.devices:
            for dtype in PRECISIONS:
                if device == "cpu" and dtype == "fp16" and not profile.cpu_fp16:
                    continue
                out.append(case("autograd_ops", op=op, device=device, dtype=dtype))
    return out


# One interleaved round (the op's fwd+bwd and the native composite's) on the bench inputs, ms, on
# the reference 2-core CPU at AVX2 (docs/methods.md, "The run's time plan"): fp32, and bf16 where this CPU emulates it
# (swiglu's matmuls convert through fp32; the elementwise ops cost about what fp32 does).
_ROUND_MS = {"add_bias": (5, 3), "gelu_tanh": (58, 56), "gelu_tanh_op": (53, 60), "rms_norm": (31, 33),
             "rms_norm_op": (30, 30), "swiglu": (220, 5100)}


def estimate(case: dict, profile, machine):
    """The case's cost for the run's time plan (bench.core.plan): the checks, then the rounds."""
    from bench.core.plan import budget_timed, case_budget

    fp32_ms, emulated_ms = _ROUND_MS.get(case["op"], (20, 40))
    emulated = case["device"] == "cpu" and case["dtype"] in machine.emulated
    call_s = (emulated_ms if emulated else fp32_ms) / 1e3
    return budget_timed(case_budget(profile, machine, case["device"], case["dtype"]), call_s, fixed_s=0.3,
                        calls_before=2, essential=case["dtype"] == "fp32",
                        why=f"{case['dtype']} is emulated on this CPU" if emulated else "")


def run_case(case: dict, benchmark, row, session) -> None:
    """Every check of ``check_autograd`` on the op's fixed inputs, then forward+backward timed
    interleaved with the native composite (when the op has one)."""
    c, bench_row, profile = case, row, session.profile
    spec, device, dtype = get_op(c["op"]), c["device"], c["dtype"]
    checked = report(spec, device, spec.check_params, low_precision=(dtype,))
    record_checks(checked, spec, bench_row)
    inputs = spec.make_inputs(spec.bench_params, device, DTYPES[dtype])
    bench_row["saved_mib"] = saved_tensor_mib(spec.fn, inputs)
    step = fwd_bwd_step(spec.fn, inputs)
    budget = budget_for(profile.budget, device, dtype, bench_row)
    if spec.reference is None:
        samples = run_benchmark(benchmark, step, device, budget, record=bench_row)
        bench_row["fwd_bwd_median_ms"] = summarize_ms(samples).get("median_ms")
    else:
        samples, native = run_benchmark_against(benchmark, step, fwd_bwd_step(spec.reference, inputs), device,
                                                budget, record=bench_row)
        bench_row["native_saved_mib"] = saved_tensor_mib(spec.reference, inputs)
        if samples:
            bench_row["fwd_bwd_median_ms"] = summarize_ms(samples)["median_ms"]
            bench_row["native_median_ms"] = summarize_ms(native)["median_ms"]
            bench_row["speedup_vs_native"] = bench_row["native_median_ms"] / bench_row["fwd_bwd_median_ms"]
    call_s = (bench_row.get("fwd_bwd_median_ms") or 0) / 1e3
    record_instructions(bench_row, session, "bench.ops.scenario:instruction_callables",
                        {"op": c["op"], "dtype": dtype}, call_s if profile.instr_inputs == "bench" else 0.0,
                        callables=1 if spec.reference is None else 2)


@dataclasses.dataclass(frozen=True)
class Config:
    """One custom-op case: a registered op on a device in a precision."""

    op: str
    device: str = "cpu"
    dtype: str = "fp32"

    def __post_init__(self):
        get_op(self.op)  # KeyError naming the registered ops
        one_of("dtype", self.dtype, PRECISIONS)


def run(config: Config, session=None) -> dict:
    """The op's autograd_ops.csv row, without pytest."""
    return run_as_row("autograd_ops", dataclasses.asdict(config), run_case, session)


def instruction_callables(case: dict) -> dict:
    """The op's forward+backward (and its native composite's) on its benchmark inputs, for
    ``bench.core.callgrind`` (built in the valgrind'd child, on the CPU)."""
    from bench.registry import load_plugins

    load_plugins(case.get("plugins"))
    spec = get_op(case["op"])
    params = spec.check_params if case.get("inputs") == "check" else spec.bench_params
    inputs = spec.make_inputs(params, "cpu", DTYPES[case["dtype"]])
    out = {"instructions": fwd_bwd_step(spec.fn, inputs)}
    if spec.reference is not None:
        out["native_instructions"] = fwd_bwd_step(spec.reference, inputs)
    return out
