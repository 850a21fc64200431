"""Model zoo: one small module per model, each registered in bench.registry."""
