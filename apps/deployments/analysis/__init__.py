"""Judging a rollout step, with no Django and no I/O: the statistics (baseline comparisons, sequential A/B tests),
Argo-Rollouts-style metric conditions and limits, and the SLO burn-rate check."""
