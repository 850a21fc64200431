"""Derivative checks of ``check_autograd``: gradcheck, gradgradcheck, forward-mode AD and
batched gradients in fp64 (``torch.autograd.gradcheck``), and vmap against a loop.

Only PyTorch's own refusal is "not applicable": of float64 by name (then first derivatives
are still compared by fp32 finite differences), of forward AD or a vmap rule in its words.
A dtype mix-up inside the op, or a user's vmap rule that raises, is the op's failure.
"""
from __future__ import annotations

import warnings

import torch
from torch.autograd.gradcheck import GradcheckError

from bench.core import numerics
from bench.ops import variants as V
from bench.ops.checks import HELD, NA, NO_FORWARD_AD, NO_VMAP, VIOLATED, Check, err, max_diff, names_dtype, refusal


def check_fp64(fn, inputs, atol, rtol, forward_ad=True, declared_once=False) -> list[Check]:
    x64 = V.as_fp64(inputs)
    try:
        fn(*V.detached(x64))
    except Exception as exc:
        if names_dtype(exc, torch.float64):
            return _fp32_fallback(fn, inputs, exc)
        # a dtype mix-up inside the op (an fp32 buffer against fp64 inputs) is the op's defect
        return [Check(n, VIOLATED, f"forward raised on float64 inputs: {err(exc)}")
                for n in ("gradcheck", "gradgradcheck", "forward_ad", "batched_grad")]
    out = []
    if not forward_ad:
        out.append(Check("forward_ad", NA, "op declares no forward-mode AD support"))
    once = "declared once_differentiable=True" if declared_once else _once_differentiable(fn, x64)
    names = (("gradcheck", {}), ("gradgradcheck", None),
             ("forward_ad", dict(check_forward_ad=True, check_backward_ad=False, check_undefined_grad=False)),
             ("batched_grad", dict(check_batched_grad=True)))
    for name, kwargs in names:
        if name == "forward_ad" and not forward_ad:
            continue
        if name == "gradgradcheck" and once:
            out.append(Check(name, NA, f"backward is once-differentiable ({once}): no second derivative to check"))
            continue
        try:
            if kwargs is None:
                torch.autograd.gradgradcheck(fn, x64, atol=atol, rtol=rtol)
            else:
                torch.autograd.gradcheck(fn, x64, atol=atol, rtol=rtol, **kwargs)
            out.append(Check(name, HELD))
        except GradcheckError as exc:
            if name == "batched_grad" and "while computing batched gradients, got:" in str(exc).lower():
                # vmap could not run the backward at all (e.g. numpy inside): unsupported, not wrong
                out.append(Check(name, NA, f"backward cannot be vmapped: {err(exc)}"))
            else:
                out.append(Check(name, VIOLATED, err(exc)))
        except Exception as exc:
            if name == "forward_ad" and refusal(exc, NO_FORWARD_AD) or \
                    name == "batched_grad" and refusal(exc, NO_VMAP):
                out.append(Check(name, NA, f"op does not support it: {err(exc)}"))
            else:
                out.append(Check(name, VIOLATED, err(exc)))
    return out


FD_EPS, FD_TOL = 1e-3, 2e-2  # fp32 central differences: truncation ~eps^2, rounding ~1e-7/eps


def _fp32_fallback(fn, inputs, refusal) -> list[Check]:
    """The op refuses float64 by name: its first derivatives are still compared with finite
    differences, in fp32 with loose tolerances, so no op passes with no gradient compared."""
    x32 = V.cast(inputs, torch.float32)
    how = f"op refuses float64 ({err(refusal, 120)})"
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # gradcheck warns about non-double inputs
            torch.autograd.gradcheck(fn, x32, eps=FD_EPS, atol=FD_TOL, rtol=FD_TOL)
        first = Check("gradcheck", HELD, f"{how}: checked by fp32 finite differences "
                                          f"(eps {FD_EPS:g}, tolerance {FD_TOL:g})", {"method": "fp32_fd"})
    except Exception as exc:
        first = Check("gradcheck", VIOLATED, f"{how}; fp32 finite differences: {err(exc)}", {"method": "fp32_fd"})
    return [first] + [Check(n, NA, f"{how}; fp32 finite differences are too coarse for it")
                      for n in ("gradgradcheck", "forward_ad", "batched_grad")]


def _once_differentiable(fn, x64) -> str:
    """Why the op's backward cannot be differentiated again ("" if it can): a backward under
    ``@once_differentiable`` hands back gradients whose grad_fn raises on use."""
    try:
        leaves = V.detached(x64, keep_grad=True)
        outs = [o for o in V.tensors_of(fn(*leaves)) if o.requires_grad]
        diff = [x for x in leaves if isinstance(x, torch.Tensor) and x.requires_grad]
        if not outs or not diff:
            return ""
        grads = torch.autograd.grad(outs, diff, [torch.ones_like(o).requires_grad_() for o in outs], create_graph=True,
                                    allow_unused=True)
    except Exception:
        return ""
    for g in grads:
        node = getattr(g, "grad_fn", None)
        if node is not None and type(node).__name__ in ("Error", "DelayedError", "DelayedErrorBackward"):
            return "@once_differentiable"
    return ""


def check_vmap(fn, inputs) -> Check:
    batched = V.stacked(inputs, 3)
    if batched is None:
        return Check("vmap", NA, "no tensor input to batch")
    in_dims = tuple(0 if isinstance(x, torch.Tensor) else None for x in inputs)
    try:
        got = V.tensors_of(torch.func.vmap(fn, in_dims=in_dims)(*batched))
    except Exception as exc:  # only PyTorch's own "no rule" is not applicable; a raising rule is a defect
        if refusal(exc, NO_VMAP):
            return Check("vmap", NA, f"op has no vmap rule: {err(exc)}")
        return Check("vmap", VIOLATED, f"raised under vmap: {err(exc)}")
    want = [V.tensors_of(fn(*[b[i] if d == 0 else b for b, d in zip(batched, in_dims)])) for i in range(3)]
    want = [torch.stack([w[k] for w in want]) for k in range(len(got))]
    diff = max_diff(got, want)
    ok = diff <= numerics.OP_VMAP_TOL
    return Check("vmap", HELD if ok else VIOLATED, "" if ok else f"max abs diff {diff:.3g}")
