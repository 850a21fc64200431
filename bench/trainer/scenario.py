"""Trainer rows: one fine-tune per case (Hugging Face ``Trainer``, the plain loop it is
checked against, torchrun with two ranks, or alone on its GPU), timed from inside the run,
its quality asserted on the built-in data -> trainer.csv."""
from __future__ import annotations

import dataclasses
from pathlib import Path

from bench.core.face import one_of, run_as_row
from bench.core.hardware import PRECISIONS
from bench.core.profiles import case
from bench.core.timing import record_step_samples
from bench.models.text import packaged_minilm_weights
from bench.trainer import finetune as trainer

CAUSAL_MODEL = "llama (random weights)"
RUNNERS = ("trainer", "plain_loop", "trainer_torchrun", "causal_lm", "causal_lm_checkpointed", "causal_lm_torchrun")
TORCHRUN = ("trainer_torchrun", "causal_lm_torchrun")
MIN_ACCURACY = 0.85  # eval accuracy the built-in fine-tune must reach: below it, it did not learn


@dataclasses.dataclass(frozen=True)
class Config:
    """One Trainer case (``model`` None: the packaged MiniLM or ``--hf-model``)."""

    runner: str = "trainer"
    device: str = "cpu"
    precision: str = "fp32"
    batch_size: int = 16
    grad_accum: int = 1
    compile: bool = False
    optim: str = "adamw_torch"
    world_size: int = 1
    model: str | None = None

    def __post_init__(self):
        one_of("runner", self.runner, RUNNERS)
        one_of("precision", self.precision, PRECISIONS)
        if self.runner in TORCHRUN and self.world_size < 2 or self.runner not in TORCHRUN and self.world_size != 1:
            raise ValueError(f"world_size={self.world_size} does not fit runner={self.runner!r}: "
                             f"{' and '.join(TORCHRUN)} take 2 or more, the others 1")
        if self.batch_size < 1 or self.grad_accum < 1:
            raise ValueError(f"batch_size and grad_accum must be >= 1, got {self.batch_size}, {self.grad_accum}")


def cases(session) -> list:
    import pytest

    base = dict(precision="fp32", batch_size=16, grad_accum=1, compile=False, optim="adamw_torch")
    out = []
    for device in session.devices:
        precisions = ("fp32",) if device == "cpu" else PRECISIONS
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
    causal = [dict(base, runner=r, device="cpu", world_size=1, batch_size=8)
              for r in ("causal_lm", "causal_lm_checkpointed")]
    if session.profile.trainer_variants:  # Trainer's DDP over gloo, as trainer_torchrun
        causal.append(dict(base, runner="causal_lm_torchrun", device="cpu", world_size=2, batch_size=8))
    return [case("trainer", model=model, marks=[pytest.mark.hf], id=_id(c), **c) for c in out] + \
        [case("trainer", model=CAUSAL_MODEL, marks=[pytest.mark.hf], id=_id(c), **c) for c in causal]


def _id(c: dict) -> str:
    return (f"{c['runner']}-{c['device']}-{c['precision']}-bs{c['batch_size']}-ga{c['grad_accum']}-{c['optim']}"
            f"{'-compile' if c['compile'] else ''}-ws{c['world_size']}")


def finetune_config(c: dict, s) -> trainer.TrainerConfig:
    """The fine-tune a case runs (``s``: the run's settings: model, data, profile)."""
    first = c["runner"] == "trainer" and c["precision"] == "fp32" and c["grad_accum"] == 1 \
        and c["optim"] == "adamw_torch" and c["batch_size"] == 16 and not c["compile"]
    return trainer.TrainerConfig(
        model=s.hf_model, dataset=s.hf_dataset, precision=c["precision"], batch_size=c["batch_size"],
        grad_accum=c["grad_accum"], compile=c["compile"], optim=c["optim"], steps=s.profile.trainer_steps,
        runner="plain_loop" if c["runner"] == "plain_loop" else "trainer",
        device="cpu" if c["device"] == "cpu" else "cuda",
        eval_every=max(2, s.profile.trainer_steps // 4) if first else 0)


# Seconds a run takes on the reference 2-core CPU at the standard profile's steps (docs/methods.md, "Time
# plan"): loading MiniLM and the data set, the steps, the evaluation; under torchrun the world's
# start on top. Scaled by the profile's steps.
_RUN_S = {"trainer": 12.0, "plain_loop": 9.0, "trainer_torchrun": 31.0, "causal_lm": 9.5,
          "causal_lm_checkpointed": 9.5, "causal_lm_torchrun": 29.0}


def estimate(case: dict, profile, machine):
    """The case's cost for the run's time plan (bench.core.plan): one fixed-step run."""
    from bench.core.plan import EMULATION_FACTOR, Cost

    run_s = _RUN_S.get(case["runner"], 20.0) * (0.4 + 0.6 * profile.trainer_steps / 40)
    if case.get("precision") in machine.emulated:
        run_s *= EMULATION_FACTOR / 2
    # the first in-process MiniLM run also imports the Trainer stack and loads the weights (~10 s)
    shared = "trainer in-process start" if case["runner"] in ("trainer", "plain_loop") else ""
    return Cost(fixed_s=run_s * (1.3 if case.get("grad_accum", 1) > 1 else 1.0), shared=shared,
                shared_s=10.0 if shared else 0.0,
                essential=case["runner"] in ("trainer", "causal_lm") and case.get("grad_accum", 1) == 1,
                why=f"{case.get('precision')} is emulated on this CPU" if case.get("precision") in machine.emulated
                else "")


def run_case(case: dict, benchmark, row, session) -> None:
    c, s = case, session.settings
    # the sharded table's names (torchrun runners are DDP; TrainingArguments' checkpointing, as
    # bench.trainer.causal_lm sets it, is non-reentrant)
    row.update(strategy="ddp" if c["world_size"] > 1 else "single",
               checkpointing="non_reentrant" if c["runner"] == "causal_lm_checkpointed" else "none")
    if c["runner"].startswith("causal_lm"):
        return _causal_lm(c, benchmark, row, session)
    reason = trainer.unavailable(s.hf_model)
    if reason:
        row.end("skipped", reason)
    if s.hf_model is None:  # the weights fine-tuned, hashed into the report's environment
        packaged_minilm_weights(session)
    elif Path(s.hf_model).expanduser().is_dir():
        session.record_weights(s.hf_model, s.hf_model)
    cfg = finetune_config(c, s)
    if c["runner"] == "trainer_torchrun" or c["device"] != "cpu":  # a child process: the roof measured here
        cfg = dataclasses.replace(cfg, peak_tflops=session.roofs.peak(c["device"], cfg.peak_dtype)["tflops"])
    result = _once(benchmark, c, cfg, session)
    steady = result["step_ms_samples"][cfg.warmup_steps:]
    if benchmark is not None:
        record_step_samples(benchmark, [ms / 1e3 for ms in steady])
    row.update({k: v for k, v in result.items() if not isinstance(v, list)})
    row["step_ms_samples"] = result["step_ms_samples"]  # the report's step chart (not a CSV column)
    row["loss_curve"] = result.get("losses")  # every logged step's loss (not a CSV column)
    row["loss_curve_setup"] = curve_setup(cfg.seed, "Trainer's sampler, shuffled by TrainingArguments.seed")
    if s.hf_model is not None or s.hf_dataset is not None:  # a user's model or data: a finding, not a failure
        row["learned"] = learning(result.get("losses") or [], result.get("eval_accuracy"))
    else:  # the built-in pair: quality is asserted
        row.check(result["loss_last"] < result["loss_first"],
                  f"training loss did not fall ({result['loss_first']:.4f} -> {result['loss_last']:.4f})")
        row.check(result["eval_accuracy"] >= MIN_ACCURACY,
                  f"eval accuracy {result['eval_accuracy']:.3f} < {MIN_ACCURACY} on the built-in set")


def curve_setup(seed: int, data_order: str) -> dict:
    """What produced a loss curve, stored with it: the seed, the data order and the determinism
    settings of this process (a curve that moved with one of them is not the stack's doing)."""
    import torch

    return {"seed": seed, "data_order": data_order,
            "deterministic_algorithms": torch.are_deterministic_algorithms_enabled(),
            "threads": torch.get_num_threads()}


def learning(losses: list[float], eval_accuracy: float | None = None) -> str:
    """Whether a fine-tune on the user's model or data learned: ``yes`` when the loss fell
    (last below first and a falling least-squares trend over the logged steps), else ``did not
    learn`` with the trend. Not a failure: the user's data may be unlearnable (two classes at
    random), but a run that trained and learned nothing must say so, not read ``ok`` alone."""
    if len(losses) < 2:
        return "unknown: fewer than two logged losses"
    n = len(losses)
    mean_x, mean_y = (n - 1) / 2, sum(losses) / n
    slope = sum((i - mean_x) * (v - mean_y) for i, v in enumerate(losses)) / sum((i - mean_x) ** 2 for i in range(n))
    trend = (f"loss {losses[0]:.4g} -> {losses[-1]:.4g} over {n} logged steps (trend {slope:+.2g} per step"
             + (f"; eval accuracy {eval_accuracy:.3g})" if eval_accuracy is not None else ")"))
    return f"yes: {trend}" if losses[-1] < losses[0] and slope < 0 else f"did not learn: {trend}"


def _once(benchmark, c: dict, cfg, session) -> dict:
    """One fine-tune, through pytest-benchmark's fixture when there is one (rounds=1: the run
    is the measurement; its steady steps replace the samples)."""
    if c["runner"] == "trainer_torchrun":
        fn, args, kwargs = trainer.run_torchrun, (cfg, c["world_size"]), {}
    elif c["device"] != "cpu":  # alone on its GPU: see trainer.run_isolated
        fn, args, kwargs = trainer.run_isolated, (cfg, c["device"]), {}
    else:
        fn, args, kwargs = trainer.run, (cfg,), {"roofs": session.roofs}
    if benchmark is None:
        return fn(*args, **kwargs)
    return benchmark.pedantic(fn, args=args, kwargs=kwargs, rounds=1, iterations=1)


def run(config: Config, session=None) -> dict:
    """The case's trainer.csv row, without pytest."""
    keys = dataclasses.asdict(config)
    keys["model"] = keys["model"] or trainer.DEFAULT_MODEL_NAME
    return run_as_row("trainer", keys, run_case, session)


def _causal_lm(c: dict, benchmark, row, session) -> None:
    """The zoo's Llama fine-tuned as a causal LM under Trainer (or under torchrun, Trainer's
    DDP); quality asserted; the checkpointed variant must log the base run's losses
    (checkpointing recomputes, it does not change the step) and reports its time against the base."""
    from bench.models.decoders import size_for
    from bench.models.text import minilm_unavailable
    from bench.trainer import causal_lm

    missing = minilm_unavailable()
    if missing:
        row.end("skipped", f"the causal-LM fine-tune uses the packaged MiniLM tokenizer: {missing}")
    ckpt = c["runner"] == "causal_lm_checkpointed"
    cfg = causal_lm.CausalConfig(size=size_for(session.profile.gen_size, "cpu"), batch_size=c["batch_size"],
                                 gradient_checkpointing=ckpt)
    fn, args = (causal_lm.run_torchrun, (cfg, c["world_size"])) if c["runner"] == "causal_lm_torchrun" \
        else (causal_lm.run, (cfg,))
    result = benchmark.pedantic(fn, args=args, rounds=1, iterations=1) if benchmark is not None else fn(*args)
    if benchmark is not None:
        record_step_samples(benchmark, [ms / 1e3 for ms in result["step_ms_samples"][cfg.warmup_steps:]])
    row.update({k: v for k, v in result.items() if not isinstance(v, list)})
    row["step_ms_samples"] = result["step_ms_samples"]
    row["loss_curve"] = result.get("losses")  # every logged step's loss: judged between runs (bench.report.curves)
    row["loss_curve_setup"] = curve_setup(cfg.seed, "Trainer's sampler, shuffled by TrainingArguments.seed")
    row.check(result["loss_last"] < causal_lm.LOSS_BOUND * result["loss_first"],
              f"causal-LM loss did not fall below {causal_lm.LOSS_BOUND} x its first value "
              f"({result['loss_first']:.3f} -> {result['loss_last']:.3f})")
    row.check(result["ppl_after"] < result["ppl_before"],
              f"held-out perplexity did not drop ({result['ppl_before']:.4g} -> {result['ppl_after']:.4g})")
    if ckpt:
        row.check(result.get("checkpointing_active"), "the checkpointed fine-tune ran without checkpointing: "
                  "Trainer did not enable it on the model (model.is_gradient_checkpointing is False)")
        base = session.shared(("causal_lm_base", cfg.size, cfg.batch_size),
                              lambda: causal_lm.run(dataclasses.replace(cfg, gradient_checkpointing=False)))
        row["step_time_vs_base"] = result["step_ms_p50"] / base["step_ms_p50"]
        row["loss_max_abs_diff_vs_base"] = max(abs(a - b) for a, b in zip(result["losses"], base["losses"]))
        row.check(row["loss_max_abs_diff_vs_base"] <= 1e-5,
                  f"checkpointed fine-tune logs other losses than the base run (by "
                  f"{row['loss_max_abs_diff_vs_base']:.3g}): recomputation is not the forward it replaces")
    elif c["runner"] == "causal_lm":
        session.offer(("causal_lm_base", cfg.size, cfg.batch_size), result)
