"""torch-hf-bench: correctness-first benchmarks for PyTorch and Hugging Face Transformers."""

__version__ = "0.1.0"
