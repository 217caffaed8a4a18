"""The KPI framework on PostgreSQL with known histories: the training KPIs' exact values (no data, runs still in
flight, another team's jobs, the period boundary), targets and their settings override, the snapshots the beat
keeps (platform and per team, trend and sparkline), the pages, the JSON API and the Prometheus gauges."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from django.test import Client
from django.urls import reverse

from apps.accounts.models import Team
from apps.dashboards.models import KpiSnapshot
from apps.dashboards.registry import DailyKpi, Period, Scope, Status, all_kpis, get_kpi, target_of
from apps.dashboards.services import refresh_snapshots
from apps.dashboards.stats import percentile
from apps.training.models import JobState
from tests.factories import TemplateVersionFactory, TrainingJobFactory

pytestmark = pytest.mark.django_db

NOW = datetime.fromisoformat("2026-03-31T12:00:00+00:00")
PERIOD = Period(
    start=datetime.fromisoformat("2026-03-01T00:00:00+00:00"), end=datetime.fromisoformat("2026-04-01T00:00:00+00:00")
)


def job(team: Team, owner: Any, *, state: str, queued_minutes: float | None, finished: datetime | None) -> Any:
    submitted = (finished or NOW) - timedelta(hours=2)
    started = None if queued_minutes is None else submitted + timedelta(minutes=queued_minutes)
    return TrainingJobFactory(team=team, owner=owner, state=state, submitted_at=submitted, started_at=started,
                              finished_at=finished)  # fmt: skip


@pytest.fixture
def history(vision: Team, nlp: Team, alice: Any, bob: Any) -> None:
    """vision in March: 3 succeeded, 1 failed (queue 5, 10, 20, 40 min), one still running (queue 60 min, so it
    counts for queue time but not success), one that ended in February; nlp: one lost job in March."""
    march = datetime.fromisoformat("2026-03-15T10:00:00+00:00")
    for minutes in (5, 10, 20):
        job(vision, alice, state=JobState.SUCCEEDED, queued_minutes=minutes, finished=march)
    job(vision, alice, state=JobState.FAILED, queued_minutes=40, finished=march)
    job(vision, alice, state=JobState.RUNNING, queued_minutes=60, finished=None)
    job(
        vision,
        alice,
        state=JobState.SUCCEEDED,
        queued_minutes=1,
        finished=datetime.fromisoformat("2026-02-28T23:59:59+00:00"),
    )
    job(nlp, bob, state=JobState.LOST, queued_minutes=3, finished=march)


def measure(key: str, teams: list[Team] | None) -> Any:
    kpi = get_kpi(key)
    assert kpi is not None
    return kpi.measure(period=PERIOD, scope=Scope(teams=None if teams is None else frozenset(t.pk for t in teams)))


def test_training_success_rate_counts_jobs_that_ended_in_the_period(history: None, vision: Team, nlp: Team) -> None:
    vision_rate = measure("training_success_rate", [vision])
    assert (vision_rate.value, vision_rate.sample) == (75.0, 4)
    assert measure("training_success_rate", [nlp]).value == 0.0  # a job lost for good is a failure
    platform = measure("training_success_rate", None)
    assert (platform.value, platform.sample) == (60.0, 5)


def test_queue_time_percentiles_use_the_jobs_started_in_the_period(history: None, vision: Team) -> None:
    # Started in March: 5, 10, 20, 40 and the running job's 60 (the February one started in February).
    assert measure("training_queue_p50", [vision]).value == 20.0
    assert measure("training_queue_p95", [vision]).value == pytest.approx(56.0)  # 40 + 0.8 x 20
    assert percentile([5, 10, 20, 40, 60], 95) == pytest.approx(56.0)


def test_a_kpi_without_records_says_why_instead_of_a_number(vision: Team) -> None:
    measured = measure("training_success_rate", [vision])
    assert measured.value is None
    assert measured.no_data == "no data yet: no training job ended in this period"


def test_targets_come_from_the_seed_and_settings_override_them(settings: Any) -> None:
    kpi = get_kpi("training_queue_p95")
    assert kpi is not None
    target = target_of(kpi)
    assert target is not None
    assert (target.green, target.amber, target.status(50), target.status(75), target.status(120)) == (
        60, 90, Status.GREEN, Status.AMBER, Status.RED
    )  # fmt: skip
    settings.KPI_TARGETS = {"training_queue_p95": {"green": 30, "amber": 45}}
    overridden = target_of(kpi)
    assert overridden is not None
    assert (overridden.status(50), overridden.note) == (Status.RED, "installation setting")


def test_every_kpi_declares_its_formula_source_unit_and_dimensions() -> None:
    kpis = all_kpis()
    assert {"training_success_rate", "training_queue_p50", "training_queue_p95"} <= {kpi.key for kpi in kpis}
    for kpi in kpis:
        assert kpi.formula, kpi.key
        assert kpi.source, kpi.key
        assert kpi.dimensions, kpi.key


def test_a_period_of_whole_days_counts_them_in_the_time_zone_given() -> None:
    berlin = Period.last_days(1, now=datetime.fromisoformat("2026-03-31T23:30:00+00:00"), tz="Europe/Berlin")
    assert berlin.start.isoformat() == "2026-04-01T00:00:00+02:00"  # already April 1st in Berlin (summer time)
    assert (berlin.end - berlin.start) == timedelta(days=1)
    assert Period.last_days(31, now=NOW).start == PERIOD.start


def test_snapshots_hold_each_team_and_the_platform_with_trend_and_sparkline(
    history: None, vision: Team, nlp: Team
) -> None:
    report = refresh_snapshots(now=NOW, windows=(30,))
    assert report.rows == len(all_kpis()) * 3  # platform + vision + nlp
    snap = KpiSnapshot.objects.get(key="training_success_rate", team=vision, window_days=30)
    assert (snap.value, snap.sample, snap.previous_value) == (75.0, 4, 100.0)  # February's job was the previous
    assert len(snap.series) == 8  # the 30-day value on 7 earlier days (every 3 days) and today
    assert snap.series[-1] == 75.0
    assert snap.series[0] == 100.0  # the window ending March 10th: only February's job had ended
    platform = KpiSnapshot.objects.get(key="training_success_rate", team=None, window_days=30)
    assert platform.value == 60.0


def test_the_overview_shows_the_snapshot_values_for_the_chosen_team(
    history: None, client: Client, mark: Any, bob: Any, vision: Team
) -> None:
    refresh_snapshots(now=NOW, windows=(30,))
    client.force_login(mark)
    page = client.get(reverse("dashboards:overview"), {"team": "vision", "days": 30}).content.decode()
    assert 'data-testid="kpi-training_success_rate"' in page
    assert "75.0%" in page
    csv = client.get(reverse("dashboards:overview"), {"team": "vision", "days": 30, "format": "csv"})
    assert csv["Content-Type"] == "text/csv"
    assert "training_success_rate,Training pipeline success rate,delivery,percent,75.0" in csv.content.decode()
    client.force_login(bob)
    assert client.get(reverse("dashboards:overview"), {"team": "vision"}).status_code == 404
    definitions = client.get(reverse("dashboards:definitions")).content.decode()
    assert 'data-testid="definition-training_queue_p95"' in definitions
    assert "seed: P95 &lt; 60 min" in definitions


def test_the_kpi_api_answers_for_the_callers_teams_and_refuses_bad_ranges(history: None, api: Any, alice: Any) -> None:
    api.force_authenticate(alice)
    rows = api.get("/api/v1/kpis/", {"start": "2026-03-01", "end": "2026-03-31"}).json()
    by_key = {row["key"]: row for row in rows}
    assert by_key["training_success_rate"]["value"] == 75.0  # alice sees vision only
    assert by_key["training_success_rate"]["status"] == "red"
    one = api.get("/api/v1/kpis/training_queue_p50/", {"start": "2026-03-01", "end": "2026-03-31"}).json()
    assert (one["value"], one["unit"], one["target"]["green"]) == (20.0, "minutes", 15.0)
    assert api.get("/api/v1/kpis/", {"team": "nlp"}).status_code == 404
    bad = api.get("/api/v1/kpis/", {"start": "2026-03-10", "end": "2026-03-01"})
    assert (bad.status_code, bad.json()["code"]) == (400, "invalid_kpi_query")
    assert api.get("/api/v1/kpis/no-such-kpi/").status_code == 404


def test_prometheus_reads_the_snapshots_labelled_by_team(history: None, client: Client) -> None:
    refresh_snapshots(now=NOW, windows=(30,))
    body = client.get("/metrics").content.decode()
    assert 'paved_kpi_training_success_rate{team="vision"} 75.0' in body
    assert 'paved_kpi_training_success_rate{team="all"} 60.0' in body
    # The split is its own family (its jobs name no template here, so it has no samples).
    assert "# TYPE paved_kpi_training_success_rate_by_template gauge" in body


def test_a_manager_lands_on_the_kpis_of_the_current_team_and_a_data_scientist_does_not(
    history: None, client: Client, mark: Any, alice: Any
) -> None:
    refresh_snapshots(now=NOW, windows=(30,))
    client.force_login(mark)
    home = client.get("/").content.decode()
    assert 'data-testid="home-kpis"' in home
    assert 'data-testid="kpi-training_success_rate"' in home
    client.force_login(alice)
    assert 'data-testid="home-kpis"' not in client.get("/").content.decode()


def test_the_shipped_grafana_dashboard_charts_every_kpi_gauge() -> None:
    import json
    from pathlib import Path

    from apps.dashboards.grafana import grafana_dashboard

    shipped = json.loads((Path(__file__).resolve().parents[2] / "infra" / "grafana" / "paved-kpis.json").read_text())
    assert shipped == grafana_dashboard(), "regenerate it: manage.py grafana_dashboard > infra/grafana/paved-kpis.json"
    exprs = {target["expr"] for panel in shipped["panels"] for target in panel.get("targets", [])}
    teams = {f'paved_kpi_{kpi.key}{{team=~"$team"}}' for kpi in all_kpis()}
    splits = {f'paved_kpi_{kpi.key}_by_{kpi.split}{{team=~"$team"}}' for kpi in all_kpis() if kpi.split}
    assert splits
    assert exprs == teams | splits


def test_a_drill_down_has_a_table_by_team_and_its_csv(history: None, client: Client, mark: Any) -> None:
    refresh_snapshots(now=NOW, windows=(30,))
    client.force_login(mark)
    page = client.get(reverse("dashboards:area", args=["delivery"]), {"days": 30, "team": "all"}).content.decode()
    assert 'data-testid="kpi-team-vision"' in page
    assert 'data-testid="kpi-team-nlp"' in page
    query = {"days": 30, "team": "all", "format": "csv", "table": "teams"}
    csv = client.get(reverse("dashboards:area", args=["delivery"]), query)
    lines = csv.content.decode().splitlines()
    assert "vision,training_success_rate,75.0,100.0,4,red," in lines
    assert "nlp,training_success_rate,0.0,,1,red," in lines
    assert client.get(reverse("dashboards:area", args=["nonsense"])).status_code == 404


def test_a_manager_of_several_teams_opens_on_the_current_team_and_may_ask_for_all_live(
    history: None, client: Client, mark: Any
) -> None:
    refresh_snapshots(now=NOW, windows=(30,))
    client.force_login(mark)  # manager of nlp and vision; nlp sorts first, so it is the current team
    default = client.get(reverse("dashboards:overview"), {"days": 30})
    assert default.context["team"].slug == "nlp"
    assert not any(row.live for row in default.context["rows"])  # read from nlp's snapshots
    march = {"team": "all", "start": "2026-03-02", "end": "2026-03-31"}  # and the 30 days before: all kept
    together = client.get(reverse("dashboards:overview"), march)
    assert together.context["team"] is None
    # Several teams have no snapshot: a daily KPI merges both teams' kept days, the others are computed now.
    rows = {row.kpi.key: row for row in together.context["rows"]}
    assert all(row.live != isinstance(row.kpi, DailyKpi) for row in rows.values())
    assert (rows["training_success_rate"].value, rows["training_success_rate"].sample) == (60.0, 5)


def test_a_custom_range_of_kept_days_is_merged_and_one_reaching_past_them_is_computed(
    history: None, client: Client, mark: Any, vision: Team
) -> None:
    refresh_snapshots(now=NOW, windows=(30,))  # keeps the 60 days to March 31st
    client.force_login(mark)
    kept = client.get(reverse("dashboards:overview"), {"team": "vision", "start": "2026-03-10", "end": "2026-03-20"})
    row = next(row for row in kept.context["rows"] if row.kpi.key == "training_success_rate")
    assert (row.value, row.sample, row.live) == (75.0, 4, False)
    older = client.get(reverse("dashboards:overview"), {"team": "vision", "start": "2025-12-01", "end": "2026-03-20"})
    row = next(row for row in older.context["rows"] if row.kpi.key == "training_success_rate")
    assert (row.value, row.sample, row.live) == (80.0, 5, True)  # February's job too, computed from the records


def test_the_beat_refreshes_short_windows_often_and_long_ones_seldom(settings: Any) -> None:
    short, long = (
        settings.CELERY_BEAT_SCHEDULE["refresh-kpi-snapshots"],
        settings.CELERY_BEAT_SCHEDULE["refresh-long-kpi-snapshots"],
    )
    assert (short["args"], long["args"]) == ([[7, 30]], [[90, 365]])
    assert long["schedule"] > short["schedule"]


def test_a_refresh_keeps_daily_partials_and_recomputes_only_the_days_that_can_change(
    history: None, vision: Team
) -> None:
    """Daily KPIs keep one row per KPI and day (the 30-day window reaches 60 days back for its trend); a second
    pass the same day recomputes only each KPI's `settle_days`; the next day adds one. The other KPIs read their
    trend and sparkline from KpiHistory as before."""
    from apps.dashboards.models import KpiDay, KpiHistory

    daily = [kpi for kpi in all_kpis() if isinstance(kpi, DailyKpi)]
    whole = [kpi for kpi in all_kpis() if not isinstance(kpi, DailyKpi)]
    assert len(daily) >= 20  # shares, counts and durations are kept by day
    kept = {kpi.kept_key for kpi in daily}
    assert len(kept) < len(daily)  # P50 and P95 of the same durations keep one set of days
    refresh_snapshots(now=NOW, windows=(30,))
    assert KpiDay.objects.count() == len(kept) * 60
    assert KpiHistory.objects.count() == len(whole) * 3 * 9  # today, 7 sparkline days, the previous window
    later = NOW + timedelta(hours=1)
    refresh_snapshots(now=later, windows=(30,))
    settle = {kpi.kept_key: kpi.settle_days for kpi in daily}
    assert KpiDay.objects.filter(computed_at=later).count() == sum(settle.values())
    refresh_snapshots(now=NOW + timedelta(days=1), windows=(30,))
    assert KpiDay.objects.count() == len(kept) * 61
    assert KpiHistory.objects.filter(day=(NOW + timedelta(days=1)).date()).count() == len(whole) * 3
    snap = KpiSnapshot.objects.get(key="training_success_rate", team=vision, window_days=30)
    assert snap.value == 75.0


def test_kept_daily_values_equal_the_live_measure_for_every_scope_and_sparkline_day(
    history: None, vision: Team, nlp: Team
) -> None:
    """The snapshot of every daily KPI (current value, trend and each sparkline point) is the number `measure`
    computes from the records over the same days."""
    refresh_snapshots(now=NOW, windows=(30,))
    today = NOW.date()
    for kpi in [kpi for kpi in all_kpis() if isinstance(kpi, DailyKpi)]:
        for team in (None, vision, nlp):
            snap = KpiSnapshot.objects.get(key=kpi.key, team=team, window_days=30)
            scope = Scope(teams=None if team is None else frozenset({team.pk}))
            ends = [today - timedelta(days=3 * i) for i in range(7, 0, -1)] + [today]
            for day, kept in [(today - timedelta(days=30), snap.previous_value), *zip(ends, snap.series, strict=True)]:
                end = datetime.combine(day + timedelta(days=1), datetime.min.time(), tzinfo=UTC)
                live = kpi.measure(period=Period(start=end - timedelta(days=30), end=end), scope=scope)
                assert kept == live.value, (kpi.key, team, day)


def test_snapshots_split_a_kpi_by_its_dimension_and_metrics_export_it(vision: Team, alice: Any, client: Client) -> None:
    march = datetime.fromisoformat("2026-03-15T10:00:00+00:00")
    notebook, trainer = (TemplateVersionFactory(template__slug=slug) for slug in ("notebook", "trainer"))
    for version, state in [(notebook, JobState.SUCCEEDED), (notebook, JobState.FAILED), (trainer, JobState.SUCCEEDED)]:
        made = job(vision, alice, state=state, queued_minutes=5, finished=march)
        type(made).objects.filter(pk=made.pk).update(template_version=version)
    refresh_snapshots(now=NOW, windows=(30,))
    for team in (vision, None):
        snap = KpiSnapshot.objects.get(key="training_success_rate", team=team, window_days=30)
        assert snap.breakdown == {"notebook": 50.0, "trainer": 100.0}
    assert KpiSnapshot.objects.get(key="training_queue_p50", team=vision, window_days=30).breakdown == {}
    body = client.get("/metrics").content.decode()
    assert 'paved_kpi_training_success_rate_by_template{team="vision",template="notebook"} 50.0' in body
    assert 'paved_kpi_training_success_rate_by_template{team="all",template="trainer"} 100.0' in body


def test_a_snapshot_holds_a_sample_past_two_to_the_31(vision: Team) -> None:
    """The KPIs that count inferences (SLO attainment, cost per 1k) had a sample of 2,375,181,049 in the full-scale
    history: the sample is a big integer, so the refresh's one bulk insert does not fail the whole pass."""
    now = datetime(2026, 3, 31, tzinfo=UTC)
    KpiSnapshot.objects.create(key="cost_per_1k_inferences", team=None, window_days=365, period_start=now,
                               period_end=now, value=0.02, sample=2_375_181_049, computed_at=now)  # fmt: skip
    assert KpiSnapshot.objects.get(key="cost_per_1k_inferences").sample == 2_375_181_049
