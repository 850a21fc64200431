"""The plugin's options: their declarations, and the checks of the values that name files and
modules (a bad one is a usage error, exit 4, naming the value and what is valid)."""
from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

from bench.core.profiles import PROFILES


def add_options(parser) -> None:
    """Every option of the plugin, in its own group of pytest's --help."""
    group = parser.getgroup("bench", "torch-hf-bench")
    group.addoption("--bench-profile", choices=tuple(PROFILES), default="standard",
                    help="how much to run: smoke (CI), standard (default), full (nightly GPU)")
    group.addoption("--bench-device", default=None, metavar="LIST",
                    help="comma list of cpu, cuda, cuda:N (default: cpu and every CUDA device)")
    group.addoption("--bench-plugin", action="append", default=[], metavar="MODULE",
                    help="module (or .py file) that registers user ops and models; repeatable")
    group.addoption("--hf-model", default=None, metavar="PATH_OR_ID",
                    help="Hugging Face model folder or hub id for the Trainer suite (default: packaged MiniLM); "
                         "a causal LM also gets generation rows")
    group.addoption("--hf-dataset", default=None, metavar="NAME_OR_PATH",
                    help="datasets name or local csv/json/parquet with text and label columns")
    group.addoption("--bench-report-dir", default=None, metavar="DIR",
                    help="where reports go (default: <rootdir>/reports)")
    group.addoption("--bench-compile-backend", default="inductor", metavar="NAME",
                    help="torch.compile backend of the graph-modes suite (default inductor; eager / aot_eager "
                         "bisect a compile mismatch to Dynamo, AOTAutograd or Inductor)")
    group.addoption("--bench-instructions", action="store_true", default=False,
                    help="also count instructions per call under valgrind's callgrind (CPU rows of the ops, "
                         "graph-modes and devices suites): a channel a noisy machine does not move")
    group.addoption("--bench-require", action="append", default=[], choices=("cuda",),
                    help="fail the run, naming the cases, when a case was skipped for lack of this "
                         "(e.g. a nightly GPU job that lost its GPU)")
    group.addoption("--bench-time-budget", type=float, default=None, metavar="SECONDS",
                    help="the whole run's time budget for the time plan (default: the profile's, 8 min in standard "
                         "on a CPU, none in full; 0: no ceiling)")
    group.addoption("--bench-threads", type=int, default=None, metavar="N",
                    help="torch threads for every timed path, workers and ranks included (default: torch's own, "
                         "the cores); 1 takes the other cores' availability out of the timings (see docs/verdicts.md)")
    group.addoption("--bench-references", default=None, metavar="DIR",
                    help="committed loss-curve references to check training rows against (default: "
                         "<rootdir>/references; written by python -m bench reference update)")
    group.addoption("--bench-known-failures", action="append", default=[], metavar="PATH",
                    help="a TOML file of known failures (same format as the repository's known_failures.toml) "
                         "read after it; repeatable")
    group.addoption("--bench-strict-known-failures", action="store_true", default=False,
                    help="fail the run when a case the known-failure manifest expects to fail passes "
                         "(fixed_upstream), so CI keeps the manifest current")


def _looks_like_path(value: str) -> bool:
    return value.startswith(("/", "./", "../", "~"))


def load_user_plugin(spec: str) -> None:
    """Import a user plugin by module name or .py path; raise UsageError when it fails."""
    from bench.registry import load_plugin

    try:
        load_plugin(spec)
    except Exception as exc:  # any error in the user's module is a usage error naming it
        raise pytest.UsageError(
            f"--bench-plugin {spec!r} could not be imported: {type(exc).__name__}: {exc}. "
            "Valid: an importable module name (e.g. examples.my_op_plugin) or a path to a .py file."
        ) from None


def check_paths(config) -> None:
    """``--hf-model`` and ``--hf-dataset`` values that look like paths must exist, and a local
    model folder must be one transformers can read."""
    for opt in ("hf_model", "hf_dataset"):
        value = config.getoption(opt)
        if value and _looks_like_path(value) and not Path(value).expanduser().exists():
            raise pytest.UsageError(
                f"--{opt.replace('_', '-')} {value!r}: no such file or folder. Valid: an existing local "
                "path, or a hub id / datasets name (no leading /, ./ or ../)"
            )
    data = config.getoption("hf_dataset")
    # a local file: read now, not after the run's first cases (without datasets installed the Trainer
    # rows say so themselves)
    if data and Path(data).expanduser().exists() and importlib.util.find_spec("datasets") is not None:
        from bench.trainer.data import load

        try:
            load(data)
        except Exception as exc:  # noqa: BLE001 -- whatever makes it unreadable is the user's to see
            raise pytest.UsageError(f"--hf-dataset {data}: cannot be used ({type(exc).__name__}: "
                                    f"{str(exc)[:300]}). Valid: csv / json / parquet with text and label columns") \
                from None
    refs = config.getoption("bench_references")
    if refs and not Path(refs).expanduser().is_dir():  # a typo would turn the curve check off unseen
        raise pytest.UsageError(f"--bench-references {refs!r}: no such folder. Valid: a folder of loss-curve "
                                "references (python -m bench reference update writes one), or leave it out for "
                                "<rootdir>/references")
    report = config.getoption("bench_report_dir")
    if report:
        _writable_folder(Path(report).expanduser())
    model = config.getoption("hf_model")
    if model and Path(model).expanduser().is_dir() and not (Path(model).expanduser() / "config.json").is_file():
        raise pytest.UsageError(
            f"--hf-model {model!r}: the folder has no config.json, so transformers cannot tell which model it "
            "holds. Valid: a folder written by save_pretrained (config.json plus model.safetensors or "
            "pytorch_model.bin, and the tokenizer's files), or a hub id"
        )


def _writable_folder(path: Path) -> None:
    """``--bench-report-dir``: a folder this process can create and write, checked before any
    case runs (found at the end, the run's report would be lost to a traceback)."""
    import tempfile

    try:
        path.mkdir(parents=True, exist_ok=True)
        tempfile.TemporaryFile(dir=path).close()
    except OSError as exc:
        raise pytest.UsageError(f"--bench-report-dir {str(path)!r}: cannot write reports there "
                                f"({exc.strerror or exc}). Valid: a folder you can write, created if missing") from None


def apply_threads(config) -> int | None:
    """``--bench-threads N``: this process's torch threads, and a cap every child inherits
    (``BENCH_THREADS``, read by ``bench.core.launch.threads_per_rank``; ``OMP_NUM_THREADS`` for
    torch's own start-up in children). None when not given."""
    import os

    n = config.getoption("bench_threads")
    if n is None:
        return None
    cores = os.cpu_count() or 1
    if n < 1:
        raise pytest.UsageError(f"--bench-threads {n}: give 1 or more (this machine has {cores} core(s))")
    import torch

    torch.set_num_threads(n)
    os.environ.update(BENCH_THREADS=str(n), OMP_NUM_THREADS=str(n), MKL_NUM_THREADS=str(n))
    return n
