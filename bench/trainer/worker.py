"""Trainer under torchrun, as the seed chapter's distributed-training section does:

    torchrun --standalone --nproc-per-node 2 -m bench.trainer.worker --config '{"steps": 20}' --out r.json
    torchrun --standalone --nproc-per-node 2 -m bench.trainer.worker --task causal_lm --config '{}' --out r.json

Trainer sets up DistributedDataParallel from torchrun's environment (gloo on CPU, nccl on
CUDA); global rank 0 writes the metrics. Step times are rank 0's: DDP synchronises every
step, so they are the slowest rank's to within the all-reduce.
"""
from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

import torch
from torch.distributed.elastic.multiprocessing.errors import record

from bench.core.files import atomic_write_json
from bench.core.launch import threads_per_rank


@record
def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--task", choices=("finetune", "causal_lm"), default="finetune",
                   help="finetune: MiniLM classification (TrainerConfig); causal_lm: the zoo's Llama (CausalConfig)")
    p.add_argument("--config", default="{}", help="the task's config fields as JSON")
    p.add_argument("--out", required=True)
    a = p.parse_args(argv)
    world = int(os.environ.get("WORLD_SIZE", 1))
    threads = threads_per_rank()
    torch.set_num_threads(threads)
    if a.task == "causal_lm":
        from bench.trainer.causal_lm import CausalConfig, run

        result = run(CausalConfig(**json.loads(a.config)), world_size=world)
    else:
        from bench.trainer.finetune import TrainerConfig, run

        result = run(TrainerConfig(**json.loads(a.config)), world_size=world)
    result["threads_per_rank"] = threads
    if int(os.environ.get("RANK", 0)) == 0:
        atomic_write_json(Path(a.out), result)


if __name__ == "__main__":
    main()
