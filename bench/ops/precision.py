"""The op checker's precision and device checks: low precision against the native
composite by torch._dynamo's RMSE rule (``low_precision_*``), and CPU against CUDA on CPU
copies of the inputs (``cuda_parity``)."""
from __future__ import annotations

import torch

from bench.core import numerics
from bench.ops import variants as V
from bench.ops.checker import FAILED, LOW_PRECISIONS, NA, PASSED, Check, _err, _max_diff, _rmse, _run_grads

_DTYPE_NAMES = {torch.float32: ("float", "float32"), torch.bfloat16: ("bfloat16",),
                torch.float16: ("half", "float16")}


def _names_dtype(exc: BaseException, dtype: torch.dtype) -> bool:
    """The error is the op's refusal of ``dtype`` in PyTorch's or numpy's words ("... not
    implemented for 'BFloat16'", "Got unsupported ScalarType BFloat16"). A dtype mix-up inside
    the op ("expected ... same dtype, got BFloat16 and Float") is a defect, not a refusal."""
    text = str(exc).lower()
    names = _DTYPE_NAMES[dtype]
    return any(f"not implemented for '{n}'" in text or f"unsupported scalartype {n}" in text
               or f"does not support {n}" in text for n in names)


def check_low_precision(fn, inputs, reference, name, unsupported=()) -> Check:
    dtype, check_name = LOW_PRECISIONS[name], f"low_precision_{name}"
    if name in unsupported:
        return Check(check_name, NA, f"op declares it does not support {name} (unsupported_dtypes=)")
    try:
        gold_outs, gold_grads, w = _run_grads(reference or fn, V.as_fp64(inputs))
    except Exception as exc:
        return Check(check_name, NA, f"no fp64 reference to judge {name} against: {_err(exc)}")
    low = V.cast(inputs, dtype)
    try:
        fn(*V.detached(low))
    except Exception as exc:
        # Only an explicit refusal of the dtype is "not applicable"; any other error in the
        # op's forward at this dtype is a defect.
        if _names_dtype(exc, dtype):
            return Check(check_name, NA, f"op does not run in {name}: {_err(exc)}")
        return Check(check_name, FAILED, f"forward raised in {name}: {_err(exc)}")
    try:
        res_outs, res_grads, _ = _run_grads(fn, low, w)
    except Exception as exc:  # forward runs in this dtype, so its backward must too
        return Check(check_name, FAILED, f"backward raised in {name} (forward ran): {_err(exc)}")
    res_err = max(_rmse(g, r) for g, r in zip([*gold_outs, *gold_grads], [*res_outs, *res_grads]))
    detail = {"rmse_vs_fp64": res_err}
    if reference is None:
        return Check(check_name, NA, f"measured rmse {res_err:.3g} vs fp64; no reference composite to judge it",
                     detail)
    try:
        ref_outs, ref_grads, _ = _run_grads(reference, V.cast(inputs, dtype), w)
    except Exception as exc:
        return Check(check_name, NA, f"the reference composite does not run in {name}: {_err(exc)}", detail)
    ref_err = max(_rmse(g, r) for g, r in zip([*gold_outs, *gold_grads], [*ref_outs, *ref_grads]))
    numel = sum(t.numel() for t in gold_outs)
    multiplier = 3.0 if dtype != torch.float32 or numel < 1000 else 2.0
    detail.update(reference_rmse_vs_fp64=ref_err, multiplier=multiplier)
    if numerics.within_rmse_rule(res_err, ref_err, name, multiplier):
        return Check(check_name, PASSED, f"rmse {res_err:.3g} vs composite's {ref_err:.3g}", detail)
    return Check(check_name, FAILED, f"rmse {res_err:.3g} exceeds {multiplier} x composite's {ref_err:.3g}", detail)


def check_cuda(fn, inputs) -> Check:
    """CPU against CUDA. The CPU side always runs on CPU copies of the inputs, so inputs
    that already live on a GPU are not compared with themselves."""
    if not torch.cuda.is_available():
        return Check("cuda_parity", NA, "CUDA is not available on this machine")
    cuda = next((x.device for x in inputs if isinstance(x, torch.Tensor) and x.is_cuda), torch.device("cuda"))
    cpu_inputs = V.to_device(inputs, "cpu")
    try:
        cpu_outs, cpu_grads, w = _run_grads(fn, V.detached(cpu_inputs, keep_grad=True))
    except Exception as exc:
        return Check("cuda_parity", NA, f"op does not run on CPU to compare against: {_err(exc)}")
    try:
        with numerics.tf32_disabled():  # full fp32 on the GPU too: TF32 rounding is not a device disagreement
            cuda_outs, cuda_grads, _ = _run_grads(fn, V.to_device(cpu_inputs, cuda), list(V.to_device(w, cuda)))
    except Exception as exc:
        return Check("cuda_parity", FAILED, f"raised on {cuda}: {_err(exc)}")
    scale = max([1.0] + [float(t.detach().abs().max()) for t in cpu_outs if t.numel()])
    diff = max(_max_diff(cpu_outs, cuda_outs), _max_diff(cpu_grads, cuda_grads))
    ok = diff <= numerics.OP_DEVICE_TOL * scale
    return Check("cuda_parity", PASSED if ok else FAILED, f"max abs diff {diff:.3g} (cpu vs {cuda})",
                 {"max_abs_diff": diff, "devices": ["cpu", str(cuda)]})
