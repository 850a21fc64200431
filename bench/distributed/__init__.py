"""DistributedDataParallel worker and launcher (torch.distributed.run, i.e. torchrun)."""
