"""Helpers for tests and benches on the local target: the demo model written by the serving venv, a quick analysis
and plan, and (re-exported from apps/deployments/predictions.py) the traffic generator."""

from __future__ import annotations

import subprocess
from collections import Counter
from pathlib import Path

from django.conf import settings

from apps.deployments.predictions import Traffic, infer_body, predict
from apps.deployments.targets.local import LocalTarget
from tests.waiting import wait_for

__all__ = ["QUICK_ANALYSIS", "QUICK_STEPS", "RequestLog", "Traffic", "infer_body", "predict", "write_demo_model"]

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


class RequestLog:
    """HAProxy's request log as this test sent to it: it counts what it sent and waits until that many lines
    are logged (HAProxy writes a request's line after the client has its answer, so the last few trail), then
    hands back the lines of the latest batch. Counting lines, not comparing clocks: HAProxy stamps a request
    with its own cached clock, which may read a few milliseconds behind this process's."""

    def __init__(self, target: LocalTarget) -> None:
        self.target = target
        self.sent = 0

    def lines(self) -> list[list[str]]:
        return [line.split() for line in self.target.log_path.read_text().splitlines() if line[:1].isdigit()]

    def send(self, url: str, count: int, caller: str | None = None) -> Counter[int]:
        self.sent += count
        return Counter(predict(url, "iris", caller=caller)[0] for _ in range(count))

    def batch(self, count: int) -> list[list[str]]:
        """The lines of the last `count` requests sent, once every request sent is logged."""

        def all_logged() -> list[list[str]] | None:
            found = self.lines()
            return found if len(found) >= self.sent else None

        lines = wait_for(
            all_logged, timeout=5, message=lambda: f"{self.sent} logged requests (saw {len(self.lines())})"
        )
        assert len(lines) == self.sent, (len(lines), self.sent)
        return lines[len(lines) - count :]

    def served_by(self, count: int) -> Counter[str]:
        return Counter(parts[1] for parts in self.batch(count))
