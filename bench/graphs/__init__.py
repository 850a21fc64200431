"""Graph modes: does the scripted / traced / compiled / exported graph compute what eager
computes (``check_parity``), and what does it buy (``scenario``)? The parity names load on first
use (PEP 562), so reading the question's declaration (``question``) does not import torch."""

__all__ = ["MODES", "ModeResult", "build", "check_parity", "failure_status", "outputs_and_grads", "params_of",
           "worst_error"]


def __getattr__(name):
    if name in __all__:
        from bench.graphs import parity

        return getattr(parity, name)
    raise AttributeError(f"module 'bench.graphs' has no attribute {name!r}")
