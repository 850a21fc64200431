"""Hugging Face Trainer fine-tuning, timed from inside the run.

Per-step times come from a TrainerCallback (synchronised on CUDA); the first
``warmup_steps`` are reported apart (compilation and allocator warm-up would otherwise count
as throughput; Trainer's own ``train_runtime`` includes them) and
every throughput figure is computed from what was counted over the time it took:
samples/s = samples in the steady-state steps / the steady-state steps' time (not all samples over
the mean step time, which inflates throughput when the first steps are slow).
"""
from __future__ import annotations

import dataclasses
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

from bench.core.hardware import LOW_PRECISION
from bench.core.timing import percentile
from bench.trainer import data as hf_data
from bench.trainer.steps import StepTimer, TokenCountingCollator, callback

DEFAULT_MODEL_NAME = "all-MiniLM-L6-v2 (packaged)"


@dataclasses.dataclass(frozen=True)
class TrainerConfig:
    model: str | None = None          # None: the packaged MiniLM; else a local folder or hub id
    dataset: str | None = None        # None: the built-in generated sentiment set
    precision: str = "fp32"
    batch_size: int = 16
    grad_accum: int = 1
    compile: bool = False
    optim: str = "adamw_torch"
    steps: int = 40
    warmup_steps: int = 3
    max_length: int = 64
    lr: float = 1e-4
    eval_every: int = 0               # quick evaluations for time-to-accuracy (0: none)
    target_accuracy: float = 0.85
    runner: str = "trainer"           # trainer or plain_loop
    device: str = "cpu"
    seed: int = 0
    peak_tflops: float | None = None  # the GEMM roof MFU divides by, measured by the caller (else here)

    @property
    def torch_device(self) -> str:
        """Where this process trains. Under torchrun each rank owns ``cuda:LOCAL_RANK`` (as
        Trainer places it); a single process sees the one GPU it was given (see
        :func:`run_isolated`), ``cuda:0``."""
        if self.device == "cpu":
            return "cpu"
        return f"cuda:{int(os.environ.get('LOCAL_RANK', 0))}"

    @property
    def peak_dtype(self) -> str:
        """The GEMM roof MFU is measured against (CPU fp16 runs fp32 arithmetic)."""
        return "fp32" if self.precision == "fp16" and self.device == "cpu" else self.precision


def load_model_and_tokenizer(name_or_path: str | None, num_labels: int):
    from transformers import AutoModelForSequenceClassification, AutoTokenizer
    from transformers.utils import logging as hf_logging

    from bench.models.text import checked_minilm_path

    if name_or_path is None:
        source = str(checked_minilm_path())
    elif Path(name_or_path).expanduser().is_dir():
        source = str(Path(name_or_path).expanduser())
    else:
        source = name_or_path  # a hub id: needs the network
    verbosity = hf_logging.get_verbosity()
    hf_logging.set_verbosity_error()  # "newly initialized classifier" is expected here
    hf_logging.disable_progress_bar()
    try:
        tokenizer = AutoTokenizer.from_pretrained(source)
        model = AutoModelForSequenceClassification.from_pretrained(source, num_labels=num_labels)
    finally:
        hf_logging.set_verbosity(verbosity)
    return model, tokenizer


def _accuracy_fn(model, eval_ds, collator, device, batch_size=64):
    def accuracy() -> float:
        was_training = model.training
        model.eval()
        recording, collator.recording = collator.recording, False
        correct = 0
        with torch.no_grad():
            for i in range(0, len(eval_ds), batch_size):
                batch = collator.inner([eval_ds[j] for j in range(i, min(i + batch_size, len(eval_ds)))])
                labels = batch.pop("labels").to(device)
                logits = model(**{k: v.to(device) for k, v in batch.items()}).logits
                correct += int((logits.argmax(-1) == labels).sum())
        collator.recording = recording
        model.train(was_training)
        return correct / len(eval_ds)

    return accuracy


def count_flops_per_sample(model, collator, train_ds, device, n: int = 8) -> float:
    from torch.utils.flop_counter import FlopCounterMode

    batch = collator.inner([train_ds[i] for i in range(min(n, len(train_ds)))])
    batch = {k: v.to(device) for k, v in batch.items()}
    with FlopCounterMode(display=False) as counter:
        model(**batch).loss.backward()
    model.zero_grad(set_to_none=True)
    return counter.get_total_flops() / len(batch["input_ids"])


def run(cfg: TrainerConfig, world_size: int = 1, roofs=None) -> dict:
    """Fine-tune once; every metric of a trainer.csv row. ``roofs`` (a ``Session``'s) keeps
    the GEMM roof MFU is computed against measured once per run."""
    import datasets

    datasets.disable_progress_bars()
    torch.manual_seed(cfg.seed)
    dsd = hf_data.load(cfg.dataset, seed=cfg.seed)
    num_labels = max(2, len(set(dsd["train"]["label"])))
    model, tokenizer = load_model_and_tokenizer(cfg.model, num_labels)
    data = hf_data.tokenize(dsd, tokenizer, cfg.max_length)
    collator = TokenCountingCollator(tokenizer)
    device = cfg.torch_device
    model.to(device)
    flops_per_sample = count_flops_per_sample(model, collator, data["train"], device)
    collator.tokens.clear()
    timer = StepTimer(device, _accuracy_fn(model, data["eval"], collator, device), cfg.eval_every)
    t0 = time.perf_counter()
    if cfg.runner == "plain_loop":
        trainer_metrics = _plain_loop(cfg, model, data, collator, timer, device)
    else:
        trainer_metrics = _trainer(cfg, model, data, collator, timer, world_size)
    wall_s = time.perf_counter() - t0
    collator.recording = False
    return _metrics(cfg, timer, collator, flops_per_sample, trainer_metrics, wall_s, world_size,
                    _accuracy_fn(model, data["eval"], collator, device)(), roofs)


def _training_args(cfg: TrainerConfig, out_dir: str, world_size: int):
    from transformers import TrainingArguments

    return TrainingArguments(
        output_dir=out_dir, max_steps=cfg.steps, per_device_train_batch_size=cfg.batch_size,
        gradient_accumulation_steps=cfg.grad_accum, learning_rate=cfg.lr, warmup_steps=0, logging_steps=1,
        report_to="none", save_strategy="no", eval_strategy="no", disable_tqdm=True, dataloader_drop_last=True,
        seed=cfg.seed, use_cpu=cfg.device == "cpu", bf16=cfg.precision == "bf16", fp16=cfg.precision == "fp16",
        torch_compile=cfg.compile, optim=cfg.optim, dataloader_num_workers=0,
        ddp_backend=("gloo" if cfg.device == "cpu" else "nccl") if world_size > 1 else None,
    )


def _trainer(cfg, model, data, collator, timer, world_size) -> dict:
    from transformers import PrinterCallback, Trainer

    with tempfile.TemporaryDirectory(prefix="bench-trainer-") as out_dir:
        trainer = Trainer(model=model, args=_training_args(cfg, out_dir, world_size), train_dataset=data["train"],
                          data_collator=collator, processing_class=collator.inner.tokenizer,
                          callbacks=[callback(timer)])
        trainer.remove_callback(PrinterCallback)
        out = trainer.train()
    # Trainer assumes a model whose forward takes **kwargs normalises its loss by
    # num_items_in_batch itself. Then it neither divides by the gradient-accumulation steps
    # (loss_is_scaled_for_ga) and, averaging tokens across devices, multiplies by the number
    # of processes. A sequence classifier returns a plain mean, so its logged loss (and its
    # gradient) carries that factor. The loss columns are divided by it; the factor is kept.
    accepts = bool(getattr(trainer, "model_accepts_loss_kwargs", False))
    ga_scaled = trainer.loss_is_scaled_for_ga if getattr(trainer, "loss_is_scaled_for_ga", None) is not None \
        else accepts
    scale = (cfg.grad_accum if ga_scaled else 1) * \
        (world_size if world_size > 1 and trainer.args.average_tokens_across_devices and accepts else 1)
    return {"train_runtime_s": out.metrics["train_runtime"], "trainer_total_flos": trainer.state.total_flos,
            "trainer_samples_per_s": out.metrics["train_samples_per_second"], "trainer_loss_scale": scale}


def _plain_loop(cfg, model, data, collator, timer, device) -> dict:
    """The same fine-tune without Trainer: DataLoader, AdamW, autocast, nothing else."""
    gen = torch.Generator().manual_seed(cfg.seed)
    loader = torch.utils.data.DataLoader(data["train"], batch_size=cfg.batch_size, shuffle=True, drop_last=True,
                                         collate_fn=collator, generator=gen)
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr)
    model.train()
    dtype = LOW_PRECISION.get(cfg.precision)
    step, batches = 0, iter(loader)
    t0 = time.perf_counter()
    while step < cfg.steps:
        try:
            batch = next(batches)
        except StopIteration:
            batches = iter(loader)
            batch = next(batches)
        timer.begin()
        with torch.autocast(torch.device(device).type, dtype=dtype, enabled=dtype is not None):
            loss = model(**{k: v.to(device) for k, v in batch.items()}).loss
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
        step += 1
        timer.losses.append(float(loss.detach()))
        timer.end(step)
    return {"train_runtime_s": time.perf_counter() - t0}


def _sum_over_ranks(value: int, world_size: int) -> int:
    """``value`` summed over every rank (the process group Trainer set up under torchrun)."""
    import torch.distributed as dist

    if world_size == 1 or not (dist.is_available() and dist.is_initialized()):
        return value
    t = torch.tensor([value], dtype=torch.float64,
                     device="cuda" if dist.get_backend() == "nccl" else "cpu")
    dist.all_reduce(t)
    return int(t.item())


def _metrics(cfg, timer, collator, flops_per_sample, extra, wall_s, world_size, eval_accuracy, roofs=None) -> dict:
    from bench.core.session import Roofs

    w = min(cfg.warmup_steps, len(timer.steps) - 1)
    steady = timer.steps[w:]
    steady_s = sum(steady)
    samples_per_step = cfg.batch_size * cfg.grad_accum * world_size
    micro = cfg.grad_accum
    # every rank's own non-padding tokens (ranks see different batches), not rank 0's x ranks
    steady_tokens = _sum_over_ranks(sum(collator.tokens[w * micro: len(timer.steps) * micro]), world_size)
    samples_per_s = samples_per_step * len(steady) / steady_s
    peak = {"tflops": cfg.peak_tflops} if cfg.peak_tflops else (roofs or Roofs()).peak(cfg.torch_device,
                                                                                          cfg.peak_dtype)
    # FLOPs of all ranks over the peak of all devices used (one per rank)
    peak_all_tflops = peak["tflops"] * world_size
    achieved_tflops = flops_per_sample * samples_per_s / 1e12
    reached = [t for t, acc in timer.evals if acc >= cfg.target_accuracy]
    losses = [v / extra.get("trainer_loss_scale", 1) for v in timer.losses]
    out = {
        "samples_per_s": samples_per_s,
        "tokens_per_s": steady_tokens / steady_s if steady_tokens else None,
        "step_ms_p50": statistics.median(steady) * 1e3,
        "step_ms_p95": percentile(steady, 95) * 1e3,
        "warmup_s": sum(timer.steps[:w]),
        "steady_steps": len(steady),
        "data_loading_share": sum(timer.gaps[w:]) / (steady_s + sum(timer.gaps[w:])) if timer.gaps else None,
        "loss_first": losses[0] if losses else None,
        "loss_last": losses[-1] if losses else None, "losses": losses,  # every logged step's: the loss curve
        "eval_accuracy": eval_accuracy,
        "time_to_accuracy_s": reached[0] if reached else None,
        "target_accuracy": cfg.target_accuracy if cfg.eval_every else None,
        "flops_per_sample": flops_per_sample,
        "achieved_tflops": achieved_tflops,
        "peak_tflops": peak["tflops"],
        "devices_used": world_size,
        "mfu_pct": 100 * achieved_tflops / peak_all_tflops,
        "wall_s": wall_s,
        "world_size": world_size,
        "step_ms_samples": [s * 1e3 for s in timer.steps],
        **extra,
    }
    if "trainer_total_flos" in extra:
        counted = flops_per_sample * samples_per_step * len(timer.steps)
        out["trainer_flos_vs_counted"] = extra["trainer_total_flos"] / counted if counted else None
    return out


def run_worker(cfg, world_size: int | None, env: dict | None = None, timeout_s: float = 900.0,
               task: str = "finetune") -> dict:
    """One fine-tune (``task`` finetune: a TrainerConfig; causal_lm: a CausalConfig) in child
    process(es), bounded: under torchrun with ``world_size`` ranks (gloo on CPU, nccl on CUDA),
    or one plain process. Rank 0's metrics."""
    from bench.core.launch import launch, torchrun_command

    with tempfile.TemporaryDirectory(prefix="bench-trainer-") as workdir:
        out = Path(workdir) / "result.json"
        args = ["--task", task, "--config", json.dumps(dataclasses.asdict(cfg)), "--out", str(out)]
        cmd = torchrun_command("bench.trainer.worker", args, world_size) if world_size else \
            [sys.executable, "-m", "bench.trainer.worker", *args]
        launched = launch([cmd], out, timeout_s, env=env)
    if not launched.ok:
        raise RuntimeError(launched.reason)
    return launched.result


def run_torchrun(cfg: TrainerConfig, world_size: int) -> dict:
    return run_worker(cfg, world_size, timeout_s=600)


def run_isolated(cfg: TrainerConfig, device: str, timeout_s: float = 900.0) -> dict:
    """Run one single-process fine-tune on CUDA device ``device`` (``cuda:N``) in a child
    process that sees only that GPU: Trainer trains on ``cuda:0`` and wraps the model in
    DataParallel when it sees several GPUs, so restricting the visible devices is the one way
    to make a row labelled ``cuda:N`` run on GPU N, alone."""
    return run_worker(cfg, None, env=isolated_env(device), timeout_s=timeout_s)


def isolated_env(device: str) -> dict[str, str]:
    """Environment of a child that must see only ``device``'s GPU, as its ``cuda:0``."""
    from bench.core.hardware import cuda_index

    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    ids = [v.strip() for v in visible.split(",")] if visible else None
    index = cuda_index(device)
    return {"CUDA_VISIBLE_DEVICES": ids[index] if ids else str(index)}


def unavailable(hf_model: str | None) -> str | None:
    """Why the Trainer suite cannot run here, or None."""
    import importlib.util

    from bench.models.text import minilm_unavailable

    if importlib.util.find_spec("datasets") is None:
        return "package datasets is not installed here (the Trainer suite tokenises with datasets.map)"
    if hf_model is None and minilm_unavailable():
        return minilm_unavailable() + "; pass --hf-model to fine-tune another model"
    return None
