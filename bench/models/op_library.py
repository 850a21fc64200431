"""Real custom ops, each a modern ``torch.autograd.Function`` (static forward, setup_context,
static backward written by hand, ``generate_vmap_rule``) and, where it fits, a
``torch.library.custom_op`` with ``register_autograd`` and ``register_fake``.

Backwards are built from differentiable torch ops, so second derivatives are right too.
None defines a ``jvp``: torch.compile (Dynamo, torch 2.13) refuses autograd.Functions with a
custom jvp ("Unsupported custom jvp"), and every op here must compile with fullgraph=True.
Their registry entries therefore declare ``forward_ad=False``.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch.autograd import Function

_GELU_K = math.sqrt(2.0 / math.pi)
_GELU_C = 0.044715


class AddBias(Function):
    """The seed chapter's AddBias done right: the bias gradient is the output gradient
    reduced over the broadcast dimensions (the seed returned zeros)."""

    generate_vmap_rule = True

    @staticmethod
    def forward(x, bias):
        return x + bias

    @staticmethod
    def setup_context(ctx, inputs, output):
        x, bias = inputs
        ctx.x_shape, ctx.bias_shape = x.shape, bias.shape

    @staticmethod
    def backward(ctx, grad):
        return grad.sum_to_size(ctx.x_shape), grad.sum_to_size(ctx.bias_shape)


def _opmath(x: torch.Tensor) -> torch.Tensor:
    """Half-precision inputs are computed in fp32 and rounded once at the end, as native
    kernels do; otherwise x**3 in fp16 loses several bits (the checker's low-precision
    check caught exactly that in an earlier version of this op)."""
    return x.float() if x.dtype in (torch.float16, torch.bfloat16) else x


def _gelu_tanh(x):
    xo = _opmath(x)
    return (0.5 * xo * (1 + torch.tanh(_GELU_K * (xo + _GELU_C * xo**3)))).to(x.dtype)


def _gelu_tanh_grad(x, grad):
    xo = _opmath(x)
    t = torch.tanh(_GELU_K * (xo + _GELU_C * xo**3))
    deriv = 0.5 * (1 + t) + 0.5 * xo * (1 - t * t) * _GELU_K * (1 + 3 * _GELU_C * xo * xo)
    return (_opmath(grad) * deriv).to(grad.dtype)


class GELUTanh(Function):
    """GELU, tanh approximation, with a hand-written derivative."""

    generate_vmap_rule = True

    @staticmethod
    def forward(x):
        return _gelu_tanh(x)

    @staticmethod
    def setup_context(ctx, inputs, output):
        ctx.save_for_backward(inputs[0])

    @staticmethod
    def backward(ctx, grad):
        (x,) = ctx.saved_tensors
        return _gelu_tanh_grad(x, grad)


def _rms_norm(x, weight, eps):
    xo = _opmath(x)
    return (xo * torch.rsqrt(xo.pow(2).mean(-1, keepdim=True) + eps) * _opmath(weight)).to(x.dtype)


def _rms_norm_backward(x, weight, eps, grad):
    xo, wo, go = _opmath(x), _opmath(weight), _opmath(grad)
    r = torch.rsqrt(xo.pow(2).mean(-1, keepdim=True) + eps)
    n = xo * r
    gw = go * wo
    grad_x = r * (gw - n * (gw * n).mean(-1, keepdim=True))
    grad_w = (go * n).sum_to_size(weight.shape)
    return grad_x.to(x.dtype), grad_w.to(weight.dtype)


class RMSNorm(Function):
    """y = x / sqrt(mean(x^2) + eps) * weight over the last dim, hand-written backward that
    recomputes the normaliser instead of saving it."""

    generate_vmap_rule = True

    @staticmethod
    def forward(x, weight, eps=1e-6):
        return _rms_norm(x, weight, eps)

    @staticmethod
    def setup_context(ctx, inputs, output):
        x, weight, *rest = inputs
        ctx.eps = rest[0] if rest else 1e-6
        ctx.save_for_backward(x, weight)

    @staticmethod
    def backward(ctx, grad):
        x, weight = ctx.saved_tensors
        grad_x, grad_w = _rms_norm_backward(x, weight, ctx.eps, grad)
        return grad_x, grad_w, None


class SwiGLU(Function):
    """silu(x @ w_gate) * (x @ w_up), the MLP of LLaMA-style models. Memory-saving: only the
    inputs are saved; both projections are recomputed in backward, so the two
    (tokens x hidden) activations are not kept alive between forward and backward."""

    generate_vmap_rule = True

    @staticmethod
    def forward(x, w_gate, w_up):
        return F.silu(x @ w_gate) * (x @ w_up)

    @staticmethod
    def setup_context(ctx, inputs, output):
        ctx.save_for_backward(*inputs)

    @staticmethod
    def backward(ctx, grad):
        x, w_gate, w_up = ctx.saved_tensors
        a, b = x @ w_gate, x @ w_up
        s = torch.sigmoid(a)
        grad_a = grad * b * s * (1 + a * (1 - s))
        grad_b = grad * a * s
        x2, ga2, gb2 = x.reshape(-1, x.shape[-1]), grad_a.reshape(-1, a.shape[-1]), grad_b.reshape(-1, b.shape[-1])
        grad_x = grad_a @ w_gate.transpose(-1, -2) + grad_b @ w_up.transpose(-1, -2)
        return grad_x, x2.transpose(0, 1) @ ga2, x2.transpose(0, 1) @ gb2


# ---- torch.library custom ops (opcheck-able, compile/export friendly) ----

@torch.library.custom_op("bench::gelu_tanh", mutates_args=())
def gelu_tanh_op(x: torch.Tensor) -> torch.Tensor:
    return _gelu_tanh(x)


@gelu_tanh_op.register_fake
def _(x):
    return torch.empty_like(x)


def _gelu_setup(ctx, inputs, output):
    ctx.save_for_backward(inputs[0])


def _gelu_backward(ctx, grad):
    (x,) = ctx.saved_tensors
    return _gelu_tanh_grad(x, grad)


gelu_tanh_op.register_autograd(_gelu_backward, setup_context=_gelu_setup)


@torch.library.custom_op("bench::rms_norm", mutates_args=())
def rms_norm_op(x: torch.Tensor, weight: torch.Tensor, eps: float) -> torch.Tensor:
    return _rms_norm(x, weight, eps)


@rms_norm_op.register_fake
def _(x, weight, eps):
    return torch.empty_like(x)


def _rms_setup(ctx, inputs, output):
    x, weight, eps = inputs
    ctx.eps = eps
    ctx.save_for_backward(x, weight)


def _rms_backward(ctx, grad):
    x, weight = ctx.saved_tensors
    grad_x, grad_w = _rms_norm_backward(x, weight, ctx.eps, grad)
    return grad_x, grad_w, None


rms_norm_op.register_autograd(_rms_backward, setup_context=_rms_setup)
