"""Evaluation of predictive networks: metrics, corruptions and robustness benchmarks."""
