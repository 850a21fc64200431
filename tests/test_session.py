"""A run's state lives in its ``Session`` (owned by the plugin), not in module globals: two
sessions in one process do not see each other, and bench/ keeps no module-level state."""
import ast
import weakref
from pathlib import Path

import pytest

from bench.core.profiles import settings
from bench.core.session import Roofs, Session

ROOT = Path(__file__).resolve().parents[1]

# Module-level containers that start empty and are filled at run time: the op, model and question
# registries only (declarations that built-ins and --bench-plugin modules register, like pytest's own
# plugin manager), and whether the built-in questions were discovered yet.
ALLOWED_MODULE_STATE = {("bench/registry.py", "_MODELS"), ("bench/registry.py", "_OPS"),
                        ("bench/core/question.py", "_REGISTRY"), ("bench/core/question.py", "_DISCOVERED")}
# Caches of facts that no run changes: the machine (probe, the kernel's RSS reset, its hardware
# identity), the alpha-spending boundaries of a plan (a pure function), the git commit, the
# bundled digits data set, the packaged tokenizer, a file version's SHA-256.
ALLOWED_CACHES = {("bench/core/hardware.py", "probe"), ("bench/core/hardware.py", "_hwm_resettable"),
                  ("bench/core/env.py", "git_commit"), ("bench/models/data.py", "digits_28x28"),
                  ("bench/models/text.py", "minilm_tokenizer"), ("bench/core/files.py", "_sha256"),
                  ("bench/core/machine.py", "hardware"), ("bench/experiments/plan.py", "_boundaries")}


def _is_empty_container(node: ast.expr) -> bool:
    if isinstance(node, (ast.Dict, ast.List, ast.Set)):
        return not (getattr(node, "keys", None) or getattr(node, "elts", None))
    return isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and \
        node.func.id in ("dict", "list", "set", "defaultdict", "OrderedDict") and not node.args


MUTATORS = {"append", "extend", "insert", "update", "setdefault", "add", "pop", "popitem", "clear", "remove"}


def _mutated_module_names(tree: ast.Module) -> set[str]:
    """Module-level names that a function rebinds (``global``) or changes in place
    (``NAME[k] = v``, ``NAME[:] = ...``, ``NAME.append(...)``, ``NAME.update(...)``, ...)."""
    module_names = {t.id for node in tree.body if isinstance(node, (ast.Assign, ast.AnnAssign))
                    for t in (node.targets if isinstance(node, ast.Assign) else [node.target])
                    if isinstance(t, ast.Name)}
    out = set()
    for fn in ast.walk(tree):
        if not isinstance(fn, (ast.FunctionDef, ast.AsyncFunctionDef)):
            continue
        for node in ast.walk(fn):
            if isinstance(node, ast.Global):
                out |= set(node.names)
            targets = node.targets if isinstance(node, ast.Assign) else \
                [node.target] if isinstance(node, (ast.AugAssign, ast.AnnAssign)) else []
            for t in targets:
                if isinstance(t, ast.Subscript) and isinstance(t.value, ast.Name) and t.value.id in module_names:
                    out.add(t.value.id)
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr in MUTATORS \
                    and isinstance(node.func.value, ast.Name) and node.func.value.id in module_names:
                out.add(node.func.value.id)
    return out


def test_bench_keeps_no_module_level_run_state():
    found, caches = set(), set()
    for module in (ROOT / "bench").rglob("*.py"):
        rel = module.relative_to(ROOT).as_posix()
        tree = ast.parse(module.read_text())
        found |= {(rel, name) for name in _mutated_module_names(tree)}
        for node in tree.body:
            if isinstance(node, (ast.Assign, ast.AnnAssign)) and node.value is not None \
                    and _is_empty_container(node.value):
                targets = node.targets if isinstance(node, ast.Assign) else [node.target]
                found |= {(rel, t.id) for t in targets if isinstance(t, ast.Name)}
            if isinstance(node, ast.FunctionDef):
                for dec in node.decorator_list:
                    text = ast.unparse(dec)
                    if "lru_cache" in text or text.endswith("cache"):
                        caches.add((rel, node.name))
    assert found <= ALLOWED_MODULE_STATE, f"module-level state outside a Session: {found - ALLOWED_MODULE_STATE}"
    assert caches <= ALLOWED_CACHES, f"module-level caches (keep results in the Session): {caches - ALLOWED_CACHES}"


def test_two_sessions_do_not_share_what_they_learned(tmp_path, monkeypatch):
    measured = []

    def fake_peak(device, dtype):
        measured.append((device, dtype))
        return {"tflops": 2.0, "n": 8}

    monkeypatch.setattr("bench.core.flops.measured_peak", fake_peak)
    a, b = Session(settings("smoke", ["cpu"])), Session(settings("standard", ["cpu"]))
    assert a.roofs.peak("cpu", "fp32") is a.roofs.peak("cpu", "fp32")  # measured once per session
    assert measured == [("cpu", "fp32")]
    assert a.learned()["measured_peaks_tflops"] == {"cpu/fp32/n=8": 2.0}
    assert b.learned()["measured_peaks_tflops"] == {}
    (tmp_path / "model.safetensors").write_bytes(b"weights")
    a.record_weights("mine", tmp_path)
    assert "mine" in a.model_hashes and b.model_hashes == {}
    a.shared("k", lambda: 1)
    assert b.shared("k", lambda: 2) == 2 and a.shared("k", lambda: 3) == 1
    assert a.profile.name == "smoke" and b.profile.name == "standard"


def test_a_slot_releases_the_previous_value_before_making_the_next():
    session, refs = Session(settings("smoke", ["cpu"])), []

    class Model:
        pass

    def make():
        assert all(r() is None for r in refs), "the previous model is still held"
        model = Model()
        refs.append(weakref.ref(model))
        return model

    first = session.shared("a", make, slot="model")
    assert session.shared("a", make, slot="model") is first and len(refs) == 1  # same key: kept
    del first
    session.shared("b", make, slot="model")
    assert len(refs) == 2


def test_roofs_measure_once_and_name_what_they_measured(monkeypatch):
    calls = []
    monkeypatch.setattr("bench.core.flops.measured_bandwidth",
                        lambda device: calls.append(device) or {"mib": 4, "gb_per_s": 10.0})
    roofs = Roofs()
    roofs.bandwidth("cpu")
    roofs.bandwidth("cpu")
    assert calls == ["cpu"] and roofs.bandwidth_gbs == {"cpu/copy=4MiB": 10.0}


def test_unknown_profile_names_the_valid_ones():
    with pytest.raises(ValueError, match="smoke, standard, full"):
        settings("fast")


def test_suites_take_their_cases_from_the_session(bench_pytester):
    """The same suite file collects the cases of each run's own profile and devices."""
    bench_pytester.makepyfile(test_suite="""
        from bench.core.profiles import case, cases_from

        def cases(session):
            return [case("devices", model=session.profile.name, device=d) for d in session.devices]

        @cases_from(cases)
        def test_case(c, bench_session):
            assert c["model"] == bench_session.profile.name
    """)
    smoke = bench_pytester.runpytest_subprocess("--bench-profile=smoke", "--bench-device=cpu", "--collect-only",
                                                "-q")
    standard = bench_pytester.runpytest_subprocess("--bench-profile=standard", "--bench-device=cpu",
                                                   "--collect-only", "-q")
    assert "test_case[smoke-cpu]" in smoke.stdout.str()
    assert "test_case[standard-cpu]" in standard.stdout.str()


def test_the_state_check_sees_the_patterns_this_layout_removed():
    """The check above is not vacuous: each way module state used to be kept is caught."""
    for source in ("_current = []\ndef configure(s):\n    _current[:] = [s]\n",
                   "FLAG = [False]\ndef reset():\n    FLAG[0] = True\n",
                   "HASHES = {'a': 1}\ndef record(k, v):\n    HASHES.update({k: v})\n",
                   "X = None\ndef set_x(v):\n    global X\n    X = v\n"):
        assert _mutated_module_names(ast.parse(source)), source
    assert not _mutated_module_names(ast.parse("TABLE = {'a': 1}\ndef get(k):\n    return TABLE[k]\n"))
