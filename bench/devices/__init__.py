"""Device throughput: the model zoo on each device and precision, checked against an fp64
reference, timed, with FLOPs, roofs and memory (``scenario``), and the timing self-check
(``calibration``)."""
