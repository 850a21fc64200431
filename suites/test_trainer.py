"""Hugging Face Trainer fine-tuning, timed from inside the run -> trainer.csv."""
from bench.core.profiles import cases_from
from bench.trainer import scenario


@cases_from(scenario.cases)
def test_trainer(c, bench_row, benchmark, bench_session):
    scenario.run_case(c, benchmark, bench_row, bench_session)
