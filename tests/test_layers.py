"""The architecture the README's "Where things are" describes, enforced: every question
package shows the same face, and imports only point down the layer order (no circles)."""
import ast
import dataclasses
import importlib
import inspect
from pathlib import Path

import pytest

from bench.core.face import QUESTIONS

ROOT = Path(__file__).resolve().parents[1]
# Lowest first: a module may import its own package and any package listed before it.
LAYERS = ("bench.core", "bench.registry", "bench.models", "bench.graphs", "bench.ops", "bench.devices",
          "bench.generation",
          "bench.distributed", "bench.sharded", "bench.trainer", "bench.report", "bench.experiments",
          ("bench.plugin_progress", "bench.plugin_rows", "bench.plugin_options", "bench.plugin_plan",
           "bench.run_state"),
          "bench.pytest_plugin", "bench.__main__")


def _layer_of(module: str) -> int:
    for i, layer in enumerate(LAYERS):
        for name in (layer if isinstance(layer, tuple) else (layer,)):
            if module == name or module.startswith(name + "."):
                return i
    raise AssertionError(f"{module} is in no layer: add it to LAYERS (and the README's table)")


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


def test_imports_only_point_down_the_layers():
    upward = [f"{m} -> {t}" for m, targets in _imports().items() for t in targets
              if _layer_of(t) > _layer_of(m)]
    assert not upward, "imports that point up the layer order:\n" + "\n".join(sorted(upward))


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


def test_no_scenario_imports_another_questions_scenario():
    """What two questions share moves down (a zoo, the launcher), never sideways between scenarios."""
    sideways = [f"{m} -> {t}" for m, targets in _imports().items() if m.endswith(".scenario")
                for t in targets if t.endswith(".scenario") and t != m]
    assert not sideways, sideways
