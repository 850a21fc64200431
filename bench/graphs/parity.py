"""Graph modes: eager, TorchScript (script, trace), torch.compile and torch.export.

``check_parity`` answers, per mode, "does this graph compute what eager computes?" on the
inputs it was built from *and* on probe inputs it was not, so a graph that silently baked
in a branch or a shape is a ``mismatch`` with the input that exposed it.
"""
from __future__ import annotations

import copy
import dataclasses
import logging
import time
import warnings
from collections.abc import Callable, Sequence

import torch

from bench.core import numerics
from bench.core.compiled import dynamo_counts
from bench.core.outputs import outputs_and_grads, tensor_excess, worst_error
from bench.graphs import builders
from bench.graphs.builders import MODES, build, failure_status  # noqa: F401  (public names)


@dataclasses.dataclass
class ModeResult:
    mode: str
    status: str                       # ok, mismatch, unsupported, error
    max_abs_err: float | None = None  # worst output or gradient difference vs eager
    detail: str = ""
    build_s: float | None = None
    graph_breaks: int | None = None
    compile_cache: str | None = None  # inductor FX-graph cache hits/misses: build_s is warm or cold
    recompiles: int | None = None     # compile: frames compiled again for the probe inputs' shapes
    warnings: list[str] = dataclasses.field(default_factory=list)
    runner: Callable | None = dataclasses.field(default=None, repr=False)  # the built graph


def tensor_names(n_outputs: int, inputs: tuple, model: torch.nn.Module) -> list[str]:
    """Names of what ``outputs_and_grads`` returns, in its order, for error messages."""
    names = [f"output {k}" for k in range(n_outputs)]
    names += [f"grad of input {k}" for k, x in enumerate(inputs) if torch.is_tensor(x) and x.is_floating_point()]
    return names + [f"grad of {name}" for name, _ in model.named_parameters()]


class _Recorder(logging.Handler):
    def __init__(self):
        super().__init__(logging.WARNING)
        self.messages: list[str] = []

    def emit(self, record):
        self.messages.append(record.getMessage().splitlines()[0][:300])


def params_of(runner, model: torch.nn.Module) -> list[torch.nn.Parameter]:
    """The runner's parameters in the original model's order, matched by name: a reloaded
    TorchScript graph and export's module hold their own copies."""
    own = dict(runner.named_parameters()) if hasattr(runner, "named_parameters") else {}
    return [own.get(name, p) for name, p in model.named_parameters()]


def check_parity(model: torch.nn.Module, example_inputs: tuple, probe_inputs: Sequence[tuple] = (),
                 modes: Sequence[str] | None = None, backend: str = "inductor") -> list[ModeResult]:
    """One result per mode (eager first), each with ``mode``, ``status``, ``max_abs_err`` and ``detail``."""
    modes = tuple(modes or MODES)
    unknown = [m for m in modes if m not in MODES]
    if unknown:
        raise ValueError(f"unknown mode(s) {unknown}; valid: {', '.join(MODES)}")
    model.eval()
    all_inputs = [("example", tuple(example_inputs))] + [(f"probe {i}", tuple(p)) for i, p in enumerate(probe_inputs)]
    params = list(model.parameters())
    reference = [outputs_and_grads(model, params, inp) for _, inp in all_inputs]
    again = [outputs_and_grads(model, params, inp) for _, inp in all_inputs]
    nondet = max(worst_error(a[0] + a[1], b[0] + b[1])[0] for a, b in zip(reference, again))
    gold = _fp64_reference(model, all_inputs)
    results = [ModeResult("eager", "ok", 0.0, runner=model)]
    if nondet > 0:
        results[0] = ModeResult("eager", "mismatch", nondet, f"eager is non-deterministic: two runs differ by "
                                f"{nondet:.3g}; other modes are compared with that much extra tolerance",
                                runner=model)
    for mode in modes:
        if mode == "eager":
            continue
        results.append(_check_mode(mode, model, all_inputs, reference, nondet, backend, gold))
    return results


def _fp64_reference(model: torch.nn.Module, all_inputs) -> list | None:
    """Outputs and gradients of an fp64 copy of the model, or None where it cannot run in fp64."""
    try:
        gold_model = copy.deepcopy(model).double()
        inputs64 = [tuple(x.double() if torch.is_tensor(x) and x.is_floating_point() else x for x in inp)
                    for _, inp in all_inputs]
        return [outputs_and_grads(gold_model, list(gold_model.parameters()), inp) for inp in inputs64]
    except Exception:
        return None


def _within_fp64_rule(gold, eager, mode_out, names=None) -> tuple[bool, str]:
    """torch._dynamo's accuracy rule, tensor by tensor: each tensor's RMSE against fp64 may be
    at most 2-3x eager's own (plus tol/10), so numerics that only reorder float32 arithmetic
    are not a mismatch, and a wrong small tensor cannot hide behind a large one's rounding."""
    names = names or [f"tensor {k}" for k in range(len(gold))]
    within, note, _ = numerics.worst_by_rmse_rule(names, gold, eager, mode_out, "fp32")
    return within, note


def _check_mode(mode, model, all_inputs, reference, nondet, backend, gold=None) -> ModeResult:
    recorder = _Recorder()
    dynamo_log = logging.getLogger("torch._dynamo")
    dynamo_log.addHandler(recorder)
    # explain() captures graphs itself: it runs before the counters are read, so "captured
    # no graph" counts only what the compiled model captured.
    breaks = _graph_breaks(model, all_inputs[0][1]) if mode == "compile" else None
    counters_before = dynamo_counts()
    frames_after_build = None
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            t0 = time.perf_counter()
            try:
                runner, reload = builders.build(mode, model, all_inputs[0][1], backend)
            except Exception as exc:
                return ModeResult(mode, builders.failure_status(mode, exc), None, _reason(exc), warnings=_texts(caught))
            build_s = time.perf_counter() - t0
            try:
                reloaded = reload() if reload is not None else None
            except Exception as exc:
                return ModeResult(mode, builders.failure_status(mode, exc), None,
                                  f"built, but save/load failed: {_reason(exc)}", build_s, warnings=_texts(caught))
            result = ModeResult(mode, "ok", 0.0, build_s=build_s, runner=runner)
            runners = [("", runner)] + ([(" after save/load", reloaded)] if reloaded is not None else [])
            for suffix, run in runners:
                for i, ((label, inp), (ref_out, ref_grads)) in enumerate(zip(all_inputs, reference)):
                    try:
                        outs, grads = outputs_and_grads(run, params_of(run, model), inp)
                    except Exception as exc:
                        return ModeResult(mode, "error" if label == "example" else "mismatch", None,
                                          f"{label}{suffix}: {_reason(exc)}", build_s, warnings=_texts(caught))
                    if mode == "compile" and label == "example" and not suffix:
                        result.build_s = time.perf_counter() - t0  # compilation happens on the first call
                        frames_after_build = dynamo_counts()["ok"]
                    err, excess = tensor_excess(ref_out + ref_grads, outs + grads)
                    result.max_abs_err = max(result.max_abs_err, err)
                    names = tensor_names(len(ref_out), inp, model)
                    beyond = [k for k, e in enumerate(excess) if e > nondet]
                    if not beyond:
                        continue
                    culprit = names[beyond[0]] if err != float("inf") and beyond[0] < len(names) else "structure"
                    if gold is not None and err != float("inf"):
                        pick = lambda ts, beyond=beyond: [ts[k] for k in beyond]  # noqa: E731
                        within, note = _within_fp64_rule(pick(gold[i][0] + gold[i][1]), pick(ref_out + ref_grads),
                                                         pick(outs + grads), pick(names))
                        if within:
                            result.detail = f"{label}{suffix}: beyond eager's tolerance but as close to fp64 ({note})"
                            continue
                        culprit = note
                    result.status = "mismatch"
                    shapes = [tuple(x.shape) for x in inp if torch.is_tensor(x)]
                    result.detail = (f"{label}{suffix} (shapes {shapes}) differs from eager by {err:.3g}; "
                                     f"first beyond tolerance: {culprit}")[:500]
                    break
                if result.status != "ok":
                    break
            result.warnings = _texts(caught)
    finally:
        dynamo_log.removeHandler(recorder)
    if mode == "compile":
        if frames_after_build is not None:
            # every frame compiled after the first call was compiled for a probe's shapes
            result.recompiles = dynamo_counts()["ok"] - frames_after_build
        _judge_compile(result, counters_before, recorder.messages, breaks)
    return result


def _graph_breaks(model, example_inputs) -> tuple[int, list[str]] | None:
    """Graph breaks by torch._dynamo.explain (Dynamo tracing only, no code generation)."""
    try:
        explained = torch._dynamo.explain(model)(*example_inputs)
    except Exception:
        return None
    reasons = [str(b.reason).splitlines()[0][:120] for b in explained.break_reasons]
    # explain's graph_break_count leaves out a break after which nothing is left to capture
    return max(explained.graph_break_count, len(reasons)), reasons


def _judge_compile(result: ModeResult, before: dict, logged: list[str], breaks) -> None:
    """A torch.compile that fell back to eager, or hit the recompile limit, is not ok."""
    after = dynamo_counts()
    result.graph_breaks = breaks[0] if breaks else after["graph_break"] - before["graph_break"]
    hits, misses = after["cache_hit"] - before["cache_hit"], after["cache_miss"] - before["cache_miss"]
    if hits or misses:
        result.compile_cache = f"{hits} hit(s), {misses} miss(es)"
    limit = [m for m in logged if "recompile_limit" in m or "cache_size_limit" in m or "recompile limit" in m]
    if result.status != "ok":
        return
    if limit:
        result.status, result.detail = "error", f"hit the recompile limit, ran eager code: {limit[0]}"
    elif after["captured"] == before["captured"]:
        result.status, result.detail = "error", "torch.compile captured no graph: it ran eager code"
    elif result.graph_breaks:
        reasons = "; ".join(dict.fromkeys(breaks[1])) if breaks else ""
        result.detail = f"{result.graph_breaks} graph break(s): {reasons}"[:500]


def _reason(exc: BaseException) -> str:
    lines = [ln.strip() for ln in str(exc).strip().splitlines() if ln.strip()]
    return f"{type(exc).__name__}: {' '.join(lines[:3])}"[:500]


def _texts(caught) -> list[str]:
    return list(dict.fromkeys(f"{w.category.__name__}: {str(w.message).splitlines()[0][:200]}" for w in caught))
