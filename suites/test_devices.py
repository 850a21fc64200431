"""Device throughput: model x device x precision x phase x batch size -> devices.csv."""
import pytest

from bench.core.profiles import case, cases_from
from bench.devices import calibration
from bench.devices import scenario as throughput
from bench.models.mlp import SeedMLP, train_digits
from bench.registry import get_model


@cases_from(throughput.cases)
def test_throughput(c, bench_row, benchmark, bench_session):
    throughput.run_case(c, benchmark, bench_row, bench_session)


@pytest.mark.bench_check("devices", check="learns_digits", model="seed_mlp", device="cpu", dtype="fp32",
                         phase="train")
def test_mlp_learns_digits():
    """The seed MLP with the seed's SGD (lr 0.01) reaches at least 90 % test accuracy."""
    result = train_digits(SeedMLP(), epochs=10)
    assert result["losses"][-1] < result["losses"][0]
    assert result["test_accuracy"] >= 0.90, result


def _calibration_cases(session) -> list:
    missing = get_model("minilm").unavailable()
    return [case("devices", model="tiny_bert" if missing else "minilm", device=d, dtype="fp32",
                 phase="calibration", batch_size=8) for d in session.devices]


@cases_from(_calibration_cases)
def test_timing_calibration(c, bench_row, benchmark, bench_session):
    """The suite's clock against torch.utils.benchmark on one reference case per device
    (MiniLM forward, batch 8, the profile's sequence length: 32 in smoke, 128 otherwise); a ratio
    outside 0.95-1.05, confirmed by a second measurement, makes the row a mismatch and the
    summary says so at the top."""
    if c["model"] != "minilm":
        bench_row["note"] = (f"timing self-check ran on {c['model']}, not MiniLM: "
                             f"{get_model('minilm').unavailable()}")
    calibration.calibration(get_model(c["model"]), c["device"], c["batch_size"], benchmark, bench_row,
                            bench_session.roofs, seq_len=bench_session.profile.seq_len)


def _cuda_event_cases(session) -> list:
    cases = [case("devices", model="gemm_4096", device=d, dtype="fp32", phase="cuda_events_check", batch_size=1)
             for d in session.devices if d != "cpu"]
    return cases or [pytest.param(None, id="no-cuda-device-selected",
                                  marks=pytest.mark.skip(reason="--bench-device selects no CUDA device"))]


@cases_from(_cuda_event_cases)
def test_cuda_timing_agrees_with_cuda_events(c, bench_row, benchmark, bench_session):
    """The suite's synchronised host-clock timing of a kernel agrees with CUDA events around
    the same kernel within 5 %."""
    calibration.cuda_events_check(c["device"], benchmark, bench_row, bench_session.roofs)
