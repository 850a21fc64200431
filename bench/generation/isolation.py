"""A generation case that can kill its process, tried first in a child (``bench.core.isolate``):
transformers' flex_attention path compiles its mask and attention kernels with Inductor even in
eager mode, and on CPU such a kernel can abort the process (pytorch/pytorch#195402), which would
end the whole run."""
from __future__ import annotations


class IsolatedFailure(RuntimeError):
    """The case raised in the child process it was first tried in (its whole message follows)."""


def crash_guard(c: dict, session, row) -> None:
    """A CPU flex_attention case's first call (``scenario.first_call``), in a child first: a crash
    there is this row's error."""
    from bench.core.isolate import try_in_child

    if c["attention"] != "flex_attention" or c["device"] != "cpu":
        return
    out = try_in_child("bench.generation.scenario:first_call",
                       {"case": dict(c), "profile": session.profile.name, "hf_model": session.settings.hf_model})
    if "crashed" in out:
        row.check(False, out["crashed"], status="error")
    if out.get("type") in ("ValueError", "ImportError", "NotImplementedError", "ModuleNotFoundError"):
        row.end("unsupported", out["error"][:300])  # as the in-process build maps them: this build lacks it
    if "error" in out and "out of memory" not in out["error"].lower():
        raise IsolatedFailure(f"in a child process: {out['error']}")
    # out of memory (judged in process, where it is an ``oom`` row) or ok: the case runs here
