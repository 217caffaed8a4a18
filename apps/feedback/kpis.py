"""Satisfaction KPIs (the seed blueprint's table): CSAT from the launch survey, its response rate, and how fresh
the catalog's documentation is."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, timedelta

from django.conf import settings
from django.db.models import Avg, Count, Exists, OuterRef, Q, QuerySet

from apps.catalog.models import Lifecycle, Template, TemplateVersion
from apps.dashboards.registry import Area, Kpi, Measurement, Period, Scope, Target, Unit, of_teams, register
from apps.dashboards.stats import share
from apps.feedback.models import SurveyPrompt, SurveyResponse

NO_ANSWERS = "no data yet: nobody answered the survey in this period"
NO_PROMPTS = "no data yet: no survey was shown in this period"
NO_TEMPLATES = "no data yet: no published template to read"


@register
class Csat(Kpi):
    """Mean score (1-5) of the launch-survey answers given in the period; the survey asks after a user's 1st and
    every 10th successful launch, about that launch's template."""

    key = "csat"
    name = "CSAT (launch survey)"
    area = Area.SATISFACTION
    unit = Unit.SCORE
    source = "survey responses (apps/feedback)"
    target = Target(green=4.2, amber=3.8, note="seed: CSAT 4.2/5")
    dimensions = ("team", "template")

    def _answered(self, period: Period) -> QuerySet[SurveyResponse]:
        return SurveyResponse.objects.filter(created_at__gte=period.start, created_at__lt=period.end)

    def measure(self, *, period: Period, scope: Scope) -> Measurement:
        found = scope.filter(self._answered(period)).aggregate(mean=Avg("score"), n=Count("pk"))
        if not found["n"]:
            return Measurement.none(NO_ANSWERS)
        return Measurement(value=float(found["mean"]), sample=found["n"])

    def by_team(self, *, period: Period, team_ids: Iterable[int]) -> dict[int, Measurement]:
        wanted = list(team_ids)
        rows = (
            self._answered(period)
            .filter(team_id__in=wanted)
            .values("team_id")
            .annotate(mean=Avg("score"), n=Count("pk"))
        )
        found = {row["team_id"]: Measurement(value=float(row["mean"]), sample=row["n"]) for row in rows}
        return {team_id: found.get(team_id, Measurement.none(NO_ANSWERS)) for team_id in wanted}


@register
class SurveyResponseRate(Kpi):
    """Survey prompts answered / prompts shown in the period, in percent: a prompt counts in the period it was
    first shown, and as answered if it was answered before the period's end (dismissed or ignored prompts count
    as shown, not answered)."""

    key = "survey_response_rate"
    name = "Survey response rate"
    area = Area.SATISFACTION
    unit = Unit.PERCENT
    source = "survey prompts (apps/feedback)"
    dimensions = ("team", "template")

    # Not a per-day share: whether a prompt counts as answered depends on the period's end. The prompts table
    # is small, so it is counted whole.
    def _counts(self, period: Period, team_ids: list[int] | None) -> dict[int, tuple[int, int]]:
        shown = of_teams(SurveyPrompt.objects.filter(shown_at__gte=period.start, shown_at__lt=period.end), team_ids)
        answered = Q(answered_at__isnull=False, answered_at__lt=period.end)
        rows = shown.values("team_id").annotate(whole=Count("pk"), part=Count("pk", filter=answered)).order_by()
        return {row["team_id"]: (row["whole"], row["part"]) for row in rows}

    def _share(self, whole: int, part: int) -> Measurement:
        return Measurement(value=share(part, whole), sample=whole) if whole else Measurement.none(NO_PROMPTS)

    def measure(self, *, period: Period, scope: Scope) -> Measurement:
        found = self._counts(period, None if scope.teams is None else sorted(scope.teams)).values()
        return self._share(sum(whole for whole, _ in found), sum(part for _, part in found))

    def by_team(self, *, period: Period, team_ids: Iterable[int]) -> dict[int, Measurement]:
        wanted = list(team_ids)
        found = self._counts(period, wanted)
        return {team_id: self._share(*found.get(team_id, (0, 0))) for team_id in wanted}


@register
class DocumentationFreshness(Kpi):
    """Published templates whose page (name, summary, description) was last edited within DOCS_FRESHNESS_DAYS
    (default 180) before the period's end / published templates, in percent. A team reads the templates its
    users can launch (shared with every team, or with that team); the platform reads them all. A template is
    published if a version of it is published now and was by the period's end; one edited after the period's
    end is left out of that period (only its latest edit time is kept, so its state then is not known)."""

    key = "documentation_freshness"
    name = "Documentation freshness"
    area = Area.SATISFACTION
    unit = Unit.PERCENT
    source = "catalog templates (apps/catalog)"
    target = Target(green=80, amber=60, note="seed: 80%+ updated within 6-12 months")
    dimensions = ("team",)

    def _published(self, period: Period) -> QuerySet[Template]:
        published = TemplateVersion.objects.filter(
            template=OuterRef("pk"), lifecycle=Lifecycle.PUBLISHED, published_at__lt=period.end
        )
        return Template.objects.filter(Exists(published), updated_at__lt=period.end)

    @staticmethod
    def _window_start(period: Period) -> datetime:
        return period.end - timedelta(days=settings.DOCS_FRESHNESS_DAYS)

    @staticmethod
    def _measurement(fresh: int, total: int) -> Measurement:
        if not total:
            return Measurement.none(NO_TEMPLATES)
        return Measurement(value=share(fresh, total), sample=total)

    def measure(self, *, period: Period, scope: Scope) -> Measurement:
        templates = self._published(period)
        if scope.teams is not None:
            templates = templates.filter(Q(visible_to_all=True) | Q(visible_to__in=scope.teams))
        found = templates.aggregate(
            total=Count("pk", distinct=True),
            fresh=Count("pk", distinct=True, filter=Q(updated_at__gte=self._window_start(period))),
        )
        return self._measurement(found["fresh"], found["total"])

    def by_team(self, *, period: Period, team_ids: Iterable[int]) -> dict[int, Measurement]:
        """Two queries for every team at once: the templates shared with all, and the others grouped by team."""
        wanted = list(team_ids)
        since = self._window_start(period)
        shared = (
            self._published(period)
            .filter(visible_to_all=True)
            .aggregate(total=Count("pk"), fresh=Count("pk", filter=Q(updated_at__gte=since)))
        )
        rows = (
            Template.visible_to.through.objects.filter(
                team_id__in=wanted, template__in=self._published(period).filter(visible_to_all=False)
            )
            .values("team_id")
            .annotate(total=Count("template_id"), fresh=Count("template_id", filter=Q(template__updated_at__gte=since)))
        )
        own = {row["team_id"]: (row["fresh"], row["total"]) for row in rows}
        measured: dict[int, Measurement] = {}
        for team_id in wanted:
            fresh, total = own.get(team_id, (0, 0))
            measured[team_id] = self._measurement(shared["fresh"] + fresh, shared["total"] + total)
        return measured
