"""The benchmarks behind `benchmark.py`, one module per sub-command."""
