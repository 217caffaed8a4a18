"""The endpoint SLO contract, checked once (API, form, services, demo): an availability objective in percent of
requests and a latency objective in milliseconds. A request is good when it is not answered 5xx and not slower
than the latency objective; the availability objective is the share of good requests promised. An endpoint
declares both or neither (neither: no SLO, and the SLO KPIs leave it out)."""

from __future__ import annotations

from dataclasses import dataclass

from apps.deployments.errors import InvalidDeployment

DEFAULT_AVAILABILITY_PERCENT = 99.5  # the seed table's SLO attainment floor
DEFAULT_LATENCY_MS = 500  # the rollout gates' default p95 latency objective (analysis/spec.py), in ms
MIN_AVAILABILITY_PERCENT = 50.0
MAX_AVAILABILITY_PERCENT = 99.999  # 100% leaves no error budget to measure against
MAX_LATENCY_MS = 600_000


@dataclass(frozen=True)
class Slo:
    availability_percent: float
    latency_ms: int

    @property
    def budget_share(self) -> float:
        """The share of requests allowed to be bad (the error budget as a fraction of requests)."""
        return 1 - self.availability_percent / 100


def parse_slo(*, availability_percent: object, latency_ms: object) -> Slo | None:
    """The one validator of an endpoint's SLO: both None is "no SLO", else both must be in bounds."""
    if availability_percent is None and latency_ms is None:
        return None
    both = "an SLO declares both objectives, or neither"
    if (
        isinstance(availability_percent, bool)
        or not isinstance(availability_percent, int | float)
        or not MIN_AVAILABILITY_PERCENT <= availability_percent <= MAX_AVAILABILITY_PERCENT
    ):
        raise InvalidDeployment(
            f"The availability objective is a percentage from {MIN_AVAILABILITY_PERCENT:g} to "
            f"{MAX_AVAILABILITY_PERCENT:g} ({both}).",
            field="slo_availability_percent",
        )
    if isinstance(latency_ms, bool) or not isinstance(latency_ms, int) or not 1 <= latency_ms <= MAX_LATENCY_MS:
        raise InvalidDeployment(
            f"The latency objective is a whole number of milliseconds from 1 to {MAX_LATENCY_MS} ({both}).",
            field="slo_latency_ms",
        )
    return Slo(availability_percent=float(availability_percent), latency_ms=latency_ms)
