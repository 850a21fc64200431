"""Decoders as they are served: load (Poisson arrivals and bursts, continuous against static
batching, goodput under latency targets) and long context (a binding sliding window)."""
