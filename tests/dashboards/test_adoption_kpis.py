"""The adoption KPIs (apps/accounts/kpis.py, apps/catalog/kpis.py) on PostgreSQL with known histories: exact
values for March 2026, the windows' edges, records still in flight, another team's rows, no data, and `by_team`
agreeing with `measure` team by team; plus the catalog page's view counter they read."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any

import pytest
from django.contrib.auth import get_user_model
from django.test import Client
from django.urls import reverse

from apps.accounts.models import Membership, Team
from apps.catalog.models import Template, TemplateKind, TemplateViewDay
from apps.catalog.services import record_template_view
from apps.costs.models import CostAllocation, CostDaily, CostSource
from apps.dashboards.registry import Area, Measurement, Period, Scope, Unit, get_kpi
from apps.runs.models import Run, RunState, Workspace
from tests.factories import (
    AuditEventFactory,
    RunFactory,
    TeamFactory,
    TemplateFactory,
    TemplateVersionFactory,
    TrainingJobFactory,
    UserFactory,
    WorkspaceFactory,
    shared_rule_for,
    team_only_template,
)

pytestmark = pytest.mark.django_db

User = get_user_model()


def ts(value: str) -> datetime:
    return datetime.fromisoformat(f"{value}+00:00")


PERIOD = Period(start=ts("2026-03-01T00:00:00"), end=ts("2026-04-01T00:00:00"))
JUST_BEFORE, AT_END = ts("2026-02-28T23:59:59"), ts("2026-04-01T00:00:00")

KEYS = {
    "weekly_active_users": (Area.ADOPTION, Unit.COUNT),
    "monthly_active_users": (Area.ADOPTION, Unit.COUNT),
    "active_teams": (Area.ADOPTION, Unit.COUNT),
    "teams_onboarded": (Area.ADOPTION, Unit.PERCENT),
    "time_to_first_workspace_p50": (Area.ADOPTION, Unit.HOURS),
    "launches": (Area.ADOPTION, Unit.COUNT),
    "template_views": (Area.ADOPTION, Unit.COUNT),
    "template_funnel_launch_rate": (Area.ADOPTION, Unit.PERCENT),
    "template_funnel_apply_rate": (Area.ADOPTION, Unit.PERCENT),
    "reuse_rate": (Area.ADOPTION, Unit.PERCENT),
    "golden_path_spend_share": (Area.SPEND, Unit.PERCENT),
}


def measure(key: str, teams: list[Team] | None, period: Period = PERIOD) -> Measurement:
    kpi = get_kpi(key)
    assert kpi is not None
    return kpi.measure(period=period, scope=Scope(teams=None if teams is None else frozenset(t.pk for t in teams)))


def assert_by_team_agrees(key: str, teams: list[Team], period: Period = PERIOD) -> dict[int, Measurement]:
    """`by_team` (the beat's one grouped pass) gives each team what `measure` gives it alone."""
    kpi = get_kpi(key)
    assert kpi is not None
    grouped = kpi.by_team(period=period, team_ids=[team.pk for team in teams])
    assert set(grouped) == {team.pk for team in teams}
    for team in teams:
        alone = measure(key, [team], period)
        mine = grouped[team.pk]
        assert (mine.sample, mine.no_data) == (alone.sample, alone.no_data), (key, team.slug)
        assert mine.value == (None if alone.value is None else pytest.approx(alone.value)), (key, team.slug)
    return grouped


def created(obj: Any, when: datetime) -> Any:
    """Backdate a row's auto_now_add `created_at` (test data only)."""
    type(obj).objects.filter(pk=obj.pk).update(created_at=when)
    return obj


@pytest.fixture
def teams(vision: Team, nlp: Team) -> list[Team]:
    for team in (vision, nlp):
        created(team, ts("2026-01-01T00:00:00"))
    return [vision, nlp]


def test_every_adoption_kpi_is_registered_with_its_area_unit_and_formula() -> None:
    for key, (area, unit) in KEYS.items():
        kpi = get_kpi(key)
        assert kpi is not None, key
        assert (kpi.area, kpi.unit) == (area, unit), key
        assert kpi.formula, key
        assert kpi.source, key
        assert kpi.dimensions, key
    teams_onboarded = get_kpi("teams_onboarded")
    assert teams_onboarded is not None
    assert teams_onboarded.target is not None
    assert (teams_onboarded.target.green, teams_onboarded.target.amber) == (70, 50)
    for key in ("time_to_first_workspace_p50", "reuse_rate"):
        kpi = get_kpi(key)
        assert kpi is not None
        assert kpi.target is None


# --- Active users -------------------------------------------------------------------------------------------------


def test_active_users_are_the_distinct_actors_of_the_last_7_and_30_days(
    teams: list[Team], vision: Team, nlp: Team, alice: Any, bob: Any, mark: Any
) -> None:
    """The windows end at the period's end: WAU [Mar 25, Apr 1), MAU [Mar 2, Apr 1)."""
    carol, dave, erin, frank = (UserFactory(username=name) for name in ("carol", "dave", "erin", "frank"))
    AuditEventFactory(actor=alice, team=vision, verb="workspace.launched", created_at=ts("2026-03-30T10:00:00"))
    AuditEventFactory(actor=alice, team=None, verb="auth.login", created_at=ts("2026-03-28T09:00:00"))
    AuditEventFactory(actor=bob, team=None, verb="auth.login", created_at=ts("2026-03-20T09:00:00"))  # MAU only
    AuditEventFactory(actor=mark, team=nlp, verb="run.approved", created_at=ts("2026-03-31T23:59:59"))
    AuditEventFactory(actor=carol, team=vision, verb="budget.created", created_at=ts("2026-03-26T00:00:00"))
    AuditEventFactory(actor=dave, team=vision, verb="workspace.launched", created_at=AT_END)  # after the end
    AuditEventFactory(actor=erin, team=vision, verb="auth.login", created_at=ts("2026-03-01T12:00:00"))  # too early
    AuditEventFactory(actor=frank, team=vision, verb="cluster.requested", created_at=ts("2026-03-02T00:00:00"))
    AuditEventFactory(actor=None, team=vision, verb="cluster.auto_stopped", created_at=ts("2026-03-30T00:00:00"))

    # alice: her team's event and her team-less sign-in; carol acted on vision without being a member; mark acted
    # on nlp only (a member of both, he counts where he acted); bob's sign-in is older than a week.
    assert measure("weekly_active_users", [vision]).value == 2
    assert measure("weekly_active_users", [nlp]).value == 1
    assert measure("weekly_active_users", None).value == 3
    assert measure("monthly_active_users", [vision]).value == 3  # + frank, at the window's first instant
    assert measure("monthly_active_users", [nlp]).value == 2  # + bob's sign-in, through his membership
    assert measure("monthly_active_users", None).value == 5
    assert measure("monthly_active_users", [vision, nlp]).value == 5
    for key in ("weekly_active_users", "monthly_active_users"):
        assert_by_team_agrees(key, teams)


def test_active_users_of_a_quiet_team_are_zero(teams: list[Team], vision: Team) -> None:
    measured = measure("weekly_active_users", [vision])
    assert (measured.value, measured.sample, measured.no_data) == (0.0, 0, "")


# --- Teams ------------------------------------------------------------------------------------------------------


def test_active_teams_had_a_run_or_a_training_job_in_the_period(
    teams: list[Team], vision: Team, nlp: Team, alice: Any, bob: Any
) -> None:
    ops = created(TeamFactory(slug="ops"), ts("2026-01-01T00:00:00"))
    created(RunFactory(workspace=WorkspaceFactory(team=vision, created_by=alice)), ts("2026-03-31T23:00:00"))
    created(RunFactory(workspace=WorkspaceFactory(team=nlp, created_by=bob)), JUST_BEFORE)
    TrainingJobFactory(team=nlp, owner=bob, submitted_at=AT_END)
    TrainingJobFactory(team=ops, owner=bob, submitted_at=ts("2026-03-10T00:00:00"))

    assert measure("active_teams", None).value == 2  # vision (a run) and ops (a job); nlp's are outside
    assert measure("active_teams", [vision, nlp]).value == 1
    grouped = assert_by_team_agrees("active_teams", [*teams, ops])
    assert {team_id: m.value for team_id, m in grouped.items()} == {vision.pk: 1, nlp.pk: 0, ops.pk: 1}


def test_teams_onboarded_have_a_workspace_by_the_end_of_the_period(
    teams: list[Team], vision: Team, nlp: Team, alice: Any, bob: Any
) -> None:
    late = created(TeamFactory(slug="late"), ts("2026-04-02T00:00:00"))  # did not exist yet
    gone = WorkspaceFactory(team=vision, created_by=alice, status="forgotten")
    created(gone, ts("2026-02-01T00:00:00"))  # onboarded in February, and gone since: still onboarded
    created(WorkspaceFactory(team=nlp, created_by=bob), AT_END)
    created(WorkspaceFactory(team=late, created_by=bob), ts("2026-04-02T01:00:00"))

    platform = measure("teams_onboarded", None)
    assert (platform.value, platform.sample) == (50.0, 2)
    grouped = assert_by_team_agrees("teams_onboarded", [*teams, late])
    assert (grouped[vision.pk].value, grouped[nlp.pk].value) == (100.0, 0.0)
    assert grouped[late.pk].no_data == "no data yet: no team existed by the end of this period"
    before = Period(start=ts("2025-12-01T00:00:00"), end=ts("2026-01-01T00:00:00"))
    assert measure("teams_onboarded", None, before).no_data == "no data yet: no team existed by the end of this period"


def test_time_to_first_workspace_runs_from_joining_to_a_first_workspace_in_the_period(
    teams: list[Team], vision: Team, nlp: Team, alice: Any, bob: Any, mark: Any
) -> None:
    def joined(user: Any, when: str, **memberships: str) -> None:
        User.objects.filter(pk=user.pk).update(date_joined=ts(when))
        for slug, at in memberships.items():
            Membership.objects.filter(user=user, team__slug=slug).update(created_at=ts(at))

    def workspace(team: Team, user: Any, when: str | datetime) -> None:
        created(WorkspaceFactory(team=team, created_by=user), when if isinstance(when, datetime) else ts(when))

    outsider, dave = UserFactory(username="outsider"), UserFactory(username="dave")
    joined(alice, "2026-03-01T00:00:00", vision="2026-03-02T00:00:00")
    workspace(vision, alice, "2026-03-03T00:00:00")  # 48 h after signing up, 24 h after joining vision
    workspace(vision, alice, "2026-03-20T00:00:00")  # not her first
    joined(bob, "2026-02-01T00:00:00", nlp="2026-02-01T00:00:00")
    workspace(nlp, bob, "2026-02-20T00:00:00")  # his first was in February: left out
    workspace(nlp, bob, "2026-03-05T00:00:00")
    joined(mark, "2026-03-10T00:00:00", vision="2026-03-10T00:00:00", nlp="2026-03-10T00:00:00")
    workspace(nlp, mark, "2026-03-10T06:00:00")  # 6 h: his first anywhere, and in nlp
    workspace(vision, mark, "2026-03-10T12:00:00")  # 12 h: his first in vision
    joined(outsider, "2026-03-04T00:00:00")
    workspace(vision, outsider, "2026-03-05T00:00:00")  # no membership of vision: platform-wide only (24 h)
    joined(dave, "2026-03-04T00:00:00")
    workspace(vision, dave, AT_END)  # after the period

    platform = measure("time_to_first_workspace_p50", None)
    assert (platform.value, platform.sample) == (24.0, 3)  # alice 48, mark 6, outsider 24
    vision_p50 = measure("time_to_first_workspace_p50", [vision])
    assert (vision_p50.value, vision_p50.sample) == (18.0, 2)  # alice 24, mark 12
    assert measure("time_to_first_workspace_p50", [nlp]).value == 6.0
    assert measure("time_to_first_workspace_p50", [vision, nlp]).value == 12.0  # 24, 12, 6
    assert_by_team_agrees("time_to_first_workspace_p50", teams)
    april = Period(start=AT_END, end=ts("2026-05-01T00:00:00"))
    assert measure("time_to_first_workspace_p50", [nlp], april).no_data == (
        "no data yet: nobody created their first workspace in this period"
    )


# --- Catalog: launches, funnel, reuse ------------------------------------------------------------------------------


@pytest.fixture
def catalog(teams: list[Team], vision: Team) -> dict[str, Template]:
    """golden: shared with every team; shipped: team-restricted but synced from infra/templates/; private: one
    team's own template (not a golden path); cluster and training: kinds whose launches record no workspace."""
    golden = TemplateFactory(slug="golden")
    TemplateVersionFactory(template=golden)
    shipped = TemplateFactory(slug="shipped", visible_to_all=False)
    TemplateVersionFactory(template=shipped, source="infra")
    private = team_only_template(vision)
    cluster = TemplateFactory(slug="cluster", kind=TemplateKind.GPU_CLUSTER)
    training = TemplateFactory(slug="training", kind=TemplateKind.TRAINING_JOB)
    TemplateVersionFactory(template=training)
    return {"golden": golden, "shipped": shipped, "private": private, "cluster": cluster, "training": training}


@pytest.fixture
def launched(catalog: dict[str, Template], vision: Team, nlp: Team, alice: Any, bob: Any) -> dict[str, Workspace]:
    """March: vision launches golden (first apply succeeds), private (fails), shipped (still planning) and a
    training job from the training template; nlp launches golden (first run errored, its retry applied).
    Outside: a vision workspace a second before March, one at April's first instant, jobs around them."""

    def workspace(team: Team, user: Any, template: str, when: datetime, *states: str) -> Workspace:
        ws = created(
            WorkspaceFactory(team=team, created_by=user, template_version=catalog[template].versions.get()), when
        )
        for state in states:
            RunFactory(workspace=ws, state=state)
        return ws

    march = ts("2026-03-10T10:00:00")
    found = {
        "golden": workspace(vision, alice, "golden", march, RunState.APPLIED),
        "private": workspace(vision, alice, "private", march, RunState.FAILED),
        "shipped": workspace(vision, alice, "shipped", march, RunState.PLANNING),
        "nlp": workspace(nlp, bob, "golden", march, RunState.ERRORED, RunState.APPLIED),
        "before": workspace(vision, alice, "golden", JUST_BEFORE, RunState.APPLIED),
        "after": workspace(vision, alice, "private", AT_END, RunState.APPLIED),
    }
    training = catalog["training"].versions.get()
    TrainingJobFactory(team=vision, owner=alice, template_version=training, submitted_at=march)
    TrainingJobFactory(team=vision, owner=alice, submitted_at=march)  # not from the catalog
    TrainingJobFactory(team=nlp, owner=bob, template_version=training, submitted_at=JUST_BEFORE)
    return found


def test_launches_count_workspaces_and_template_training_jobs(
    launched: dict[str, Workspace], teams: list[Team], vision: Team, nlp: Team
) -> None:
    assert measure("launches", [vision]).value == 4
    assert measure("launches", [nlp]).value == 1
    assert measure("launches", None).value == 5
    assert_by_team_agrees("launches", teams)


def test_the_first_apply_rate_follows_each_workspace_s_first_run(
    launched: dict[str, Workspace], teams: list[Team], vision: Team, nlp: Team
) -> None:
    vision_rate = measure("template_funnel_apply_rate", [vision])
    assert (vision_rate.value, vision_rate.sample) == (50.0, 2)  # applied, failed; the planning one waits
    assert measure("template_funnel_apply_rate", [nlp]).value == 0.0  # its first run errored (the retry applied)
    assert measure("template_funnel_apply_rate", None).value == pytest.approx(100 / 3)
    assert_by_team_agrees("template_funnel_apply_rate", teams)
    Run.objects.filter(workspace=launched["shipped"]).update(state=RunState.APPLIED)
    assert measure("template_funnel_apply_rate", [vision]).value == pytest.approx(200 / 3)


def test_reuse_rate_is_the_share_of_workspaces_on_golden_paths(
    launched: dict[str, Workspace], teams: list[Team], vision: Team, nlp: Team
) -> None:
    assert measure("reuse_rate", [vision]).value == pytest.approx(200 / 3)  # golden and shipped, not private
    assert measure("reuse_rate", [nlp]).value == 100.0
    platform = measure("reuse_rate", None)
    assert (platform.value, platform.sample) == (75.0, 4)
    assert_by_team_agrees("reuse_rate", teams)


def test_launch_kpis_without_launches_say_why(catalog: dict[str, Template], teams: list[Team], vision: Team) -> None:
    assert measure("launches", [vision]).value == 0
    assert measure("reuse_rate", [vision]).no_data == "no data yet: no workspace was launched in this period"
    assert measure("template_funnel_apply_rate", None).no_data == (
        "no data yet: no workspace launched in this period has finished its first apply"
    )


def views(template: Template, team: Team | None, day: str, count: int) -> None:
    TemplateViewDay.objects.create(template=template, team=team, day=datetime.fromisoformat(day).date(), views=count)


def test_template_views_and_the_launch_rate_count_march_s_page_views(
    launched: dict[str, Workspace], catalog: dict[str, Template], teams: list[Team], vision: Team, nlp: Team
) -> None:
    views(catalog["golden"], vision, "2026-03-10", 5)
    views(catalog["private"], vision, "2026-03-31", 2)
    views(catalog["cluster"], vision, "2026-03-12", 10)  # its launches record no template: not in the rate
    views(catalog["golden"], vision, "2026-02-28", 100)
    views(catalog["golden"], vision, "2026-04-01", 50)
    views(catalog["golden"], None, "2026-03-10", 3)  # a viewer without a team

    assert measure("template_views", [vision]).value == 17
    assert measure("template_views", [nlp]).value == 0
    assert measure("template_views", None).value == 20
    assert measure("template_funnel_launch_rate", [vision]).value == pytest.approx(400 / 7)  # 4 launches, 7 views
    assert measure("template_funnel_launch_rate", None).value == 50.0  # 5 launches, 10 views
    assert measure("template_funnel_launch_rate", [nlp]).no_data == (
        "no data yet: no template page view was recorded in this period"
    )
    for key in ("template_views", "template_funnel_launch_rate"):
        assert_by_team_agrees(key, teams)


def test_template_views_before_any_was_recorded_say_why(catalog: dict[str, Template], vision: Team) -> None:
    reason = "no data yet: template page views are counted from this release on, none before this period's end"
    assert measure("template_views", None).no_data == reason
    views(catalog["golden"], vision, "2026-04-01", 1)
    assert measure("template_views", None).no_data == reason  # the first view came after March
    assert measure("template_views", None, Period(start=AT_END, end=ts("2026-04-02T00:00:00"))).value == 1


def test_the_template_page_counts_its_views_per_team_and_day(
    catalog: dict[str, Template], client: Client, alice: Any, vision: Team
) -> None:
    client.force_login(alice)
    url = reverse("catalog:detail", args=["golden"])
    assert client.get(url).status_code == 200
    assert client.get(url).status_code == 200
    row = TemplateViewDay.objects.get()
    assert (row.template, row.team, row.views) == (catalog["golden"], vision, 2)
    record_template_view(template=catalog["golden"], team=None, now=ts("2026-03-10T23:59:59"))
    record_template_view(template=catalog["golden"], team=None, now=ts("2026-03-10T00:00:00"))
    assert TemplateViewDay.objects.get(team=None).views == 2


# --- Golden-path spend --------------------------------------------------------------------------------------------


def spend(day: str, amount: str, *, currency: str = "USD", **dimensions: Any) -> None:
    CostDaily.objects.create(day=datetime.fromisoformat(day).date(), source=CostSource.METERING, currency=currency,
                             net_cost=Decimal(amount), unblended_cost=Decimal(amount), **dimensions)  # fmt: skip


def test_golden_path_spend_share_reads_the_explorer_s_spend(
    launched: dict[str, Workspace], catalog: dict[str, Template], teams: list[Team], vision: Team, nlp: Team
) -> None:
    rule = shared_rule_for(vision)
    spend("2026-03-10", "60", team=vision, template=catalog["golden"])
    spend("2026-03-10", "30", team=vision, workspace=launched["private"])  # a workspace off the golden paths
    spend("2026-03-10", "10", team=vision, workspace=launched["golden"])  # golden through its workspace
    spend("2026-03-10", "5", team=vision, template=catalog["private"], currency="EUR")  # another currency
    CostAllocation.objects.create(day=datetime.fromisoformat("2026-03-10").date(), source=CostSource.METERING,
                                  rule=rule, team=vision, currency="USD", net_cost=Decimal("100"),
                                  unblended_cost=Decimal("100"))  # fmt: skip
    spend("2026-03-10", "100", shared_rule=rule)  # the pool that allocation splits: not counted again
    spend("2026-03-20", "100")  # unallocated
    spend("2026-03-31", "50", team=nlp, template=catalog["shipped"])
    spend("2026-02-28", "1000", team=vision, template=catalog["golden"])
    spend("2026-04-01", "1000", team=vision, template=catalog["golden"])

    assert measure("golden_path_spend_share", [vision]).value == 35.0  # (60 + 10) / (100 + 100 shared)
    assert measure("golden_path_spend_share", [nlp]).value == 100.0
    assert measure("golden_path_spend_share", None).value == pytest.approx(12000 / 350)  # 120 / (200 + 50 + 100)
    assert_by_team_agrees("golden_path_spend_share", teams)


def test_golden_path_spend_share_without_spend_says_why(teams: list[Team], vision: Team) -> None:
    spend("2026-04-01", "10", team=vision)
    assert measure("golden_path_spend_share", [vision]).no_data == (
        "no data yet: no spend recorded in this period (no bill imported and no metering)"
    )
