"""Loss curves judged between runs (``bench.report.curves``): the same curve is ``same``, a curve
that leaves the base one is ``changed`` naming the first step, the band is the device's
declared one or the spread a side's own runs show, and ``compare`` carries the verdicts."""
import copy
import json
from pathlib import Path

from bench.report.compare import compare_runs
from bench.report.compare_render import render
from bench.report.curves import band_for, judge_curve
from bench.report.runs import load_run

REAL = Path(__file__).parent / "data" / "results_smoke.json"
CASE = "suites/test_trainer.py::test_trainer[trainer-cpu-fp32]"
CURVE = [0.6931, 0.6702, 0.6311, 0.5820, 0.5214, 0.4630]


def _row(curve, device="cpu"):
    return {"suite": "trainer", "test": CASE, "status": "ok", "device": device, "loss_curve": list(curve)}


def test_an_identical_curve_is_same_and_a_moved_one_names_its_first_step():
    same = judge_curve(CASE, "trainer", [_row(CURVE)], [_row(CURVE)])
    assert same["verdict"] == "same" and same["max_rel_diff"] == 0 and same["first_step"] is None
    moved = CURVE[:3] + [v * 1.002 for v in CURVE[3:]]  # another epsilon: the curve leaves at step 3
    changed = judge_curve(CASE, "trainer", [_row(CURVE)], [_row(moved)])
    assert changed["verdict"] == "changed" and changed["first_step"] == 3
    assert "step 3" in changed["note"] and changed["final_new"] > changed["final_base"]


def test_the_band_is_the_devices_or_the_spread_of_a_sides_own_runs():
    assert band_for("cpu") == 1e-6 and band_for("cuda:1") == 1e-3
    wobble = [v * (1 + 5e-7) for v in CURVE]  # within CPU's rounding-level band
    assert judge_curve(CASE, "trainer", [_row(CURVE)], [_row(wobble)])["verdict"] == "same"
    gpu = [v * (1 + 5e-4) for v in CURVE]  # nondeterministic reductions: within the CUDA band
    assert judge_curve(CASE, "trainer", [_row(CURVE, "cuda")], [_row(gpu, "cuda")])["verdict"] == "same"
    noisy_base = [_row(CURVE), _row([v * 1.01 for v in CURVE])]  # two base runs already differ by 1 %
    judged = judge_curve(CASE, "trainer", noisy_base, [_row([v * 1.005 for v in CURVE])])
    assert judged["verdict"] == "same" and judged["band"] > 0.009


def test_curves_of_different_lengths_are_unsure_and_no_curve_is_no_verdict():
    judged = judge_curve(CASE, "trainer", [_row(CURVE)], [_row(CURVE[:4])])
    assert judged["verdict"] == "unsure" and "different numbers of steps" in judged["note"]
    assert judge_curve(CASE, "trainer", [{"status": "ok"}], [_row(CURVE)]) is None


def test_compare_reports_a_changed_curve_without_calling_it_a_regression(tmp_path):
    data = json.loads(REAL.read_text())
    data["bench_rows"].append(_row(CURVE))
    base = tmp_path / "a.json"
    base.write_text(json.dumps(data))
    moved = copy.deepcopy(data)
    moved["bench_rows"][-1]["loss_curve"] = CURVE[:2] + [v * 0.99 for v in CURVE[2:]]
    new = tmp_path / "b.json"
    new.write_text(json.dumps(moved))
    diff = compare_runs([load_run(base)], [load_run(new)])
    assert [(c["case"], c["verdict"], c["first_step"]) for c in diff.curves] == [(CASE, "changed", 2)]
    assert diff.exit_code == 0  # a finding: an upgrade may change rounding legitimately
    text = " ".join(render(diff, "table").split())  # the table wraps long lines
    assert "1 of 1 loss curve(s) changed (first: " in text and "at step 2" in text
    assert json.loads(render(diff, "json"))["curves"][0]["first_step"] == 2


def test_a_curve_that_went_non_finite_is_changed_at_that_step_never_same():
    """NaN > band is False: a NaN step read as within the band before; saved results write it
    as null, which dropped the whole curve."""
    nan = CURVE[:2] + [float("nan")] + CURVE[3:]
    judged = judge_curve(CASE, "trainer", [_row(CURVE)], [_row(nan)])
    assert judged["verdict"] == "changed" and judged["first_step"] == 2
    saved = CURVE[:4] + [None, None]  # NaN written as null in results.json
    assert judge_curve(CASE, "trainer", [_row(CURVE)], [_row(saved)])["first_step"] == 4
    assert judge_curve(CASE, "trainer", [_row(saved)], [_row(saved)])["verdict"] == "same"  # both lost alike


def test_a_new_side_that_disagrees_with_itself_is_changed_never_a_wider_band():
    """Before: the new side's own spread widened the band, so one diverging new run of two read
    as "same"; one new run going NaN made the band infinite and every curve "same"."""
    two = [_row(CURVE), _row(CURVE)]
    diverged = judge_curve(CASE, "trainer", two, [_row(CURVE), _row([v * 1.5 for v in CURVE])])
    assert diverged["verdict"] == "changed" and diverged["first_step"] == 0
    assert "new run 2 of 2" in diverged["note"] and "differ among themselves" in diverged["note"]
    went_nan = judge_curve(CASE, "trainer", two, [_row(CURVE), _row(CURVE[:4] + [float("nan")] * 2)])
    assert went_nan["verdict"] == "changed" and went_nan["first_step"] == 4 and went_nan["band"] == 1e-6
    json.dumps(went_nan, allow_nan=False)  # compare's and history's JSON: before, inf made them exit 2
    broken_base = judge_curve(CASE, "trainer", [_row(CURVE), _row(CURVE[:5] + [None])], two)
    assert broken_base["verdict"] == "unsure" and "no reference" in broken_base["note"]
