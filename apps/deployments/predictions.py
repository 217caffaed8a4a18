"""V2 inference requests to a model endpoint, for people and programs that want traffic on it: the demo's
`manage.py send_predictions`, the tests and the benchmarks. A canary is judged on live traffic, so an endpoint
nobody calls pauses as inconclusive; this is how the demo calls it."""

from __future__ import annotations

import json
import threading
import urllib.error
import urllib.request
from collections import Counter
from dataclasses import dataclass, field

from apps.deployments.targets.local import CALLER_HEADER

IRIS_ROW = [5.1, 3.5, 1.4, 0.2]  # the demo model's input: one iris flower's four measurements


def infer_body(rows: int = 1) -> bytes:
    return json.dumps(
        {"inputs": [{"name": "x", "shape": [rows, 4], "datatype": "FP32", "data": IRIS_ROW * rows}]}
    ).encode()


def predict(url: str, model: str, *, caller: str | None = None, timeout: float = 10) -> tuple[int, bytes]:
    if not url.startswith(("http://", "https://")):
        raise ValueError(f"An endpoint URL is http(s), not {url[:40]!r}.")
    headers = {"Content-Type": "application/json"}
    if caller:
        headers[CALLER_HEADER] = caller
    request = urllib.request.Request(f"{url}/v2/models/{model}/infer", data=infer_body(), headers=headers)  # noqa: S310 - http(s) checked above
    try:
        with urllib.request.urlopen(request, timeout=timeout) as answer:  # noqa: S310 - http(s) checked above
            return int(answer.status), answer.read()
    except urllib.error.HTTPError as exc:
        return int(exc.code), exc.read()


@dataclass
class Traffic:
    """Requests to `url` in a loop (at most `rate` per second) until stopped; `statuses` counts the answers.
    With `callers`, each request carries the next one's name in the caller header (sticky A/B arms)."""

    url: str
    model: str
    rate: float = 200.0
    callers: tuple[str, ...] = ()
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
        sent = 0
        while not self._stop.is_set():
            caller = self.callers[sent % len(self.callers)] if self.callers else None
            sent += 1
            try:
                status, _ = predict(self.url, self.model, caller=caller, timeout=5)
            except OSError:
                status = 0  # refused or reset: counted, never raised in the thread
            self.statuses[status] += 1
            self._stop.wait(pause)
