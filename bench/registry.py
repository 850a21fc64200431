"""One registry for models and ops, built-ins and user plugins alike.

A model is a small spec (TorchBench's "tiny folder behind one small interface"): how to
build it, how to make a batch of a given size on a device, and what kind of input it takes.
User plugins (``--bench-plugin MODULE``) call :func:`register_model` / ``register_op``.
"""
from __future__ import annotations

import dataclasses
import importlib
import importlib.util
import inspect
import sys
from collections.abc import Callable
from typing import Any

import torch


def _seq_len_kwarg(fn: Callable, seq_len: int | None) -> dict:
    """``{"seq_len": seq_len}`` when ``fn`` accepts it (a model's own choice), else nothing."""
    if seq_len is None:
        return {}
    try:
        params = inspect.signature(fn).parameters
    except (TypeError, ValueError):
        return {}
    takes = "seq_len" in params or any(p.kind is p.VAR_KEYWORD for p in params.values())
    return {"seq_len": seq_len} if takes else {}


@dataclasses.dataclass(frozen=True)
class ModelSpec:
    name: str
    build: Callable[[], torch.nn.Module]
    # make_batch(batch_size, device) -> (inputs tuple, targets); inputs are positional args.
    # make_batch / probe_batch that accept seq_len= get the profile's (see ModelSpec.batch).
    make_batch: Callable[[int, str], tuple[tuple[Any, ...], torch.Tensor]]
    kind: str = "vision"            # "vision" (samples/s) or "text" (samples/s and tokens/s)
    description: str = ""
    loss: Callable[[Any, torch.Tensor], torch.Tensor] | None = None  # default: cross-entropy
    gpu_only: bool = False          # too large for the CPU budget (e.g. BERT-base)
    probe_batch: Callable[[str], tuple[Any, ...]] | None = None  # extra inputs for graph parity
    unavailable: Callable[[], str | None] | None = None  # why it cannot be built here, if so
    suites: tuple[str, ...] = ("devices", "graph_modes")  # suites whose zoo includes it
    count_tokens: Callable[[tuple], int] | None = None     # non-padding tokens in a batch
    # {mode: (status, public link)} a model is built to show (the trace pitfalls); a bare status
    # is accepted too, documented by the model's description alone
    expected_parity: dict | None = None
    # For the run's time plan (bench.core.plan): one fp32 step per sample in ms (inference, train)
    # and the seconds the model takes to build, on the reference 2-core CPU at AVX2 (docs/methods.md, "Time
    # plan"); a model that does not say is planned as a small one.
    step_ms: tuple[float, float] = (0.5, 1.5)
    build_s: float = 0.2

    def batch(self, batch_size: int, device: str, seq_len: int | None = None):
        """``make_batch``, at ``seq_len`` tokens when it takes ``seq_len=`` (text models)."""
        return self.make_batch(batch_size, device, **_seq_len_kwarg(self.make_batch, seq_len))

    def probe(self, device: str, seq_len: int | None = None):
        """``probe_batch`` (None when the model has none), at ``seq_len`` when it takes it."""
        if self.probe_batch is None:
            return None
        return self.probe_batch(device, **_seq_len_kwarg(self.probe_batch, seq_len))

    def expectation(self, mode: str):
        """The graph-mode outcome this model declares it is built to show in ``mode`` (a
        :class:`bench.core.expectations.Expectation`), or None."""
        from bench.core.expectations import declared

        value = (self.expected_parity or {}).get(mode)
        if value is None:
            return None
        status, link = (value, "") if isinstance(value, str) else value
        return declared(self.name, status, self.description or "declared by the model", link)

    def compute_loss(self, out: Any, target: torch.Tensor) -> torch.Tensor:
        if self.loss is not None:
            return self.loss(out, target)
        logits = out.logits if hasattr(out, "logits") else out
        return torch.nn.functional.cross_entropy(logits.float(), target)


@dataclasses.dataclass(frozen=True)
class OpSpec:
    """A custom op under test. ``make_inputs(params, device, dtype)`` builds its positional
    arguments from ``params``, one example drawn from ``params_strategy()`` (a hypothesis
    strategy: shapes, broadcasting) or the fixed ``check_params`` / ``bench_params``."""

    name: str
    fn: Callable
    make_inputs: Callable[[Any, str, torch.dtype], tuple]
    check_params: Any
    bench_params: Any
    reference: Callable | None = None        # native composite computing the same thing
    params_strategy: Callable[[], Any] | None = None
    edge_params: tuple = ()                  # params of edge inputs in the op's valid domain
    mutates: tuple[int, ...] = ()
    forward_ad: bool = True
    is_custom_op: bool = False               # a torch.library op: opcheck applies
    description: str = ""
    # Declared properties, each checked (check_autograd's arguments of the same names):
    deterministic: bool = False              # bitwise-reproducible: non-determinism fails
    unsupported_dtypes: tuple[str, ...] = ()  # "bf16" / "fp16" / "fp32" it documents it does not take
    once_differentiable: bool = False        # backward not differentiable again: no second order
    compile_once: bool = False               # one torch.compile graph for every batch size

    def declared(self) -> dict:
        """The properties this op declares away from their defaults (for the rows)."""
        return {k: getattr(self, k) for k in ("deterministic", "unsupported_dtypes", "once_differentiable",
                                              "compile_once", "forward_ad") if getattr(self, k) !=
                dataclasses.fields(self)[[f.name for f in dataclasses.fields(self)].index(k)].default}


_MODELS: dict[str, ModelSpec] = {}
_OPS: dict[str, OpSpec] = {}
# Built-ins register themselves when imported: every module of these packages is found by
# package discovery (pkgutil), so a new model module needs no edit here; the registry never
# imports a module above it by a hard-coded name.
_BUILTIN_PACKAGES = ("bench.models",)  # models and the built-in ops' entries (bench.models.builtin_ops)


def load_plugin(spec: str) -> None:
    """Import a user plugin (a module name or a .py file) that registers ops and models.
    Errors propagate: the caller says which ``--bench-plugin`` failed."""
    from pathlib import Path

    if spec.endswith(".py"):
        path = Path(spec).expanduser()
        if not path.is_file():
            raise FileNotFoundError(f"no such file {path}")
        if path.stem in sys.modules and getattr(sys.modules[path.stem], "__file__", None) == str(path):
            return
        mod_spec = importlib.util.spec_from_file_location(path.stem, path)
        module = importlib.util.module_from_spec(mod_spec)
        sys.modules[path.stem] = module
        mod_spec.loader.exec_module(module)
    else:
        importlib.import_module(spec)


def load_plugins(specs) -> None:
    """``load_plugin`` each of ``specs`` (a child process repeating its parent's plugins)."""
    for spec in specs or ():
        load_plugin(spec)


def register_model(spec: ModelSpec) -> ModelSpec:
    if spec.name in _MODELS and _MODELS[spec.name] is not spec:
        raise ValueError(f"model {spec.name!r} is already registered")
    _MODELS[spec.name] = spec
    return spec


def register_op(spec: OpSpec) -> OpSpec:
    if spec.name in _OPS and _OPS[spec.name] is not spec:
        raise ValueError(f"op {spec.name!r} is already registered")
    _OPS[spec.name] = spec
    return spec


def _load_builtins() -> None:
    import pkgutil

    for package in _BUILTIN_PACKAGES:
        path = importlib.import_module(package).__path__
        for info in pkgutil.iter_modules(path, prefix=f"{package}."):
            importlib.import_module(info.name)


def ops() -> dict[str, OpSpec]:
    _load_builtins()
    return dict(_OPS)


def get_op(name: str) -> OpSpec:
    all_ops = ops()
    if name not in all_ops:
        raise KeyError(f"unknown op {name!r}; registered: {', '.join(sorted(all_ops))}")
    return all_ops[name]


def models(suite: str | None = None) -> dict[str, ModelSpec]:
    """Registered models, optionally only those in ``suite``'s zoo."""
    _load_builtins()
    return {k: v for k, v in _MODELS.items() if suite is None or suite in v.suites}


def get_model(name: str) -> ModelSpec:
    all_models = models()
    if name not in all_models:
        raise KeyError(f"unknown model {name!r}; registered: {', '.join(sorted(all_models))}")
    return all_models[name]
