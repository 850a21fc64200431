"""Runs as compare, ab and history read them: a results file's rows, raw samples,
fingerprint and profile; a metric's per-run values; the environment difference between runs; a
case's repro command."""
from __future__ import annotations

import dataclasses
import math
import statistics
from pathlib import Path

from bench.core.machine import identity
from bench.core.question import adopt
from bench.core.rows import Metric, passed, severity
from bench.report.io import ResultsError, load_results
from bench.report.tables import rows_from_results

# Fingerprint keys that are measurements, not settings: shown in the report, not diffed.
NOT_ENVIRONMENT = ("measured_peaks_tflops", "measured_bandwidth_gbs", "git_commit_dirty")


@dataclasses.dataclass
class Run:
    path: str
    run_id: str
    profile: str | None
    complete: bool
    fingerprint: dict
    rows: dict[str, dict]               # case (pytest node id) -> row
    samples_ms: dict[str, list[float]]  # case -> raw benchmark samples in ms
    channels: dict | None = None        # bench_run.channels: which measuring channels the run had on
    threads: int | None = None          # bench_run.threads: --bench-threads (None: torch's default)
    failures: list[str] = dataclasses.field(default_factory=list)  # bench_run.failures: of the run, no row's
    foreign_cpu_share: float | None = None  # bench_run's: other processes' CPU share over the whole run
    id_recorded: bool = True  # False: run_id is the file's name (a file without bench_run.run_id)


def load_run(path: str | Path) -> Run:
    data = load_results(path)
    try:
        return _parse(path, data)
    except (KeyError, TypeError, AttributeError, ValueError) as exc:
        raise ResultsError(f"{path}: malformed results file ({type(exc).__name__}: {exc})") from None


def _parse(path: str | Path, data: dict) -> Run:
    rows: dict[str, dict] = {}
    for r in rows_from_results(data):
        case, status = str(r.get("test")), r.get("status")
        if status is not None and not isinstance(status, str):
            raise ValueError(f"case {case}: status {status!r} is not a name (valid: a string such as 'ok')")
        # one case twice (no run of this suite writes that): its worse row stands, never the later one
        if case not in rows or severity(status or "error") > severity(rows[case].get("status") or "error"):
            rows[case] = r
    samples = {}
    for b in data.get("benchmarks", []):
        name, st = b.get("fullname"), b.get("stats") or {}
        if not name:
            continue
        if st.get("data"):
            samples[name] = _times_ms(name, st["data"])
        elif "median" in st:
            samples[name] = _times_ms(name, [st["median"]])
        if name not in rows and not data.get("bench_rows"):  # plain pytest-benchmark: judged by its median
            rows[name] = {"suite": "other", "test": name, "status": "ok"}
    run = data.get("bench_run") or {}
    adopt(run.get("questions"))  # a plugin's questions, as the run declared them
    info = data.get("machine_info") or {}
    fp = info.get("bench") or {k: v for k, v in info.items() if not isinstance(v, (dict, list))}
    if info.get("bench"):  # runs before the backend was recorded all compiled with inductor
        fp = {"compile_backend": "inductor", **fp}
    for key in ("run_id", "profile"):
        if run.get(key) is not None and not isinstance(run[key], str):
            raise ValueError(f"bench_run.{key} {run[key]!r} is not a string")
    return Run(str(path), run.get("run_id") or Path(path).stem, run.get("profile"), bool(run.get("complete", True)),
               fp, rows, samples, _channels(run.get("channels"), rows), run.get("threads"),
               [str(f) for f in run.get("failures") or []],
               run["foreign_cpu_share"] if isinstance(run.get("foreign_cpu_share"), (int, float)) else None,
               bool(run.get("run_id")))


def _times_ms(case: str, seconds) -> list[float]:
    """A case's timing samples in ms; a negative or non-finite one is a broken file, named."""
    out = [float(v) * 1e3 for v in seconds]
    bad = [v for v in out if not math.isfinite(v) or v < 0]
    if bad:
        raise ValueError(f"case {case}: {len(bad)} timing sample(s) negative or not finite (first: {bad[0]!r} ms)")
    return out


def _flat(fp: dict, prefix: str = "") -> dict:
    out = {}
    for k, v in fp.items():
        if k in NOT_ENVIRONMENT:
            continue
        if isinstance(v, dict):
            out.update(_flat(v, f"{prefix}{k}."))
        else:
            out[f"{prefix}{k}"] = v if not isinstance(v, list) else ", ".join(map(str, v))
    return out


def environment_diff(base: list[Run], new: list[Run]) -> list[dict]:
    """Every fingerprint key whose value differs between the sides (a side with several
    runs shows all its values)."""
    def side(runs):
        values: dict[str, list] = {}
        for r in runs:
            for k, v in _flat(r.fingerprint).items():
                values.setdefault(k, [])
                if v not in values[k]:
                    values[k].append(v)
        return values

    a, b = side(base), side(new)
    out = []
    for key in sorted(set(a) | set(b)):
        va, vb = a.get(key, [None]), b.get(key, [None])
        if va != vb:
            out.append({"key": key, "base": " | ".join(map(str, va)), "new": " | ".join(map(str, vb))})
    return out


def repro_command(case: str, run: Run, row: dict) -> str:
    """The pytest command that runs just this case the way the run did."""
    parts = ["pytest", f"'{case}'", "--benchmark-only"]
    if run.profile:
        parts.append(f"--bench-profile={run.profile}")
    if run.threads:
        parts.append(f"--bench-threads={run.threads}")
    if row.get("device"):
        parts.append(f"--bench-device={row['device']}")
    return " ".join(parts)


def metric_values(case: str, name: str, metric: Metric, runs: list[Run]) -> tuple[list[float], list[float]]:
    """Per-run statistics of one metric, and the raw samples of the last run (timing), or for
    a ``counted`` metric each run's own repeat spread (``<name>_spread``, relative). A timing
    metric is not read from a row whose samples are of something else (``samples_of`` names
    it: a serving trace's latencies, a speculative call's wall time)."""
    per_run, raw = [], []
    for r in runs:
        row = r.rows.get(case) or {}
        if not passed(row.get("status")) or marks_impossible(row, name):
            continue
        if metric.kind == "timing" and r.samples_ms.get(case) and row.get("samples_of") in (None, name):
            raw = r.samples_ms[case]
            per_run.append(statistics.median(raw))
        elif isinstance(row.get(name), (int, float)) and not isinstance(row.get(name), bool) \
                and math.isfinite(row[name]):
            per_run.append(float(row[name]))
            if metric.kind == "counted" and isinstance(row.get(f"{name}_spread"), (int, float)):
                raw.append(float(row[f"{name}_spread"]))
    return per_run, raw


def left_out_by_plan(row: dict) -> bool:
    """Whether the run's time plan left the case out (``bench.core.plan``): such a row says
    nothing about the case, in compare and in history alike."""
    return row.get("plan") == "left_out"


def marks_impossible(row: dict, name: str) -> bool:
    """Whether the row itself says its ``name`` value is beyond a physical bound (``implausible``:
    "col value > bound; ..."): such a value is never judged."""
    text = str(row.get("implausible") or "")
    return any(part.strip().startswith(name + " ") for part in text.split("(impossible")[0].split(";"))


def impossible_in(case: str, name: str, runs: list[Run]) -> str:
    """The runs whose ``case`` row marks ``name`` impossible, as text ("" when none)."""
    hits = [f"{r.run_id}: {r.rows[case]['implausible']}" for r in runs
            if case in r.rows and passed(r.rows[case].get("status")) and marks_impossible(r.rows[case], name)]
    return "; ".join(hits)


def skipped_why(case: str, name: str, runs: list[Run]) -> str:
    """Why ``runs`` have no ``name`` value for ``case``, where their ok rows say so (a count left
    out for its cost: ``instructions_skipped``; any ``<name>_skipped``), "" when none says."""
    keys = (f"{name}_skipped",) + (("instructions_skipped",) if name.endswith("instructions") else ())
    why = []
    for r in runs:
        row = r.rows.get(case) or {}
        if passed(row.get("status")) and row.get(name) is None:
            why += [str(row[k]) for k in keys if row.get(k)]
    return "; ".join(dict.fromkeys(why))


def metric_declared_in(case: str, name: str, runs: list[Run]) -> bool:
    """Whether an ok row of ``case`` carries the column ``name`` at all (with any value, None
    and NaN included): a column the runs' code did not write yet is not a lost value."""
    return any(passed((r.rows.get(case) or {}).get("status")) and name in r.rows[case] for r in runs)


def machine_identity(fp: dict) -> str | None:
    """What makes two runs' timings comparable: CPU model and core count, GPU models and count,
    as the hardware reports them (``bench.core.machine``: the fingerprint's ``hardware``), so a
    torch that cannot see the GPU does not turn the machine into another one. Files written
    before that key: the torch-side fields. None when the run recorded neither (its fingerprint
    failed before the hardware was read)."""
    if isinstance(fp.get("hardware"), dict):
        return identity(fp["hardware"])
    if not fp.get("cpu_model") and not fp.get("gpu_names") and not fp.get("gpu_name"):
        return None
    gpus = fp.get("gpu_names") or ([fp["gpu_name"]] if fp.get("gpu_name") else [])
    return identity({"cpu_model": fp.get("cpu_model"), "cpu_cores": fp.get("cpu_cores"),
                     "gpus": [gpus] if isinstance(gpus, str) else gpus})


def torch_gpus(fp: dict) -> int | None:
    """How many GPUs the run's torch could use (None: not recorded)."""
    count = fp.get("gpu_count")
    return int(count) if isinstance(count, int) else None


def hardware_gpus(fp: dict) -> int | None:
    hw = fp.get("hardware")
    return len(hw.get("gpus") or []) if isinstance(hw, dict) else None


def has_channel(run: Run, channel: str) -> bool:
    """Whether the run measured with ``channel`` on (``bench_run.channels``, inferred on load for
    older files: see ``_channels``)."""
    return channel == "wall_time" or bool((run.channels or {}).get(channel))


def _channels(recorded, rows: dict[str, dict]) -> dict:
    """The run's channels as recorded, or, for files written before they were, what its rows show:
    any count or reason for none (instructions), any ``reference_ms`` (reference)."""
    got = dict(recorded) if isinstance(recorded, dict) else {}
    if "instructions" not in got:
        got["instructions"] = any("instructions" in r or "instructions_skipped" in r for r in rows.values())
    if "reference" not in got:
        got["reference"] = any("reference_ms" in r for r in rows.values())
    return got


def ok_runs(case: str, runs: list[Run]) -> int:
    """How many of ``runs`` have ``case`` with status ok (the runs whose metrics count)."""
    return sum(passed((r.rows.get(case) or {}).get("status")) for r in runs)


def identity_of(run: Run) -> str:
    """What makes two files one run: the run id the suite recorded, or, for a file without one
    (plain pytest-benchmark JSON, whose run id is only its file name), the file itself."""
    return f"id:{run.run_id}" if run.id_recorded else f"path:{Path(run.path).resolve()}"


def distinct_runs(runs: list[Run], side: str, warnings: list[str]) -> list[Run]:
    """Each run of a side once (by run id), saying which were dropped: a run given twice would
    count as two agreeing runs, a spread of zero no experiment measured, turning noise into a
    verdict."""
    kept, seen, dropped = [], set(), []
    for r in runs:
        (dropped if identity_of(r) in seen else kept).append(r)
        seen.add(identity_of(r))
    if dropped:
        warnings.append(f"{', '.join(f'run {r.run_id} ({r.path})' for r in dropped[:3])}"
                        f"{f' and {len(dropped) - 3} more' if len(dropped) > 3 else ''} given more than once on the "
                        f"{side} side (a run folder and its latest/ copy?): each run counts once")
    return kept
