"""``check_autograd``: point it at any op and get a verdict per named check.

A defect in the op under test is a failed check in the report, never an exception out of
the checker; a check the op cannot run (a dtype it rejects, no jvp, no vmap rule, nothing
to compare against) is ``not_applicable`` with its reason.
"""
from __future__ import annotations

import inspect
from collections.abc import Callable, Sequence
from typing import Any

import torch

from bench.core import numerics
from bench.ops import cost as C
from bench.ops import derivatives as D
from bench.ops import precision as P
from bench.ops import robustness as R
from bench.ops import variants as V
from bench.ops.checks import (  # noqa: F401
    COST_CHECKS,
    HELD,
    LOW_PRECISIONS,
    NA,
    VIOLATED,
    AutogradReport,
    Check,
    err,
    max_diff,
    run_grads,
)


def _legacy_function(fn: Callable) -> str | None:
    """The fix message when ``fn`` is an autograd.Function in the legacy style."""
    cls = fn if inspect.isclass(fn) else type(fn) if isinstance(fn, torch.autograd.Function) else \
        getattr(fn, "__self__", None)
    if not (inspect.isclass(cls) and issubclass(cls, torch.autograd.Function)):
        return None
    bad = [m for m in ("forward", "backward") if m in vars(cls) and not isinstance(vars(cls)[m], staticmethod)]
    if bad or not inspect.isclass(fn) and not getattr(fn, "__self__", None):
        return (f"{cls.__name__} is a legacy autograd.Function ({', '.join(bad) or 'called as an instance'} "
                "not a @staticmethod). Fix: make forward and backward @staticmethod, take ctx as their "
                "first argument (ctx.save_for_backward / ctx.saved_tensors), and call it as "
                f"{cls.__name__}.apply(...).")
    return None


def check_autograd(fn: Callable, *inputs: Any, reference: Callable | None = None, mutates: Sequence[int] = (),
                   edge_inputs: Sequence[tuple] = (), low_precision: Sequence[str] = tuple(LOW_PRECISIONS),
                   check_cuda: bool = True, forward_ad: bool = True, atol: float = 1e-5,
                   rtol: float = 1e-3, unsupported_dtypes: Sequence[str] = (), deterministic: bool = False,
                   compile_checks: bool = True, once_differentiable: bool = False,
                   compile_once: bool = False) -> AutogradReport:
    """Check ``fn(*inputs)``; see the module docstring; docs/your-code.md's "Check your own op" is the contract.

    reference: a native composite computing the same thing (enables the low-precision verdict
    and is compared on edge inputs). mutates: indices of inputs the op declares it writes.
    edge_inputs: extra input tuples in the op's valid domain (zero-size, scalar-like, large).
    forward_ad: False when the op declares no forward-mode AD (the check is then not
    applicable); by default it is checked, since a silently wrong jvp is a real defect.
    unsupported_dtypes: low precisions ("bf16", "fp16", "fp32") the op documents it does not
    take: their checks are not applicable. Otherwise only a forward that refuses the dtype by
    name is; any other error at that dtype, in forward or backward, is a failure.
    deterministic: the op promises bitwise-reproducible results (then non-determinism fails).
    compile_checks: False skips the torch.compile recompile check (Dynamo tracing, ~1 s).
    once_differentiable: the backward is not differentiable again (also detected from
    ``@once_differentiable``): second order is not applicable.
    compile_once: the op promises one graph for every batch size: a recompile is a failure;
    otherwise it is a cost finding (``AutogradReport.findings``), not a wrong result.
    Checks in ``COST_CHECKS`` are cost, the rest correctness.
    """
    checks: list[Check] = []
    legacy = _legacy_function(fn)
    checks.append(Check("legacy_function", VIOLATED, legacy) if legacy else Check("legacy_function", HELD))
    call = fn
    if legacy and not inspect.isclass(fn) and isinstance(fn, torch.autograd.Function):
        call = type(fn).apply  # still run the remaining checks through the modern entry point
    elif legacy and inspect.isclass(fn):
        call = fn.apply
    try:
        call(*V.detached(inputs))
    except Exception as exc:  # the op fails on the inputs it was given: nothing else can run
        checks.append(Check("forward", VIOLATED, err(exc)))
        return AutogradReport(checks)
    checks.append(Check("forward", HELD))
    checks.append(_guard("mutation", _check_mutation, call, inputs, mutates))
    if not V.differentiable_positions(inputs):
        reason = "no floating-point tensor input to differentiate"
        checks += [Check(n, NA, reason) for n in ("gradcheck", "gradgradcheck", "forward_ad", "batched_grad", "vmap")]
    else:
        checks += D.check_fp64(call, inputs, atol, rtol, forward_ad, once_differentiable)
        checks.append(_guard("vmap", D.check_vmap, call, inputs))
    checks.append(_guard("layout", _check_layout, call, inputs))
    checks.append(_guard("edge_inputs", _check_edges, call, edge_inputs, reference))
    checks += [_guard(f"low_precision_{n}", P.check_low_precision, call, inputs, reference, n, unsupported_dtypes)
               for n in low_precision]
    checks.append(_guard("cuda_parity", P.check_cuda, call, inputs) if check_cuda
                  else Check("cuda_parity", NA, "disabled by check_cuda=False"))

    checks += [_guard("grad_layouts", R.check_grad_layouts, call, inputs),
               _guard("grad_not_modified", R.check_grad_not_modified, call, inputs),
               _guard("saved_tensors", R.check_saved_tensors, call, inputs),
               _guard("saved_memory", C.check_saved_memory, call, inputs, reference),
               _guard("output_dtype", R.check_output_dtype, call, inputs, reference),
               _guard("determinism", R.check_determinism, call, inputs, deterministic)]
    checks.append(_guard("recompiles", C.check_recompiles, call, inputs) if compile_checks
                  else Check("recompiles", NA, "disabled by compile_checks=False"))
    for c in checks:
        if c.name in COST_CHECKS and not (c.name == "recompiles" and compile_once):
            c.kind = "cost"
    return AutogradReport(checks)


def _guard(name: str, check, *args) -> Check:
    """Run one check; an exception the op raises inside it is that check's failure."""
    try:
        return check(*args)
    except Exception as exc:
        return Check(name, VIOLATED, f"op raised during the check: {err(exc)}")


def _check_mutation(fn, inputs, mutates) -> Check:
    before = [x.detach().clone() if isinstance(x, torch.Tensor) else None for x in inputs]
    fresh = V.detached(inputs)
    versions = [x._version if isinstance(x, torch.Tensor) else None for x in fresh]
    try:
        fn(*fresh)
    except Exception as exc:
        return Check("mutation", VIOLATED, f"op raised on a second call: {err(exc)}")
    changed = [i for i, (x, b, v) in enumerate(zip(fresh, before, versions))
               if b is not None and i not in mutates and (x._version != v or not torch.equal(x.detach(), b))]
    if changed:
        return Check("mutation", VIOLATED, f"input(s) {changed} modified in place but not declared in mutates=")
    return Check("mutation", HELD)


def _check_layout(fn, inputs) -> Check:
    try:
        base_out, base_grads, weights = run_grads(fn, V.detached(inputs, keep_grad=True))
    except Exception as exc:
        return Check("layout", NA, f"no gradients to compare: {err(exc)}")
    tried, worst, worst_case = [], 0.0, ""
    for label, variant in V.layout_variants(inputs):
        try:
            outs, grads, _ = run_grads(fn, variant, weights)
        except Exception as exc:
            if label.startswith("broadcast"):
                continue  # the op does not broadcast: not a layout defect
            return Check("layout", VIOLATED, f"{label}: raised {err(exc)}")
        tried.append(label)
        diff = max(max_diff(base_out, outs), max_diff(base_grads, grads))
        if diff > worst:
            worst, worst_case = diff, label
    if not tried:
        return Check("layout", NA, "no input has a non-contiguous or broadcast variant")
    tol = numerics.OP_LAYOUT_TOL * max(1.0, max(float(o.detach().abs().max()) for o in base_out if o.numel())
                                       if base_out else 1.0)
    if worst > tol:
        return Check("layout", VIOLATED, f"{worst_case}: max abs diff {worst:.3g} vs contiguous inputs",
                     {"variants": tried})
    return Check("layout", HELD, detail={"variants": tried})


def _check_edges(fn, edge_inputs, reference) -> Check:
    """Each edge input judged on its own: a reference that cannot run one of them loses only
    that comparison, never the finiteness checks or the other inputs."""
    if not edge_inputs:
        return Check("edge_inputs", NA, "op declares no valid domain (pass edge_inputs=)")
    failed, unjudged = [], []
    for i, case in enumerate(edge_inputs):
        try:
            outs, grads, w = run_grads(fn, V.detached(case, keep_grad=True))
        except Exception as exc:
            failed.append(f"edge input {i}: raised {err(exc)}")
            continue
        if not all(torch.isfinite(t).all() for t in [*outs, *grads]):
            failed.append(f"edge input {i}: non-finite output or gradient")
            continue
        if reference is None:
            continue
        try:
            r_outs, r_grads, _ = run_grads(reference, V.detached(case, keep_grad=True), w)
        except Exception as exc:
            unjudged.append(f"edge input {i}: the reference raised {err(exc)[:100]}")
            continue
        scale = max([1.0] + [float(t.detach().abs().max()) for t in r_outs if t.numel()])
        diff = max(max_diff(r_outs, outs), max_diff(r_grads, grads))
        if diff > numerics.OP_EDGE_TOL * scale:
            failed.append(f"edge input {i}: differs from reference by {diff:.3g}")
    detail = {"cases": len(edge_inputs), "failed": len(failed), "not_compared": unjudged}
    note = f"; not compared with the reference: {'; '.join(unjudged)}" if unjudged else ""
    if failed:
        return Check("edge_inputs", VIOLATED, "; ".join(failed)[:300] + note, detail)
    return Check("edge_inputs", HELD, f"{len(edge_inputs)} edge input(s) finite" + note, detail)
