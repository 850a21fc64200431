"""Custom autograd ops, their registry entries and the checker. The checker's names load on first
use (PEP 562), so reading the question's declaration (``question``) does not import torch."""

__all__ = ["AutogradReport", "Check", "check_autograd"]


def __getattr__(name):
    if name in __all__:
        from bench.ops import checker

        return getattr(checker, name)
    raise AttributeError(f"module 'bench.ops' has no attribute {name!r}")
