"""The op checker's vocabulary: a ``Check`` (one verdict), an ``AutogradReport`` (all of
them), and the helpers every check module shares (running an op's gradients, naming
PyTorch's own refusals). Imported by checker, derivatives, precision and robustness, which
never import each other's private names."""
from __future__ import annotations

import dataclasses

import torch

from bench.core import numerics
from bench.core.hardware import DTYPES, PRECISIONS
from bench.ops import variants as V

# A check's outcome, in words distinct from pytest's outcomes ("passed" / "failed") and from the
# rows' statuses: the op's property held, was violated, or does not apply here.
HELD, VIOLATED, NA = "held", "violated", "not_applicable"
LOW_PRECISIONS = {name: DTYPES[name] for name in PRECISIONS}


@dataclasses.dataclass
class Check:
    name: str
    status: str
    message: str = ""
    detail: dict = dataclasses.field(default_factory=dict)
    kind: str = "correctness"  # or "cost": a failed cost check is a finding, not a wrong result

    def __str__(self):
        return f"{self.name}: {self.status}" + (f" ({self.message})" if self.message else "")


# Checks that measure what the op costs, not whether it is right: a failure is a finding
# shown in its own column, kept out of the correctness verdict (unless the op declares the
# property, e.g. compile_once=True makes a recompile a failure).
COST_CHECKS = ("saved_memory", "recompiles")


@dataclasses.dataclass
class AutogradReport:
    checks: list[Check]

    @property
    def failures(self) -> list[Check]:
        """Failed correctness checks: the op computes something wrong or breaks a declaration."""
        return [c for c in self.checks if c.status == VIOLATED and c.kind == "correctness"]

    @property
    def findings(self) -> list[Check]:
        """Failed cost checks: right results at a cost worth knowing (recompiles, memory)."""
        return [c for c in self.checks if c.status == VIOLATED and c.kind == "cost"]

    @property
    def passed(self) -> bool:
        return not self.failures

    def by_name(self, name: str) -> Check:
        return next(c for c in self.checks if c.name == name)

    @property
    def checks_passed(self) -> str:
        applicable = [c for c in self.checks if c.status != NA and c.kind == "correctness"]
        return f"{sum(c.status == HELD for c in applicable)}/{len(applicable)}"

    @property
    def cost_checks(self) -> str:
        """passed/applicable over the cost checks (the findings are the rest)."""
        applicable = [c for c in self.checks if c.status != NA and c.kind == "cost"]
        return f"{sum(c.status == HELD for c in applicable)}/{len(applicable)}"

    def __str__(self):
        return "\n".join(map(str, self.checks))


def err(exc: BaseException, limit: int = 400) -> str:
    """An exception as one line: its type and its whole message joined (gradcheck's first line
    ends mid-sentence, "... with respect to input 0,", the numbers follow), cut at a word with
    an ellipsis when longer than ``limit``."""
    text = f"{type(exc).__name__}: " + " ".join(line.strip() for line in str(exc).strip().splitlines() if line.strip())
    if len(text) <= limit:
        return text
    cut = text.rfind(" ", 0, limit - 2)
    return text[:cut if cut > limit // 2 else limit - 2] + " …"


def run_grads(fn, inputs, weights=None):
    """Outputs of fn and gradients of sum(out * w) wrt every differentiable input."""
    out = fn(*inputs)
    outs = V.tensors_of(out)
    diff = [x for x in inputs if isinstance(x, torch.Tensor) and x.requires_grad]
    if weights is None:
        gen = torch.Generator().manual_seed(0)
        weights = [torch.randn(o.shape, generator=gen, dtype=torch.float64).to(o.device, o.dtype) for o in outs]
    loss = sum((o * w).sum() for o, w in zip(outs, weights) if o.is_floating_point() and o.requires_grad)
    grads = torch.autograd.grad(loss, diff, allow_unused=True) if diff and torch.is_tensor(loss) else []
    return outs, [g if g is not None else torch.zeros_like(x) for g, x in zip(grads, diff)], weights


max_diff = numerics.max_abs_diff
rmse = numerics.rmse


_DTYPE_NAMES = {torch.float64: ("double", "float64"), torch.float32: ("float", "float32"),
                torch.bfloat16: ("bfloat16",), torch.float16: ("half", "float16")}


def names_dtype(exc: BaseException, dtype: torch.dtype) -> bool:
    """The error is the op's refusal of ``dtype`` in PyTorch's or numpy's words ("... not
    implemented for 'BFloat16'", "Got unsupported ScalarType BFloat16"). A dtype mix-up inside
    the op ("expected ... same dtype, got double != float") is a defect, not a refusal."""
    text = str(exc).lower()
    return any(f"not implemented for '{n}'" in text or f"unsupported scalartype {n}" in text
               or f"does not support {n}" in text for n in _DTYPE_NAMES[dtype])


# PyTorch's own words for "this op has no forward-mode AD / cannot be vmapped": only these
# make forward_ad or batched_grad not applicable; any other exception is the op's failure.
NO_FORWARD_AD = ("jvp is not implemented", "implement the jvp", "forward mode", "does not support forward",
                 "forward ad", "forward-mode",
                  "not implemented for forward", "trying to use forward ad")
NO_VMAP = ("vmap", "batching rule", "generate_vmap_rule", "functorch", "batched tensor",
            "setup_context", "inplace arithmetic", "data pointer")


def refusal(exc: BaseException, words) -> bool:
    return isinstance(exc, (RuntimeError, NotImplementedError)) and any(w in str(exc).lower() for w in words)
