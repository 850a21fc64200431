"""Registry entries of the built-in ops: inputs, shapes (hypothesis), edge cases, and the
native composite each is judged against."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from hypothesis import strategies as st

from bench.models.op_library import (
    AddBias,
    GELUTanh,
    RMSNorm,
    SwiGLU,
    gelu_tanh_op,
    rms_norm_op,
)
from bench.registry import OpSpec, register_op


def _randn(shape, device, dtype, seed):
    gen = torch.Generator().manual_seed(seed)
    return torch.randn(shape, generator=gen, dtype=torch.float64).to(device=device, dtype=dtype)


def _dims(min_dims=1, max_dims=3, max_side=6):
    return st.lists(st.integers(1, max_side), min_size=min_dims, max_size=max_dims).map(tuple)


# ---- add_bias: x (..., n) + bias broadcast to it (bias dims may be 1) ----

def _add_bias_inputs(p, device, dtype):
    x_shape, bias_shape = p
    return _randn(x_shape, device, dtype, 0), _randn(bias_shape, device, dtype, 1)


@st.composite
def _add_bias_params(draw):
    x_shape = draw(_dims(1, 3))
    k = draw(st.integers(1, len(x_shape)))
    bias_shape = tuple(draw(st.sampled_from((1, s))) for s in x_shape[-k:])
    return x_shape, bias_shape


# ---- elementwise (gelu) ----

def _unary_inputs(p, device, dtype):
    shape, scale = p if isinstance(p[0], tuple) else (p, 1.0)
    return (_randn(shape, device, dtype, 0) * scale,)


# ---- rms_norm: x (..., d), weight (d,) ----

def _rms_inputs(p, device, dtype):
    shape, scale = p if isinstance(p[0], tuple) else (p, 1.0)
    return _randn(shape, device, dtype, 0) * scale, _randn(shape[-1:], device, dtype, 1), 1e-6


# ---- swiglu: x (..., d), w_gate (d, h), w_up (d, h) ----

def _swiglu_inputs(p, device, dtype):
    x_shape, hidden = p
    d = x_shape[-1]
    scale = d ** -0.5
    return (_randn(x_shape, device, dtype, 0), _randn((d, hidden), device, dtype, 1) * scale,
            _randn((d, hidden), device, dtype, 2) * scale)


def _rms_reference(x, w, eps):
    return F.rms_norm(x, (x.shape[-1],), w, eps)


def _gelu_reference(x):
    return F.gelu(x, approximate="tanh")


register_op(OpSpec(
    name="add_bias", fn=AddBias.apply, make_inputs=_add_bias_inputs, reference=torch.add,
    check_params=((3, 4), (4,)), bench_params=((4096, 1024), (1024,)), params_strategy=_add_bias_params,
    edge_params=(((0, 4), (4,)), ((1,), (1,)), ((3, 4), (1, 1))), forward_ad=False,
    description="the seed's AddBias, bias gradient reduced over broadcast dims",
))
register_op(OpSpec(
    name="gelu_tanh", fn=GELUTanh.apply, make_inputs=_unary_inputs, reference=_gelu_reference,
    check_params=(3, 5), bench_params=(4096, 1024), params_strategy=lambda: _dims(1, 3),
    edge_params=((0, 5), (1,), ((3, 5), 1e3)), forward_ad=False,
    description="GELU (tanh approximation), hand-written derivative",
))
register_op(OpSpec(
    name="rms_norm", fn=RMSNorm.apply, make_inputs=_rms_inputs, reference=_rms_reference,
    check_params=(3, 8), bench_params=(4096, 1024), params_strategy=lambda: _dims(1, 3).filter(lambda s: s[-1] > 1),
    edge_params=((0, 8), (1, 2), ((3, 8), 1e4)), forward_ad=False,
    description="RMSNorm with a hand-written backward that recomputes the normaliser",
))
register_op(OpSpec(
    name="swiglu", fn=SwiGLU.apply, make_inputs=_swiglu_inputs,
    reference=lambda x, g, u: F.silu(x @ g) * (x @ u),
    check_params=((2, 3, 4), 6), bench_params=((8, 256, 512), 1376),
    params_strategy=lambda: st.tuples(_dims(1, 3), st.integers(1, 6)),
    edge_params=(((0, 4), 3), ((1, 1), 1)), forward_ad=False,
    description="SwiGLU MLP that saves only its inputs and recomputes both projections in backward",
))
register_op(OpSpec(
    name="gelu_tanh_op", fn=gelu_tanh_op, make_inputs=_unary_inputs, reference=_gelu_reference,
    check_params=(3, 5), bench_params=(4096, 1024), params_strategy=lambda: _dims(1, 3),
    edge_params=((0, 5), (1,), ((3, 5), 1e3)), forward_ad=False, is_custom_op=True,
    description="torch.library custom op bench::gelu_tanh (register_autograd, register_fake)",
))
register_op(OpSpec(
    name="rms_norm_op", fn=rms_norm_op, make_inputs=_rms_inputs, reference=_rms_reference,
    check_params=(3, 8), bench_params=(4096, 1024), params_strategy=lambda: _dims(1, 3).filter(lambda s: s[-1] > 1),
    edge_params=((0, 8), (1, 2), ((3, 8), 1e4)), forward_ad=False, is_custom_op=True,
    description="torch.library custom op bench::rms_norm (register_autograd, register_fake)",
))
