"""The KPI registry: every KPI is one class in its source app's `kpis.py`, registered with `@register`, with its
formula in the docstring, its unit, source, dimensions and default target (the seed blueprint's table), and one
`measure(period=, scope=)` that computes it from Paved's own records. A KPI whose records do not exist yet
answers "no data yet" with the reason, never a made-up number.

Targets have red/amber/green bounds; an installation overrides them in settings:
`KPI_TARGETS = {"training_queue_p95": {"green": 45, "amber": 60}}`."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections import defaultdict
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field, replace
from datetime import date, datetime, timedelta
from enum import StrEnum
from statistics import fmean
from typing import Any, ClassVar, NamedTuple
from zoneinfo import ZoneInfo

from django.conf import settings
from django.db.models import Count, F, Q
from django.db.models.functions import TruncDate
from django.utils import timezone

from apps.dashboards.stats import percentile


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
    split: ClassVar[str] = ""  # the dimension besides the team a value is also broken down by, "" for none

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


class PartialRow(NamedTuple):
    """One day's partial of a `DailyKpi` for one team (None: records of no team) and split value."""

    team_id: int | None
    split: str
    day: date
    data: list[float]


class DailyKpi(Kpi):
    """A KPI whose value over whole days is a merge of per-day partials (counts that add up, durations that
    concatenate). The refresh keeps each day's partials (`KpiDay`) and recomputes only the days that can still
    change, so a window costs a read of its days instead of a pass over its records; `measure` merges the same
    partials straight from the records, so the kept and the live number cannot disagree. Partials are also kept
    by `split`, the KPI's dimension besides the team, which gives the by-template (instance type, endpoint)
    breakdown."""

    # The name its kept days are stored under (`KpiDay.key`): KPIs with the same partials (a P50 and a P95 of the
    # same samples) share one, so the refresh computes and stores them once. Defaults to the key.
    kept_as: ClassVar[str] = ""
    # The most recent days whose partials can still change (records land late, an outcome counts once known):
    # every refresh recomputes them.
    settle_days: ClassVar[int] = 2

    @abstractmethod
    def partials(self, *, period: Period, team_ids: list[int] | None) -> Iterable[PartialRow]:
        """The period's partials, grouped by team, split value and day in the period's time zone (several rows
        for one key are merged); every team's when `team_ids` is None, records of no team included."""

    @abstractmethod
    def merge(self, parts: Iterable[list[float]]) -> list[float] | None:
        """Fold partials into one; None when there are none."""

    @abstractmethod
    def finish(self, merged: list[float] | None, *, period: Period) -> Measurement:
        """The KPI's measurement from the merged partial of a scope over `period`."""

    @property
    def kept_key(self) -> str:
        return self.kept_as or self.key

    def measure(self, *, period: Period, scope: Scope) -> Measurement:
        rows = self.partials(period=period, team_ids=None if scope.teams is None else sorted(scope.teams))
        return self.finish(self.merge(row.data for row in rows), period=period)

    def by_team(self, *, period: Period, team_ids: Iterable[int]) -> dict[int, Measurement]:
        wanted = list(team_ids)
        grouped: dict[int | None, list[list[float]]] = defaultdict(list)
        for row in self.partials(period=period, team_ids=wanted):
            grouped[row.team_id].append(row.data)
        return {team_id: self.finish(self.merge(grouped.get(team_id, [])), period=period) for team_id in wanted}

    def breakdown(self, rows: Iterable[tuple[str, list[float]]], *, period: Period) -> dict[str, float]:
        """The value per split value of (split value, partial) pairs (values with no number are left out)."""
        grouped: dict[str, list[list[float]]] = defaultdict(list)
        for split, data in rows:
            grouped[split].append(data)
        found = {split: self.finish(self.merge(parts), period=period).value for split, parts in grouped.items()}
        return {split: value for split, value in sorted(found.items()) if value is not None}


def of_teams(records: Any, team_ids: list[int] | None, field_name: str = "team") -> Any:
    """The records of those teams (all records, team-less ones included, when None)."""
    return records if team_ids is None else records.filter(**{f"{field_name}__in": team_ids})


def day_of(field_name: str, period: Period) -> TruncDate:
    """The day (in the period's time zone) of a timestamp field, for grouping partials in SQL."""
    return TruncDate(field_name, tzinfo=ZoneInfo(period.tz))


def local_day(moment: datetime, period: Period) -> date:
    return moment.astimezone(ZoneInfo(period.tz)).date()


class SumsKpi(DailyKpi):
    """A `DailyKpi` whose partial is a few counts or amounts that add up (a share's whole and part, a spend)."""

    def merge(self, parts: Iterable[list[float]]) -> list[float] | None:
        total: list[float] | None = None
        for part in parts:
            total = list(part) if total is None else [a + b for a, b in zip(total, part, strict=True)]
        return total

    @staticmethod
    def grouped(records: Any, *, period: Period, when: str, split_field: str, team_ids: list[int] | None,
                **sums: Any) -> Iterator[PartialRow]:  # fmt: skip
        """Partials of a queryset with a `team` foreign key in one grouped query: `sums` are aggregates
        (Count, Sum...) that become the partial in their order; `when` is the timestamp a record counts at,
        `split_field` the field of the split value ("" for none)."""
        records = of_teams(records, team_ids)
        grouping: dict[str, Any] = {"partial_day": day_of(when, period)}
        if split_field:
            grouping["partial_split"] = F(split_field)
        rows = records.annotate(**grouping).values("team_id", *grouping).annotate(**sums).order_by()
        for row in rows:
            yield PartialRow(row["team_id"], str(row.get("partial_split") or ""), row["partial_day"],
                             [float(row[name] or 0) for name in sums])  # fmt: skip


class ShareKpi(SumsKpi):
    """A percentage of counted records (part / whole): subclasses give `partials` through `count_records` and
    the `no_data` reason."""

    unit = Unit.PERCENT
    no_data: ClassVar[str]

    def count_records(self, records: Any, part: Q, *, period: Period, when: str, team_ids: list[int] | None,
                      split_field: str = "") -> Iterator[PartialRow]:  # fmt: skip
        """(whole, part) partials of the records (a queryset with a `team` foreign key) and a Q for the part."""
        return self.grouped(records, period=period, when=when, split_field=split_field, team_ids=team_ids,
                            whole=Count("pk"), part=Count("pk", filter=part))  # fmt: skip

    def finish(self, merged: list[float] | None, *, period: Period) -> Measurement:
        if not merged or not merged[0]:
            return Measurement.none(self.no_data)
        whole, part = merged
        return Measurement(value=100.0 * part / whole, sample=int(whole))


Sample = tuple[int | None, str, datetime, float]  # team id, split value, when it counts, value


class SamplesKpi(DailyKpi):
    """A `DailyKpi` made of one value per record (a duration): subclasses give `samples`; the value is the
    `quantile` percentile of a scope's samples, or their mean when `quantile` is None."""

    quantile: ClassVar[float | None] = None
    no_data: ClassVar[str]

    @abstractmethod
    def samples(self, *, period: Period, team_ids: list[int] | None) -> Iterable[Sample]:
        """(team id, split value, the moment the record counts at, value) per record of the period."""

    def partials(self, *, period: Period, team_ids: list[int] | None) -> Iterable[PartialRow]:
        grouped: dict[tuple[int | None, str, date], list[float]] = defaultdict(list)
        for team_id, split, moment, value in self.samples(period=period, team_ids=team_ids):
            grouped[(team_id, split or "", local_day(moment, period))].append(value)
        return [PartialRow(team_id, split, day, values) for (team_id, split, day), values in grouped.items()]

    def merge(self, parts: Iterable[list[float]]) -> list[float] | None:
        merged: list[float] = []
        found = False
        for part in parts:
            merged.extend(part)
            found = True
        return merged if found else None

    def finish(self, merged: list[float] | None, *, period: Period) -> Measurement:
        if not merged:
            return Measurement.none(self.no_data)
        value = fmean(merged) if self.quantile is None else percentile(merged, self.quantile)
        return Measurement(value=value, sample=len(merged))


_REGISTRY: dict[str, Kpi] = {}


def register(cls: type[Kpi]) -> type[Kpi]:
    """Class decorator: one instance per KPI key (a key registered twice is a bug, so it raises)."""
    missing = [name for name in ("key", "name", "area", "unit", "source") if not hasattr(cls, name)]
    if missing:
        raise TypeError(f"KPI {cls.__name__} does not set {', '.join(missing)}")
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
