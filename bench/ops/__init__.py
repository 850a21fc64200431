"""Custom autograd ops, their registry entries and the checker."""
from bench.ops.checker import AutogradReport, Check, check_autograd

__all__ = ["AutogradReport", "Check", "check_autograd"]
