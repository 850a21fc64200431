"""Helpers for suites: parametrize over cases that carry their report row's identity.

``case("devices", model="mlp", device="cuda:0", dtype="bf16")`` is a ``pytest.param``
with a readable id (``mlp-cuda:0-bf16``) and a ``bench_row`` marker. The plugin makes a row
from that marker for every outcome, and skips the case with the reason when the device or
precision is missing here.
"""
from __future__ import annotations

from typing import Any, Iterable

import pytest

from bench.settings import current


def case(suite: str, *, marks: Iterable[Any] = (), id: str | None = None, **keys: Any):
    marks = list(marks) + [pytest.mark.bench_row(suite=suite, **keys)]
    if str(keys.get("device", "")).startswith("cuda"):
        marks.append(pytest.mark.cuda)
    ident = id or "-".join(_id_part(k, v) for k, v in keys.items() if v is not None)
    return pytest.param(dict(keys), id=ident, marks=marks)


def _id_part(key: str, value: Any) -> str:
    if key == "batch_size":
        return f"bs{value}"
    if key == "world_size":
        return f"ws{value}"
    if key == "bucket_cap_mb":
        return f"bucket{value}mb"
    if isinstance(value, bool):
        return key if value else f"no_{key}"
    return str(value)


def devices() -> tuple[str, ...]:
    """The devices of this session (``--bench-device`` or cpu plus every CUDA device)."""
    return current().devices
