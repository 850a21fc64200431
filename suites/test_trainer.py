"""Hugging Face Trainer fine-tuning, timed from inside the run -> trainer.csv."""

import dataclasses
from pathlib import Path

import pytest

from bench.core.profiles import case, cases_from
from bench.core.timing import record_step_samples
from bench.trainer import finetune as trainer


def _cases(session) -> list:
    base = dict(precision="fp32", batch_size=16, grad_accum=1, compile=False, optim="adamw_torch")
    out = []
    for device in session.devices:
        precisions = ("fp32",) if device == "cpu" else ("fp32", "bf16", "fp16")
        for precision in precisions:
            out.append(dict(base, runner="trainer", device=device, precision=precision, world_size=1))
        out.append(dict(base, runner="plain_loop", device=device, world_size=1))
    variants = [dict(base, runner="trainer", device="cpu", grad_accum=2, world_size=1),
                dict(base, runner="trainer_torchrun", device="cpu", world_size=2),
                dict(base, runner="trainer", device="cpu", optim="adamw_torch_fused", world_size=1),
                dict(base, runner="trainer", device="cpu", batch_size=32, world_size=1),
                dict(base, runner="trainer", device="cpu", compile=True, world_size=1)]
    out += variants[:session.profile.trainer_variants]
    model = session.settings.hf_model or trainer.DEFAULT_MODEL_NAME
    return [case("trainer", model=model, marks=[pytest.mark.hf], id=_id(c), **c) for c in out]


def _id(c: dict) -> str:
    return (f"{c['runner']}-{c['device']}-{c['precision']}-bs{c['batch_size']}-ga{c['grad_accum']}-{c['optim']}"
            f"{'-compile' if c['compile'] else ''}-ws{c['world_size']}")


def _config(c: dict, s) -> trainer.TrainerConfig:
    first = c["runner"] == "trainer" and c["precision"] == "fp32" and c["grad_accum"] == 1 \
        and c["optim"] == "adamw_torch" and c["batch_size"] == 16 and not c["compile"]
    return trainer.TrainerConfig(
        model=s.hf_model, dataset=s.hf_dataset, precision=c["precision"], batch_size=c["batch_size"],
        grad_accum=c["grad_accum"], compile=c["compile"], optim=c["optim"], steps=s.profile.trainer_steps,
        runner="plain_loop" if c["runner"] == "plain_loop" else "trainer",
        device="cpu" if c["device"] == "cpu" else "cuda",
        eval_every=max(2, s.profile.trainer_steps // 4) if first else 0)


@cases_from(_cases)
def test_trainer(c, bench_row, benchmark, bench_session):
    s = bench_session.settings
    reason = trainer.unavailable(s.hf_model)
    if reason:
        bench_row.end("skipped", reason)
    if s.hf_model is None:  # the weights fine-tuned, hashed into the report's environment
        bench_session.packaged_minilm_weights()
    elif Path(s.hf_model).expanduser().is_dir():
        bench_session.record_weights(s.hf_model, s.hf_model)
    cfg = _config(c, s)
    if c["runner"] == "trainer_torchrun" or c["device"] != "cpu":  # a child process: the roof measured here
        cfg = dataclasses.replace(cfg, peak_tflops=bench_session.roofs.peak(c["device"], cfg.peak_dtype)["tflops"])
    if c["runner"] == "trainer_torchrun":
        result = benchmark.pedantic(trainer.run_torchrun, args=(cfg, c["world_size"]), rounds=1, iterations=1)
    elif c["device"] != "cpu":  # alone on its GPU: see trainer.run_isolated
        result = benchmark.pedantic(trainer.run_isolated, args=(cfg, c["device"]), rounds=1, iterations=1)
    else:
        result = benchmark.pedantic(trainer.run, args=(cfg,), kwargs={"roofs": bench_session.roofs},
                                    rounds=1, iterations=1)
    steady = result["step_ms_samples"][cfg.warmup_steps:]
    record_step_samples(benchmark, [ms / 1e3 for ms in steady])
    bench_row.update({k: v for k, v in result.items() if not isinstance(v, list)})
    bench_row["step_ms_samples"] = result["step_ms_samples"]  # the report's step chart (not a CSV column)
    if s.hf_model is None and s.hf_dataset is None:  # the built-in pair: quality is asserted
        bench_row.check(result["loss_last"] < result["loss_first"],
                        f"training loss did not fall ({result['loss_first']:.4f} -> {result['loss_last']:.4f})")
        bench_row.check(result["eval_accuracy"] >= 0.85,
                        f"eval accuracy {result['eval_accuracy']:.3f} < 0.85 on the built-in set")
