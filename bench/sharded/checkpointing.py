"""Activation checkpointing: the modes a training stack uses, enabled on a Hugging Face model,
and an in-process proof that a mode computes the gradients of the plain model.

Modes (``torch.utils.checkpoint.checkpoint``, https://pytorch.org/docs/stable/checkpoint.html):

- ``non_reentrant``: saved-tensor hooks; the mode PyTorch recommends.
- ``reentrant``: the older autograd.Function form (``use_reentrant=True``).
- ``selective``: non-reentrant with a policy (``create_selective_checkpoint_contexts``, torch
  >= 2.4) that keeps the outputs of matrix products and attention and recomputes the rest:
  the op list TorchTitan saves (torchtitan/models/llama3/infra/parallelize.py, ``_save_list``).

Both checkpointing forms restore the RNG state before recomputing (``preserve_rng_state``),
so a checkpointed block with dropout recomputes the masks of its forward. A recomputation
that draws new masks (``preserve_rng_state=False``, the planted defect the tests use) gives
other gradients, and ``compare`` names the parameter.
"""
from __future__ import annotations

import contextlib
import copy
import functools
import statistics
import time

import torch
import torch.utils.checkpoint

MODES = ("none", "non_reentrant", "reentrant", "selective")


def unavailable(mode: str) -> str | None:
    """Why ``mode`` cannot run with this torch, or None."""
    if mode not in MODES:
        return f"unknown checkpointing mode {mode!r}; valid: {', '.join(MODES)}"
    if mode == "selective" and not hasattr(torch.utils.checkpoint, "create_selective_checkpoint_contexts"):
        return (f"selective checkpointing needs torch >= 2.4 (create_selective_checkpoint_contexts); "
                f"this is {torch.__version__}")
    return None


def _save_list() -> set:
    aten = torch.ops.aten
    ops = {aten.mm.default, aten.addmm.default, aten.bmm.default, aten.baddbmm.default, aten.linear.default}
    for name in ("_scaled_dot_product_flash_attention", "_scaled_dot_product_efficient_attention",
                 "_scaled_dot_product_flash_attention_for_cpu", "_scaled_dot_product_cudnn_attention"):
        if hasattr(aten, name):
            ops.add(getattr(aten, name).default)
    return ops


def _policy(saved: set):
    from torch.utils.checkpoint import CheckpointPolicy

    def policy(ctx, op, *args, **kwargs):
        return CheckpointPolicy.MUST_SAVE if op in saved else CheckpointPolicy.PREFER_RECOMPUTE
    return policy


def checkpoint_kwargs(mode: str, preserve_rng_state: bool = True) -> dict:
    """Keyword arguments for ``torch.utils.checkpoint.checkpoint`` in ``mode``."""
    reason = unavailable(mode)
    if reason or mode == "none":
        raise ValueError(reason or "mode 'none' checkpoints nothing")
    kwargs = {"use_reentrant": mode == "reentrant", "preserve_rng_state": preserve_rng_state}
    if mode == "selective":
        from torch.utils.checkpoint import create_selective_checkpoint_contexts

        kwargs["context_fn"] = functools.partial(create_selective_checkpoint_contexts, _policy(_save_list()))
    return kwargs


def enable(model, mode: str, preserve_rng_state: bool = True) -> None:
    """Checkpoint every layer of Hugging Face ``model`` in ``mode`` (``none``: nothing).
    transformers 5.2x calls it ``activation_checkpointing_enable`` (the older name warns)."""
    if mode == "none":
        return
    kwargs = checkpoint_kwargs(mode, preserve_rng_state)
    if hasattr(model, "activation_checkpointing_enable"):
        model.activation_checkpointing_enable(activation_checkpointing_kwargs=kwargs)
    else:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs=kwargs)


def step_peak_bytes(step) -> int:
    """Peak bytes the allocator holds above the start while ``step()`` runs (a forward and a
    backward): activations, their recomputation and the gradients, from the profiler's
    memory events (``profile_memory=True``; CPU and accelerator allocations alike). Unlike a
    count of saved tensors it sees what checkpointing itself keeps (selective checkpointing's
    saved outputs, reentrant recomputation's tensors) and it needs no CUDA."""
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        step()
    results = getattr(prof.profiler, "kineto_results", None)
    if results is None:
        raise RuntimeError(f"torch {torch.__version__}'s profiler kept no memory events (kineto_results)")
    live = peak = 0
    for e in sorted((e for e in results.events() if e.name() == "[memory]"), key=lambda e: e.start_ns()):
        live += e.nbytes()
        peak = max(peak, live)
    return peak


@contextlib.contextmanager
def counting_forwards():
    """Count every module forward call while the block runs (a global forward pre-hook,
    ``torch.nn.modules.module.register_module_forward_pre_hook``). A checkpointed step calls
    its checkpointed modules' forwards again in the backward (the recomputation), so it counts
    more than the same step without checkpointing: the evidence that checkpointing ran. Equal
    gradients alone are no evidence: they hold just as well when it never switched on."""
    calls = [0]

    def hook(module, args):
        calls[0] += 1

    handle = torch.nn.modules.module.register_module_forward_pre_hook(hook)
    try:
        yield calls
    finally:
        handle.remove()


def not_recomputed(mode: str, calls: int, calls_plain: int) -> str | None:
    """Why a ``mode`` step shows no recomputation (None when it does, or for ``none``)."""
    if mode == "none" or calls > calls_plain:
        return None
    return (f"{mode} checkpointing never switched on: no module's forward ran again in the backward ({calls} "
            f"forward calls in the step with it, {calls_plain} without), so equal gradients prove nothing")


def _grads(model, loss_fn, seed: int) -> tuple[float, dict[str, torch.Tensor], int, int]:
    model.zero_grad(set_to_none=True)
    loss_fn(model).backward()  # warm-up: first-call allocations are not the step's
    model.zero_grad(set_to_none=True)
    torch.manual_seed(seed)  # the same dropout masks on both sides
    out = {}

    def step():
        loss = loss_fn(model)
        loss.backward()
        out["loss"] = float(loss.detach())

    with counting_forwards() as calls:
        nbytes = step_peak_bytes(step)
    grads = {n: p.grad.detach().clone() for n, p in model.named_parameters() if p.grad is not None}
    return out["loss"], grads, nbytes, calls[0]


def _step_ms(model, loss_fn, repeats: int) -> list[float]:
    times = []
    for _ in range(repeats):
        model.zero_grad(set_to_none=True)
        t0 = time.perf_counter()
        loss_fn(model).backward()
        times.append((time.perf_counter() - t0) * 1e3)
    return times


def compare(model, loss_fn, mode: str, *, preserve_rng_state: bool = True, seed: int = 0, repeats: int = 5) -> dict:
    """Gradients of ``model`` (training mode) with ``mode`` against a plain copy on the same
    input and RNG seed: the largest difference and the parameter it is in, the loss
    difference, the step's peak allocator bytes on both sides, and the forward+backward time of both
    (interleaved, median of ``repeats``: a lead, not a verdict)."""
    from bench.core.numerics import abs_diff

    plain = copy.deepcopy(model).train()
    ckpt = model.train()
    enable(ckpt, mode, preserve_rng_state)
    loss_p, grads_p, bytes_p, calls_p = _grads(plain, loss_fn, seed)
    loss_c, grads_c, bytes_c, calls_c = _grads(ckpt, loss_fn, seed)
    diffs = {n: float(abs_diff(g, grads_c[n]).max()) if n in grads_c else float("inf") for n, g in grads_p.items()}
    worst = max(diffs, key=diffs.get)
    t_plain, t_ckpt = [], []
    for _ in range(repeats):
        t_plain += _step_ms(plain, loss_fn, 1)
        t_ckpt += _step_ms(ckpt, loss_fn, 1)
    return {"checkpointing": mode, "loss_abs_diff": abs(loss_p - loss_c), "grad_max_abs_diff": diffs[worst],
            "grad_worst": worst, "grads_compared": len(diffs),
            "step_peak_bytes": bytes_c, "step_peak_bytes_no_checkpoint": bytes_p,
            "forward_calls": calls_c, "forward_calls_no_checkpoint": calls_p,
            "step_ms_p50": statistics.median(t_ckpt), "step_ms_p50_no_checkpoint": statistics.median(t_plain),
            "step_ms_samples": t_ckpt}
