"""The analysis contract, checked once: a deployment's `analysis` JSON becomes an `AnalysisSpec`, or an
`InvalidDeployment` naming the key at fault. Shape (every key optional; `{}` gives the defaults below,
`{"checks": []}` no analysis at all):

    {"checks": [{"name": "error-rate", "metric": "error_rate", "percentile": null, "interval_seconds": 10,
                 "count": 3, "success": {"op": "<=", "threshold": 0.05}, "failure": null,
                 "failure_limit": 0, "inconclusive_limit": 1,
                 "baseline": {"kind": "two_proportion", "alpha": 0.05, "min_samples": 50}}],
     "post_promotion": {"seconds": 120, "slo_target": 0.99, "burn_rate_factor": 14.4,
                        "long_seconds": 3600, "short_seconds": 300, "interval_seconds": 10},
     "monitors": [{"kind": "drift", "name": "feature-drift", "threshold": 0.2}]}

The semantics follow Argo Rollouts' AnalysisTemplate run in the background of each canary step: each check is
measured `count` times, `interval_seconds` apart, from the moment the step's weight is set (during its bake, and
after it if the bake is shorter); it fails once more than `failure_limit` measurements failed (at once, even
mid-bake) and is inconclusive once more than `inconclusive_limit` were inconclusive or errored. A step passes
when its bake is over and every check succeeded.

`monitors` declare what watches the version once it serves (a drift or a quality monitor, run by the team's own
tooling): Paved does not run them, it records the declaration, which the drift detection coverage KPI counts."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from apps.deployments.errors import InvalidDeployment
from apps.deployments.metrics.base import MetricName

Op = Literal["<", "<=", ">", ">="]
OPS: tuple[Op, ...] = ("<", "<=", ">", ">=")
BaselineKind = Literal["mann_whitney", "two_proportion"]

DEFAULT_INTERVAL_SECONDS = 10
DEFAULT_COUNT = 3
DEFAULT_FAILURE_LIMIT = 0
DEFAULT_INCONCLUSIVE_LIMIT = 1
DEFAULT_ALPHA = 0.05
DEFAULT_MIN_SAMPLES = 50
DEFAULT_MAX_ERROR_RATE = 0.05
DEFAULT_MAX_P95_SECONDS = 0.5
DEFAULT_POST_PROMOTION_SECONDS = 120
DEFAULT_SLO_TARGET = 0.99
DEFAULT_BURN_RATE_FACTOR = 14.4  # Google SRE workbook: 2% of a 30-day error budget in one hour
DEFAULT_BURN_RATE_LONG_SECONDS = 3600
DEFAULT_BURN_RATE_SHORT_SECONDS = 300
CHECK_KEYS = frozenset(
    {"name", "metric", "percentile", "interval_seconds", "count", "success", "failure", "failure_limit",
     "inconclusive_limit", "baseline"}
)  # fmt: skip
POST_PROMOTION_KEYS = frozenset(
    {"seconds", "slo_target", "burn_rate_factor", "long_seconds", "short_seconds", "interval_seconds"}
)
MAX_CHECKS = 10
MONITOR_KINDS = ("drift", "quality")
MONITOR_KEYS = frozenset({"kind", "name", "threshold"})
MAX_MONITORS = 10


@dataclass(frozen=True)
class Condition:
    op: Op
    threshold: float

    def holds(self, value: float) -> bool:
        return {
            "<": value < self.threshold,
            "<=": value <= self.threshold,
            ">": value > self.threshold,
            ">=": value >= self.threshold,
        }[self.op]

    def __str__(self) -> str:
        return f"{self.op} {self.threshold:g}"


@dataclass(frozen=True)
class BaselineTest:
    kind: BaselineKind
    alpha: float = DEFAULT_ALPHA
    min_samples: int = DEFAULT_MIN_SAMPLES


@dataclass(frozen=True)
class MetricCheck:
    name: str
    metric: MetricName
    percentile: float | None = None
    interval_seconds: int = DEFAULT_INTERVAL_SECONDS
    count: int = DEFAULT_COUNT
    success: Condition | None = None
    failure: Condition | None = None
    failure_limit: int = DEFAULT_FAILURE_LIMIT
    inconclusive_limit: int = DEFAULT_INCONCLUSIVE_LIMIT
    baseline: BaselineTest | None = None


@dataclass(frozen=True)
class Monitor:
    kind: str  # one of MONITOR_KINDS
    name: str
    threshold: float | None = None


@dataclass(frozen=True)
class AnalysisSpec:
    checks: tuple[MetricCheck, ...]
    monitors: tuple[Monitor, ...] = ()
    post_promotion_seconds: int = DEFAULT_POST_PROMOTION_SECONDS
    slo_target: float = DEFAULT_SLO_TARGET
    burn_rate_factor: float = DEFAULT_BURN_RATE_FACTOR
    burn_rate_long_seconds: int = DEFAULT_BURN_RATE_LONG_SECONDS
    burn_rate_short_seconds: int = DEFAULT_BURN_RATE_SHORT_SECONDS
    burn_rate_interval_seconds: int = DEFAULT_INTERVAL_SECONDS


DEFAULT_CHECKS = (
    MetricCheck(
        name="error-rate",
        metric=MetricName.ERROR_RATE,
        success=Condition("<=", DEFAULT_MAX_ERROR_RATE),
        baseline=BaselineTest(kind="two_proportion"),
    ),
    MetricCheck(
        name="latency-p95",
        metric=MetricName.LATENCY,
        percentile=95.0,
        success=Condition("<=", DEFAULT_MAX_P95_SECONDS),
        baseline=BaselineTest(kind="mann_whitney"),
    ),
)


class _Reader:
    """Typed, bounded reads of one JSON object, each failure naming its key."""

    def __init__(self, raw: Any, field: str) -> None:
        if not isinstance(raw, Mapping):
            raise InvalidDeployment("Give an object here.", field=field)
        self.raw, self.field = raw, field

    def unknown(self, allowed: frozenset[str]) -> None:
        extra = sorted(set(self.raw) - allowed)
        if extra:
            raise InvalidDeployment(
                f"Unknown key {extra[0]!r}; allowed: {', '.join(sorted(allowed))}.", field=f"{self.field}.{extra[0]}"
            )

    def integer(self, key: str, default: int, low: int, high: int) -> int:
        value = self.raw.get(key, default)
        if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
            raise InvalidDeployment(f"A whole number from {low} to {high}.", field=f"{self.field}.{key}")
        return int(value)

    def number(self, key: str, default: float, low: float, high: float, *, open_low: bool = False) -> float:
        value = self.raw.get(key, default)
        ok = isinstance(value, int | float) and not isinstance(value, bool)
        if not ok or not (low < value if open_low else low <= value) or value > high:
            bounds = f"above {low:g}" if open_low else f"at least {low:g}"
            raise InvalidDeployment(f"A number {bounds} and at most {high:g}.", field=f"{self.field}.{key}")
        return float(value)


def _condition(raw: Any, field: str) -> Condition | None:
    if raw is None:
        return None
    reader = _Reader(raw, field)
    reader.unknown(frozenset({"op", "threshold"}))
    op = raw.get("op")
    if op not in OPS:
        raise InvalidDeployment(f"op is one of {', '.join(OPS)}.", field=f"{field}.op")
    return Condition(op=op, threshold=reader.number("threshold", 0.0, -1e12, 1e12))


def _baseline(raw: Any, field: str) -> BaselineTest | None:
    if raw is None:
        return None
    reader = _Reader(raw, field)
    reader.unknown(frozenset({"kind", "alpha", "min_samples"}))
    kind = raw.get("kind")
    if kind not in ("mann_whitney", "two_proportion"):
        raise InvalidDeployment("kind is mann_whitney (latency) or two_proportion (error rate).", field=f"{field}.kind")
    alpha = reader.number("alpha", DEFAULT_ALPHA, 0.0, 0.5, open_low=True)
    if alpha >= 0.5:
        raise InvalidDeployment("alpha is below 0.5.", field=f"{field}.alpha")
    return BaselineTest(
        kind=kind, alpha=alpha, min_samples=reader.integer("min_samples", DEFAULT_MIN_SAMPLES, 1, 100_000)
    )


def _check(raw: Any, index: int) -> MetricCheck:
    field = f"analysis.checks[{index}]"
    reader = _Reader(raw, field)
    reader.unknown(CHECK_KEYS)
    name = raw.get("name")
    if not isinstance(name, str) or not 0 < len(name) <= 60:
        raise InvalidDeployment("Each check has a name of 1 to 60 characters.", field=f"{field}.name")
    try:
        metric = MetricName(raw.get("metric"))
    except ValueError as exc:
        raise InvalidDeployment(
            f"metric is one of {', '.join(m.value for m in MetricName)}.", field=f"{field}.metric"
        ) from exc
    percentile = raw.get("percentile")
    if percentile is not None:
        if metric != MetricName.LATENCY:
            raise InvalidDeployment("Only latency takes a percentile.", field=f"{field}.percentile")
        percentile = reader.number("percentile", 95.0, 0.0, 99.999, open_low=True)
    success = _condition(raw.get("success"), f"{field}.success")
    failure = _condition(raw.get("failure"), f"{field}.failure")
    baseline = _baseline(raw.get("baseline"), f"{field}.baseline")
    if success is None and failure is None and baseline is None:
        raise InvalidDeployment("A check needs a success or failure condition, or a baseline test.", field=field)
    if baseline is not None and (baseline.kind == "mann_whitney") != (metric == MetricName.LATENCY):
        raise InvalidDeployment(
            "mann_whitney compares latencies; two_proportion compares error rates.", field=f"{field}.baseline.kind"
        )
    if baseline is not None and baseline.kind == "two_proportion" and metric != MetricName.ERROR_RATE:
        raise InvalidDeployment("two_proportion compares error rates.", field=f"{field}.baseline.kind")
    return MetricCheck(
        name=name,
        metric=metric,
        percentile=percentile,
        interval_seconds=reader.integer("interval_seconds", DEFAULT_INTERVAL_SECONDS, 1, 3600),
        count=reader.integer("count", DEFAULT_COUNT, 1, 100),
        success=success,
        failure=failure,
        failure_limit=reader.integer("failure_limit", DEFAULT_FAILURE_LIMIT, 0, 100),
        inconclusive_limit=reader.integer("inconclusive_limit", DEFAULT_INCONCLUSIVE_LIMIT, 0, 100),
        baseline=baseline,
    )


def _monitor(raw: Any, index: int) -> Monitor:
    field = f"analysis.monitors[{index}]"
    reader = _Reader(raw, field)
    reader.unknown(MONITOR_KEYS)
    kind = raw.get("kind")
    if kind not in MONITOR_KINDS:
        raise InvalidDeployment(f"kind is one of {', '.join(MONITOR_KINDS)}.", field=f"{field}.kind")
    name = raw.get("name", kind)
    if not isinstance(name, str) or not 0 < len(name) <= 60:
        raise InvalidDeployment("A monitor's name is 1 to 60 characters.", field=f"{field}.name")
    threshold = reader.number("threshold", 0.0, 0.0, 1e12) if raw.get("threshold") is not None else None
    return Monitor(kind=kind, name=name, threshold=threshold)


def _monitors(raw: Any) -> tuple[Monitor, ...]:
    if raw is None:
        return ()
    if not isinstance(raw, list) or len(raw) > MAX_MONITORS:
        raise InvalidDeployment(f"monitors is a list of at most {MAX_MONITORS}.", field="analysis.monitors")
    monitors = tuple(_monitor(item, index) for index, item in enumerate(raw))
    if len({monitor.name for monitor in monitors}) != len(monitors):
        raise InvalidDeployment("Monitor names must differ.", field="analysis.monitors")
    return monitors


def parse_analysis(config: Mapping[str, Any]) -> AnalysisSpec:
    """The one validator of a deployment's analysis config (API, form, catalog, engine)."""
    root = _Reader(config, "analysis")
    root.unknown(frozenset({"checks", "post_promotion", "monitors"}))
    if "checks" in config:
        raw_checks = config["checks"]
        if not isinstance(raw_checks, list) or len(raw_checks) > MAX_CHECKS:
            raise InvalidDeployment(f"checks is a list of at most {MAX_CHECKS}.", field="analysis.checks")
        checks = tuple(_check(raw, index) for index, raw in enumerate(raw_checks))
        names = [check.name for check in checks]
        if len(set(names)) != len(names):
            raise InvalidDeployment("Check names must differ.", field="analysis.checks")
    else:
        checks = DEFAULT_CHECKS
    post = _Reader(config.get("post_promotion") or {}, "analysis.post_promotion")
    post.unknown(POST_PROMOTION_KEYS)
    slo = post.number("slo_target", DEFAULT_SLO_TARGET, 0.5, 0.99999, open_low=True)
    long_seconds = post.integer("long_seconds", DEFAULT_BURN_RATE_LONG_SECONDS, 60, 7 * 24 * 3600)
    short_seconds = post.integer("short_seconds", DEFAULT_BURN_RATE_SHORT_SECONDS, 10, 24 * 3600)
    if short_seconds > long_seconds:
        raise InvalidDeployment("short_seconds is at most long_seconds.", field="analysis.post_promotion.short_seconds")
    return AnalysisSpec(
        checks=checks,
        monitors=_monitors(config.get("monitors")),
        post_promotion_seconds=post.integer("seconds", DEFAULT_POST_PROMOTION_SECONDS, 0, 86_400),
        slo_target=slo,
        burn_rate_factor=post.number("burn_rate_factor", DEFAULT_BURN_RATE_FACTOR, 1.0, 1000.0),
        burn_rate_long_seconds=long_seconds,
        burn_rate_short_seconds=short_seconds,
        burn_rate_interval_seconds=post.integer("interval_seconds", DEFAULT_INTERVAL_SECONDS, 1, 3600),
    )
