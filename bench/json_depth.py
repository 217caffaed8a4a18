"""What the JSON depth limit costs (apps/core/parsers.check_depth) next to decoding the same body.

The baseline is `json.loads` of each body, measured in the same loop; hostile bodies cannot be decoded (they
would raise RecursionError), so for them the table shows how fast they are refused.
"""

from __future__ import annotations

import contextlib
import functools
import json
import time
from collections.abc import Callable

from bench._report import percentile, ratio, table

ROUNDS = 200


def bodies() -> dict[str, bytes]:
    gpus = [{"index": g, "utilization_pct": 50.0, "memory_used_mib": 1.0, "memory_total_mib": 2.0} for g in range(8)]
    batches = [{"node": f"i-{n}", "sampled_at": "2026-01-01T00:00:00Z", "gpus": gpus} for n in range(360)]
    parameters = {f"p{i}": [{"k": i, "v": [1, 2]}] for i in range(40)}
    return {
        "token create (small)": json.dumps({"name": "ci-pipeline"}).encode(),
        "launch, 40 nested parameters": json.dumps({"team": "vision", "parameters": parameters}).encode(),
        "telemetry, 360 batches x 8 GPUs": json.dumps(batches).encode(),
        "hostile: 10,000 deep": b"[" * 10_000 + b"]" * 10_000,
        "hostile: 10,000 unbalanced": b"[" * 10_000,
    }


def median_us(call: Callable[[], object]) -> float:
    samples = []
    for _ in range(ROUNDS):
        start = time.perf_counter()
        with contextlib.suppress(ValueError):  # the hostile bodies are refused: that is what is timed
            call()
        samples.append((time.perf_counter() - start) * 1e6)
    return percentile(samples, 50)


def run() -> list[str]:
    from django.conf import settings

    from apps.core.parsers import check_depth

    limit = settings.API_MAX_JSON_DEPTH
    rows = []
    for label, raw in bodies().items():
        check = median_us(functools.partial(check_depth, raw, max_depth=limit))
        if label.startswith("hostile"):
            rows.append([label, f"{len(raw):,}", f"{check:.1f}", "-", "refused"])
            continue
        decode = median_us(functools.partial(json.loads, raw))
        rows.append([label, f"{len(raw):,}", f"{check:.1f}", f"{decode:.1f}", ratio(check, decode)])
    return [
        f"median of {ROUNDS} calls each, API_MAX_JSON_DEPTH={limit}",
        *table(["body", "bytes", "depth check µs", "json.loads µs", "check / decode"], rows),
    ]
