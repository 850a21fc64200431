"""Experiments that run the suites in fresh processes: the A/B runner (``python -m bench ab``)."""
