"""index.html and summary.md: the verdict and key numbers first, skipped cases folded by
reason, charts with spread, a roofline, tables sortable and filterable, self-contained;
rendered in headless Chromium at 1400 px where it is installed."""
import base64
import io
import re
import shutil
import subprocess

import pytest

from bench.report import build_report


def _dev(dtype, bs, phase="inference", **extra):
    return {"suite": "devices", "test": f"suites/test_devices.py::test_throughput[mlp-cpu-{dtype}-{phase}-bs{bs}]",
            "model": "mlp", "device": "cpu", "dtype": dtype, "phase": phase, "batch_size": bs, "status": "ok",
            "reason": None, "median_ms": 1.0 * bs / 64, "p10_ms": 0.9 * bs / 64, "p90_ms": 1.3 * bs / 64,
            "samples_per_s": 64000.0, "tflops": 0.05 * bs / 64, "pct_of_peak": 20.0 * bs / 64, "peak_tflops": 0.25,
            "arithmetic_intensity": 8.0 * bs / 64, "bandwidth_gb_per_s": 12.0, **extra}


ROWS = [
    _dev("fp32", 64), _dev("fp32", 256), _dev("bf16", 64), _dev("bf16", 256),
    {**_dev("fp32", 8, "calibration"), "model": "minilm", "calibration_ratio": 1.01},
    {"suite": "devices", "test": "suites/test_devices.py::test_throughput[mlp-cuda:0-fp32-inference-bs64]",
     "model": "mlp", "device": "cuda:0", "dtype": "fp32", "phase": "train", "batch_size": 64,
     "status": "skipped", "reason": "needs CUDA: not available"},
    {"suite": "devices", "test": "suites/test_devices.py::test_throughput[mlp-cuda:0-bf16-inference-bs64]",
     "model": "mlp", "device": "cuda:0", "dtype": "bf16", "phase": "train", "batch_size": 64,
     "status": "skipped", "reason": "needs CUDA: not available"},
    {"suite": "graph_modes", "test": "g::t[mlp-trace]", "model": "mlp", "mode": "trace", "device": "cpu",
     "dtype": "fp32", "phase": "inference", "status": "ok", "reason": None, "speedup_vs_eager": 1.2,
     "median_ms": 0.2, "p10_ms": 0.18, "p90_ms": 0.25},
    {"suite": "graph_modes", "test": "g::t[dd-trace]", "model": "data_dependent", "mode": "trace", "device": "cpu",
     "dtype": "fp32", "phase": "inference", "status": "mismatch",
     "reason": "probe 0 (shapes [(4, 8)]) differs from eager by 4.7 " + "and a long explanation " * 8},
    {"suite": "ddp", "test": "d::t[none]", "model": "mlp", "backend": "none", "world_size": 1, "status": "ok",
     "reason": None, "scaling_efficiency": 1.0, "samples_per_s": 20000.0, "step_ms_p50": 3.0, "step_ms_p90": 3.3},
    {"suite": "ddp", "test": "d::t[gloo2]", "model": "mlp", "backend": "gloo", "world_size": 2, "status": "ok",
     "reason": None, "scaling_efficiency": 0.4, "samples_per_s": 16000.0, "step_ms_p50": 8.0, "step_ms_p90": 9.0},
    {"suite": "trainer", "test": "t::t[base]", "model": "minilm", "runner": "trainer", "device": "cpu",
     "precision": "fp32", "batch_size": 16, "grad_accum": 1, "world_size": 1, "status": "ok", "reason": None,
     "samples_per_s": 50.0, "tokens_per_s": 2000.0, "mfu_pct": 27.0, "optim": "adamw_torch", "compile": False,
     "step_ms_p50": 320.0, "step_ms_p95": 400.0, "steady_steps": 13, "step_ms_samples": [900, 500] + [320] * 14},
    {"suite": "autograd_ops", "test": "o::t[gelu]", "op": "gelu_tanh", "device": "cpu", "dtype": "fp32",
     "status": "ok", "reason": None, "speedup_vs_native": 0.2, "fwd_bwd_median_ms": 2.0, "checks_passed": "17/17"},
]


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    out = tmp_path_factory.mktemp("report")
    data = {"machine_info": {"bench": {"torch": "2.13.0", "cpu_model": "test cpu", "torch_threads": 2}},
            "benchmarks": [], "bench_rows": ROWS,
            "bench_run": {"run_id": "r1", "profile": "smoke", "complete": True}}
    build_report(data, out)
    return out


def test_page_is_self_contained_headline_first_with_every_chart(report):
    html = (report / "index.html").read_text()
    assert not re.search(r"(src|href)=['\"]https?://", html)  # no network
    verdict = html.index("id='verdict'")
    assert verdict < html.index("<h2>Status per suite") < html.index("<section id='devices'")
    assert html.index("id='environment'") > html.index("<section id='trainer'")  # environment last, folded
    assert "NOT GOOD" in html and "1 mismatch" in html and "timing self-check ok (cpu 1.010)" in html
    for key in ("best cpu fp32", "best cpu bf16", "Trainer cpu fp32", "DDP mlp gloo at world size 2",
                "best graph-mode speed-up"):
        assert key in html, key
    for suite in ("devices", "graph_modes", "ddp", "trainer", "autograd_ops"):
        assert f"<section id='{suite}'>" in html
    assert "2 case(s): needs CUDA: not available" in html  # skipped folded by reason, not row by row
    assert 'class="skipped"' not in html.split("<h2>Skipped")[0].split("<section id='devices'>")[1]
    assert "<details><summary>probe 0 (shapes" in html  # long reason folded, whole text one click away
    charts = re.findall(r"alt='([^']+)' src='data:image/png;base64,([A-Za-z0-9+/=]+)'", html)
    titles = [t for t, _ in charts]
    assert titles == ["devices timing", "devices throughput vs batch size", "devices roofline cpu",
                      "graph_modes timing", "ddp timing", "ddp scaling", "trainer timing", "trainer steps",
                      "autograd_ops timing"]
    from PIL import Image

    for _, chart in charts:
        assert Image.open(io.BytesIO(base64.b64decode(chart))).size[0] > 300


def test_first_screen_has_one_card_per_question_and_the_rest_folded(report):
    html = (report / "index.html").read_text()
    first = html.split("<div id='numbers' class='numbers'>")[1].split("</div>\n")[0]
    cards = re.findall(r"<div class='num-card'>([^<]+)<b>", first)
    # devices (fp32 first: the native precision), trainer, ddp, graph modes, ops: one each
    assert cards == ["best cpu fp32", "Trainer cpu fp32", "DDP mlp gloo at world size 2",
                     "best graph-mode speed-up (parity ok)", "custom ops passing every check"], cards
    more = html.split("<details class='more-numbers'>")[1].split("</details>")[0]
    assert "2 more figure(s)" in more and "best cpu bf16" in more and "timing self-check cpu" in more


def test_summary_starts_with_the_verdict_and_numbers(report):
    summary = (report / "summary.md").read_text()
    lines = summary.splitlines()
    assert lines[2].startswith("**NOT GOOD") and "best cpu fp32" in summary.split("## Status per suite")[0]
    assert summary.index("## Failures") < summary.index("## devices") < summary.index("## Environment")
    assert re.search(r"\|\s+2 \| needs CUDA: not available", summary)  # folded by reason
    assert "data_dependent" in summary.split("## devices")[0]


def test_everything_skipped_is_said(tmp_path):
    data = {"benchmarks": [], "bench_rows": [dict(ROWS[5])], "bench_run": {"run_id": "r2"}}
    build_report(data, tmp_path)
    assert "every case was skipped" in (tmp_path / "summary.md").read_text()


def _chromium():
    return next((b for b in ("chromium", "chromium-browser", "google-chrome") if shutil.which(b)), None)


def _dom(url: str, tmp_path) -> str:
    flags = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
             "--disable-component-update", "--disable-sync", "--no-first-run", f"--user-data-dir={tmp_path / 'u'}",
             "--window-size=1400,900", "--virtual-time-budget=3000"]
    out = subprocess.run([_chromium(), *flags, "--dump-dom", url], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    return out.stdout


needs_chromium = pytest.mark.skipif(_chromium() is None, reason="headless Chromium is not installed here "
                                                                "(apt-get install chromium to run this check)")


@needs_chromium
def test_first_screen_and_width_in_headless_chromium(report, tmp_path):
    dom = _dom((report / "index.html").as_uri(), tmp_path)
    body = re.search(r"<body([^>]*)>", dom).group(1)
    attrs = dict(re.findall(r'data-([a-z-]+)="(\d+)"', body))
    assert int(attrs["numbers-bottom"]) <= 900, attrs  # verdict and key numbers on the first screen
    assert int(attrs["scroll-width"]) <= int(attrs["client-width"]), attrs  # no sideways scrolling at 1400 px
    assert len(re.findall(r"class=\"chart\"|class='chart'", dom)) == 9
    shot = tmp_path / "first-screen.png"
    flags = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
             "--disable-component-update", "--disable-sync", "--no-first-run", f"--user-data-dir={tmp_path / 's'}",
             "--window-size=1400,900", "--hide-scrollbars", f"--screenshot={shot}"]
    subprocess.run([_chromium(), *flags, (report / "index.html").as_uri()], capture_output=True, timeout=120)
    from PIL import Image

    assert Image.open(shot).size == (1400, 900)  # the first screen a reader sees, kept for a look


@needs_chromium
def test_filter_works_in_headless_chromium(report, tmp_path):
    dom = _dom((report / "index.html").as_uri() + "#filter=devices:bf16", tmp_path)
    table = re.search(r'<table id="table-devices"[^>]*>(.*?)</table>', dom, re.S)
    assert 'data-shown="2"' in re.search(r'<table id="table-devices"[^>]*>', dom).group(0)
    rows = re.findall(r"<tr[^>]*>(.*?)</tr>", table.group(1), re.S)[1:]
    shown = [r for r in re.findall(r"<tr([^>]*)>", table.group(1))[1:] if "display: none" not in r]
    assert len(rows) == 5 and len(shown) == 2
