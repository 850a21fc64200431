"""Files written atomically, and content hashes: the ground floor every writer uses (the
report, the torchrun workers, ``ab``) and the weights' hashes a run records.

A file is never half-written: it is written to a temporary name in the same folder and
renamed into place, which is atomic on POSIX file systems (``os.replace``).
"""
from __future__ import annotations

import functools
import hashlib
import json
import math
import os
import tempfile
from pathlib import Path
from typing import Any


def _umask() -> int:
    """The process's umask (read by setting it and setting it back: there is no getter)."""
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def atomic_write_text(path: str | Path, text: str) -> None:
    """Write ``text`` to ``path`` whole or not at all, with the mode a plain ``open`` would give
    (0666 less the umask): ``mkstemp`` creates 0600, which would make every report unreadable to
    the rest of a team or a CI artifact server."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        os.fchmod(fd, 0o666 & ~_umask())
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def _clean(obj: Any) -> Any:
    """JSON has no NaN/inf: write them as null so every reader can load the file."""
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if isinstance(obj, dict):
        return {str(k): _clean(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_clean(v) for v in obj]
    return obj


def atomic_write_json(path: str | Path, data: Any) -> None:
    atomic_write_text(path, json.dumps(_clean(data), indent=1, default=str, allow_nan=False))


def sha256_of(path: str | Path) -> str:
    """SHA-256 of a file, computed once per file version (path, size, modification time)."""
    st = os.stat(path)
    return _sha256(str(path), st.st_size, st.st_mtime_ns)


@functools.lru_cache(maxsize=16)
def _sha256(path: str, size: int, mtime_ns: int) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def weights_sha256(folder: str | Path) -> str | None:
    """SHA-256 of ``folder``'s model.safetensors (None when there is none)."""
    weights = Path(folder) / "model.safetensors"
    return sha256_of(weights) if weights.is_file() else None
