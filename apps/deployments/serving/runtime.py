"""The MLServer runtime of the local target: scikit-learn's, plus fault injection for rehearsing a bad release.

`fail_rate` (a model-settings `parameters.extra` value, from the version's serving parameters) makes that share
of requests fail with a 500, deterministically (every k-th of each 1/fail_rate), so a canary of a "bad version"
is rolled back in tests, the bench and the demo exactly the same way each time. `extra_latency_ms` adds a delay."""

from __future__ import annotations

import asyncio
from typing import Any

from mlserver.codecs import NumpyCodec  # noqa: F401 - re-exported for callers building payloads
from mlserver.errors import MLServerError
from mlserver.types import InferenceRequest, InferenceResponse
from mlserver_sklearn import SKLearnModel


class InjectedFault(MLServerError):  # type: ignore[misc]
    def __init__(self, message: str) -> None:
        super().__init__(message, status_code=500)


class SKLearnWithFaults(SKLearnModel):  # type: ignore[misc]
    async def load(self) -> bool:
        extra: dict[str, Any] = dict(getattr(self.settings.parameters, "extra", None) or {})
        self._fail_rate = float(extra.get("fail_rate", 0.0))
        self._extra_latency = float(extra.get("extra_latency_ms", 0.0)) / 1000.0
        self._served = 0
        self._failed = 0
        return bool(await super().load())

    async def predict(self, payload: InferenceRequest) -> InferenceResponse:
        self._served += 1
        if self._extra_latency:
            await asyncio.sleep(self._extra_latency)
        if self._fail_rate > 0 and self._failed < int(self._served * self._fail_rate):
            self._failed += 1
            raise InjectedFault(f"injected fault ({self._fail_rate:.0%} of requests fail)")
        return await super().predict(payload)
