"""bench's pytest plugin: options, profiles, capability skips, rows and the report.

Loaded by the repository's conftest.py (``pytest_plugins = ["bench.pytest_plugin"]``).
"""
from __future__ import annotations

import os
from pathlib import Path

import pytest

from bench.core.hardware import parse_devices, probe, separate_inductor_cache
from bench.core.load import FOREIGN_LOAD_WARN, LoadProbe
from bench.core.profiles import settings
from bench.core.rows import Row, passed
from bench.core.session import Session
from bench.plugin_options import add_options, apply_threads, check_paths, load_user_plugin
from bench.plugin_plan import KNOWN_KEY, PLAN_KEY, judge_expected, known_failures, new_row, plan_run
from bench.plugin_progress import Watchdog, terminal_fd, terminal_writer
from bench.plugin_rows import flag_wrong_weights, message, row_keys, run_checks_under_benchmark_only, take_samples
from bench.run_state import RunState, benchmark_json, check_references, required_but_skipped, user_model_unmeasured

ROW_KEY = pytest.StashKey[Row]()
LACKS_KEY = pytest.StashKey[str]()    # why this machine cannot run the item (hardware, build)
STATE_KEY = pytest.StashKey["RunState"]()
SESSION_KEY = pytest.StashKey[Session]()
TTY_KEY = pytest.StashKey["int | None"]()


def pytest_addoption(parser):
    add_options(parser)


def pytest_configure(config):
    config.addinivalue_line("markers", "bench_row(suite, **keys): the report row of this case")
    config.addinivalue_line("markers", "bench_check(suite, check=NAME): a plain correctness test that gets a row "
                                       "(its status from the outcome) and runs under --benchmark-only too")
    config.addinivalue_line("markers", "bench_profile(*names): run only in the named profiles")
    config.addinivalue_line("markers", "bench_lacks(reason): this machine lacks what the case needs (a GPU, "
                                       "cores, a backend): skipped, and counted apart from other skips")
    config.addinivalue_line("markers", "bench_cases(factory, argname='c'): (set by bench.core.profiles.cases_from) "
                                       "parametrize argname with "
                                       "factory(session), the cases of this run's profile and devices")
    for name, text in (("cuda", "needs a CUDA device"), ("multi_gpu", "needs two or more CUDA devices"),
                       ("distributed", "launches several processes through torch.distributed"),
                       ("compile", "uses torch.compile (slow on first call: 10-20 s per graph on CPU)"),
                       ("slow", "takes more than a few seconds; run in the standard and full profiles"),
                       ("hf", "needs transformers models or data")):
        config.addinivalue_line("markers", f"{name}: {text}")
    separate_inductor_cache()  # before anything compiles
    try:
        given = config.getoption("bench_device")
        devices = parse_devices(given) if given is not None else None  # "" is refused, not "every device"
    except ValueError as exc:
        raise pytest.UsageError(str(exc)) from None
    check_paths(config)
    threads = apply_threads(config)  # before anything is timed or fingerprinted
    plugins = tuple(str(Path(p).expanduser().resolve()) if p.endswith(".py") else p
                    for p in config.getoption("bench_plugin"))
    for spec in plugins:  # before the settings: a plugin may register a torch.compile backend
        load_user_plugin(spec)
    try:
        run_settings = settings(config.getoption("bench_profile"), devices, config.getoption("hf_model"),
                                config.getoption("hf_dataset"), config.getoption("bench_compile_backend"), plugins,
                                config.getoption("bench_instructions"))
    except ValueError as exc:
        option = "--bench-instructions" if "valgrind" in str(exc) else "--bench-compile-backend"
        raise pytest.UsageError(f"{option}: {exc}") from None
    session = config.stash[SESSION_KEY] = Session(run_settings)
    report_dir = config.getoption("bench_report_dir")
    root = (Path(report_dir).expanduser() if report_dir else Path(config.rootpath) / "reports").resolve()
    state = config.stash[STATE_KEY] = RunState(root, session)
    state.threads = threads
    config.stash[KNOWN_KEY] = known_failures(config, state)
    session.out_dir = state.run_dir
    config.pluginmanager.register(state, "bench-run-state")
    config.stash[TTY_KEY] = terminal_fd()


def pytest_unconfigure(config):
    session = config.stash.get(SESSION_KEY, None)
    if session is not None:
        session.close()
    fd = config.stash.get(TTY_KEY, None)
    if fd is not None:
        os.close(fd)
        config.stash[TTY_KEY] = None


def session_of(config) -> Session:
    """The ``Session`` this pytest run's plugin owns."""
    return config.stash[SESSION_KEY]


@pytest.fixture(scope="session")
def bench_session(request) -> Session:
    """This run's settings (profile, devices), roofs, weight hashes and shared results."""
    return session_of(request.config)


def pytest_generate_tests(metafunc):
    """``@pytest.mark.bench_cases(factory)``: the cases come from ``factory(session)``, so a
    suite's parametrisation follows this run's options without any module-level state."""
    for marker in metafunc.definition.iter_markers("bench_cases"):
        argname = marker.kwargs.get("argname", "c")
        metafunc.parametrize(argname, marker.args[0](session_of(metafunc.config)))


def pytest_collection_finish(session):
    say = terminal_writer(session.config.stash.get(TTY_KEY, None))
    plan = session.config.stash.get(PLAN_KEY, None)
    if say is not None and plan is not None and plan.decisions:
        say("bench: the run's time plan (estimates for a 2-core CPU; the report shows where the time went):")
        for line in plan.summary():
            say(f"bench:   {line}")


def pytest_report_header(config):
    s = session_of(config).settings
    caps = probe()
    return (f"bench: profile={s.profile.name} devices={','.join(s.devices)} cuda={caps.cuda_device_count} "
            f"torch_threads={caps.cpu_threads}")


def _skip_reason(item) -> str | None:
    caps = probe()
    if item.get_closest_marker("cuda") and not caps.cuda:
        return "needs CUDA: torch.cuda.is_available() is False on this machine"
    if item.get_closest_marker("multi_gpu") and caps.cuda_device_count < 2:
        return f"needs 2 or more CUDA devices, found {caps.cuda_device_count}"
    if item.get_closest_marker("distributed") and not caps.distributed:
        return "needs torch.distributed, which this torch build lacks"
    marker = item.get_closest_marker("bench_row")
    if marker:
        device, dtype = marker.kwargs.get("device"), marker.kwargs.get("dtype")
        if device and dtype in ("fp32", "bf16", "fp16", "fp64"):
            return caps.dtype_reason(device, dtype)
        if device:
            return caps.device_reason(device)
    return None


@pytest.hookimpl(trylast=True)  # after pytest-benchmark's own, which adds the --benchmark-only skips
def pytest_collection_modifyitems(config, items):
    s = session_of(config).settings
    keep, drop = [], []
    for item in items:
        prof = item.get_closest_marker("bench_profile")
        if prof and s.profile.name not in prof.args:
            drop.append(item)
            continue
        row = item.get_closest_marker("bench_row")
        if row and row.kwargs.get("device") and row.kwargs["device"] not in s.devices:
            drop.append(item)  # a device the user did not ask for
            continue
        keep.append(item)
        run_checks_under_benchmark_only(item)
        lacks = item.get_closest_marker("bench_lacks")
        reason = _skip_reason(item) or (lacks.args[0] if lacks else None)
        if reason:
            item.stash[LACKS_KEY] = reason
            item.add_marker(pytest.mark.skip(reason=reason))
    if drop:
        config.hook.pytest_deselected(items=drop)
        items[:] = keep
    plan_run(config, keep, session_of(config), config.stash[STATE_KEY])


@pytest.fixture
def bench_row(request) -> Row:
    """The report row of this case; fill its metrics, or ``.check()`` / ``.end()``."""
    row = request.node.stash.get(ROW_KEY, None)
    if row is None:
        raise pytest.UsageError(f"{request.node.nodeid} uses bench_row but has no bench_row marker: "
                                "parametrize it with bench.core.profiles.case(...)")
    return row


def pytest_runtest_setup(item):
    keys = row_keys(item)
    if keys is not None and ROW_KEY not in item.stash:
        item.stash[ROW_KEY] = new_row(item, keys)


LOAD_KEY = pytest.StashKey[LoadProbe]()


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_call(item):
    """Per case, the share of the CPU other processes took while it ran: a burst of foreign
    load slows the cases it overlaps, and an average over the run would hide which."""
    item.stash[LOAD_KEY] = LoadProbe()
    say = terminal_writer(item.config.stash.get(TTY_KEY, None))
    timed = row_keys(item) is not None  # suite cases; the library's own tests stay quiet
    watchdog = Watchdog(item.nodeid, session_of(item.config).profile.budget, say) if say and timed else None
    try:
        yield
    finally:
        if watchdog is not None:
            watchdog.stop()
    row = item.stash.get(ROW_KEY, None)
    foreign = item.stash[LOAD_KEY].foreign_share()
    if row is not None and foreign is not None:
        row["foreign_cpu_share"] = round(foreign, 4)
        if foreign > FOREIGN_LOAD_WARN:
            row["load_note"] = (f"other processes took {foreign:.0%} of the CPU while this case ran: "
                                "its timings are suspect (rerun on a quiet machine)")


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    keys = row_keys(item)
    if keys is None:
        return
    row = item.stash.get(ROW_KEY, None)
    if row is None:  # skipped at collection: setup never ran
        row = item.stash[ROW_KEY] = new_row(item, keys)
    state = item.config.stash[STATE_KEY]
    row["wall_s"] = round((row.get("wall_s") or 0.0) + report.duration, 3)  # setup + call + teardown
    if report.when == "teardown":
        state.add(row)  # the whole case's wall time, rewritten, not added twice
        if report.failed and (row["status"] is None or passed(row["status"])):
            row.set_status("error", "teardown: " + message(report))
            state.add(row)
        return
    if not (report.when == "call" or not report.passed):
        return
    fixture = getattr(item, "funcargs", {}).get("benchmark") if report.when == "call" else None
    if fixture is not None:
        take_samples(fixture, row)
    if report.when == "call" and report.passed:
        flag_wrong_weights(report, row, session_of(item.config))
    row.finalize(report.outcome, message(report) if not report.passed else None)
    if row["status"] == "skipped" and LACKS_KEY in item.stash:
        row["needs_hardware"] = True
    judge_expected(item, call, report, row)
    if fixture is not None:  # the row travels in pytest-benchmark's JSON too
        fixture.extra_info.update({k: v for k, v in row.items() if not isinstance(v, (list, dict)) and k != "test"})
    state.add(row)


def pytest_benchmark_update_machine_info(config, machine_info):
    from bench.core.env import safe_fingerprint

    machine_info["bench"] = fp = safe_fingerprint(session_of(config).learned())
    state = config.stash.get(STATE_KEY, None)
    if "fingerprint_error" in fp and state is not None and fp["fingerprint_error"] not in state.notes:
        state.notes.append(fp["fingerprint_error"])


def pytest_sessionfinish(session, exitstatus):
    config = session.config
    state = config.stash.get(STATE_KEY, None)
    if state is None or not state.rows:
        return
    from bench.core.files import atomic_write_json
    from bench.report import build_report, publish_latest

    complete = exitstatus not in (pytest.ExitCode.INTERRUPTED, pytest.ExitCode.INTERNAL_ERROR)
    if complete:
        try:  # the roofs again at the end: one measured under load at the start shows here
            state.notes.extend(session_of(config).roofs.recheck())
        except Exception as exc:  # a failed re-measure costs a note, never the report
            state.notes.append(f"could not re-measure the roofs at the end of the run: {exc!r}"[:300])
    missing = required_but_skipped(state.rows, config.getoption("bench_require"))
    if missing:
        state.failures.append(f"--bench-require cuda: {len(missing)} case(s) skipped for lack of a CUDA device "
                              f"(first: {missing[0]})")
    fixed = [r["test"] for r in state.rows if r.get("status") == "fixed_upstream"]
    if fixed and config.getoption("bench_strict_known_failures"):
        state.failures.append(f"--bench-strict-known-failures: {len(fixed)} case(s) a known-failure entry expects to "
                              f"fail passed (first: {fixed[0]}): update known_failures.toml")
    state.failures.extend(check_references(config, state))
    unmeasured = user_model_unmeasured(state.rows, config.getoption("hf_model"))
    if unmeasured:
        state.failures.append(unmeasured)
    data = state.write(complete, benchmark_json(config))
    build_report(data, state.run_dir)
    publish_latest(state.run_dir)
    atomic_write_json(state.root / "history" / f"{state.run_id}.json", data)
    config._bench_report_dir = state.run_dir
    config._bench_all_skipped = all(r["status"] == "skipped" for r in state.rows)
    config._bench_missing_required = missing
    config._bench_run_failures = state.failures
    if state.failures and session.exitstatus == pytest.ExitCode.OK:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    run_dir = getattr(config, "_bench_report_dir", None)
    state = config.stash.get(STATE_KEY, None)
    if run_dir and state is not None:
        from bench.report.headline import where_time_went

        per_suite, slowest = where_time_went(state.rows)
        if per_suite:
            terminalreporter.write_sep("-", "bench: where the time went")
            terminalreporter.write_line("  " + ", ".join(f"{s} {t:.0f} s ({n} cases)" for s, t, n in per_suite))
            for test, wall in slowest:
                terminalreporter.write_line(f"  {wall:7.1f} s  {test}")
    if run_dir:
        terminalreporter.write_sep("-", f"bench report: {run_dir} (also {run_dir.parent / 'latest'})")
        if getattr(config, "_bench_all_skipped", False):  # a run that measured nothing must not pass silently
            terminalreporter.write_line("bench: every case was skipped, nothing was measured "
                                        "(see the reasons in summary.md)", red=True, bold=True)
        for failure in getattr(config, "_bench_run_failures", []):
            terminalreporter.write_line(f"bench: this run fails: {failure}", red=True, bold=True)
        missing = getattr(config, "_bench_missing_required", [])
        if missing:
            terminalreporter.write_line(f"bench: --bench-require cuda, but {len(missing)} case(s) were skipped for "
                                        "lack of a CUDA device:", red=True, bold=True)
            for name in missing[:50]:
                terminalreporter.write_line(f"  {name}", red=True)
