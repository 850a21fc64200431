"""Hugging Face Trainer fine-tuning: the run and its metrics (``finetune``), the step timer
and token counter (``steps``), data loading (``data``) and the torchrun worker (``worker``)."""
