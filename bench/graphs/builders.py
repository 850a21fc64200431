"""Building each graph mode (script, trace, compile, export), its save/load round trip, and
telling a tool's documented refusal (``unsupported``) from an error (``error``)."""
from __future__ import annotations

import io

import torch

MODES = ("eager", "script", "trace", "compile", "export")


def _dynamic_batch(example_inputs: tuple):
    batch = torch.export.Dim("batch", min=1, max=4096)
    return tuple({0: batch} if isinstance(x, torch.Tensor) and x.dim() > 0 else None for x in example_inputs)


def _roundtrip_jit(graph):
    buf = io.BytesIO()
    torch.jit.save(graph, buf)
    buf.seek(0)
    return torch.jit.load(buf)


def _roundtrip_export(program):
    buf = io.BytesIO()
    torch.export.save(program, buf)
    buf.seek(0)
    return torch.export.load(buf)


def build(mode: str, model: torch.nn.Module, example_inputs: tuple, backend: str = "inductor"):
    """Build one mode's graph. Returns (runner, reload) where ``reload()`` serialises the
    graph and loads it back (torch.jit.save/load, torch.export.save/load), or None."""
    if mode == "eager":
        return model, None
    if mode == "script":
        graph = torch.jit.script(model)
        return graph, lambda: _roundtrip_jit(graph)
    if mode == "trace":
        graph = torch.jit.trace(model, example_inputs, check_trace=False)
        return graph, lambda: _roundtrip_jit(graph)
    if mode == "compile":
        return torch.compile(model, backend=backend), None
    if mode == "export":
        program = torch.export.export(model, example_inputs, dynamic_shapes=_dynamic_batch(example_inputs))
        return program.module(), lambda: _roundtrip_export(program).module()
    raise ValueError(f"unknown mode {mode!r}; valid: {', '.join(MODES)}")


def _jit_refusals() -> tuple[type, ...]:
    return tuple(t for t in (getattr(torch.jit.frontend, "NotSupportedError", None),
                             getattr(torch.jit.frontend, "UnsupportedNodeError", None),
                             getattr(torch.jit, "Error", None), getattr(torch.jit, "TracingCheckError", None))
                 if isinstance(t, type))


def _export_refusals() -> tuple[type, ...]:
    from torch._dynamo import exc as dynamo_exc
    from torch.fx.experimental import symbolic_shapes

    return tuple(t for t in (getattr(dynamo_exc, "Unsupported", None), getattr(dynamo_exc, "UserError", None),
                             getattr(symbolic_shapes, "GuardOnDataDependentSymNode", None),
                             getattr(symbolic_shapes, "ConstraintViolationError", None))
                 if isinstance(t, type))


def _raised_inside(exc: BaseException, *parts: str) -> bool:
    """The innermost Python frame of the traceback lies in one of torch's ``parts``."""
    import traceback

    frames = traceback.extract_tb(exc.__traceback__)
    return bool(frames) and any(p in frames[-1].filename.replace("\\", "/") for p in parts)


def failure_status(mode: str, exc: BaseException) -> str:
    """``unsupported`` for a tool's documented refusal to build this model (TorchScript
    cannot compile or serialise this Python; export met a data-dependent guard, a violated
    shape constraint or an unsupported construct); ``error`` for anything else: an internal
    error of the tool, or a bug in the model or in this suite."""
    if mode in ("script", "trace"):
        if isinstance(exc, _jit_refusals()):
            return "unsupported"
        # The TorchScript compiler and serialiser raise plain RuntimeError (and inspect's
        # OSError when it cannot read the source) from its own frontend modules.
        if isinstance(exc, (RuntimeError, OSError)) and _raised_inside(exc, "torch/jit/", "torch/_jit_internal.py"):
            return "unsupported"
        # An attribute annotation it has no type for is an AssertionError from its annotation
        # resolver (transformers 5.17's BERT carries a ``set[str] | list[str] | None``); other
        # AssertionErrors inside torch/jit are its own broken invariants: errors.
        if mode == "script" and isinstance(exc, AssertionError) and _raised_inside(exc, "torch/jit/annotations.py"):
            return "unsupported"
    if mode == "export" and isinstance(exc, _export_refusals()):
        return "unsupported"
    return "error"
