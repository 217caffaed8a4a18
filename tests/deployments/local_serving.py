"""Helpers for tests and benches on the local target: the demo model written by the serving venv, a quick analysis
and plan, and (re-exported from apps/deployments/predictions.py) the traffic generator."""

from __future__ import annotations

import subprocess
from pathlib import Path

from django.conf import settings

from apps.deployments.predictions import Traffic, infer_body, predict

__all__ = ["QUICK_ANALYSIS", "QUICK_STEPS", "Traffic", "infer_body", "predict", "write_demo_model"]

ROOT = Path(__file__).resolve().parents[2]
# A quick analysis for rollouts under test: one error-rate measurement 2 s after each step's weight is set, against
# the SLO and the stable version; no post-promotion watch. And a quick canary: 20% -> 50% -> 100%, no bake.
QUICK_ANALYSIS = {
    "checks": [
        {
            "name": "error-rate",
            "metric": "error_rate",
            "interval_seconds": 2,
            "count": 1,
            "success": {"op": "<=", "threshold": 0.05},
            "baseline": {"kind": "two_proportion", "alpha": 0.05, "min_samples": 10},
        }
    ],
    "post_promotion": {"seconds": 0},
}
QUICK_STEPS = [{"weight": 20, "bake_seconds": 0}, {"weight": 50, "bake_seconds": 0}, {"weight": 100}]
TRAINER = ROOT / "apps" / "deployments" / "serving" / "train_demo_model.py"


def write_demo_model(path: Path, regularization: float = 1.0) -> Path:
    """The demo iris model, written by the serving venv's scikit-learn (the one the model servers load)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    subprocess.run(
        [settings.SERVING_PYTHON, str(TRAINER), str(path), str(regularization)], check=True, capture_output=True
    )
    return path
