"""Adoption KPIs about people and teams: weekly and monthly active users (the audit trail and sign-ins), active
teams (launches and runs), teams onboarded (a first workspace) and time to a newcomer's first workspace."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from datetime import datetime, timedelta

from django.db.models import Min, OuterRef, Q, QuerySet, Subquery

from apps.accounts.models import Membership, Team
from apps.audit.models import AuditEvent
from apps.dashboards.registry import Area, Kpi, Measurement, Period, Scope, Target, Unit, register
from apps.dashboards.stats import percentile, share
from apps.runs.models import Run, Workspace
from apps.training.models import TrainingJob

NO_TEAMS = "no data yet: no team existed by the end of this period"
NO_FIRST_WORKSPACES = "no data yet: nobody created their first workspace in this period"


# --- Active users -----------------------------------------------------------------------------------------------


class _ActiveUsers(Kpi):
    """Base of WAU/MAU: distinct people who did something Paved audits (any event with an actor: a sign-in, a
    launch, an approval...) in the `days` days ending at the period's end. A team counts the actors of its own
    events plus its members' team-less events (sign-ins and other personal actions carry no team)."""

    area = Area.ADOPTION
    unit = Unit.COUNT
    source = "audit trail (apps/audit): every audited action, sign-ins (auth.login) included"
    dimensions = ("team",)
    days: int

    def _events(self, period: Period) -> QuerySet[AuditEvent]:
        return AuditEvent.objects.filter(
            actor__isnull=False, created_at__gte=period.end - timedelta(days=self.days), created_at__lt=period.end
        )

    def _pairs(self, period: Period, team_ids: list[int]) -> dict[int, set[int]]:
        """team id -> the active user ids, in two queries whatever the number of teams."""
        events = self._events(period)
        found: dict[int, set[int]] = defaultdict(set)
        own = events.filter(team_id__in=team_ids).values_list("team_id", "actor_id").distinct().order_by()
        teamless = events.filter(team__isnull=True).values("actor_id")
        members = Membership.objects.filter(team_id__in=team_ids, user_id__in=teamless).values_list(
            "team_id", "user_id"
        )
        for team_id, user_id in [*own, *members]:
            found[team_id].add(user_id)
        return found

    def measure(self, *, period: Period, scope: Scope) -> Measurement:
        if scope.teams is None:
            count = self._events(period).values("actor_id").distinct().count()
            return Measurement(value=float(count), sample=count)
        users = set().union(*self._pairs(period, sorted(scope.teams)).values())
        return Measurement(value=float(len(users)), sample=len(users))

    def by_team(self, *, period: Period, team_ids: Iterable[int]) -> dict[int, Measurement]:
        wanted = list(team_ids)
        found = self._pairs(period, wanted)
        return {
            team_id: Measurement(value=float(len(found[team_id])), sample=len(found[team_id])) for team_id in wanted
        }


@register
class WeeklyActiveUsers(_ActiveUsers):
    """Distinct users with at least one audited action (a sign-in, a launch, an approval... any audit event with
    an actor) in the 7 days ending at the period's end, whatever the period's length (so each sparkline point is
    the WAU of the week before it). For a team: actors of the team's events plus its members' team-less events
    (sign-ins carry no team)."""

    key = "weekly_active_users"
    name = "Weekly active users"
    days = 7


@register
class MonthlyActiveUsers(_ActiveUsers):
    """Distinct users with at least one audited action (a sign-in, a launch, an approval... any audit event with
    an actor) in the 30 days ending at the period's end, whatever the period's length. For a team: actors of the
    team's events plus its members' team-less events (sign-ins carry no team)."""

    key = "monthly_active_users"
    name = "Monthly active users"
    days = 30


# --- Teams --------------------------------------------------------------------------------------------------------


def _active_team_ids(period: Period, team_ids: list[int] | None) -> set[int]:
    """Teams with a Terraform run queued (every workspace launch queues one) or a training job submitted in the
    period: two queries."""
    runs = Run.objects.filter(created_at__gte=period.start, created_at__lt=period.end)
    jobs = TrainingJob.objects.filter(submitted_at__gte=period.start, submitted_at__lt=period.end)
    if team_ids is not None:
        runs, jobs = runs.filter(team_id__in=team_ids), jobs.filter(team_id__in=team_ids)
    return {*runs.values_list("team_id", flat=True).distinct().order_by(),
            *jobs.values_list("team_id", flat=True).distinct().order_by()}  # fmt: skip


@register
class ActiveTeams(Kpi):
    """Teams with at least one launch or run in the period: a Terraform run queued (a workspace launch queues its
    first one; applies, destroys and drift checks count too) or a training job submitted (from a template, a
    schedule, a trigger or the API). Per team: 1 when active, else 0."""

    key = "active_teams"
    name = "Active teams"
    area = Area.ADOPTION
    unit = Unit.COUNT
    source = "runs (apps/runs), training jobs (apps/training)"
    dimensions = ("team",)

    def measure(self, *, period: Period, scope: Scope) -> Measurement:
        found = _active_team_ids(period, None if scope.teams is None else sorted(scope.teams))
        return Measurement(value=float(len(found)), sample=len(found))

    def by_team(self, *, period: Period, team_ids: Iterable[int]) -> dict[int, Measurement]:
        wanted = list(team_ids)
        found = _active_team_ids(period, wanted)
        return {team_id: Measurement(value=float(team_id in found), sample=int(team_id in found)) for team_id in wanted}


@register
class TeamsOnboarded(Kpi):
    """Teams that had created at least one workspace (any status, gone ones included) by the period's end / the
    teams that existed by then, in percent. Per team: 100 once it has a workspace, else 0."""

    key = "teams_onboarded"
    name = "Teams onboarded"
    area = Area.ADOPTION
    unit = Unit.PERCENT
    source = "teams (apps/accounts), workspaces (apps/runs)"
    target = Target(green=70, amber=50, note="seed: platform adoption 70%+ on the paved road")
    dimensions = ("team",)

    def _onboarded(self, period: Period, teams: QuerySet[Team]) -> tuple[list[int], set[int]]:
        existing = list(teams.filter(created_at__lt=period.end).values_list("pk", flat=True))
        onboarded = set(
            Workspace.objects.filter(team_id__in=existing, created_at__lt=period.end)
            .values_list("team_id", flat=True)
            .distinct()
            .order_by()
        )
        return existing, onboarded

    def measure(self, *, period: Period, scope: Scope) -> Measurement:
        existing, onboarded = self._onboarded(period, scope.filter(Team.objects.all(), field="pk"))
        if not existing:
            return Measurement.none(NO_TEAMS)
        return Measurement(value=share(len(onboarded), len(existing)), sample=len(existing))

    def by_team(self, *, period: Period, team_ids: Iterable[int]) -> dict[int, Measurement]:
        wanted = list(team_ids)
        existing, onboarded = self._onboarded(period, Team.objects.filter(pk__in=wanted))
        return {
            team_id: Measurement(value=100.0 if team_id in onboarded else 0.0, sample=1)
            if team_id in existing
            else Measurement.none(NO_TEAMS)
            for team_id in wanted
        }


@register
class TimeToFirstWorkspaceP50(Kpi):
    """Median hours from a person joining to their first workspace, over the people whose first workspace was
    created in the period (they may have joined earlier). Platform-wide: the account's date_joined to the first
    workspace they created in any team; for a team: the membership's creation to their first workspace in that
    team (someone who launches into a team they are no member of, e.g. a platform admin, is left out)."""

    key = "time_to_first_workspace_p50"
    name = "Time to first workspace P50"
    area = Area.ADOPTION
    unit = Unit.HOURS
    source = "memberships and users (apps/accounts), workspaces (apps/runs)"
    dimensions = ("team",)

    @staticmethod
    def _hours(joined: datetime | None, first: datetime) -> float | None:
        return None if joined is None else max(0.0, (first - joined).total_seconds() / 3600)

    def _platform(self, period: Period) -> list[float]:
        firsts = (
            Workspace.objects.values("created_by_id")
            .annotate(first=Min("created_at"), joined=Min("created_by__date_joined"))
            .filter(first__gte=period.start, first__lt=period.end)
            .order_by()
        )
        return [hours for row in firsts if (hours := self._hours(row["joined"], row["first"])) is not None]

    def _per_team(self, period: Period, team_ids: list[int]) -> dict[int, list[float]]:
        """team id -> hours, one grouped query (the membership's creation as a subquery)."""
        joined = Membership.objects.filter(team_id=OuterRef("team_id"), user_id=OuterRef("created_by_id"))
        firsts = (
            Workspace.objects.filter(team_id__in=team_ids)
            .values("team_id", "created_by_id")
            .annotate(first=Min("created_at"), joined=Subquery(joined.values("created_at")[:1]))
            .filter(Q(first__gte=period.start) & Q(first__lt=period.end), joined__isnull=False)
            .order_by()
        )
        found: dict[int, list[float]] = defaultdict(list)
        for row in firsts:
            hours = self._hours(row["joined"], row["first"])
            if hours is not None:
                found[row["team_id"]].append(hours)
        return found

    def measure(self, *, period: Period, scope: Scope) -> Measurement:
        if scope.teams is None:
            hours = self._platform(period)
        else:
            hours = [value for values in self._per_team(period, sorted(scope.teams)).values() for value in values]
        if not hours:
            return Measurement.none(NO_FIRST_WORKSPACES)
        return Measurement(value=percentile(hours, 50), sample=len(hours))

    def by_team(self, *, period: Period, team_ids: Iterable[int]) -> dict[int, Measurement]:
        wanted = list(team_ids)
        found = self._per_team(period, wanted)
        return {
            team_id: Measurement(value=percentile(found[team_id], 50), sample=len(found[team_id]))
            if found.get(team_id)
            else Measurement.none(NO_FIRST_WORKSPACES)
            for team_id in wanted
        }
