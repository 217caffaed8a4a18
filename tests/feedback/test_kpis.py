"""The satisfaction KPIs on known histories: CSAT and the survey response rate (team scope, the period's
boundaries, by_team agreeing with measure) and documentation freshness (templates edited inside and outside the
DOCS_FRESHNESS_DAYS window, drafts, templates shared with one team, edits after the period's end)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import pytest

from apps.accounts.models import Team
from apps.catalog.models import Lifecycle, Template
from apps.dashboards.registry import Period, Scope, get_kpi
from apps.feedback.models import SurveyPrompt, SurveyResponse
from tests.factories import (
    SurveyPromptFactory,
    SurveyResponseFactory,
    TemplateFactory,
    TemplateVersionFactory,
    WorkspaceFactory,
)

pytestmark = pytest.mark.django_db

PERIOD = Period(
    start=datetime.fromisoformat("2026-03-01T00:00:00+00:00"), end=datetime.fromisoformat("2026-04-01T00:00:00+00:00")
)
MARCH = datetime.fromisoformat("2026-03-15T10:00:00+00:00")
JUST_BEFORE = datetime.fromisoformat("2026-02-28T23:59:59+00:00")
AT_END = PERIOD.end


def at(text: str) -> datetime:
    return datetime.fromisoformat(f"{text}+00:00")


def measure(key: str, teams: list[Team] | None) -> Any:
    kpi = get_kpi(key)
    assert kpi is not None
    return kpi.measure(period=PERIOD, scope=Scope(teams=None if teams is None else frozenset(t.pk for t in teams)))


def by_team(key: str, teams: list[Team]) -> Any:
    kpi = get_kpi(key)
    assert kpi is not None
    return kpi.by_team(period=PERIOD, team_ids=[t.pk for t in teams])


def answer(team: Team, user: Any, score: int, when: datetime) -> SurveyResponse:
    response = SurveyResponseFactory(prompt__workspace=WorkspaceFactory(team=team, created_by=user), score=score)
    SurveyResponse.objects.filter(pk=response.pk).update(created_at=when)
    return response


def shown(
    team: Team, user: Any, when: datetime, *, answered: datetime | None = None, dismissed: bool = False
) -> SurveyPrompt:
    return SurveyPromptFactory(
        workspace=WorkspaceFactory(team=team, created_by=user), shown_at=when, answered_at=answered,
        dismissed_at=when if dismissed else None,
    )  # fmt: skip


def test_the_kpis_are_registered() -> None:
    for key in ("csat", "survey_response_rate", "documentation_freshness"):
        assert get_kpi(key) is not None, key
    csat = get_kpi("csat")
    assert csat is not None
    assert csat.target is not None
    assert (csat.target.green, csat.target.amber, csat.dimensions) == (4.2, 3.8, ("team", "template"))


def test_csat_is_the_mean_score_of_the_answers_given_in_the_period(
    vision: Team, nlp: Team, alice: Any, bob: Any, mark: Any
) -> None:
    for score in (5, 4, 4, 2):
        answer(vision, alice, score, MARCH)
    answer(vision, alice, 1, JUST_BEFORE)  # February
    answer(vision, alice, 1, AT_END)  # April 1st 00:00 is the next period
    answer(nlp, bob, 3, MARCH)

    mine = measure("csat", [vision])
    assert (mine.value, mine.sample) == (3.75, 4)
    assert measure("csat", [nlp]).value == 3.0
    platform = measure("csat", None)
    assert (platform.value, platform.sample) == (3.6, 5)
    assert measure("csat", [vision, nlp]).value == 3.6  # mark's two teams
    grouped = by_team("csat", [vision, nlp])
    assert (grouped[vision.pk].value, grouped[vision.pk].sample, grouped[nlp.pk].value) == (3.75, 4, 3.0)


def test_csat_without_answers_says_why(vision: Team, nlp: Team, alice: Any) -> None:
    answer(vision, alice, 5, JUST_BEFORE)
    for measured in (measure("csat", [vision]), measure("csat", None), by_team("csat", [vision, nlp])[nlp.pk]):
        assert measured.value is None
        assert measured.no_data == "no data yet: nobody answered the survey in this period"


def test_the_response_rate_is_answered_over_shown_in_the_period(vision: Team, nlp: Team, alice: Any, bob: Any) -> None:
    shown(vision, alice, MARCH, answered=MARCH)
    shown(vision, alice, at("2026-03-31T23:00:00"), answered=at("2026-03-31T23:30:00"))
    shown(vision, alice, at("2026-03-31T23:00:00"), answered=at("2026-04-01T08:00:00"))  # answered after the end
    shown(vision, alice, MARCH, dismissed=True)
    shown(vision, alice, MARCH)  # ignored
    shown(vision, alice, JUST_BEFORE, answered=MARCH)  # shown in February: February's
    shown(vision, alice, AT_END, answered=AT_END)  # April's
    shown(nlp, bob, MARCH)

    mine = measure("survey_response_rate", [vision])
    assert (mine.value, mine.sample) == (40.0, 5)
    assert measure("survey_response_rate", [nlp]).value == 0.0
    platform = measure("survey_response_rate", None)
    assert (platform.value, platform.sample) == (pytest.approx(100 * 2 / 6), 6)
    grouped = by_team("survey_response_rate", [vision, nlp])
    assert (grouped[vision.pk].value, grouped[vision.pk].sample) == (40.0, 5)
    assert grouped[nlp.pk].value == 0.0
    kpi = get_kpi("survey_response_rate")
    assert kpi is not None
    assert kpi.target is None


def test_the_response_rate_without_prompts_says_why(vision: Team) -> None:
    assert measure("survey_response_rate", [vision]).no_data == "no data yet: no survey was shown in this period"


def template(*, edited: datetime, teams: list[Team] | None = None, lifecycle: str = Lifecycle.PUBLISHED,
             published: datetime = MARCH) -> Template:  # fmt: skip
    made = TemplateFactory(visible_to_all=teams is None)
    if teams:
        made.visible_to.set(teams)
    TemplateVersionFactory(template=made, lifecycle=lifecycle, published_at=published)
    Template.objects.filter(pk=made.pk).update(updated_at=edited)
    return made


@pytest.fixture
def catalog(vision: Team, nlp: Team) -> None:
    """With 180 days, the window is [2025-10-03, 2026-04-01)."""
    template(edited=at("2026-03-10T00:00:00"))  # fresh
    template(edited=at("2025-06-01T00:00:00"))  # stale
    template(edited=at("2025-10-03T00:00:00"))  # fresh: exactly 180 days before the end
    template(edited=at("2025-10-02T23:59:59"))  # stale: a second older
    template(edited=at("2026-03-10T00:00:00"), lifecycle=Lifecycle.DRAFT, published=None)  # not published
    template(edited=at("2026-03-10T00:00:00"), lifecycle=Lifecycle.RETIRED)  # not published any more
    template(edited=at("2025-01-01T00:00:00"), teams=[vision])  # stale, vision's only
    template(edited=at("2026-02-01T00:00:00"), teams=[nlp])  # fresh, nlp's only
    template(edited=at("2026-04-05T00:00:00"))  # edited after the end: unknown then, left out
    template(edited=at("2026-03-10T00:00:00"), published=at("2026-04-02T00:00:00"))  # published after the end


def test_documentation_freshness_counts_published_templates_edited_within_the_window(
    catalog: None, vision: Team, nlp: Team
) -> None:
    platform = measure("documentation_freshness", None)
    assert (platform.value, platform.sample) == (50.0, 6)  # fresh: 3 of 6
    mine = measure("documentation_freshness", [vision])
    assert (mine.value, mine.sample) == (40.0, 5)  # the 4 shared with all + vision's own
    theirs = measure("documentation_freshness", [nlp])
    assert (theirs.value, theirs.sample) == (60.0, 5)
    both = measure("documentation_freshness", [vision, nlp])
    assert (both.value, both.sample) == (50.0, 6)  # a template counts once
    grouped = by_team("documentation_freshness", [vision, nlp])
    assert (grouped[vision.pk].value, grouped[vision.pk].sample) == (40.0, 5)
    assert (grouped[nlp.pk].value, grouped[nlp.pk].sample) == (60.0, 5)


def test_documentation_freshness_follows_the_configured_window(catalog: None, settings: Any, vision: Team) -> None:
    settings.DOCS_FRESHNESS_DAYS = 30  # [2026-03-02, 2026-04-01): only the March edit
    assert measure("documentation_freshness", None).value == pytest.approx(100 / 6)
    settings.DOCS_FRESHNESS_DAYS = 400
    assert measure("documentation_freshness", None).value == pytest.approx(100 * 5 / 6)


def test_documentation_freshness_without_templates_says_why(vision: Team, nlp: Team) -> None:
    template(edited=at("2026-03-10T00:00:00"), teams=[nlp])
    measured = by_team("documentation_freshness", [vision, nlp])
    assert measured[vision.pk].no_data == "no data yet: no published template to read"
    assert measured[nlp.pk].value == 100.0
