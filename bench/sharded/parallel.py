"""How the sharded worker wraps its model: FSDP2 per decoder layer, tensor parallelism of the
layers' projections, and what torch.compile of the layers did. Each is called by
``bench.sharded.worker`` inside a torchrun world (or one process)."""
from __future__ import annotations

import torch

TP_WIDTH = 2  # the tensor-parallel dimension of an FSDP2 + TP mesh: (world / 2, 2), TP within a pair


def mesh_2d(world: int, cuda: bool):
    """The ("dp", "tp") device mesh of FSDP2 + TP (TorchTitan's layout: TP on the inner, faster
    dimension; ranks 2k and 2k + 1 hold one data shard's tensor-parallel halves)."""
    from torch.distributed.device_mesh import init_device_mesh

    if world < 2 * TP_WIDTH or world % TP_WIDTH:
        raise ValueError(f"FSDP2 + TP needs a world of at least {2 * TP_WIDTH} ranks, a multiple of {TP_WIDTH}; "
                         f"got {world}")
    return init_device_mesh("cuda" if cuda else "cpu", (world // TP_WIDTH, TP_WIDTH), mesh_dim_names=("dp", "tp"))


def fully_shard_layers(model, mp: str, offload: bool, world: int, cuda: bool, mesh=None):
    """fully_shard every decoder layer, then the root (FSDP2's documented order); ``mesh``: a
    1-D mesh to shard over (the data-parallel dimension of a 2-D one), else the whole world."""
    from torch.distributed.device_mesh import init_device_mesh
    from torch.distributed.fsdp import fully_shard

    kwargs = {}
    if mp == "bf16":
        from torch.distributed.fsdp import MixedPrecisionPolicy

        kwargs["mp_policy"] = MixedPrecisionPolicy(param_dtype=torch.bfloat16, reduce_dtype=torch.float32)
    if offload:
        if not cuda:
            raise ValueError("--offload moves FSDP2's shards from the GPU to the host: it needs --device cuda")
        from torch.distributed.fsdp import CPUOffloadPolicy

        kwargs["offload_policy"] = CPUOffloadPolicy()
    mesh = mesh if mesh is not None else init_device_mesh("cuda" if cuda else "cpu", (world,))
    for layer in model.model.layers:
        fully_shard(layer, mesh=mesh, **kwargs)
    fully_shard(model, mesh=mesh, **kwargs)
    return model


# Tensor parallelism of a Llama decoder layer, as TorchTitan (torchtitan/models/llama3/infra/parallelize.py) and
# transformers' LlamaConfig.base_model_tp_plan write it (torch.distributed.tensor.parallel,
# https://pytorch.org/docs/stable/distributed.tensor.parallel.html):
# the attention's q/k/v and the MLP's gate/up projections split by output columns (each rank holds its
# heads and its part of the hidden MLP), o_proj and down_proj by input rows, whose partial sums are
# all-reduced. The embeddings, norms and the head stay replicated.
TP_PLAN = {"self_attn.q_proj": "colwise", "self_attn.k_proj": "colwise", "self_attn.v_proj": "colwise",
           "self_attn.o_proj": "rowwise", "mlp.gate_proj": "colwise", "mlp.up_proj": "colwise",
           "mlp.down_proj": "rowwise"}


def tp_unsplit(heads: int, kv_heads: int, mlp_width: int, world: int) -> str | None:
    """Why tensor parallelism cannot split a decoder with these widths over ``world`` ranks
    (each rank must hold whole attention heads, whole key/value heads and an equal MLP part)."""
    for what, n in (("attention heads", heads), ("key/value heads", kv_heads), ("MLP width", mlp_width)):
        if n % world:
            return f"tensor parallelism: the decoder's {n} {what} do not split over {world} ranks"
    return None


def tensor_parallel(model, world: int, cuda: bool, mesh=None):
    """Every decoder layer under ``parallelize_module`` with ``TP_PLAN``; every rank of the
    tensor-parallel group sees its whole batch (tensor parallelism splits the weights, not the
    data). ``mesh``: the 1-D tensor-parallel mesh (of a 2-D one), else the whole world."""
    from torch.distributed.device_mesh import init_device_mesh
    from torch.distributed.tensor.parallel import ColwiseParallel, RowwiseParallel, parallelize_module

    cfg = model.config
    width = mesh.size() if mesh is not None else world
    why = tp_unsplit(cfg.num_attention_heads, cfg.num_key_value_heads, cfg.intermediate_size, width)
    if why:
        raise ValueError(why)
    mesh = mesh if mesh is not None else init_device_mesh("cuda" if cuda else "cpu", (world,))
    styles = {"colwise": ColwiseParallel, "rowwise": RowwiseParallel}
    for layer in model.model.layers:
        parallelize_module(layer, mesh, {name: styles[kind]() for name, kind in TP_PLAN.items()})
    return model


def compiled_stats(before: dict, first: dict, step_s: list[float]) -> dict:
    """What torch.compile of the layers did: the graphs it captured (none: it ran eager code),
    graph breaks, frames compiled again after the first step (recompiles), and the build time
    (the first step over the steady median)."""
    from bench.core.compiled import dynamo_counts

    after = dynamo_counts()
    steady = sorted(step_s[1:])[len(step_s[1:]) // 2] if len(step_s) > 1 else 0.0
    return {"calls_captured": first["captured"] - before["captured"],
            "graph_breaks": after["graph_break"] - before["graph_break"],
            "recompiles": after["ok"] - first["ok"], "build_s": max(0.0, step_s[0] - steady)}
