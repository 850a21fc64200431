"""The architecture the README's "Where things are" describes, enforced: every question
package shows the same face, questions are siblings on one floor that never import each other,
and imports only point down the floors (no circles)."""
import ast
import dataclasses
import importlib
import inspect
from pathlib import Path

import pytest

from bench.core.question import QUESTIONS, questions

ROOT = Path(__file__).resolve().parents[1]
# The question packages: every package that declares a question (bench/<package>/question.py).
QUESTION_PACKAGES = tuple(sorted({q.scenario.rsplit(".", 1)[0] for q in questions().values()
                                  if q.scenario.startswith("bench.")}))
# Floors, lowest first: a module may import its own package and anything on a lower floor; on the
# questions' floor no package imports another (what two questions share moves down).
FLOORS = (("bench.core",), ("bench.registry", "bench.models"), QUESTION_PACKAGES, ("bench.report",),
          ("bench.experiments",), ("bench.plugin_progress", "bench.plugin_rows", "bench.plugin_options",
                                   "bench.plugin_plan", "bench.run_state"), ("bench.pytest_plugin",),
          ("bench.__main__",))


def _floor_of(module: str) -> int:
    if module == "bench":  # the bare package (its path, for discovery): holds nothing
        return 0
    for i, floor in enumerate(FLOORS):
        for name in floor:
            if module == name or module.startswith(name + "."):
                return i
    raise AssertionError(f"{module} is on no floor: add it to FLOORS (and the README's table)")


def _package(module: str) -> str:
    return ".".join(module.split(".")[:2])


def _imports() -> dict[str, set[str]]:
    """Every bench module -> the bench modules it imports (at any depth of the file)."""
    out = {}
    for path in (ROOT / "bench").rglob("*.py"):
        module = ".".join(path.relative_to(ROOT).with_suffix("").parts).removesuffix(".__init__")
        found = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("bench"):
                for alias in node.names:
                    sub = f"{node.module}.{alias.name}"
                    is_module = (ROOT / Path(*sub.split("."))).with_suffix(".py").is_file()
                    found.add(sub if is_module else node.module)
            elif isinstance(node, ast.Import):
                found |= {a.name for a in node.names if a.name.startswith("bench")}
        out[module] = found - {module}
    return out


def test_imports_only_point_down_the_floors():
    upward = [f"{m} -> {t}" for m, targets in _imports().items() for t in targets
              if _floor_of(t) > _floor_of(m)]
    assert not upward, "imports that point up the floors:\n" + "\n".join(sorted(upward))


def test_no_question_package_imports_another():
    """Questions are siblings: a launcher, a decoder zoo or an output comparison two of them share
    lives on a lower floor (bench.core.launch, bench.models.decoders, bench.core.outputs)."""
    sideways = [f"{m} -> {t}" for m, targets in _imports().items() if _package(m) in QUESTION_PACKAGES
                for t in targets if _package(t) in QUESTION_PACKAGES and _package(t) != _package(m)]
    assert not sideways, "imports between question packages:\n" + "\n".join(sorted(sideways))


def test_the_floors_are_named_and_the_question_floor_is_discovered():
    assert set(QUESTION_PACKAGES) >= {"bench.ops", "bench.graphs", "bench.devices", "bench.distributed",
                                      "bench.trainer", "bench.sharded", "bench.generation"}
    assert all(_floor_of(p) == 2 for p in QUESTION_PACKAGES)


def test_no_module_imports_one_that_imports_it_back():
    graph = _imports()
    circles = sorted({tuple(sorted((a, b))) for a, targets in graph.items() for b in targets
                      if a in graph.get(b, ()) and not b.endswith("__init__") and b != "bench"})
    # a package's __init__ re-exporting its modules is not a circle of logic
    circles = [c for c in circles if not any(m.count(".") == 1 and m.startswith("bench.") and
                                             (ROOT / Path(*m.split("."))).is_dir() for m in c)]
    assert not circles, f"modules that import each other: {circles}"


@pytest.mark.parametrize("suite", sorted(QUESTIONS))
def test_every_question_package_shows_the_same_face(suite):
    module = importlib.import_module(QUESTIONS[suite])
    for name in ("cases", "run_case", "Config", "run"):
        assert hasattr(module, name), f"{QUESTIONS[suite]} has no {name}"
    assert list(inspect.signature(module.cases).parameters) == ["session"]
    params = inspect.signature(module.run_case).parameters
    assert list(params)[:4] == ["case", "benchmark", "row", "session"], list(params)
    assert all(p.default is not inspect.Parameter.empty for p in list(params.values())[4:])
    assert list(inspect.signature(module.run).parameters)[:2] in (["config", "session"], ["cfg", "session"])
    assert dataclasses.is_dataclass(module.Config) and module.Config.__dataclass_params__.frozen


@pytest.mark.parametrize("suite, bad, word", [
    ("autograd_ops", dict(op="no_such_op"), "no_such_op"),
    ("autograd_ops", dict(op="add_bias", dtype="fp8"), "valid: fp32, bf16, fp16"),
    ("graph_modes", dict(mode="jit"), "valid: eager, script, trace, compile, export"),
    ("devices", dict(phase="backward"), "valid: inference, train"),
    ("ddp", dict(backend="none", world_size=2), "world_size=2 does not fit backend='none'"),
    ("trainer", dict(runner="trainer", world_size=2), "world_size=2 does not fit runner='trainer'"),
    ("sharded", dict(strategy="single", world_size=2), "world_size=2 does not fit strategy='single'"),
    ("generation", dict(mode="compile", cache="dynamic"), "needs cache='static'"),
])
def test_a_config_refuses_a_bad_combination_when_built(suite, bad, word):
    module = importlib.import_module(QUESTIONS[suite])
    with pytest.raises((ValueError, KeyError), match=word.replace("(", r"\(")):
        module.Config(**bad)


def test_a_scenario_runs_without_pytest():
    from bench.core.session import Session
    from bench.ops import scenario

    row = scenario.run(scenario.Config(op="add_bias"), Session())
    assert row["status"] == "ok" and row["suite"] == "autograd_ops", row
    assert row["fwd_bwd_median_ms"] > 0
