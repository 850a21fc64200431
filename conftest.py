# Loads bench's pytest plugin for suites/ and tests/: options, profiles, capability skips,
# environment fingerprint and the report pipeline all live in bench/pytest_plugin.py.
pytest_plugins = ["bench.pytest_plugin"]
