"""The settings of the running session (profile, devices, Hugging Face options), set once by
the pytest plugin before collection so suites can parametrize from them."""
from __future__ import annotations

import contextlib
import dataclasses

from bench.devices import default_devices
from bench.profiles import PROFILES, Profile


@dataclasses.dataclass(frozen=True)
class Settings:
    profile: Profile
    devices: tuple[str, ...]
    hf_model: str | None = None
    hf_dataset: str | None = None


_current: list[Settings] = []


def configure(profile: str = "standard", devices: list[str] | None = None, hf_model: str | None = None,
              hf_dataset: str | None = None) -> Settings:
    if profile not in PROFILES:
        raise ValueError(f"unknown profile {profile!r}; valid: {', '.join(PROFILES)}")
    settings = Settings(PROFILES[profile], tuple(devices or default_devices()), hf_model, hf_dataset)
    _current[:] = [settings]
    return settings


def current() -> Settings:
    """This session's settings; the defaults when no plugin configured them (plain import)."""
    return _current[0] if _current else configure()


@contextlib.contextmanager
def current_seq_len(seq_len: int):
    """Temporarily run text models at ``seq_len`` (e.g. the calibration case's 128)."""
    before = current()
    _current[:] = [dataclasses.replace(before, profile=dataclasses.replace(before.profile, seq_len=seq_len))]
    try:
        yield
    finally:
        _current[:] = [before]
