"""The op defects that survive review and reach training runs: checks of ``check_autograd``
beyond the derivatives. Each returns a ``Check`` (passed / failed / not_applicable).

- ``grad_layouts``: backward given transposed, sliced and stride-0 (expanded) ``grad_output``
  (what ``out.sum()`` and real graphs hand it) must give the contiguous case's gradients.
- ``grad_not_modified``: backward must not write into ``grad_output`` (autograd may share it).
- ``saved_tensors``: tensors kept as ``ctx`` attributes bypass saved-tensor hooks
  (checkpointing, CPU offload) and stay alive with the graph (``out.grad_fn.<attr>``).
- ``output_dtype``: the op's output dtype against the composite's (a silent fp32 upcast).
- ``determinism``: two backward passes bitwise equal; a failure only for ops that declare
  ``deterministic=True``.

The cost checks (``saved_memory``, ``recompiles``) live in ``bench.ops.cost``.
"""
from __future__ import annotations

import dataclasses
import types

import torch

from bench.core import numerics
from bench.ops import variants as V
from bench.ops.checks import HELD, NA, VIOLATED, Check, err, max_diff


def _graph(fn, inputs):
    leaves = V.detached(inputs, keep_grad=True)
    outs = [o for o in V.tensors_of(fn(*leaves)) if o.is_floating_point() and o.requires_grad]
    diff = [x for x in leaves if isinstance(x, torch.Tensor) and x.requires_grad]
    return leaves, outs, diff


def _grads(outs, diff, grad_outputs) -> list[torch.Tensor]:
    got = torch.autograd.grad(outs, diff, grad_outputs, allow_unused=True)
    return [g if g is not None else torch.zeros_like(x) for g, x in zip(got, diff)]


def _grad_outputs(outs) -> list[torch.Tensor]:
    gen = torch.Generator().manual_seed(1)
    return [torch.randn(o.shape, generator=gen, dtype=torch.float64).to(o.device, o.dtype) for o in outs]


def _layouts(g: torch.Tensor) -> list[tuple[str, torch.Tensor]]:
    out = []
    if g.dim() >= 2 and g.shape[-1] > 1 and g.shape[-2] > 1:
        out.append(("transposed", g.transpose(-1, -2).contiguous().transpose(-1, -2)))
    if g.dim() >= 1 and g.numel():
        wide = torch.zeros(*g.shape[:-1], 2 * g.shape[-1], dtype=g.dtype, device=g.device)
        wide[..., ::2] = g
        out.append(("sliced", wide[..., ::2]))
        out.append(("expanded (stride 0)", g.reshape(-1)[:1].reshape([1] * g.dim()).expand(g.shape)))
    return out


def check_grad_layouts(fn, inputs) -> Check:
    # in full fp32: cuDNN's TF32 default would round differently per layout (a 1e-5 bound)
    with numerics.tf32_disabled():
        return _grad_layouts(fn, inputs)


def _grad_layouts(fn, inputs) -> Check:
    _, outs, diff = _graph(fn, inputs)
    if not outs or not diff:
        return Check("grad_layouts", NA, "no differentiable output and input")
    base = _grad_outputs(outs)
    tried, worst, worst_case = [], 0.0, ""
    for k, g in enumerate(base):
        for label, variant in _layouts(g):
            grads_out = list(base)
            grads_out[k] = variant.contiguous()  # same values, contiguous: the reference
            _, outs, diff = _graph(fn, inputs)
            want = _grads(outs, diff, grads_out)
            grads_out[k] = variant
            _, outs, diff = _graph(fn, inputs)
            try:
                got = _grads(outs, diff, grads_out)
            except Exception as exc:
                return Check("grad_layouts", VIOLATED, f"backward raised on a {label} grad_output: {err(exc)}")
            tried.append(label)
            # each gradient against its own magnitude (not the outputs')
            d = max((max_diff([w], [g]) / max(1.0, float(w.detach().abs().max())) for w, g in zip(want, got)
                     if w.numel()), default=0.0)
            if d > worst:
                worst, worst_case = d, label
    if not tried:
        return Check("grad_layouts", NA, "outputs too small for non-contiguous gradients")
    if worst > numerics.OP_GRAD_LAYOUT_TOL:
        return Check("grad_layouts", VIOLATED, f"{worst_case} grad_output: gradients differ from the contiguous "
                                             f"case by {worst:.3g} (relative; backward assumes a contiguous "
                                             "grad_output?)",
                     {"variants": tried})
    return Check("grad_layouts", HELD, detail={"variants": tried})


def check_grad_not_modified(fn, inputs) -> Check:
    _, outs, diff = _graph(fn, inputs)
    if not outs or not diff:
        return Check("grad_not_modified", NA, "no differentiable output and input")
    grads_out = _grad_outputs(outs)
    kept = [g.clone() for g in grads_out]
    versions = [g._version for g in grads_out]
    _grads(outs, diff, grads_out)
    changed = [i for i, (g, k, v) in enumerate(zip(grads_out, kept, versions))
               if g._version != v or not torch.equal(g, k)]
    if changed:
        return Check("grad_not_modified", VIOLATED, f"backward modified grad_output {changed} in place: autograd may "
                                                  "share that tensor with another branch of the graph")
    return Check("grad_not_modified", HELD)


def _nodes(root, limit: int = 256):
    seen, stack = set(), [root]
    while stack and len(seen) < limit:
        node = stack.pop()
        if node is None or id(node) in seen:
            continue
        seen.add(id(node))
        yield node
        stack += [n for n, _ in getattr(node, "next_functions", ())]


def _attr_tensors(value, path: str, depth: int = 0):
    """(path, tensor) for every tensor inside ``value``: containers, dataclasses and
    namespaces (``types.SimpleNamespace``, ``argparse.Namespace``) are looked into."""
    if isinstance(value, torch.Tensor):
        yield path, value
        return
    if depth > 3:
        return
    if isinstance(value, dict):
        for k, v in value.items():
            yield from _attr_tensors(v, f"{path}[{k!r}]", depth + 1)
    elif isinstance(value, (list, tuple, set)):
        for k, v in enumerate(value):
            yield from _attr_tensors(v, f"{path}[{k}]", depth + 1)
    elif dataclasses.is_dataclass(value) and not isinstance(value, type) or \
            isinstance(value, types.SimpleNamespace) or type(value).__name__ == "Namespace":
        for k, v in vars(value).items():
            yield from _attr_tensors(v, f"{path}.{k}", depth + 1)


def _ctx_tensors(fn, inputs) -> tuple[list[tuple[str, torch.Tensor]], int] | None:
    """Tensors kept as attributes of the Python autograd nodes of one call, in graph order,
    and the number of such nodes; None when the output has no graph."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        _, outs, _ = _graph(fn, inputs)
    roots = [o.grad_fn for o in outs if o.grad_fn is not None]
    if not roots:
        return None
    found, python_nodes, seen = [], 0, set()
    for node in (n for root in roots for n in _nodes(root)):
        if id(node) in seen:
            continue
        seen.add(id(node))
        try:
            attrs = vars(node)
        except TypeError:  # a built-in C++ node: it saves through the engine, never on attributes
            continue
        python_nodes += 1
        for name, value in attrs.items():
            found += [(f"{type(node).__name__}: ctx.{path}", t.detach().clone())
                      for path, t in _attr_tensors(value, name)]
    return found, python_nodes


def _other_values(inputs) -> tuple:
    gen = torch.Generator().manual_seed(7)
    return tuple(x + torch.randn(x.shape, generator=gen).to(x.device, x.dtype)
                 if isinstance(x, torch.Tensor) and x.is_floating_point() else x for x in V.detached(inputs))


def check_saved_tensors(fn, inputs) -> Check:
    first = _ctx_tensors(fn, inputs)
    if first is None:
        return Check("saved_tensors", NA, "output has no autograd graph")
    found, python_nodes = first
    if not python_nodes:
        return Check("saved_tensors", NA, "no autograd.Function node in the graph (built-in ops only)")
    # A tensor that does not change when the inputs do (an RNG state from torch.get_rng_state,
    # as torch.utils.checkpoint keeps; a dropout seed) is not derived from the inputs: no
    # activation escapes the saved-tensor hooks through it.
    again = dict(_ctx_tensors(fn, _other_values(inputs))[0]) if found else {}
    hidden, state = [], []
    for where, t in found:
        other = again.get(where)
        if other is not None and other.shape == t.shape and other.dtype == t.dtype and torch.equal(other, t) \
                and not t.requires_grad:
            state.append(where)
        else:
            hidden.append(where)
    if hidden:
        return Check("saved_tensors", VIOLATED, f"tensors kept as ctx attributes ({', '.join(hidden[:4])}): they "
                                                "bypass "
                                              "saved-tensor hooks (activation checkpointing, CPU offload) and live "
                                              "as long as the graph; use ctx.save_for_backward")
    note = f"ctx keeps state not derived from the inputs ({', '.join(state[:3])}): allowed" if state else ""
    return Check("saved_tensors", HELD, note, {"state_tensors": state})


def check_output_dtype(fn, inputs, reference) -> Check:
    if reference is None:
        return Check("output_dtype", NA, "no reference composite to compare dtypes with")
    tried = []
    for dtype in ({x.dtype for x in inputs if isinstance(x, torch.Tensor) and x.is_floating_point()}
                  | {torch.bfloat16}):
        cast = V.cast(inputs, dtype)
        try:
            with torch.no_grad():
                got = [o.dtype for o in V.tensors_of(fn(*V.detached(cast)))]
        except Exception:
            continue  # a dtype the op refuses: the low-precision check reports it
        try:
            with torch.no_grad():
                want = [o.dtype for o in V.tensors_of(reference(*V.detached(cast)))]
        except Exception:
            continue  # the reference has no kernel for this dtype: nothing to compare
        tried.append(str(dtype).removeprefix("torch."))
        # the outputs the composite has: an op may return extras (``(y, rstd)``) it lacks
        if len(got) < len(want) or got[:len(want)] != want:
            return Check("output_dtype", VIOLATED, f"on {dtype} inputs the op returns {got}, the composite {want}")
        compared = len(want)
    if not tried:
        return Check("output_dtype", NA, "the op ran on none of the dtypes tried")
    extra = f"; the op's {len(got) - compared} extra output(s) have no counterpart" if len(got) > compared else ""
    return Check("output_dtype", HELD, f"output(s) 0-{compared - 1} compared on {', '.join(tried)}{extra}",
                 {"dtypes": tried, "outputs_compared": compared})


def check_determinism(fn, inputs, deterministic: bool) -> Check:
    runs = []
    for _ in range(2):
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(0)  # an op that draws random numbers draws the same ones
            _, outs, diff = _graph(fn, inputs)
            if not outs or not diff:
                return Check("determinism", NA, "no differentiable output and input")
            # clones: an op writing into a reused buffer would otherwise compare with itself
            runs.append([o.detach().clone() for o in outs] + [g.clone() for g in _grads(outs, diff,
                                                                                         _grad_outputs(outs))])
    same = all(a.shape == b.shape for a, b in zip(*runs))
    worst = max_diff(*runs) if same else float("inf")
    if worst == 0:  # bitwise: NaN-aware (a NaN on one side only is an infinite difference)
        return Check("determinism", HELD, "outputs and gradients bitwise equal over two runs")
    text = f"outputs or gradients differ between two runs by {worst:.3g}"
    if deterministic:
        return Check("determinism", VIOLATED, text + " (the op declares deterministic=True)")
    return Check("determinism", NA, text + "; a failure only for ops that declare deterministic=True",
                 {"deterministic": False})
