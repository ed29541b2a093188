"""Benchmarks: side-by-side comparisons printed as rates and ratios (never timed tests)."""
