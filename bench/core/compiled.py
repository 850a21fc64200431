"""What torch.compile did, from torch._dynamo's counters (``torch/_dynamo/utils.py``,
``counters``): frames compiled, calls captured into graphs, graph breaks, FX-graph cache hits.

Read before and after a compiled call, the differences say whether anything was compiled at
all (a compile that captured no graph ran eager code and is not reported as compiled) and how
many recompiles a new shape caused. One reader for the graph-modes and generation suites.
"""
from __future__ import annotations


def dynamo_counts() -> dict:
    """A snapshot of Dynamo's process-wide counters (they only grow; compare two snapshots)."""
    from torch._dynamo.utils import counters

    return {"graph_break": sum(counters["graph_break"].values()), "ok": counters["frames"]["ok"],
            "cache_hit": counters["inductor"]["fxgraph_cache_hit"],
            "cache_miss": counters["inductor"]["fxgraph_cache_miss"],
            "captured": counters["stats"]["calls_captured"], "unimplemented": dict(counters["unimplemented"])}
