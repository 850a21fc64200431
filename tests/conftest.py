import pytest

pytest_plugins = ["pytester"]

CONFTEST = 'pytest_plugins = ["bench.pytest_plugin"]\n'


@pytest.fixture
def bench_pytester(pytester):
    """A pytester project that loads bench's plugin and writes reports under its tmp dir."""
    pytester.makeconftest(CONFTEST)
    return pytester
