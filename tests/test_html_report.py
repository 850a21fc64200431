"""index.html: self-contained, every suite's table with statuses and reasons, charts
embedded; rendered in headless Chromium where it is installed."""
import base64
import io
import re
import shutil
import subprocess

import pytest

from bench.report import build_report

ROWS = [
    {"suite": "devices", "model": "mlp", "device": "cpu", "dtype": "fp32", "phase": "train", "batch_size": 64,
     "status": "ok", "reason": None, "median_ms": 1.0, "samples_per_s": 64000.0},
    {"suite": "devices", "model": "mlp", "device": "cuda:0", "dtype": "fp32", "phase": "train", "batch_size": 64,
     "status": "skipped", "reason": "needs CUDA: not available"},
    {"suite": "graph_modes", "model": "mlp", "mode": "trace", "device": "cpu", "dtype": "fp32", "phase": "inference",
     "status": "ok", "reason": None, "speedup_vs_eager": 1.2, "median_ms": 0.2},
    {"suite": "graph_modes", "model": "data_dependent", "mode": "trace", "device": "cpu", "dtype": "fp32",
     "phase": "inference", "status": "mismatch", "reason": "probe 0 differs from eager by 4.7"},
    {"suite": "ddp", "model": "mlp", "backend": "gloo", "world_size": 2, "status": "ok", "reason": None,
     "scaling_efficiency": 0.4, "samples_per_s": 30000.0},
    {"suite": "trainer", "model": "minilm", "precision": "fp32", "batch_size": 16, "status": "ok", "reason": None,
     "samples_per_s": 50.0, "optim": "adamw_torch", "compile": False},
    {"suite": "autograd_ops", "op": "gelu_tanh", "device": "cpu", "dtype": "fp32", "status": "ok", "reason": None,
     "speedup_vs_native": 0.2},
]


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    out = tmp_path_factory.mktemp("report")
    data = {"machine_info": {"bench": {"torch": "2.13.0", "cpu_model": "test cpu"}}, "benchmarks": [],
            "bench_rows": ROWS, "bench_run": {"run_id": "r1", "profile": "smoke", "complete": True}}
    build_report(data, out)
    return out


def test_page_is_self_contained_with_tables_reasons_and_charts(report):
    html = (report / "index.html").read_text()
    assert not re.search(r"(src|href)=['\"]https?://", html)  # no network
    for suite in ("devices", "graph_modes", "ddp", "trainer", "autograd_ops"):
        assert f"<section id='{suite}'>" in html
    assert "needs CUDA: not available" in html and "probe 0 differs from eager" in html
    assert '<tr class="mismatch">' in html and '<tr class="skipped">' in html
    charts = re.findall(r"data:image/png;base64,([A-Za-z0-9+/=]+)", html)
    assert len(charts) == 5
    from PIL import Image

    for chart in charts:
        assert Image.open(io.BytesIO(base64.b64decode(chart))).size[0] > 100


def test_summary_lists_failures_first(report):
    summary = (report / "summary.md").read_text()
    assert summary.index("## Failures") < summary.index("## devices")
    assert "data_dependent" in summary.split("## devices")[0]


def test_everything_skipped_is_said(tmp_path):
    data = {"benchmarks": [], "bench_rows": [dict(ROWS[1])], "bench_run": {"run_id": "r2"}}
    build_report(data, tmp_path)
    assert "every case was skipped" in (tmp_path / "summary.md").read_text()


def _chromium():
    return next((b for b in ("chromium", "chromium-browser", "google-chrome") if shutil.which(b)), None)


@pytest.mark.skipif(_chromium() is None, reason="headless Chromium is not installed here "
                                                "(apt-get install chromium to run this check)")
def test_renders_in_headless_chromium(report, tmp_path):
    flags = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
             "--disable-component-update", "--disable-sync", "--no-first-run", f"--user-data-dir={tmp_path / 'u'}"]
    url = (report / "index.html").as_uri()
    dom = subprocess.run([_chromium(), *flags, "--dump-dom", url], capture_output=True, text=True, timeout=120)
    assert dom.returncode == 0, dom.stderr[-2000:]
    assert dom.stdout.count("<table") == 6  # environment + five suites
    assert len(re.findall(r"class=[\"']chart[\"']", dom.stdout)) == 5
    shot = tmp_path / "page.png"
    subprocess.run([_chromium(), *flags, f"--screenshot={shot}", "--window-size=1200,2000", url],
                   capture_output=True, timeout=120)
    assert shot.stat().st_size > 10_000
