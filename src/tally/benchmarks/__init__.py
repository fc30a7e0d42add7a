"""Benchmarks: figures and ratios to naive and raw references, never timed tests."""
