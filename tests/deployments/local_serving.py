"""Helpers for tests and benches on the local target: the demo model written by the serving venv, and a traffic
generator that sends real V2 inference requests to an endpoint's URL from a background thread, counting answers
per status and, through HAProxy's response header-less design, per variant only via the request log."""

from __future__ import annotations

import json
import subprocess
import threading
import urllib.error
import urllib.request
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from django.conf import settings

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
IRIS_ROW = [5.1, 3.5, 1.4, 0.2]


def write_demo_model(path: Path, regularization: float = 1.0) -> Path:
    """The demo iris model, written by the serving venv's scikit-learn (the one the model servers load)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    subprocess.run(
        [settings.SERVING_PYTHON, str(TRAINER), str(path), str(regularization)], check=True, capture_output=True
    )
    return path


def infer_body(rows: int = 1) -> bytes:
    return json.dumps(
        {"inputs": [{"name": "x", "shape": [rows, 4], "datatype": "FP32", "data": IRIS_ROW * rows}]}
    ).encode()


def predict(url: str, model: str, *, caller: str | None = None, timeout: float = 10) -> tuple[int, bytes]:
    headers = {"Content-Type": "application/json"}
    if caller:
        headers["X-Paved-Caller"] = caller
    request = urllib.request.Request(f"{url}/v2/models/{model}/infer", data=infer_body(), headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=timeout) as answer:
            return int(answer.status), answer.read()
    except urllib.error.HTTPError as exc:
        return int(exc.code), exc.read()


@dataclass
class Traffic:
    """Requests to `url` in a loop (at most `rate` per second) until stopped; `statuses` counts the answers."""

    url: str
    model: str
    rate: float = 200.0
    statuses: Counter[int] = field(default_factory=Counter)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def __enter__(self) -> Traffic:
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=15)

    def _run(self) -> None:
        pause = 1.0 / self.rate
        while not self._stop.is_set():
            try:
                status, _ = predict(self.url, self.model, timeout=5)
            except OSError:
                status = 0  # refused or reset: counted, never raised in the thread
            self.statuses[status] += 1
            self._stop.wait(pause)
