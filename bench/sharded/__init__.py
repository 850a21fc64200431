"""Sharded training of a decoder: one process vs DDP vs FSDP2, with and without activation
checkpointing, each proven equal to one process on the whole batch before it is timed."""
