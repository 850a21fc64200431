"""Decoder LLM generation: greedy tokens proven equal to eager's, then generate() timed per
token (time to first token, decode latency, tokens/s, KV cache bytes) -> generation.csv."""
from bench.core.profiles import cases_from
from bench.generation import scenario


@cases_from(scenario.cases)
def test_generation(c, bench_row, benchmark, bench_session):
    scenario.run_case(c, benchmark, bench_row, bench_session)
