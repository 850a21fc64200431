"""Device throughput: model x device x precision x phase x batch size -> devices.csv."""
import pytest

from bench import throughput
from bench.cases import case, devices
from bench.models.mlp import SeedMLP, train_digits
from bench.registry import get_model, models
from bench.settings import current

PRECISIONS = ("fp32", "bf16", "fp16")


def _cases():
    profile = current().profile
    out = []
    for spec in models("devices").values():
        sizes = profile.text_batch_sizes if spec.kind == "text" else profile.device_batch_sizes
        for device in devices():
            if spec.gpu_only and device == "cpu":
                continue
            for dtype in PRECISIONS:
                if device == "cpu" and dtype == "fp16" and not profile.cpu_fp16:
                    continue
                for phase in ("inference", "train"):
                    for bs in sizes:
                        out.append(case("devices", model=spec.name, device=device, dtype=dtype, phase=phase,
                                        batch_size=bs))
    return out


@pytest.mark.parametrize("c", _cases())
def test_throughput(c, bench_row, benchmark):
    throughput.run_case(get_model(c["model"]), c, benchmark, bench_row, current().profile.budget)


def test_mlp_learns_digits():
    """The seed MLP with the seed's SGD (lr 0.01) reaches at least 90 % test accuracy."""
    result = train_digits(SeedMLP(), epochs=10)
    assert result["losses"][-1] < result["losses"][0]
    assert result["test_accuracy"] >= 0.90, result
