"""The KPI registry: every KPI is one class in its source app's `kpis.py`, registered with `@register`, with its
formula in the docstring, its unit, source, dimensions and default target (the seed blueprint's table), and one
`measure(period=, scope=)` that computes it from Paved's own records. A KPI whose records do not exist yet
answers "no data yet" with the reason, never a made-up number.

Targets have red/amber/green bounds; an installation overrides them in settings:
`KPI_TARGETS = {"training_queue_p95": {"green": 45, "amber": 60}}`."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any, ClassVar
from zoneinfo import ZoneInfo

from django.conf import settings
from django.db.models import Count
from django.utils import timezone


class Area(StrEnum):
    ADOPTION = "adoption"
    DELIVERY = "delivery"
    SPEND = "spend"
    SATISFACTION = "satisfaction"
    GOVERNANCE = "governance"


class Unit(StrEnum):
    PERCENT = "percent"  # 0-100
    MINUTES = "minutes"
    HOURS = "hours"
    COUNT = "count"
    USD = "usd"
    SCORE = "score"  # 1-5 satisfaction


class Better(StrEnum):
    HIGHER = "higher"
    LOWER = "lower"


class Status(StrEnum):
    GREEN = "green"
    AMBER = "amber"
    RED = "red"
    NONE = "none"  # no target, or no data


@dataclass(frozen=True)
class Target:
    """Green when at least as good as `green`, amber down to `amber`, red beyond (in the KPI's `better`
    direction)."""

    green: float
    amber: float
    better: Better = Better.HIGHER
    note: str = ""  # where the default comes from (the seed's table)

    def status(self, value: float | None) -> Status:
        if value is None:
            return Status.NONE
        if self.better == Better.HIGHER:
            return Status.GREEN if value >= self.green else Status.AMBER if value >= self.amber else Status.RED
        return Status.GREEN if value <= self.green else Status.AMBER if value <= self.amber else Status.RED


@dataclass(frozen=True)
class Period:
    """[start, end) in UTC, with the time zone the days are counted in (a month boundary in Berlin is not UTC's)."""

    start: datetime
    end: datetime
    tz: str = "UTC"

    @classmethod
    def last_days(cls, days: int, *, now: datetime | None = None, tz: str = "UTC") -> Period:
        """The `days` whole days up to and including today, in `tz`."""
        zone = ZoneInfo(tz)
        today = (now or timezone.now()).astimezone(zone).replace(hour=0, minute=0, second=0, microsecond=0)
        end = today + timedelta(days=1)
        return cls(start=(end - timedelta(days=days)), end=end, tz=tz)

    def previous(self) -> Period:
        """The period of the same length just before this one (for the trend)."""
        return Period(start=self.start - (self.end - self.start), end=self.start, tz=self.tz)

    @property
    def days(self) -> float:
        return (self.end - self.start).total_seconds() / 86400


@dataclass(frozen=True)
class Scope:
    """Whose records: `teams` None is the whole platform (platform admins), else those team ids."""

    teams: frozenset[int] | None

    def filter(self, queryset: Any, field: str = "team") -> Any:
        return queryset if self.teams is None else queryset.filter(**{f"{field}__in": self.teams})


@dataclass(frozen=True)
class Measurement:
    value: float | None
    sample: int = 0  # how many records the value is made of (runs, jobs, users...)
    no_data: str = ""  # why there is no value (empty when there is one)
    breakdown: dict[str, float] = field(default_factory=dict)  # by the KPI's first dimension, when computed

    @classmethod
    def none(cls, reason: str) -> Measurement:
        return cls(value=None, no_data=reason)


class Kpi(ABC):
    """Subclasses set the class attributes and implement `measure`; the docstring is the formula users read."""

    key: ClassVar[str]
    name: ClassVar[str]
    area: ClassVar[Area]
    unit: ClassVar[Unit]
    source: ClassVar[str]  # the records it is computed from, e.g. "training jobs (apps/training)"
    target: ClassVar[Target | None] = None
    dimensions: ClassVar[tuple[str, ...]] = ("team",)

    @abstractmethod
    def measure(self, *, period: Period, scope: Scope) -> Measurement:
        """The KPI over `period` for `scope`: a value with its sample, or `Measurement.none(reason)`."""

    def by_team(self, *, period: Period, team_ids: Iterable[int]) -> dict[int, Measurement]:
        """The KPI for each team; a KPI may answer in one grouped query instead (the snapshot refresh calls this
        for every team at once)."""
        return {team_id: self.measure(period=period, scope=Scope(teams=frozenset({team_id}))) for team_id in team_ids}

    @property
    def formula(self) -> str:
        return " ".join((self.__doc__ or "").split())


class ShareKpi(Kpi):
    """A percentage of counted records (part / whole): subclasses give `counts` per team in one grouped query and
    the `no_data` reason; measuring a scope sums its teams' counts, so `measure` and `by_team` cannot disagree."""

    unit = Unit.PERCENT
    no_data: ClassVar[str]

    @abstractmethod
    def counts(self, *, period: Period, team_ids: list[int] | None) -> dict[int, tuple[int, int]]:
        """team id -> (whole, part) for the teams (all teams when None)."""

    @staticmethod
    def count_records(records: Any, part: Any, team_ids: list[int] | None) -> dict[int, tuple[int, int]]:
        """(whole, part) per team of a queryset with a `team` foreign key and a Q for the part, in one query."""
        if team_ids is not None:
            records = records.filter(team_id__in=team_ids)
        rows = records.values("team_id").annotate(whole=Count("pk"), part=Count("pk", filter=part)).order_by()
        return {row["team_id"]: (row["whole"], row["part"]) for row in rows}

    def _share(self, whole: int, part: int) -> Measurement:
        if not whole:
            return Measurement.none(self.no_data)
        return Measurement(value=100.0 * part / whole, sample=whole)

    def measure(self, *, period: Period, scope: Scope) -> Measurement:
        found = self.counts(period=period, team_ids=None if scope.teams is None else sorted(scope.teams)).values()
        return self._share(sum(whole for whole, _ in found), sum(part for _, part in found))

    def by_team(self, *, period: Period, team_ids: Iterable[int]) -> dict[int, Measurement]:
        wanted = list(team_ids)
        found = self.counts(period=period, team_ids=wanted)
        return {team_id: self._share(*found.get(team_id, (0, 0))) for team_id in wanted}


_REGISTRY: dict[str, Kpi] = {}


def register(cls: type[Kpi]) -> type[Kpi]:
    """Class decorator: one instance per KPI key (a key registered twice is a bug, so it raises)."""
    if cls.key in _REGISTRY:
        raise ValueError(f"KPI {cls.key!r} is registered twice")
    _REGISTRY[cls.key] = cls()
    return cls


def all_kpis(*, area: Area | None = None) -> list[Kpi]:
    kpis = sorted(_REGISTRY.values(), key=lambda kpi: (list(Area).index(kpi.area), kpi.key))
    return [kpi for kpi in kpis if area is None or kpi.area == area]


def get_kpi(key: str) -> Kpi | None:
    return _REGISTRY.get(key)


def target_of(kpi: Kpi) -> Target | None:
    """The KPI's target with this installation's override (settings.KPI_TARGETS) applied."""
    override: dict[str, Any] = getattr(settings, "KPI_TARGETS", {}).get(kpi.key, {})
    if kpi.target is None:
        if not override:
            return None
        # No default to take the direction from: durations are better short, anything else high, unless the
        # setting says "better".
        default = Better.LOWER if kpi.unit in (Unit.MINUTES, Unit.HOURS) else Better.HIGHER
        return Target(green=float(override["green"]), amber=float(override["amber"]),
                      better=Better(override.get("better", default)), note="installation setting")  # fmt: skip
    if not override:
        return kpi.target
    return replace(
        kpi.target,
        green=float(override.get("green", kpi.target.green)),
        amber=float(override.get("amber", kpi.target.amber)),
        note="installation setting",
    )


def keys(kpis: Iterable[Kpi]) -> list[str]:
    return [kpi.key for kpi in kpis]
