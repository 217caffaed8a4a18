"""Paved benchmarks: `make bench` (python -m bench). They print ratios against a baseline measured in the same run."""
