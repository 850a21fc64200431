"""Trainer metrics arithmetic against a hand count; local model folders and CSV files
through the suite; clear errors for unusable data."""
import csv as csv_module
import subprocess
import sys
from pathlib import Path

import pytest

from bench.trainer import data as hf_data
from bench.trainer.finetune import TrainerConfig, _metrics
from bench.trainer.steps import StepTimer

ROOT = Path(__file__).resolve().parents[1]


class _Collator:
    tokens = [40, 50, 60, 70, 80]  # one extra batch (the loader's look-ahead) must be ignored


def test_throughput_arithmetic_matches_a_hand_count():
    timer = StepTimer("cpu")
    timer.steps = [2.0, 0.5, 0.25, 0.25]          # the first is warm-up
    timer.gaps = [0.1, 0.0, 0.0]
    timer.losses = [0.7, 0.6, 0.5, 0.4]
    cfg = TrainerConfig(batch_size=4, grad_accum=1, warmup_steps=1, steps=4)
    m = _metrics(cfg, timer, _Collator(), flops_per_sample=1e9, extra={}, wall_s=5.0, world_size=1,
                 eval_accuracy=0.9)
    # 3 steady steps x 4 samples over 1.0 s of steady steps = 12 samples/s (not 4 / mean step)
    assert m["samples_per_s"] == pytest.approx(12.0)
    assert m["tokens_per_s"] == pytest.approx((50 + 60 + 70) / 1.0)
    assert m["warmup_s"] == pytest.approx(2.0)
    assert m["step_ms_p50"] == pytest.approx(250.0)
    assert m["loss_first"] == 0.7 and m["loss_last"] == 0.4


def test_world_size_and_accumulation_count_in_samples():
    timer = StepTimer("cpu")
    timer.steps = [1.0, 1.0, 1.0]
    cfg = TrainerConfig(batch_size=8, grad_accum=2, warmup_steps=1, steps=3)
    m = _metrics(cfg, timer, _Collator(), 1e9, {}, 3.0, world_size=2, eval_accuracy=1.0)
    assert m["samples_per_s"] == pytest.approx(8 * 2 * 2 * 2 / 2.0)


def test_dataset_without_text_and_label_names_its_columns(tmp_path):
    bad = tmp_path / "reviews.csv"
    bad.write_text("review,stars\ngood film,5\nbad film,1\n")
    with pytest.raises(hf_data.DatasetError, match="has review, stars"):
        hf_data.load(str(bad))


def test_single_local_file_is_split_deterministically(tmp_path):
    data = tmp_path / "data.csv"
    data.write_text("text,label\n" + "".join(f"sentence {i},{i % 2}\n" for i in range(50)))
    a, b = hf_data.load(str(data)), hf_data.load(str(data))
    assert len(a["train"]) == 40 and len(a["eval"]) == 10
    assert a["eval"]["text"] == b["eval"]["text"]


@pytest.mark.hf
@pytest.mark.slow
def test_local_model_folder_and_csv_through_the_suite(tmp_path):
    from transformers import BertConfig, BertForSequenceClassification

    from bench.models.text import minilm_tokenizer

    model_dir = tmp_path / "my-model"
    tok = minilm_tokenizer()
    cfg = BertConfig(vocab_size=tok.vocab_size, hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
                     intermediate_size=64, num_labels=2)
    BertForSequenceClassification(cfg).save_pretrained(model_dir)
    tok.save_pretrained(model_dir)
    csv = tmp_path / "reviews.csv"
    csv.write_text("text,label\n" + "".join(f"{'great' if i % 2 else 'awful'} film number {i},{i % 2}\n"
                                            for i in range(120)))
    reports = tmp_path / "reports"
    out = subprocess.run(
        [sys.executable, "-m", "pytest", "suites/test_trainer.py", f"--hf-model={model_dir}", f"--hf-dataset={csv}",
         "-k", "trainer-cpu-fp32", "--bench-profile=smoke", "--bench-device=cpu", f"--bench-report-dir={reports}",
         "-p", "no:cacheprovider", "-q"], cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-2000:]
    table = (reports / "latest" / "trainer.csv").read_text()
    assert f"{model_dir},fp32,16,1,False,adamw_torch,single,none,ok" in table
    row = next(r for r in csv_module.DictReader(table.splitlines()) if r["status"] == "ok")
    assert row["learned"].split(":")[0] in ("yes", "did not learn") and "logged steps" in row["learned"], row


def test_a_user_run_that_learned_nothing_says_so_in_the_row_and_the_headline():
    """Tried before: a user's two-class set, loss 0.692 -> 0.693, accuracy 0.46, row ok with
    nothing said. A finding, not a failure: the run stays GOOD, the headline names it."""
    import pandas as pd

    from bench.report.headline import build
    from bench.trainer.scenario import learning

    flat = learning([0.692, 0.6925, 0.6921, 0.693], 0.46)
    assert flat.startswith("did not learn: loss 0.692 -> 0.693 over 4 logged steps") and "0.46" in flat
    assert learning([0.70, 0.55, 0.40]).startswith("yes: ")
    assert learning([0.70, 0.40, 0.72]).startswith("did not learn")  # last above first
    tr = pd.DataFrame([{"model": "my-model", "device": "cpu", "precision": "fp32", "status": "ok",
                        "samples_per_s": 10.0, "learned": flat}])
    head = build({"trainer": tr}, {"complete": True}, [])
    assert head.good and "1 Trainer row(s) on your model/data DID NOT LEARN" in head.verdict
    assert "my-model" in head.verdict and "0.692 -> 0.693" in head.verdict


@pytest.mark.hf
def test_logged_loss_is_corrected_for_trainers_accumulation_factor():
    """transformers 5 leaves the loss of a **kwargs-accepting classifier undivided by the
    accumulation steps; the row's loss is the true mean (ln 2 for a fresh 2-class head)."""
    from bench.trainer.finetune import run

    result = run(TrainerConfig(steps=2, grad_accum=2, warmup_steps=1))
    assert result["trainer_loss_scale"] in (1, 2)
    assert 0.55 < result["loss_first"] < 0.85, result["loss_first"]
