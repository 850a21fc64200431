"""Graph modes: does the scripted / traced / compiled / exported graph compute what eager
computes (``check_parity``), and what does it buy (``scenario``)?"""
from bench.graphs.parity import (
           MODES,
           ModeResult,
           build,
           check_parity,
           failure_status,
           outputs_and_grads,
           params_of,
           worst_error,
)

__all__ = ["MODES", "ModeResult", "build", "check_parity", "failure_status", "outputs_and_grads", "params_of",
           "worst_error"]
