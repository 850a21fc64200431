"""Every row means what it says: each test here fails on the behaviour of commit b6b8389
(issue "Every row means what it says", points numbered as there)."""
import subprocess
import sys

import pytest
import torch

from bench.core import hardware as dev
from bench.core import numerics
from bench.core.rows import METRICS, CaseEnded, Row
from bench.core.session import Roofs, Session
from bench.core.timing import Budget
from bench.devices import calibration
from bench.devices import scenario as throughput
from bench.graphs import parity as graphs

# ---- a stand-in for pytest-benchmark's fixture: calls the function, records no stats ----


class FakeBenchmark:
    stats = None

    def pedantic(self, fn, setup=None, rounds=1, warmup_rounds=0, iterations=1, args=(), kwargs=None):
        for _ in range(warmup_rounds + rounds):
            if setup:
                setup()
            result = fn(*args, **(kwargs or {}))
        return result


def _devices_row(**keys):
    return Row("devices", "t", **keys)


# 1. a failed timing self-check is not ok, and the summary says so at the top
def test_failed_timing_self_check_is_a_mismatch_and_a_top_note(monkeypatch):
    from bench.registry import get_model
    from bench.report.tables import derive_notes

    calls = []

    def off_by_30_percent(fn, device, blocks=8, per_block=5):
        calls.append(blocks)
        return {"suite_median_ms": 1.3, "timer_median_ms": 1.0, "ratio": 1.3}

    monkeypatch.setattr("bench.core.timing.interleaved_check", off_by_30_percent)
    row = Row("devices", "t", model="tiny_bert", device="cpu", phase="calibration")
    with pytest.raises(AssertionError, match="timing self-check failed"):
        calibration.calibration(get_model("tiny_bert"), "cpu", 2, FakeBenchmark(), row, Roofs())
    assert row["status"] == "mismatch" and "1.300" in row["reason"]
    assert calls == [8, 16]  # confirmed by a second, longer measurement before failing
    notes = derive_notes([dict(row)])
    assert notes and "FAILED" in notes[0] and "not trustworthy" in notes[0]


def test_passing_timing_self_check_stays_ok(monkeypatch):
    from bench.registry import get_model

    monkeypatch.setattr("bench.core.timing.interleaved_check",
                        lambda fn, device, blocks=8, per_block=5: {"suite_median_ms": 1.0, "timer_median_ms": 1.01,
                                                                   "ratio": 0.99})
    row = Row("devices", "t", model="tiny_bert", device="cpu", phase="calibration")
    calibration.calibration(get_model("tiny_bert"), "cpu", 2, FakeBenchmark(), row, Roofs())
    assert row["status"] is None and row["calibration_attempts"] == 1


# 2. the single-process DDP row records no made-up parameter difference
@pytest.mark.distributed
def test_single_process_ddp_row_leaves_comparisons_empty_with_a_reason():
    from bench.distributed import scenario as runs

    launched = runs.launch_run("mlp", 0, "cpu", ["--steps", "3", "--warmup", "1"])
    assert launched.ok, launched.reason
    r = launched.result
    assert r["param_max_abs_diff_across_ranks"] is None and r["grad_max_abs_diff"] is None
    assert "single process" in r["checks_note"]
    assert len(r["step_ms_slowest_rank"]) == 3


# 3. cuda_parity compares against CPU copies, whatever device the inputs are on
def test_cuda_parity_runs_the_reference_side_on_cpu_copies(monkeypatch):
    from bench.ops import precision
    from bench.ops import variants as V

    moved = []
    real = V.to_device
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(V, "to_device", lambda inputs, device: moved.append(str(device)) or real(inputs, "cpu"))
    x = torch.randn(3, 4)
    check = precision.check_cuda(torch.sin, (x,))
    assert moved == ["cpu", "cuda", "cuda"], check  # CPU copies first, then the GPU side and its weights
    assert check.status == "held" and check.detail["devices"] == ["cpu", "cuda"]


# 4. a tool's refusal is unsupported; an internal error or a bug of ours is error
def test_build_failures_are_classified():
    class Bug(torch.nn.Module):
        def forward(self, x):
            return x * 2

    def raise_key_error(*a, **k):
        raise KeyError("bug in our builder")

    x = torch.randn(4, 3)
    assert graphs.failure_status("export", KeyError("x")) == "error"
    assert graphs.failure_status("script", AttributeError("x")) == "error"
    from torch._dynamo.exc import UserError, UserErrorType

    assert graphs.failure_status("export", UserError(UserErrorType.CONSTRAINT_VIOLATION, "x")) == "unsupported"
    # TorchScript's own refusal, raised from its frontend
    results = {r.mode: r for r in graphs.check_parity(_Unscriptable(), (x,), modes=("eager", "script"))}
    assert results["script"].status == "unsupported"
    # an attribute annotation TorchScript has no type for: an AssertionError from torch/jit
    # (transformers 5.17's BertModel, on the GPU image); an AssertionError of ours stays an error
    results = {r.mode: r for r in graphs.check_parity(_SetAnnotated(), (x,), modes=("eager", "script"))}
    assert results["script"].status == "unsupported" and "Unsupported annotation" in results["script"].detail
    assert graphs.failure_status("script", AssertionError("ours")) == "error"
    original = torch.export.export
    torch.export.export = raise_key_error
    try:
        results = {r.mode: r for r in graphs.check_parity(Bug(), (x,), modes=("eager", "export"))}
    finally:
        torch.export.export = original
    assert results["export"].status == "error" and "KeyError" in results["export"].detail


class _SetAnnotated(torch.nn.Module):
    names: set[str] | list[str] | None  # TorchScript has no set type

    def __init__(self):
        super().__init__()
        self.names, self.lin = {"a"}, torch.nn.Linear(3, 3)

    def forward(self, x):
        return self.lin(x)


class _Unscriptable(torch.nn.Module):
    def forward(self, x):
        return torch.stack([v * 2 for v in x.unbind(0) if bool(v.sum() > -1e9)], **{"dim": 0})


# 5. "captured no graph" counts only the compiled model's capture, not explain's
def test_compile_that_captured_nothing_is_an_error(monkeypatch):
    from bench.graphs import builders

    real_build = builders.build

    def no_compile(mode, model, example_inputs, backend="inductor"):
        if mode == "compile":
            return model, None  # a "compile" that silently runs eager code
        return real_build(mode, model, example_inputs, backend)

    monkeypatch.setattr(builders, "build", no_compile)
    model = torch.nn.Sequential(torch.nn.Linear(3, 3), torch.nn.ReLU())
    results = {r.mode: r for r in graphs.check_parity(model, (torch.randn(2, 3),), modes=("eager", "compile"))}
    assert results["compile"].status == "error" and "captured no graph" in results["compile"].detail


# 6. low precision: not applicable only for a dtype the op refuses or declares unsupported
def test_low_precision_errors_are_failures_unless_the_dtype_is_refused():
    from bench.ops import check_autograd

    class BackwardDtypeBug(torch.autograd.Function):
        @staticmethod
        def forward(ctx, x):
            ctx.save_for_backward(x)
            return x * 2

        @staticmethod
        def backward(ctx, g):
            if g.dtype == torch.bfloat16:
                raise RuntimeError("index out of range in self")  # a defect, not a refusal
            return g * 2

    x = torch.randn(4, 4)
    ref = lambda x: x * 2  # noqa: E731
    report = check_autograd(BackwardDtypeBug.apply, x, reference=ref, low_precision=("bf16",))
    assert report.by_name("low_precision_bf16").status == "violated"
    assert "backward raised" in report.by_name("low_precision_bf16").message

    def refuses_bf16(x):
        if x.dtype == torch.bfloat16:
            raise NotImplementedError("\"my_kernel\" not implemented for 'BFloat16'")
        return x * 2

    report = check_autograd(refuses_bf16, x, reference=ref, low_precision=("bf16",))
    assert report.by_name("low_precision_bf16").status == "not_applicable"

    def forward_bug(x):
        if x.dtype == torch.float16:
            raise IndexError("list index out of range")
        return x * 2

    report = check_autograd(forward_bug, x, reference=ref, low_precision=("fp16",))
    assert report.by_name("low_precision_fp16").status == "violated"
    report = check_autograd(forward_bug, x, reference=ref, low_precision=("fp16",), unsupported_dtypes=("fp16",))
    assert report.by_name("low_precision_fp16").status == "not_applicable"


# 7. weights that are not upstream's make the rows that used them say so
def test_wrong_minilm_weights_flag_the_rows(tmp_path):
    from bench.models import text

    session = Session()
    (tmp_path / "model.safetensors").write_bytes(b"not the upstream weights")
    recorded = session.record_weights("all-MiniLM-L6-v2", tmp_path, describe=text.describe_weights)
    assert "differs from upstream" in session.model_hashes["all-MiniLM-L6-v2"] == recorded
    assert "not upstream" in text.weights_problem("minilm", recorded)
    assert text.weights_problem("all-MiniLM-L6-v2 (packaged)", recorded)
    assert text.weights_problem("tiny_bert", recorded) is None
    assert text.weights_problem("minilm", text.MINILM_SHA256) is None
    assert Session().model_hashes == {}  # another session knows nothing of it


def test_other_minilm_weights_warn_as_they_load(tmp_path, monkeypatch):
    from bench.models import text

    (tmp_path / "model.safetensors").write_bytes(b"not the upstream weights")
    monkeypatch.setattr(text, "minilm_path", lambda: tmp_path)
    with pytest.warns(RuntimeWarning, match="not upstream all-MiniLM-L6-v2"):
        assert text.checked_minilm_path() == tmp_path


def test_plugin_turns_a_row_with_wrong_weights_into_a_mismatch(bench_pytester):
    import json

    bench_pytester.makepyfile(test_suite="""
        import pytest
        from bench.core.profiles import case
        from bench.models import text

        @pytest.mark.parametrize("c", [case("devices", model="minilm", device="cpu")])
        def test_case(c, bench_row, bench_session, tmp_path):
            (tmp_path / "model.safetensors").write_bytes(b"other weights")
            bench_session.record_weights("all-MiniLM-L6-v2", tmp_path, describe=text.describe_weights)
            bench_row["samples_per_s"] = 1.0
    """)
    result = bench_pytester.runpytest_subprocess()
    data = json.loads((bench_pytester.path / "reports" / "latest" / "results.json").read_text())
    row = data["bench_rows"][0]
    assert row["status"] == "mismatch" and "not upstream" in row["reason"]
    # what the session learned reaches the report's environment
    assert "differs from upstream" in data["machine_info"]["bench"]["model_hashes"]["all-MiniLM-L6-v2"]
    assert result.ret == pytest.ExitCode.TESTS_FAILED


# 9. memory columns named for what they measure
def test_memory_columns_have_one_meaning_each():
    dev.reset_peak_memory("cpu")
    cols = dev.peak_memory_columns("cpu")
    assert cols["cuda_peak_allocated_mib"] is None and cols["peak_mem_mib"] == cols["peak_rss_mib"]
    assert "peak_mem_mib" not in METRICS["devices"]  # judged through the named columns, not twice


def test_the_first_cpu_row_of_a_process_sees_its_own_peak_rss():
    """A fresh process (no probe of the kernel yet): reset, allocate 256 MiB, free, read."""
    code = ("import torch\nfrom bench.core import hardware as dev\n"
            "dev.reset_peak_memory('cpu')\nbase = dev._rss_high_water_mark_mib()\n"
            "x = torch.ones(64 * 2**20)\nx.add_(1)\ndel x\n"
            "print(dev.peak_memory_columns('cpu')['peak_rss_mib'], base)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True)
    peak, base = map(float, out.stdout.split())
    assert peak >= base + 250, out.stdout  # the step's peak, not the RSS after it


# 10. MFU over all devices used, tokens of every rank
def test_trainer_mfu_divides_by_the_peak_of_every_device_used(monkeypatch):
    from bench.trainer import finetune as trainer

    monkeypatch.setattr("bench.core.flops.measured_peak", lambda device, dtype: {"tflops": 1.0})  # via Roofs
    monkeypatch.setattr(trainer, "_sum_over_ranks", lambda value, world: value * 3 if world > 1 else value)

    class Timer:
        steps, gaps, losses, evals = [0.1] * 5, [], [1.0, 0.5], []

    class Collator:
        tokens = [100] * 5

    cfg = trainer.TrainerConfig(batch_size=4, warmup_steps=1)
    one = trainer._metrics(cfg, Timer, Collator, 1e9, {}, 1.0, 1, 1.0)
    two = trainer._metrics(cfg, Timer, Collator, 1e9, {}, 1.0, 2, 1.0)
    assert two["samples_per_s"] == pytest.approx(2 * one["samples_per_s"])
    assert two["mfu_pct"] == pytest.approx(one["mfu_pct"])  # twice the FLOPs over twice the peak
    assert two["tokens_per_s"] == pytest.approx(3 * one["tokens_per_s"])  # the ranks' own counts, summed


# 11. nccl efficiency against a baseline on the same device
def test_scaling_efficiency_compares_like_devices(monkeypatch):
    from bench.core.launch import LaunchResult
    from bench.distributed import scenario as runs

    asked = []

    def fake_baseline(session, model, device, world_size):
        asked.append(device)
        return LaunchResult(True, None, {"samples_per_s": 100.0, "world_size": world_size}, 1.0, "")

    def fake_run(model, world_size, device="cpu", extra=None, **kwargs):  # the adjacent no-DDP baseline
        return fake_baseline(None, model, device, world_size)

    monkeypatch.setattr(runs, "baseline", fake_baseline)
    monkeypatch.setattr(runs, "launch_run", fake_run)
    launched = LaunchResult(True, None, {"samples_per_s": 150.0, "world_size": 2}, 1.0, "")
    out = runs.efficiency_vs_baselines(Session(), "mlp", "cuda", 2, launched)
    assert asked == ["cuda", "cuda"] and out["scaling_efficiency"] == pytest.approx(0.75)


def test_the_no_ddp_baseline_is_timed_next_to_each_ddp_run(monkeypatch):
    """Not the session's earlier measurement: every DDP row runs its own baseline after it."""
    from bench.core.launch import LaunchResult
    from bench.distributed import scenario as runs

    launches = []

    def fake_run(model, world_size, device="cpu", extra=None, **kwargs):
        launches.append(world_size)
        return LaunchResult(True, None, {"samples_per_s": 100.0, "world_size": 1, "step_ms_p50": 5.0}, 1.0, "")

    monkeypatch.setattr(runs, "launch_run", fake_run)
    session = Session()
    runs.remember(session, "mlp", "cpu", 0, LaunchResult(True, None, {"samples_per_s": 1.0, "world_size": 1},
                                                           1.0, ""))
    launched = LaunchResult(True, None, {"samples_per_s": 190.0, "world_size": 2}, 1.0, "")
    for _ in range(2):
        out = runs.efficiency_vs_baselines(session, "mlp", "cpu", 2, launched)
    assert launches.count(0) == 2 and out["scaling_efficiency"] == pytest.approx(0.95)
    assert out["baseline_step_ms_p50"] == 5.0


def test_an_impossible_value_is_named_in_the_row_and_kept_out_of_the_headline():
    """A slow baseline (efficiency 5.2) and a roof measured under load (1820 % of it) are
    findings in the row and the verdict, never a best figure."""
    import pandas as pd

    from bench.core.rows import Row
    from bench.report import headline

    ddp = Row("ddp", "t", model="mlp", backend="gloo", world_size=2)
    ddp.update(scaling_efficiency=5.22)
    ddp.finalize("passed", None)
    dev = Row("devices", "t", model="mlp", device="cpu", dtype="bf16", phase="train", batch_size=256)
    dev.update(tflops=0.0144, pct_of_peak=1820.0)
    dev.finalize("passed", None)
    fine = Row("devices", "t", model="mlp", device="cpu", dtype="bf16", phase="inference", batch_size=256)
    fine.update(tflops=0.001, pct_of_peak=12.0)
    fine.finalize("passed", None)
    assert "scaling_efficiency 5.22 > 1.1" in ddp["implausible"] and "pct_of_peak" in dev["implausible"]
    tables = {"ddp": pd.DataFrame([ddp]), "devices": pd.DataFrame([dev, fine])}
    head = headline.build(tables, {"complete": True}, [])
    assert "2 IMPOSSIBLE value(s)" in head.verdict, head.verdict
    figures = " ".join(v for _, v, _ in head.numbers)
    assert "5.22" not in figures and "0.0144" not in figures and "0.001" in figures, head.numbers


# 12. comm_share is documented as the estimate it is
def test_comm_share_is_declared_an_estimate():
    assert "ESTIMATE" in METRICS["ddp"]["comm_share"].doc


# 13. the training target lives on the model's device
def test_shape_arith_target_on_the_requested_device():
    from bench.registry import get_model

    _, target = get_model("shape_arith").make_batch(4, "meta")
    assert target.device.type == "meta"


# 14. Trainer rows run on the device they are labelled with
def test_trainer_device_placement(monkeypatch):
    from bench.trainer import finetune as trainer

    monkeypatch.setenv("LOCAL_RANK", "1")
    assert trainer.TrainerConfig(device="cuda").torch_device == "cuda:1"
    monkeypatch.delenv("LOCAL_RANK")
    assert trainer.TrainerConfig(device="cuda").torch_device == "cuda:0"
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    assert trainer.isolated_env("cuda:2") == {"CUDA_VISIBLE_DEVICES": "2"}
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "3,5")
    assert trainer.isolated_env("cuda:1") == {"CUDA_VISIBLE_DEVICES": "5"}


# 15. torch.utils.benchmark.Timer synchronises the current device: make ours current
def test_timer_runs_with_the_measured_device_current():
    from bench.core.timing import current_device

    ctx = current_device("cuda:1")
    assert isinstance(ctx, torch.cuda.device) and ctx.idx == 1
    with current_device("cpu"):
        pass


# 16. bf16 support per device, emulation not counted
def test_bf16_support_is_per_device():
    caps = dev.Capabilities(True, 2, ("NVIDIA A100-SXM4-80GB", "Tesla V100-SXM2-16GB"), (True, False), True,
                            ("gloo", "nccl"), 2)
    assert caps.dtype_reason("cuda:0", "bf16") is None
    assert "no native bf16" in caps.dtype_reason("cuda:1", "bf16")


# 17. vendor peaks by exact name
def test_vendor_peaks_match_names_exactly():
    from bench.core.flops import vendor_peak_tflops

    assert vendor_peak_tflops("NVIDIA H200", "bf16") == pytest.approx(989.5)
    assert vendor_peak_tflops("NVIDIA H200 NVL", "bf16") == pytest.approx(835.5)
    assert vendor_peak_tflops("NVIDIA H100 NVL", "bf16") == pytest.approx(835.5)
    assert vendor_peak_tflops("NVIDIA L40S", "bf16") != vendor_peak_tflops("NVIDIA L4", "bf16")
    assert vendor_peak_tflops("NVIDIA L40", "fp32") == pytest.approx(90.5)
    assert vendor_peak_tflops("NVIDIA GeForce RTX 4090", "bf16") is None


# 18. TF32-aware tolerances
def test_fp32_tolerances_widen_when_tf32_is_on(monkeypatch):
    assert set(numerics.tf32_state()) == {"tf32_matmul", "tf32_cudnn"}
    monkeypatch.setattr(numerics, "tf32_state", lambda: {"tf32_matmul": False, "tf32_cudnn": False})
    assert numerics.parity_tolerance(torch.float32, "cuda:0") == numerics.PARITY_TOL[torch.float32]
    # cuDNN's default: convolutions on TF32
    monkeypatch.setattr(numerics, "tf32_state", lambda: {"tf32_matmul": False, "tf32_cudnn": True})
    assert numerics.parity_tolerance(torch.float32, "cuda:0") == numerics.TF32_PARITY_TOL
    assert numerics.parity_tolerance(torch.float32, "cpu") == numerics.PARITY_TOL[torch.float32]
    assert numerics.rel_tol_vs_fp64("fp32", "cuda:0") > numerics.rel_tol_vs_fp64("fp32", "cpu")


# 19. parameter equality across ranks: exact for gloo, a rounding allowance for nccl
def test_parameter_tolerance_per_backend():
    from bench.distributed import scenario as runs

    assert runs.PARAM_TOL["gloo"] == 0.0 and 0 < runs.PARAM_TOL["nccl"] <= 1e-5


# 20. an OOM frees memory after the except block, when the traceback is gone
def test_oom_releases_memory_outside_the_except_block(monkeypatch):

    seen = []

    def boom(*a, **k):
        raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")

    monkeypatch.setattr(throughput, "prepare", boom)
    monkeypatch.setattr(dev, "release_memory", lambda device: seen.append(sys.exc_info()))
    row = _devices_row(model="mlp", device="cpu", dtype="fp32", phase="inference", batch_size=8)
    with pytest.raises(CaseEnded):  # the case ends as oom; the run goes on
        throughput.run_case(dict(row), FakeBenchmark(), row, Session(), budget=Budget.fixed(3, warmup_rounds=1))
    assert row["status"] == "oom" and "out of memory" in row["reason"]
    assert seen == [(None, None, None)]


# 21. --bench-device=cuda means every visible CUDA device
def test_cuda_means_every_visible_device():
    assert dev.parse_devices("cpu,cuda", cuda_device_count=3) == ["cpu", "cuda:0", "cuda:1", "cuda:2"]
    assert dev.parse_devices("cuda", cuda_device_count=0) == ["cuda:0"]  # skipped with its reason
    assert dev.parse_devices("cuda:1,cuda", cuda_device_count=2) == ["cuda:1", "cuda:0"]


# review findings: NaN must not hide a difference; a dtype mix-up is a defect, not a refusal
def test_nan_on_one_side_is_an_infinite_difference():
    a = torch.tensor([1.0, float("nan"), 3.0])
    assert numerics.max_abs_diff([a], [torch.tensor([1.0, 2.0, 3.0])]) == float("inf")
    assert numerics.max_abs_diff([a], [a.clone()]) == 0.0
    err, excess = graphs.worst_error([torch.tensor([1.0, 2.0])], [torch.tensor([1.0, float("nan")])])
    assert err == float("inf") and excess == float("inf")


def test_a_dtype_mix_up_in_forward_is_a_failure_not_a_refusal():
    from bench.ops import check_autograd

    w = torch.randn(4)

    def mixes(x):
        if x.dtype == torch.bfloat16:
            raise RuntimeError("expected both inputs to have same dtype, got BFloat16 and Float")
        return x * w

    report = check_autograd(mixes, torch.randn(3, 4), reference=lambda x: x * w, low_precision=("bf16",))
    assert report.by_name("low_precision_bf16").status == "violated"


def test_a_gpu_with_no_listed_peak_gets_no_vendor_percentage_and_says_why(monkeypatch):
    """An unknown GPU is n/a against the vendor's peak, with the reason, never a neighbour's
    figure (a default peak gave a peer project an MFU of 152 %); the measured roof still gives
    pct_of_peak."""
    from bench.devices.scenario import PreparedCase, metrics

    class Roofs:
        def peak(self, device, dtype):
            return {"tflops": 100.0}

    monkeypatch.setattr("torch.cuda.get_device_name", lambda device=None: "NVIDIA Imaginary X1")
    case = PreparedCase(lambda: None, 64, None, None, None)
    out = metrics(case, "cuda:0", "bf16", median_ms=1.0, flops=int(5e10), roofs=Roofs())
    assert out["pct_of_peak"] == pytest.approx(50.0)
    assert out["vendor_peak_tflops"] is None and out["pct_of_vendor_peak"] is None
    assert "n/a" in out["vendor_peak_note"] and "NVIDIA Imaginary X1" in out["vendor_peak_note"]
