"""Committed loss-curve references (golden values; not the timing reference of
``bench.core.reference``): one small JSON file per training row and profile under
``references/<profile>/``, holding the curve a run produced, the environment it ran in and why it
was recorded. Megatron-LM keeps per-step golden values the same way and checks every step
against them (its ``tests/functional_tests``).

Every run that finds a reference for one of its training rows judges the row's curve against it
(``bench.report.curves``) and writes ``reference`` into the row: ``same``, or where the curve left
it. A changed curve in the reference's own environment (torch, transformers, the ISA ATen
dispatches to, the thread count, the GPU) is a failure of the run, naming the step: the code of
the project, the model or the data changed the training. Under another torch or transformers it
is a finding (``changed ... under torch A, this run torch B``): an upgrade moved the curve, which
is what the reference is there to show, and the user decides whether it is right and records it
again. On other hardware (another ISA, thread count or GPU: other kernels, other rounding) the
curve is not compared; record a reference on that machine for it:

    python -m bench reference update reports/latest/results.json --reason "torch 2.14: new AdamW foreach path"
"""
from __future__ import annotations

import json
import re
import time
from pathlib import Path

from bench.core.rows import passed
from bench.report.curves import CURVE, judge_curve
from bench.report.io import ResultsError

SOFTWARE = ("torch", "transformers")                    # an upgrade: a moved curve is a finding
HARDWARE = ("cpu_capability", "torch_threads", "gpu_name")  # another machine: kernels differ, not compared
ENVIRONMENT = SOFTWARE + HARDWARE
HISTORY = 10  # earlier reasons kept in a reference file


def slug(case: str) -> str:
    """A file name for a pytest node id (``suites/test_trainer.py::test_trainer[trainer-cpu-fp32]``)."""
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", case.removeprefix("suites/")).strip("_")


def path_for(root: Path, profile: str, case: str) -> Path:
    return Path(root) / profile / f"{slug(case)}.json"


def environment(fingerprint: dict) -> dict:
    return {k: fingerprint.get(k) for k in ENVIRONMENT}


def _curve_rows(rows) -> list[dict]:
    return [r for r in rows if isinstance(r.get(CURVE), list) and r[CURVE] and passed(r.get("status"))]


def update(results: dict, reason: str, root: Path) -> list[Path]:
    """Write (or replace) the reference of every training row of ``results`` that stored a curve
    and passed; ``reason`` is required and kept with the earlier ones."""
    if not reason or not reason.strip():
        raise ResultsError("--reason is required: say why the curve is recorded (a first reference, an upgrade "
                           "that moved it and was checked, a change of the data)")
    run = results.get("bench_run") or {}
    profile = run.get("profile")
    if not profile:
        raise ResultsError("the results file records no profile (bench_run.profile): references are kept per profile")
    fp = (results.get("machine_info") or {}).get("bench") or {}
    rows = _curve_rows(results.get("bench_rows") or [])
    if not rows:
        raise ResultsError("the results file has no passed training row with a loss curve (Trainer, causal-LM or "
                           "sharded rows store one)")
    written = []
    for row in rows:
        path = path_for(root, profile, row["test"])
        old = json.loads(path.read_text()) if path.is_file() else {}
        before = [{k: old.get(k) for k in ("reason", "updated", "environment")}] if old else []
        history = before + old.get("history", [])
        ref = {"case": row["test"], "suite": row.get("suite"), "profile": profile, "device": row.get("device"),
               "model": row.get("model"),
               "plan": row.get("plan"), CURVE: row[CURVE], "environment": environment(fp), "reason": reason.strip(),
               "updated": time.strftime("%Y-%m-%d"), "run_id": run.get("run_id"), "history": history[:HISTORY]}
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(ref, indent=1) + "\n")
        written.append(path)
    return written


def check(rows, profile: str, fingerprint: dict, root: Path, user_inputs: str | None = None) -> list[str]:
    """Judge every training row's curve against its committed reference (the row gets
    ``reference``); returns the run failures: curves that changed in the reference's own
    environment. ``user_inputs``: the run trains the user's model or data (``--hf-model`` /
    ``--hf-dataset``), which the references of the built-in ones say nothing about."""
    failures = []
    here = environment(fingerprint)
    for row in _curve_rows(rows):
        path = path_for(root, profile, row["test"])
        if not path.is_file():
            continue
        if user_inputs:
            row["reference"] = ("not compared: the references are of the built-in models and data; this run "
                                f"{user_inputs}")[:300]
            continue
        try:
            ref = json.loads(path.read_text())
            judged = judge_curve(row["test"], row.get("suite"), [{**row, CURVE: ref[CURVE]}], [row])
        except (ValueError, KeyError, TypeError) as exc:
            row["reference"] = f"unreadable reference {path}: {exc}"[:300]
            failures.append(f"loss-curve reference {path} is unreadable ({type(exc).__name__}): fix or update it")
            continue
        if (ref.get("plan") or "full") != (row.get("plan") or "full"):  # a shrunk case trains on other batches
            row["reference"] = (f"not compared: this run's time plan ran the case {row.get('plan') or 'full'}, "
                                f"the reference's {ref.get('plan') or 'full'}")
            continue
        if ref.get("model") is not None and ref.get("model") != row.get("model"):
            row["reference"] = f"not compared: the reference is of model {ref['model']}, this row {row.get('model')}"
            continue
        recorded = ref.get("environment", {})
        other = {k: (recorded.get(k), here[k]) for k in HARDWARE if recorded.get(k) != here[k]}
        if other:  # another ISA, thread count or GPU runs other kernels: its curve is its own
            row["reference"] = ("not compared: recorded on other hardware (" + ", ".join(
                f"{k} {a}, this run {b}" for k, (a, b) in other.items()) + ")")
            continue
        if judged is None:  # a side with no usable curve
            row["reference"] = "not compared: no comparable curve on one side"
            continue
        if judged["verdict"] == "same":
            row["reference"] = "same"
            continue
        if judged["verdict"] == "unsure":  # another number of steps: not the same training
            row["reference"] = f"not compared: {judged['note']}"
            continue
        moved = {k: (recorded.get(k), here[k]) for k in SOFTWARE if recorded.get(k) != here[k]}
        row["reference"] = f"{judged['verdict']}: {judged['note']}"
        if moved:
            where = ", ".join(f"{k} {a}, this run {b}" for k, (a, b) in moved.items())
            row["reference"] += (f" (recorded under {where}: an environment change moved it; check it, then "
                                 "`python -m bench reference update`)")
            continue
        failures.append(f"the loss curve of {row['test']} left its committed reference ({path}) in the same "
                        f"environment: {judged['note']}")
    return failures
