"""A minimal repro for a torch.compile row that does not match eager: torch's own minifier
(``repro_after="dynamo"``, ``repro_level=4``: check each captured graph's accuracy, dump a
launcher, shrink the graph) run in child processes with a time limit, its ``repro.py``
written next to the report.

The child compiles the model with the row's backend and runs its example and probe inputs;
Dynamo checks every graph it captures against eager (fp64 RMSE rule) and, on failure, writes
``minifier_launcher.py``. Running that launcher removes nodes while the failure persists and
writes the smallest failing graph as ``repro.py`` (with its inputs under ``checkpoints/``).
``python -m bench.graphs.minify --help`` runs the first step by hand."""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

from bench.core.session import MINIFIER_BUDGET_S

REPRO_TIMEOUT_S = 300.0  # one model's minification (capture + shrinking), both children together


def minimal_repro(model: str, device: str, backend: str, profile: str, session,
                  timeout_s: float = REPRO_TIMEOUT_S) -> dict:
    """``{"minimal_repro": path of repro.py relative to the session's report folder (None
    when there is none), "minimal_repro_note": what happened}``. Spends at most ``timeout_s``
    and what is left of the session's minifier budget."""
    if session.out_dir is None:
        return {"minimal_repro": None, "minimal_repro_note": "no report folder to write a repro into"}
    limit = min(timeout_s, session.minifier_budget_s)
    if limit < 30:
        return {"minimal_repro": None, "minimal_repro_note": (
            f"not minified: this run's minifier budget ({MINIFIER_BUDGET_S:.0f} s) is spent")}
    folder = Path(session.out_dir) / "repros" / f"{model}-{device.replace(':', '')}-{backend}"
    folder.mkdir(parents=True, exist_ok=True)
    start = time.monotonic()
    try:
        return _minify(model, device, backend, profile, folder, Path(session.out_dir), start + limit, limit)
    finally:
        session.minifier_budget_s -= time.monotonic() - start


def _minify(model, device, backend, profile, folder: Path, report_dir: Path, deadline: float, limit: float) -> dict:
    def note(text: str) -> dict:
        return {"minimal_repro": None, "minimal_repro_note": text}

    paths = [_bench_root(), os.environ.get("PYTHONPATH")]
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in paths if p))
    cmd = [sys.executable, "-m", "bench.graphs.minify", "--model", model, "--device", device, "--backend", backend,
           "--profile", profile, "--out", str(folder / "dynamo")] + _plugin_args(model)
    try:
        found = subprocess.run(cmd, capture_output=True, text=True, env=env,
                               timeout=max(1.0, deadline - time.monotonic()))
    except subprocess.TimeoutExpired:
        return note(f"not minified: capturing the failing graph took longer than the {limit:.0f} s limit")
    lines = [ln for ln in found.stdout.splitlines() if ln.startswith("{")]
    result = json.loads(lines[-1]) if lines else {"launcher": None, "error": found.stderr.strip()[-300:]}
    if not result.get("launcher"):
        return note("torch's minifier found no graph whose compiled output differs from eager on the example "
                    f"inputs ({result.get('error') or 'every captured graph passed its accuracy check'})")
    try:
        shrink = subprocess.run([sys.executable, result["launcher"]], cwd=folder, capture_output=True, text=True,
                                env=env, timeout=max(1.0, deadline - time.monotonic()))
    except subprocess.TimeoutExpired:
        return {"minimal_repro": os.path.relpath(result["launcher"], report_dir),
                "minimal_repro_note": "shrinking ran out of time: this is the whole failing graph's launcher"}
    repro = folder / "repro.py"
    if not repro.is_file():
        return {"minimal_repro": os.path.relpath(result["launcher"], report_dir),
                "minimal_repro_note": "the minifier wrote no repro.py (its log's end: "
                                      f"{(shrink.stderr or shrink.stdout).strip()[-200:]}); the launcher is kept"}
    return {"minimal_repro": repro.relative_to(report_dir).as_posix(),
            "minimal_repro_note": f"{_nodes(repro)} graph nodes; run: python {repro.name} (from its folder)"}


def _nodes(repro: Path) -> str:
    smallest = sorted((repro.parent / "checkpoints").glob("minified_*_nodes.py"),
                      key=lambda p: int(p.stem.split("_")[1]))
    return smallest[0].stem.split("_")[1] if smallest else "?"


def _bench_root() -> str:
    return str(Path(__file__).resolve().parents[2])


def _plugin_args(model: str) -> list[str]:
    """The file of the module that registered ``model``, when it is not one of bench's own
    (a --bench-plugin model must be registered in the child too)."""
    from bench.registry import get_model

    module = sys.modules.get(getattr(get_model(model).build, "__module__", ""), None)
    path = getattr(module, "__file__", None)
    return ["--plugin-file", path] if path and not module.__name__.startswith("bench.") else []


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description="Compile one registered model with Dynamo's accuracy minifier on "
                                            "and print the minifier launcher's path (JSON) when a graph fails.")
    p.add_argument("--model", required=True)
    p.add_argument("--device", default="cpu")
    p.add_argument("--backend", default="inductor")
    p.add_argument("--profile", default="smoke")
    p.add_argument("--out", required=True, help="Dynamo's debug folder (the launcher goes under it)")
    p.add_argument("--plugin-file", default=None, help=".py file that registers the model")
    a = p.parse_args(argv)
    import torch
    from torch._dynamo import config

    from bench.core.profiles import PROFILES
    from bench.graphs.scenario import batch_size
    from bench.registry import get_model

    if a.plugin_file:
        import importlib.util

        spec_ = importlib.util.spec_from_file_location(Path(a.plugin_file).stem, a.plugin_file)
        module = importlib.util.module_from_spec(spec_)
        sys.modules[spec_.name] = module
        spec_.loader.exec_module(module)
    config.repro_after, config.repro_level, config.debug_dir_root = "dynamo", 4, a.out
    profile, spec = PROFILES[a.profile], get_model(a.model)
    torch.manual_seed(0)
    model = spec.build().to(a.device).eval()
    bs = batch_size(spec, profile)
    example, _ = spec.batch(bs, a.device, profile.seq_len)
    probe = spec.probe(a.device, profile.seq_len)
    compiled = torch.compile(model, backend=a.backend)
    try:
        for inputs in [example] + ([probe] if probe is not None else []):
            compiled(*inputs)
    except Exception as exc:  # Dynamo's AccuracyError, wrapped in BackendCompilerFailed
        inner = getattr(exc, "inner_exception", None)
        launcher = getattr(exc, "minifier_path", None) or getattr(inner, "minifier_path", None)
        print(json.dumps({"launcher": launcher, "error": f"{type(inner or exc).__name__}: {inner or exc}"[:300]}))
        return
    print(json.dumps({"launcher": None, "error": None}))


if __name__ == "__main__":
    main()
