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
import contextlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

from bench.core.session import MINIFIER_BUDGET_S

REPRO_TIMEOUT_S = 300.0  # one model's minification (capture + shrinking), both children together
MIN_TIME_S = 30.0  # below this much budget, no minification is started


def minimal_repro(model: str, device: str, session, timeout_s: float = REPRO_TIMEOUT_S) -> dict:
    """``{"minimal_repro": path of repro.py relative to the session's report folder (None
    when there is none), "minimal_repro_note": what happened}`` for ``model`` on ``device``
    with the session's compile backend and profile. Spends at most ``timeout_s`` and what is
    left of the session's minifier budget; never raises (a failure is the note)."""
    if session.out_dir is None:
        return _note("no report folder to write a repro into")
    limit = min(timeout_s, session.minifier_budget_s)
    if session.minifier_budget_s < MIN_TIME_S:
        return _note(f"not minified: {session.minifier_budget_s:.0f} s left of this run's minifier budget "
                     f"({MINIFIER_BUDGET_S:.0f} s)")
    backend, profile = session.settings.compile_backend, session.profile.name
    report_dir = Path(session.out_dir).resolve()
    folder = report_dir / "repros" / f"{model}-{device.replace(':', '')}-{backend}"
    start = time.monotonic()
    try:
        folder.mkdir(parents=True, exist_ok=True)
        return _minify(model, device, backend, profile, session.settings.plugins, folder, report_dir, limit)
    except Exception as exc:  # the row keeps its own status; the minifier's failure is its note
        return _note(f"the minifier failed: {type(exc).__name__}: {str(exc)[:200]}")
    finally:
        session.minifier_budget_s -= time.monotonic() - start


def _note(text: str, path: str | None = None) -> dict:
    return {"minimal_repro": path, "minimal_repro_note": text}


def _minify(model, device, backend, profile, plugins, folder: Path, report_dir: Path, limit: float) -> dict:
    deadline = time.monotonic() + limit
    paths = [_bench_root(), os.environ.get("PYTHONPATH")]
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in paths if p))
    cmd = [sys.executable, "-m", "bench.graphs.minify", "--model", model, "--device", device, "--backend", backend,
           "--profile", profile, "--out", str(folder / "dynamo")] + [a for p in plugins for a in ("--plugin", p)]
    try:
        code, out, err = _run(cmd, folder, env, deadline)
    except subprocess.TimeoutExpired:
        return _note(f"not minified: capturing the failing graph took longer than the {limit:.0f} s limit")
    found = None
    for line in reversed(out.splitlines()):
        try:
            found = json.loads(line)
            break
        except ValueError:
            continue
    if not isinstance(found, dict):
        return _note(f"the minifier's child failed (exit {code}): {(err or out).strip()[-300:]}")
    if not found.get("launcher"):
        return _no_launcher(found, backend, folder, report_dir)
    launcher = Path(found["launcher"]).resolve()
    repro = folder / "repro.py"
    try:
        code, out, err = _run([sys.executable, str(launcher)], folder, env, deadline)
        timed_out = False
    except subprocess.TimeoutExpired:
        timed_out = True
    if not repro.is_file():
        why = f"shrinking ran out of time ({limit:.0f} s)" if timed_out else \
            f"the minifier wrote no repro.py ({(err or out).strip()[-200:]})"
        return _note(f"{why}: this is the whole failing graph's launcher", launcher.relative_to(report_dir).as_posix())
    _portable(repro)
    shutil.rmtree(folder / "dynamo", ignore_errors=True)  # the whole graph's inputs again: not needed now
    head = f"partly shrunk, time ran out ({limit:.0f} s): " if timed_out else ""
    return _note(f"{head}{_nodes(repro)} graph nodes; run it from its folder: python repro.py",
                 repro.relative_to(report_dir).as_posix())


def _no_launcher(found: dict, backend: str, folder: Path, report_dir: Path) -> dict:
    """Dynamo's accuracy check compares each captured graph compiled against *that captured
    graph* run eagerly, not against the original model: passing it clears code generation,
    not capture (guards, graph breaks, side effects, what was traced)."""
    graphs = sorted((folder / "captured").glob("graph_*.py"))
    where = graphs[0].parent.relative_to(report_dir).as_posix() if graphs else None
    what = (f"each of the {len(graphs)} captured graph(s) compiled matches the same captured graph run eagerly "
            f"({found.get('error') or 'Dynamo accuracy check passed'}); that is not a comparison with the "
            "original model")
    if backend == "eager":
        return _note(f"{what}. The eager backend generates no code and the mismatch remains: capture "
                     f"(Dynamo's tracing) is the suspect; the captured graph(s) are in {where}", where)
    return _note(f"{what}. Run again with --bench-compile-backend eager: if the mismatch remains, capture is "
                 f"the suspect, not {backend}'s code; the captured graph(s) are in {where}", where)


def _run(cmd: list[str], cwd: Path, env: dict, deadline: float) -> tuple[int, str, str]:
    """Run ``cmd`` until ``deadline``; on time-out kill its whole process group (Inductor's
    compile workers too) and raise ``subprocess.TimeoutExpired``."""
    with subprocess.Popen(cmd, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                          start_new_session=True) as proc:
        try:
            out, err = proc.communicate(timeout=max(1.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.communicate()
            raise
    return proc.returncode, out, err


def _portable(repro: Path) -> None:
    """torch writes the absolute checkpoints folder into repro.py; make it the folder next to
    the file, so the repro still runs from reports/latest or a downloaded CI artifact."""
    text = repro.read_text()
    text = re.sub(r"save_dir='[^']*'", "save_dir=os.path.join(os.path.dirname(os.path.abspath(__file__)), "
                                       "'checkpoints')", text)
    if "\nimport os\n" not in text:
        text = "import os\n" + text
    repro.write_text(text)


def _nodes(repro: Path) -> str:
    smallest = sorted((repro.parent / "checkpoints").glob("minified_*_nodes.py"),
                      key=lambda p: int(p.stem.split("_")[1]))
    return smallest[0].stem.split("_")[1] if smallest else "?"


def _bench_root() -> str:
    return str(Path(__file__).resolve().parents[2])


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description="Compile one registered model with Dynamo's accuracy minifier on "
                                            "and print the minifier launcher's path (JSON) when a graph fails.")
    p.add_argument("--model", required=True)
    p.add_argument("--device", default="cpu")
    p.add_argument("--backend", default="inductor")
    p.add_argument("--profile", default="smoke")
    p.add_argument("--out", required=True, help="Dynamo's debug folder (the launcher goes under it)")
    p.add_argument("--plugin", action="append", default=[], help="module or .py file registering the model")
    a = p.parse_args(argv)
    import torch
    from torch._dynamo import config

    from bench.core.profiles import PROFILES
    from bench.graphs.inputs import model_and_inputs
    from bench.registry import load_plugin

    for plugin in a.plugin:
        load_plugin(plugin)
    config.repro_after, config.repro_level, config.debug_dir_root = "dynamo", 4, a.out
    model, example, _, probes = model_and_inputs(a.model, a.device, PROFILES[a.profile])
    compiled = torch.compile(model.eval(), backend=a.backend)
    try:
        for inputs in [example, *probes]:
            compiled(*inputs)
    except Exception as exc:  # Dynamo's AccuracyError, wrapped in BackendCompilerFailed
        inner = getattr(exc, "inner_exception", None)
        launcher = getattr(exc, "minifier_path", None) or getattr(inner, "minifier_path", None)
        print(json.dumps({"launcher": launcher, "error": f"{type(inner or exc).__name__}: {inner or exc}"[:300]}))
        return
    _save_captured(model, example, Path(a.out).parent / "captured")
    print(json.dumps({"launcher": None, "error": None}))


def _save_captured(model, example, folder: Path) -> None:
    """Dynamo's captured graphs of ``model`` (torch._dynamo.explain: tracing only), as code."""
    import torch

    folder.mkdir(parents=True, exist_ok=True)
    for i, graph in enumerate(torch._dynamo.explain(model)(*example).graphs):
        (folder / f"graph_{i}.py").write_text(graph.print_readable(print_output=False))


if __name__ == "__main__":
    main()
