"""What each profile serves (requests per trace, Poisson loads, the static server's batch; the
long-context window and prompts) and the latency targets, and the decoders the rows share."""
from __future__ import annotations

import dataclasses

from bench.core.hardware import DTYPES
from bench.models import decoders as zoo

TTFT_TARGET_MS, TPOT_TARGET_MS = 450.0, 40.0  # MLPerf Inference v5.0, Llama 2 70B Interactive


@dataclasses.dataclass(frozen=True)
class Plan:
    """A profile's serving work: requests per trace, Poisson loads (fractions of the burst
    capacity), the static server's largest batch; the long-context window and prompt lengths
    (by the zoo size the profile decodes at) and tokens generated there."""

    requests: int
    loads: tuple[float, ...]
    static_batch: int


PLANS = {"smoke": Plan(6, (0.5,), 4), "standard": Plan(24, (0.25, 0.5, 1.0, 1.5), 8),
         "full": Plan(64, (0.1, 0.25, 0.5, 0.75, 1.0, 1.25, 1.5, 2.0), 16)}
# zoo size -> (sliding window, prompt lengths, new tokens): the longest prompts exceed the window
CONTEXTS = {"smoke": (16, (8, 48), 8), "standard": (256, (128, 512, 2048), 16),
            "full": (4096, (1024, 8192, 16384), 64)}
KV_SLACK = 1.05  # a cache may round its length up a little (a page); more is over-allocation


def size(session, device: str) -> str:
    return zoo.size_for(session.profile.gen_size, device)


def model(c: dict, session, attn: str = "sdpa", **overrides):
    """The case's decoder, kept for the session's rows (a slot: one at a time)."""
    key = ("serving_model", c["model"], c["device"], c["dtype"], attn, tuple(sorted(overrides.items())))
    return session.shared(key, lambda: zoo.build(c["model"], size(session, c["device"]), attn, c["device"],
                                                 DTYPES[c["dtype"]], session.settings.hf_model, **overrides)[0],
                          slot=f"serving_model_{attn}")
