"""Numerics: every tolerance of the suite, by dtype and TF32 state, and the error measures.

One place for "how close is close enough": graph parity (mode vs eager), the op checker's
low-precision rule and the device suite's check against an fp64 reference all read their
bounds from here, so a change of policy is one edit and the README's table stays true.
"""
from __future__ import annotations

import contextlib

import torch

# Mode-vs-eager outputs and gradients (graph parity): |a - b| <= atol + rtol * |eager|.
PARITY_TOL = {torch.float32: (1e-4, 1e-4), torch.bfloat16: (1e-2, 1e-2), torch.float16: (1e-3, 1e-3),
              torch.float64: (1e-7, 1e-7)}
# TF32 keeps 10 mantissa bits, like fp16: fp32 work that runs on TF32 tensor cores is
# compared with fp16's bounds (cuDNN's convolutions default to TF32, matmuls opt in).
TF32_PARITY_TOL = PARITY_TOL[torch.float16]

# tol of torch._dynamo's accuracy rule (res_rmse <= multiplier * ref_rmse + tol / 10), by the
# precision the op ran in: the op checker's low-precision verdict and graph parity's fp64 rule.
RMSE_RULE_TOL = {"fp32": 1e-4, "bf16": 1e-2, "fp16": 1e-3}

# Device throughput: max relative error of a model's inference against its fp64 CPU
# reference: loose enough for the rounding every implementation shares, tight enough to
# catch a wrong kernel. TF32 fp32 on CUDA gets fp16's bound.
REL_TOL_VS_FP64 = {"fp32": 1e-3, "bf16": 8e-2, "fp16": 2e-2}
TF32_REL_TOL_VS_FP64 = REL_TOL_VS_FP64["fp16"]


# Timing self-checks: the suite's clock vs torch.utils.benchmark, and vs CUDA events.
CALIBRATION_BAND = (0.95, 1.05)
CUDA_EVENTS_BAND = (0.95, 1.05)

# DDP: gradients of one DDP step vs single-process gradients on the whole batch (fp32,
# mean-reduced loss, equal shards), and parameters across ranks after the synced steps:
# gloo's all-reduce hands every rank the same bytes; nccl's algorithms (ring, tree) may round
# differently per rank.
DDP_GRAD_TOL = 1e-5
DDP_PARAM_TOL = {"gloo": 0.0, "nccl": 1e-6}

# Sharded training (DDP, FSDP2, activation checkpointing) against one process on the whole
# batch, fp32, SGD with momentum: every step's mean loss and every parameter after N steps.
# Reductions add the ranks' shards in another order (measured: 5e-7 on the loss, 7e-7 on a
# parameter after 4 steps of the smoke decoder); a lost gradient of one layer moves it by 4e-3.
SHARDED_TOL = 1e-5
# FSDP2 with MixedPrecisionPolicy(param_dtype=bf16, reduce_dtype=fp32) against one process
# doing the same casts on the whole batch: forward and backward round to bf16 (2**-8 relative),
# and the kernels round half a batch differently from a whole one. Measured on the decoder
# after 4 steps: loss 8e-4 (smoke) / 5e-3 (standard), parameters 3e-4 / 4e-3 -- as large as
# the effect of a lost gradient in fp32 (4e-3 / 2e-3), so absolute differences cannot judge
# a bf16 row. Each parameter is judged by its distance from the reference relative to the
# reference's own update (|p - p_ref| / |p_ref - p_0|): rounding measured 0.017 / 0.17 (a
# norm weight's tiny update), one rank's lost gradient of one layer 0.83 / 0.72.
SHARDED_MP_TOL = 2e-2          # loss, absolute
SHARDED_MP_UPDATE_TOL = 0.35   # a parameter's update, relative

# The op checker's comparisons of results that should be equal up to float reordering:
# (relative to the largest output magnitude, at least 1).
OP_LAYOUT_TOL = 1e-4        # layout variants vs contiguous inputs
OP_EDGE_TOL = 1e-4          # edge inputs vs the reference composite
OP_DEVICE_TOL = 1e-4        # CPU vs CUDA
OP_VMAP_TOL = 1e-5          # vmap vs a loop (absolute)
OP_GRAD_LAYOUT_TOL = 1e-5   # gradients for non-contiguous vs contiguous grad_output
OP_COMPILE_TOL = 1e-4       # compiled / exported op vs eager (absolute)


def tf32_state() -> dict[str, bool]:
    """Whether fp32 matmuls / cuDNN convolutions may run on TF32 tensor cores (CUDA only).

    Read through either API: the legacy switches (``allow_tf32``) and, since torch 2.9, the
    per-backend ``fp32_precision`` ("tf32" / "ieee" / "none"). Once a program (transformers'
    Trainer does) sets the new one, reading the legacy switch raises a RuntimeError ("you have
    used mix of the legacy and new APIs", torch/backends/cuda/__init__.py), so the new one is
    read first."""
    return {"tf32_matmul": _tf32(torch.backends.cuda.matmul), "tf32_cudnn": _tf32(torch.backends.cudnn)}


def _tf32(backend) -> bool:
    new = getattr(backend, "fp32_precision", None)
    if new in ("tf32", "ieee"):
        return new == "tf32"
    try:
        return bool(backend.allow_tf32)
    except RuntimeError:
        return False


def float32_matmul_precision() -> str:
    """``torch.get_float32_matmul_precision()``, or the new API's setting where that raises."""
    try:
        return torch.get_float32_matmul_precision()
    except RuntimeError:
        return f"fp32_precision={getattr(torch.backends.cuda.matmul, 'fp32_precision', 'unknown')}"


@contextlib.contextmanager
def tf32_disabled():
    """fp32 matmuls and cuDNN convolutions in IEEE fp32 inside the block, restored after,
    through whichever API this process already uses (see ``tf32_state``)."""
    if not torch.cuda.is_available():  # TF32 is a CUDA setting; leave the flags alone
        yield
        return
    matmul, cudnn = torch.backends.cuda.matmul, torch.backends.cudnn
    if getattr(matmul, "fp32_precision", "none") != "none" or getattr(cudnn, "fp32_precision", "none") != "none":
        saved = matmul.fp32_precision, cudnn.fp32_precision
        matmul.fp32_precision, cudnn.fp32_precision = "ieee", "ieee"
        try:
            yield
        finally:
            matmul.fp32_precision, cudnn.fp32_precision = saved
        return
    saved_matmul = matmul.allow_tf32
    matmul.allow_tf32 = False
    try:
        with cudnn.flags(enabled=cudnn.enabled, allow_tf32=False):
            yield
    finally:
        matmul.allow_tf32 = saved_matmul


def tf32_active(device: str | torch.device) -> bool:
    """fp32 work on ``device`` may use TF32: a CUDA device with either TF32 switch on."""
    return torch.device(device).type == "cuda" and any(tf32_state().values())


def parity_tolerance(dtype: torch.dtype, device: str | torch.device = "cpu") -> tuple[float, float]:
    """(atol, rtol) for comparing a graph mode's tensor with eager's."""
    if dtype == torch.float32 and tf32_active(device):
        return TF32_PARITY_TOL
    return PARITY_TOL.get(dtype, PARITY_TOL[torch.float32])


def rel_tol_vs_fp64(dtype: str, device: str | torch.device = "cpu") -> float:
    """Max relative error of a ``dtype`` result against the fp64 reference on ``device``."""
    if dtype == "fp32" and tf32_active(device):
        return TF32_REL_TOL_VS_FP64
    return REL_TOL_VS_FP64[dtype]


def rmse(ref: torch.Tensor, res: torch.Tensor) -> float:
    """Root-mean-square error in fp64 on the CPU (0 for empty tensors)."""
    if not ref.numel():
        return 0.0
    return float(torch.sqrt(torch.mean((ref.detach().double().cpu() - res.detach().double().cpu()) ** 2)))


def abs_diff(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """|x - y| in fp64 on the CPU, NaN-aware: equal values (NaN at the same place, equal
    infinities) differ by 0; a NaN or infinity on one side only differs by inf. Plain
    ``(x - y).abs().max()`` would be NaN, and ``max(0.0, nan)`` is 0.0: a NaN output would pass."""
    x, y = x.detach().double().cpu(), y.detach().double().cpu()
    same = (x == y) | (x.isnan() & y.isnan())
    d = (x - y).abs()
    return torch.where(same, torch.zeros_like(d), d.nan_to_num(nan=float("inf")))


def max_abs_diff(a, b) -> float:
    """Largest absolute difference over two sequences of tensors (inf on a shape mismatch
    that a reshape cannot mend, or a NaN on one side only)."""
    worst = 0.0
    for x, y in zip(a, b):
        if x.shape != y.shape and y.numel() == x.numel():
            y = y.reshape(x.shape)
        if x.shape != y.shape:
            return float("inf")
        if x.numel():
            worst = max(worst, float(abs_diff(x, y).max()))
    return worst


def within_rmse_rule(gold_rmse_res: float, gold_rmse_ref: float, precision: str = "fp32",
                     multiplier: float = 3.0) -> bool:
    """torch._dynamo's accuracy rule: the result's RMSE against fp64 may be at most
    ``multiplier`` x the reference's own RMSE, plus tol/10."""
    return gold_rmse_res <= multiplier * gold_rmse_ref + RMSE_RULE_TOL[precision] / 10


def rmse_multiplier(dtype: torch.dtype, numel: int, precision: str = "fp32") -> float:
    """torch._dynamo.utils.same's multiplier for one tensor, with its
    ``use_larger_multiplier_for_smaller_tensor`` rule on (judged per tensor, an RMSE over a
    handful of elements is mostly noise): 10 for <= 10 elements, 8 for <= 500; then 3.0 for
    fp16/bf16, for tensors of fewer than 1000 elements and for loose tolerances (>= 2e-2);
    2.0 otherwise."""
    if numel <= 10:
        return 10.0
    if numel <= 500:
        return 8.0
    if dtype in (torch.float16, torch.bfloat16) or numel < 1000 or RMSE_RULE_TOL[precision] >= 2e-2:
        return 3.0
    return 2.0


def worst_by_rmse_rule(names, gold, ref, res, precision: str = "fp32",
                       dtype: torch.dtype | None = None) -> tuple[bool, str, dict]:
    """The fp64 RMSE rule applied to each tensor on its own (as torch._dynamo's ``same()``
    does per output): (all within, text naming the worst tensor, per-tensor detail).

    Comparing the worst error over all tensors once would let a wrong small tensor (a bias
    gradient of scale 1e-3) hide behind a large one's honest rounding (logits of scale 10)."""
    worst, worst_ratio, detail = None, -1.0, {}
    for name, g, a, b in zip(names, gold, ref, res):
        if not g.numel() or not g.is_floating_point():
            continue
        res_err, ref_err = rmse(g, b), rmse(g, a)
        mult = rmse_multiplier(dtype or b.dtype, g.numel(), precision)  # dtype: what it ran in, if upcast since
        allowed = mult * ref_err + RMSE_RULE_TOL[precision] / 10
        ratio = res_err / allowed if allowed > 0 else float("inf")
        if ratio != ratio:  # NaN error: treat as the worst
            ratio = float("inf")
        detail[name] = {"rmse": res_err, "reference_rmse": ref_err, "multiplier": mult}
        if ratio > worst_ratio:
            worst, worst_ratio = (name, res_err, ref_err, mult), ratio
    if worst is None:
        return True, "nothing to compare", detail
    name, res_err, ref_err, mult = worst
    text = f"{name}: rmse vs fp64 {res_err:.3g}, reference's {ref_err:.3g} (allowed {mult:g}x + tol/10)"
    return worst_ratio <= 1.0, text, detail
