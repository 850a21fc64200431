"""Decoder serving: requests under load (Poisson arrivals and a burst, continuous against static
batching) and at long context (a binding sliding window), every request's tokens proven equal
to eager's first -> serving.csv."""
from bench.core.profiles import cases_from
from bench.serving import scenario


@cases_from(scenario.cases)
def test_serving(c, bench_row, benchmark, bench_session):
    scenario.run_case(c, benchmark, bench_row, bench_session)
