"""Decoder LLM generation: a zoo of real transformers decoder architectures with seeded random
weights, ``generate()`` timed per token with its KV cache, and every mode (static cache,
torch.compile, torch.export, attention implementations) proven to produce eager's tokens
before it is timed."""
