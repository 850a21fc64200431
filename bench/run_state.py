"""The state of one pytest session: its report rows, flushed to ``reports/<run-id>/results.json``
after every case (an interrupted run still leaves what it finished), the warnings each case
raised, and what ``--bench-require`` found missing. Owned by the plugin."""
from __future__ import annotations

import os
import time
from pathlib import Path

from bench.core.load import LoadProbe
from bench.core.rows import RESULTS_SCHEMA, Row


class RunState:
    """The rows of this session, flushed to ``reports/<run-id>/results.json`` after every
    case, so an interrupted run still leaves what it finished."""

    def __init__(self, root: Path, session):
        self.root = root
        self.session = session
        self.profile = session.profile.name
        self.run_id = time.strftime("%Y%m%d-%H%M%S") + f"-{self.profile}-{os.getpid()}"
        self.rows: list[Row] = []
        self.notes: list[str] = []
        self.failures: list[str] = []  # run-level failures (no row holds them): the headline is NOT GOOD
        self.plan: dict = {}  # the run's time plan: budget and estimate (each row carries its decision)
        self._fingerprint = None
        self.threads: int | None = None  # --bench-threads (None: torch's default)
        self._suites: set[str] = set()  # the suites of the rows so far (their questions go in the file)
        self._builtin: set[str] | None = None
        self.load = LoadProbe()  # the whole run's: it judges the cases too short to judge alone

    def pytest_warning_recorded(self, warning_message, when, nodeid, location):
        """Each case's warnings (category and first line), so compare can list the ones an
        upgrade introduced. pytest reports them when the case's whole protocol ends, after its
        row is final: they are added to that row here."""
        if when != "runtest" or not nodeid:
            return
        text = f"{warning_message.category.__name__}: {str(warning_message.message).splitlines()[0][:200]}"
        for row in self.rows:
            if row.get("test") == nodeid:
                have = [w for w in str(row.get("warnings") or "").split("; ") if w]
                if text not in have:
                    row["warnings"] = "; ".join(have + [text])[:2000]

    def questions(self) -> dict:
        """The declarations of the plugin questions this run's rows answer (``bench.core.question``):
        the results file then carries them, and ``compare`` judges them without the plugin."""
        from bench.core.question import builtin_names, record

        if self._builtin is None:  # once a run: the built-in questions do not change while it runs
            self._builtin = set(builtin_names())
        return record(self._suites - self._builtin)

    def channels(self) -> dict:
        """Which measuring channels this run had on, so ``compare`` tells a count the run never
        took (``--bench-instructions`` off) from one it lost."""
        settings = getattr(self.session, "settings", None)
        return {"wall_time": True, "instructions": bool(getattr(settings, "instructions", False)),
                "reference": True}

    @property
    def run_dir(self) -> Path:
        return self.root / self.run_id

    def fingerprint(self) -> dict:
        if self._fingerprint is None:
            from bench.core.env import safe_fingerprint

            self._fingerprint = safe_fingerprint()
        return {**self._fingerprint, **self.session.learned()}  # what the run has learned so far

    def add(self, row: Row) -> None:
        if not any(r is row for r in self.rows):
            self.rows.append(row)
            self._suites.add(row["suite"])
        self.write(complete=False)

    def results(self, complete: bool, benchmarks: dict | None = None) -> dict:
        data = dict(benchmarks or {"machine_info": {"bench": self.fingerprint()}, "benchmarks": []})
        data["bench_rows"] = [dict(r) for r in self.rows]
        data["bench_run"] = {"schema": RESULTS_SCHEMA, "run_id": self.run_id, "profile": self.profile,
                             "complete": complete, "notes": self.notes, "failures": self.failures, "plan": self.plan,
                             "questions": self.questions(),
                             "channels": self.channels(), "threads": self.threads,
                             "foreign_cpu_share": self._foreign_share() if complete else None}
        return data

    def _foreign_share(self) -> float | None:
        share = self.load.foreign_share()
        return None if share is None else round(share, 4)

    def write(self, complete: bool, benchmarks: dict | None = None) -> dict:
        """Write results.json; returns what it wrote (the report and the history copy are of it)."""
        from bench.core.files import atomic_write_json

        data = self.results(complete, benchmarks)
        atomic_write_json(self.run_dir / "results.json", data)
        return data


def benchmark_json(config) -> dict | None:
    bs = getattr(config, "_benchmarksession", None)
    if bs is None:
        return None
    return config.hook.pytest_benchmark_generate_json(
        config=config, benchmarks=bs.benchmarks, include_data=True, machine_info=bs.get_machine_info(),
        commit_info=config.hook.pytest_benchmark_generate_commit_info(config=config),
    )




def user_model_unmeasured(rows: list, hf_model: str | None) -> str | None:
    """Why a run given ``--hf-model`` failed to measure it: every row of that model ended
    without passing (unsupported, skipped, error). None when one ran, or no model was given."""
    from bench.core.rows import passed

    if not hf_model:
        return None
    mine = [r for r in rows if r.get("model") in (hf_model, "hf")]
    if not mine or any(passed(r.get("status")) for r in mine):
        return None
    first = next((r for r in mine if r.get("status") != "skipped"), mine[0])
    return (f"--hf-model {hf_model}: none of its {len(mine)} row(s) ran, so the model you asked for was not "
            f"measured (first: {first.get('status')}: {str(first.get('reason'))[:200]})")


def required_but_skipped(rows: list, required: list[str], caps=None) -> list[str]:
    """Cases skipped for lack of a required capability; a run with no CUDA row at all
    counts as missing every CUDA case. ``--bench-require cuda`` asks for the CUDA device each
    row names: a row a present GPU cannot run (float8 below compute capability 8.9, a second
    GPU, NCCL) is that GPU's limit, counted apart, not a lost GPU."""
    from bench.core.hardware import probe

    if "cuda" not in required:
        return []
    cuda_rows = [r for r in rows if str(r.get("device") or "").startswith("cuda")]
    if not cuda_rows:
        return ["(no case ran on a CUDA device: --bench-device selected none)"]
    caps = caps or probe()
    # declared, not parsed: a row skipped because the machine lacks what it needs says so (needs_hardware)
    return [r["test"] for r in cuda_rows if r.get("status") == "skipped" and r.get("needs_hardware")
            and caps.device_reason(r["device"]) is not None]


def check_references(config, state: RunState) -> list[str]:
    """The training rows' loss curves against their committed references
    (``bench.report.references``, ``--bench-references``): the run failures."""
    from bench.report.references import check

    folder = config.getoption("bench_references")
    root = Path(folder).expanduser() if folder else Path(config.rootpath) / "references"
    if not root.is_dir():
        return []
    try:
        user = " and ".join(f"--{o.replace('_', '-')} {config.getoption(o)}" for o in ("hf_model", "hf_dataset")
                            if config.getoption(o))
        return check(state.rows, state.profile, state.fingerprint(), root, user_inputs=user and f"trains {user}")
    except Exception as exc:  # a broken reference folder costs a failure line, never the report
        return [f"could not check the loss-curve references in {root}: {exc!r}"[:300]]
