"""The op checker's precision and device checks: low precision against the native
composite by torch._dynamo's RMSE rule (``low_precision_*``), and CPU against CUDA on CPU
copies of the inputs (``cuda_parity``)."""
from __future__ import annotations

import torch

from bench.core import numerics
from bench.ops import variants as V
from bench.ops.checks import HELD, LOW_PRECISIONS, NA, VIOLATED, Check, err, max_diff, names_dtype, rmse, run_grads


def check_low_precision(fn, inputs, reference, name, unsupported=()) -> Check:
    dtype, check_name = LOW_PRECISIONS[name], f"low_precision_{name}"
    if name in unsupported:
        return Check(check_name, NA, f"op declares it does not support {name} (unsupported_dtypes=)")
    try:
        gold_outs, gold_grads, w = run_grads(reference or fn, V.as_fp64(inputs))
    except Exception as exc:
        return Check(check_name, NA, f"no fp64 reference to judge {name} against: {err(exc)}")
    low = V.cast(inputs, dtype)
    try:
        fn(*V.detached(low))
    except Exception as exc:
        # Only an explicit refusal of the dtype is "not applicable"; any other error in the
        # op's forward at this dtype is a defect.
        if names_dtype(exc, dtype):
            return Check(check_name, NA, f"op does not run in {name}: {err(exc)}")
        return Check(check_name, VIOLATED, f"forward raised in {name}: {err(exc)}")
    try:
        res_outs, res_grads, _ = run_grads(fn, low, w)
    except Exception as exc:  # forward runs in this dtype, so its backward must too
        return Check(check_name, VIOLATED, f"backward raised in {name} (forward ran): {err(exc)}")
    gold = [*gold_outs, *gold_grads]
    res_err = max((rmse(g, r) for g, r in zip(gold, [*res_outs, *res_grads])), default=0.0)
    detail = {"rmse_vs_fp64": res_err}
    if reference is None:
        return Check(check_name, NA, f"measured rmse {res_err:.3g} vs fp64; no reference composite to judge it",
                     detail)
    try:
        ref_outs, ref_grads, _ = run_grads(reference, V.cast(inputs, dtype), w)
    except Exception as exc:
        return Check(check_name, NA, f"the reference composite does not run in {name}: {err(exc)}", detail)
    names = tensor_names(len(gold_outs), inputs)
    # per tensor: a wrong small gradient cannot hide behind a large output's rounding
    within, note, per_tensor = numerics.worst_by_rmse_rule(names, gold, [*ref_outs, *ref_grads],
                                                           [*res_outs, *res_grads], name)
    detail["per_tensor"] = per_tensor
    return Check(check_name, HELD if within else VIOLATED, ("" if within else "exceeds the rule: ") + note, detail)


def tensor_names(n_outputs: int, inputs) -> list[str]:
    """Names of ``_run_grads``' outputs then gradients, for messages."""
    return [f"output {k}" for k in range(n_outputs)] + [f"grad of input {i}"
                                                       for i in V.differentiable_positions(inputs)]


def check_cuda(fn, inputs) -> Check:
    """CPU against CUDA. The CPU side always runs on CPU copies of the inputs, so inputs
    that already live on a GPU are not compared with themselves."""
    if not torch.cuda.is_available():
        return Check("cuda_parity", NA, "CUDA is not available on this machine")
    cuda = next((x.device for x in inputs if isinstance(x, torch.Tensor) and x.is_cuda), torch.device("cuda"))
    cpu_inputs = V.to_device(inputs, "cpu")
    try:
        cpu_outs, cpu_grads, w = run_grads(fn, V.detached(cpu_inputs, keep_grad=True))
    except Exception as exc:
        return Check("cuda_parity", NA, f"op does not run on CPU to compare against: {err(exc)}")
    try:
        with numerics.tf32_disabled():  # full fp32 on the GPU too: TF32 rounding is not a device disagreement
            cuda_outs, cuda_grads, _ = run_grads(fn, V.to_device(cpu_inputs, cuda), list(V.to_device(w, cuda)))
    except Exception as exc:
        return Check("cuda_parity", VIOLATED, f"raised on {cuda}: {err(exc)}")
    scale = max([1.0] + [float(t.detach().abs().max()) for t in cpu_outs if t.numel()])
    diff = max(max_diff(cpu_outs, cuda_outs), max_diff(cpu_grads, cuda_grads))
    ok = diff <= numerics.OP_DEVICE_TOL * scale
    return Check("cuda_parity", HELD if ok else VIOLATED, f"max abs diff {diff:.3g} (cpu vs {cuda})",
                 {"max_abs_diff": diff, "devices": ["cpu", str(cuda)]})
