"""``check_autograd``: point it at any op and get a verdict per named check.

A defect in the op under test is a failed check in the report, never an exception out of
the checker; a check the op cannot run (a dtype it rejects, no jvp, no vmap rule, nothing
to compare against) is ``not_applicable`` with its reason.
"""
from __future__ import annotations

import dataclasses
import inspect
from typing import Any, Callable, Sequence

import torch
from torch.autograd.gradcheck import GradcheckError

from bench.core import numerics
from bench.ops import variants as V

PASSED, FAILED, NA = "passed", "failed", "not_applicable"
LOW_PRECISIONS = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}


@dataclasses.dataclass
class Check:
    name: str
    status: str
    message: str = ""
    detail: dict = dataclasses.field(default_factory=dict)

    def __str__(self):
        return f"{self.name}: {self.status}" + (f" ({self.message})" if self.message else "")


@dataclasses.dataclass
class AutogradReport:
    checks: list[Check]

    @property
    def failures(self) -> list[Check]:
        return [c for c in self.checks if c.status == FAILED]

    @property
    def passed(self) -> bool:
        return not self.failures

    def by_name(self, name: str) -> Check:
        return next(c for c in self.checks if c.name == name)

    @property
    def checks_passed(self) -> str:
        applicable = [c for c in self.checks if c.status != NA]
        return f"{sum(c.status == PASSED for c in applicable)}/{len(applicable)}"

    def __str__(self):
        return "\n".join(map(str, self.checks))


def _err(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0] if text else ''}"[:400]


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


def _run_grads(fn, inputs, weights=None):
    """Outputs of fn and gradients of sum(out * w) wrt every differentiable input."""
    out = fn(*inputs)
    outs = V.tensors_of(out)
    diff = [x for x in inputs if isinstance(x, torch.Tensor) and x.requires_grad]
    if weights is None:
        gen = torch.Generator().manual_seed(0)
        weights = [torch.randn(o.shape, generator=gen, dtype=torch.float64).to(o.device, o.dtype) for o in outs]
    loss = sum((o * w).sum() for o, w in zip(outs, weights) if o.is_floating_point() and o.requires_grad)
    grads = torch.autograd.grad(loss, diff, allow_unused=True) if diff and torch.is_tensor(loss) else []
    return outs, [g if g is not None else torch.zeros_like(x) for g, x in zip(grads, diff)], weights


_max_diff = numerics.max_abs_diff
_rmse = numerics.rmse


def check_autograd(fn: Callable, *inputs: Any, reference: Callable | None = None, mutates: Sequence[int] = (),
                   edge_inputs: Sequence[tuple] = (), low_precision: Sequence[str] = tuple(LOW_PRECISIONS),
                   check_cuda: bool = True, forward_ad: bool = True, atol: float = 1e-5,
                   rtol: float = 1e-3, unsupported_dtypes: Sequence[str] = (), deterministic: bool = False,
                   compile_checks: bool = True) -> AutogradReport:
    """Check ``fn(*inputs)``; see the module docstring; the README's "Check your own op" is the contract.

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
    """
    checks: list[Check] = []
    legacy = _legacy_function(fn)
    checks.append(Check("legacy_function", FAILED, legacy) if legacy else Check("legacy_function", PASSED))
    call = fn
    if legacy and not inspect.isclass(fn) and isinstance(fn, torch.autograd.Function):
        call = type(fn).apply  # still run the remaining checks through the modern entry point
    elif legacy and inspect.isclass(fn):
        call = fn.apply
    try:
        call(*V.detached(inputs))
    except Exception as exc:  # the op fails on the inputs it was given: nothing else can run
        checks.append(Check("forward", FAILED, _err(exc)))
        return AutogradReport(checks)
    checks.append(Check("forward", PASSED))
    checks.append(_guard("mutation", _check_mutation, call, inputs, mutates))
    if not V.differentiable_positions(inputs):
        reason = "no floating-point tensor input to differentiate"
        checks += [Check(n, NA, reason) for n in ("gradcheck", "gradgradcheck", "forward_ad", "batched_grad", "vmap")]
    else:
        checks += _check_fp64(call, inputs, atol, rtol, forward_ad)
        checks.append(_guard("vmap", _check_vmap, call, inputs))
    checks.append(_guard("layout", _check_layout, call, inputs))
    checks.append(_guard("edge_inputs", _check_edges, call, edge_inputs, reference))
    from bench.ops import precision as P
    from bench.ops import robustness as R

    checks += [_guard(f"low_precision_{n}", P.check_low_precision, call, inputs, reference, n, unsupported_dtypes)
               for n in low_precision]
    checks.append(_guard("cuda_parity", P.check_cuda, call, inputs) if check_cuda
                  else Check("cuda_parity", NA, "disabled by check_cuda=False"))

    checks += [_guard("grad_layouts", R.check_grad_layouts, call, inputs),
               _guard("grad_not_modified", R.check_grad_not_modified, call, inputs),
               _guard("saved_tensors", R.check_saved_tensors, call, inputs),
               _guard("saved_memory", R.check_saved_memory, call, inputs, reference),
               _guard("output_dtype", R.check_output_dtype, call, inputs, reference),
               _guard("determinism", R.check_determinism, call, inputs, deterministic)]
    checks.append(_guard("recompiles", R.check_recompiles, call, inputs) if compile_checks
                  else Check("recompiles", NA, "disabled by compile_checks=False"))
    return AutogradReport(checks)


def _guard(name: str, check, *args) -> Check:
    """Run one check; an exception the op raises inside it is that check's failure."""
    try:
        return check(*args)
    except Exception as exc:
        return Check(name, FAILED, f"op raised during the check: {_err(exc)}")


def _check_mutation(fn, inputs, mutates) -> Check:
    before = [x.detach().clone() if isinstance(x, torch.Tensor) else None for x in inputs]
    fresh = V.detached(inputs)
    versions = [x._version if isinstance(x, torch.Tensor) else None for x in fresh]
    try:
        fn(*fresh)
    except Exception as exc:
        return Check("mutation", FAILED, f"op raised on a second call: {_err(exc)}")
    changed = [i for i, (x, b, v) in enumerate(zip(fresh, before, versions))
               if b is not None and i not in mutates and (x._version != v or not torch.equal(x.detach(), b))]
    if changed:
        return Check("mutation", FAILED, f"input(s) {changed} modified in place but not declared in mutates=")
    return Check("mutation", PASSED)


def _check_fp64(fn, inputs, atol, rtol, forward_ad=True) -> list[Check]:
    x64 = V.as_fp64(inputs)
    out = []
    if not forward_ad:
        out.append(Check("forward_ad", NA, "op declares no forward-mode AD support"))
    names = (("gradcheck", {}), ("gradgradcheck", None),
             ("forward_ad", dict(check_forward_ad=True, check_backward_ad=False, check_undefined_grad=False)),
             ("batched_grad", dict(check_batched_grad=True)))
    for name, kwargs in names:
        if name == "forward_ad" and not forward_ad:
            continue
        try:
            if kwargs is None:
                torch.autograd.gradgradcheck(fn, x64, atol=atol, rtol=rtol)
            else:
                torch.autograd.gradcheck(fn, x64, atol=atol, rtol=rtol, **kwargs)
            out.append(Check(name, PASSED))
        except GradcheckError as exc:
            if name == "batched_grad" and "while computing batched gradients, got:" in str(exc).lower():
                # vmap could not run the backward at all (e.g. numpy inside): unsupported, not wrong
                out.append(Check(name, NA, f"backward cannot be vmapped: {_err(exc)}"))
            else:
                out.append(Check(name, FAILED, _err(exc)))
        except Exception as exc:
            text = str(exc).lower()
            unsupported = any(k in text for k in ("jvp", "not implemented", "vmap", "not supported", "float64",
                                                   "double", "forward ad", "forward-mode"))
            if name in ("forward_ad", "batched_grad") and unsupported:
                out.append(Check(name, NA, f"op does not support it: {_err(exc)}"))
            elif "float64" in text or "double" in text:
                out.append(Check(name, NA, f"op rejects float64: {_err(exc)}"))
            else:
                out.append(Check(name, FAILED, _err(exc)))
    return out


def _check_vmap(fn, inputs) -> Check:
    batched = V.stacked(inputs, 3)
    if batched is None:
        return Check("vmap", NA, "no tensor input to batch")
    in_dims = tuple(0 if isinstance(x, torch.Tensor) else None for x in inputs)
    try:
        got = V.tensors_of(torch.func.vmap(fn, in_dims=in_dims)(*batched))
    except Exception as exc:
        return Check("vmap", NA, f"op has no vmap rule: {_err(exc)}")
    want = [V.tensors_of(fn(*[b[i] if d == 0 else b for b, d in zip(batched, in_dims)])) for i in range(3)]
    want = [torch.stack([w[k] for w in want]) for k in range(len(got))]
    diff = _max_diff(got, want)
    ok = diff <= numerics.OP_VMAP_TOL
    return Check("vmap", PASSED if ok else FAILED, "" if ok else f"max abs diff {diff:.3g}")


def _check_layout(fn, inputs) -> Check:
    try:
        base_out, base_grads, weights = _run_grads(fn, V.detached(inputs, keep_grad=True))
    except Exception as exc:
        return Check("layout", NA, f"no gradients to compare: {_err(exc)}")
    tried, worst, worst_case = [], 0.0, ""
    for label, variant in V.layout_variants(inputs):
        try:
            outs, grads, _ = _run_grads(fn, variant, weights)
        except Exception as exc:
            if label.startswith("broadcast"):
                continue  # the op does not broadcast: not a layout defect
            return Check("layout", FAILED, f"{label}: raised {_err(exc)}")
        tried.append(label)
        diff = max(_max_diff(base_out, outs), _max_diff(base_grads, grads))
        if diff > worst:
            worst, worst_case = diff, label
    if not tried:
        return Check("layout", NA, "no input has a non-contiguous or broadcast variant")
    tol = numerics.OP_LAYOUT_TOL * max(1.0, max(float(o.detach().abs().max()) for o in base_out if o.numel())
                                       if base_out else 1.0)
    if worst > tol:
        return Check("layout", FAILED, f"{worst_case}: max abs diff {worst:.3g} vs contiguous inputs",
                     {"variants": tried})
    return Check("layout", PASSED, detail={"variants": tried})


def _check_edges(fn, edge_inputs, reference) -> Check:
    if not edge_inputs:
        return Check("edge_inputs", NA, "op declares no valid domain (pass edge_inputs=)")
    for i, case in enumerate(edge_inputs):
        try:
            outs, grads, w = _run_grads(fn, V.detached(case, keep_grad=True))
        except Exception as exc:
            return Check("edge_inputs", FAILED, f"edge input {i}: raised {_err(exc)}")
        if not all(torch.isfinite(t).all() for t in [*outs, *grads]):
            return Check("edge_inputs", FAILED, f"edge input {i}: non-finite output or gradient")
        if reference is not None:
            try:
                r_outs, r_grads, _ = _run_grads(reference, V.detached(case, keep_grad=True), w)
            except Exception as exc:
                return Check("edge_inputs", NA, f"edge input {i}: the reference composite raised {_err(exc)}")
            scale = max([1.0] + [float(t.detach().abs().max()) for t in r_outs if t.numel()])
            diff = max(_max_diff(r_outs, outs), _max_diff(r_grads, grads))
            if diff > numerics.OP_EDGE_TOL * scale:
                return Check("edge_inputs", FAILED, f"edge input {i}: differs from reference by {diff:.3g}")
    return Check("edge_inputs", PASSED, detail={"cases": len(edge_inputs)})
