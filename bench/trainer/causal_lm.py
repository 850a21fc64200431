"""Causal-LM fine-tuning under Trainer: the generation zoo's Llama (seeded random weights,
the packaged MiniLM tokenizer's vocabulary) trained on the built-in generated text with
``DataCollatorForLanguageModeling(mlm=False)``, optionally with gradient checkpointing.

Quality is asserted, not assumed: the training loss must fall below ``LOSS_BOUND`` x its
first value, and the perplexity on held-out text (measured before and after, the same
batches) must drop. Timed from inside the run (the suite's StepTimer callback): steady
tokens/s, step p50/p95, peak memory.
"""
from __future__ import annotations

import dataclasses
import math
import statistics
import tempfile
import time

import torch

from bench.core.hardware import peak_memory_columns, reset_peak_memory
from bench.core.steps import StepTimer
from bench.core.timing import percentile
from bench.trainer.steps import callback

LOSS_BOUND = 0.8  # loss_last < 0.8 x loss_first: random weights on templated text fall much further


@dataclasses.dataclass(frozen=True)
class CausalConfig:
    size: str = "smoke"               # the generation zoo's size
    steps: int = 24
    batch_size: int = 8
    max_length: int = 32
    lr: float = 3e-3
    gradient_checkpointing: bool = False
    warmup_steps: int = 2
    seed: int = 0


def _data(tokenizer, max_length: int):
    from bench.trainer.data import builtin

    raw = builtin()
    return raw.map(lambda b: tokenizer(b["text"], truncation=True, max_length=max_length), batched=True,
                   remove_columns=["text", "label"])


def _perplexity(model, dataset, collator, batch_size: int = 32) -> float:
    model.eval()
    losses, weights = [], []
    with torch.no_grad():
        for i in range(0, len(dataset), batch_size):
            batch = collator([dataset[j] for j in range(i, min(i + batch_size, len(dataset)))])
            n = int((batch["labels"] != -100).sum())
            losses.append(float(model(**batch).loss) * n)
            weights.append(n)
    model.train()
    return math.exp(sum(losses) / sum(weights))


def _checkpointing_args(on: bool) -> dict:
    """TrainingArguments fields for gradient checkpointing (non-reentrant): transformers 5.2x
    names them ``activation_checkpointing``; older releases ``gradient_checkpointing``."""
    from transformers import TrainingArguments

    names = {f.name for f in dataclasses.fields(TrainingArguments)}
    prefix = "activation" if "activation_checkpointing" in names else "gradient"
    return {f"{prefix}_checkpointing": on, f"{prefix}_checkpointing_kwargs": {"use_reentrant": False} if on else None}


def run(cfg: CausalConfig, world_size: int = 1) -> dict:
    """One causal-LM fine-tune on the CPU (under torchrun: this rank's part of a DDP run that
    Trainer sets up from the environment, ``cfg.batch_size`` per rank); every metric of its
    trainer.csv row. Logged losses are Trainer's, the mean over ranks. Trainer's output folder
    (nothing is saved to it: ``save_strategy="no"``) is removed afterwards, whatever the outcome."""
    with tempfile.TemporaryDirectory(prefix="bench-causal-") as out_dir:
        return _run(cfg, world_size, out_dir)


def _run(cfg: CausalConfig, world_size: int, out_dir: str) -> dict:
    from transformers import DataCollatorForLanguageModeling, PrinterCallback, Trainer, TrainingArguments

    from bench.models import decoders as zoo
    from bench.models.text import minilm_tokenizer

    tokenizer = minilm_tokenizer()
    config = zoo.config("llama", cfg.size)
    config.vocab_size, config.pad_token_id = len(tokenizer), tokenizer.pad_token_id
    config.bos_token_id = config.eos_token_id = None
    torch.manual_seed(cfg.seed)
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_config(config, attn_implementation="sdpa")
    data = _data(tokenizer, cfg.max_length)
    collator = DataCollatorForLanguageModeling(tokenizer, mlm=False)
    ppl_before = _perplexity(model, data["eval"], collator)
    timer = StepTimer("cpu")
    args = TrainingArguments(output_dir=out_dir, max_steps=cfg.steps,
                             per_device_train_batch_size=cfg.batch_size, learning_rate=cfg.lr, warmup_steps=0,
                             logging_steps=1, report_to="none", save_strategy="no", eval_strategy="no",
                             disable_tqdm=True, dataloader_drop_last=True, seed=cfg.seed, use_cpu=True,
                             dataloader_num_workers=0, **_checkpointing_args(cfg.gradient_checkpointing))
    trainer = Trainer(model=model, args=args, train_dataset=data["train"], data_collator=collator,
                      callbacks=[callback(timer)])
    trainer.remove_callback(PrinterCallback)
    reset_peak_memory("cpu")
    t0 = time.perf_counter()
    trainer.train()
    wall = time.perf_counter() - t0
    ppl_after = _perplexity(model, data["eval"], collator)
    steady = timer.steps[cfg.warmup_steps:] or timer.steps
    tokens_per_step = cfg.batch_size * cfg.max_length * world_size  # an upper bound: padded positions count
    step_ms = [s * 1e3 for s in steady]
    return {"loss_first": timer.losses[0], "loss_last": timer.losses[-1], "ppl_before": ppl_before,
            "ppl_after": ppl_after, "step_ms_p50": statistics.median(step_ms), "step_ms_p95": percentile(step_ms, 95),
            "step_ms_samples": [s * 1e3 for s in timer.steps], "losses": list(timer.losses), "train_runtime_s": wall,
            "samples_per_s": cfg.batch_size * world_size / (statistics.median(steady)), "world_size": world_size,
            "tokens_per_s_upper": tokens_per_step / statistics.median(steady),
            "params_m": sum(p.numel() for p in model.parameters()) / 1e6, "weights": zoo.RANDOM_WEIGHTS,
            "checkpointing_active": bool(getattr(model, "is_gradient_checkpointing", False)),
            **peak_memory_columns("cpu")}


def run_torchrun(cfg: CausalConfig, world_size: int) -> dict:
    """The fine-tune under torchrun with ``world_size`` ranks (Trainer's DDP over gloo), bounded."""
    from bench.trainer.finetune import run_worker

    return run_worker(cfg, world_size, timeout_s=600, task="causal_lm")
