"""Inference benchmarks (pytest-benchmark), parametrized from the harness selection."""
