"""Cost queries over a year of rollups that stand for 10,000,000 line items (acceptance 9c).

The rollups are generated directly with SQL `generate_series`, as `rebuild_days` would leave them: 100 teams with
4 workspaces each (400 workspaces, each by one user from one template) x 5 services/instance types x 365 days =
730,000 `CostDaily` rows of metering, plus one unallocated row per service and day (1,825), and the owner rollups
summed from them (`CostOwnerDaily`: 146,365 rows; `CostOwnerMonthly`: 12 x 401). A workspace's service
bills one line an hour for ~14 hours a day, so each rollup row stands for ~13.7 line items: 730,000 x 13.7 = 10M.

Measured, p95 over REPEATS calls each (goal: under 50 ms):
- the explorer's grouped month query (`explore`, group by team) for a manager of 5 teams, and for a platform admin
  over all 100 teams with the unallocated bucket, and the same month grouped by workspace;
- the budgets page's reads: `budget_status` for every budget of the manager's teams (5 team budgets);
Baselines in the same run: a trivial query (`SELECT 1`), and the same group-by-team aggregate over the raw line
items of one day (27,400 lines: 10M / 365), which is what every page would pay per day without the rollups.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

from bench._report import percentile, ratio, table

TEAMS = 100
WORKSPACES_PER_TEAM = 4
SERVICES = [("AmazonEC2", "g5.xlarge"), ("AmazonEC2", "p4d.24xlarge"), ("AmazonS3", ""), ("AmazonEBS", ""),
            ("AmazonVPC", "")]  # fmt: skip
FIRST_DAY, LAST_DAY = date(2025, 12, 1), date(2026, 11, 30)
NOW = datetime(2026, 11, 20, 12, tzinfo=UTC)
MONTH, NEXT_MONTH = date(2026, 11, 1), date(2026, 12, 1)
LINES_STOOD_FOR = 10_000_000
MANAGER_TEAMS = 5
REPEATS = 40
GOAL_MS = 50.0


def _fill() -> tuple[int, int, int]:
    """Teams, workspaces and budgets through the ORM, the year of rollups and one day of line items in SQL."""
    from django.contrib.auth.models import User
    from django.db import connection

    from apps.accounts.models import Membership, Role, Team
    from apps.catalog.models import TemplateVersion
    from apps.costs.models import Budget, CostDaily, CostLineItem, CostOwnerDaily, CostOwnerMonthly
    from apps.costs.services.rollups import rebuild_owner_months
    from apps.runs.models import Workspace, WorkspaceStatus

    version = TemplateVersion.objects.select_related("template").first()
    assert version is not None, "seed_demo syncs the shipped templates"
    teams = Team.objects.bulk_create([Team(slug=f"bench-{n:03d}", name=f"Bench {n}") for n in range(TEAMS)])
    users = User.objects.bulk_create([User(username=f"bench-user-{n:03d}") for n in range(TEAMS)])
    workspaces = Workspace.objects.bulk_create(
        [
            Workspace(team=team, name=f"ws-{k}", template_version=version, created_by=user,
                      status=WorkspaceStatus.READY, estimated_hourly_cost=Decimal("1.2"))
            for team, user in zip(teams, users, strict=True)
            for k in range(WORKSPACES_PER_TEAM)
        ]
    )  # fmt: skip
    manager = User.objects.create(username="bench-manager")
    Membership.objects.bulk_create([Membership(user=manager, team=team, role=Role.MANAGER) for team in teams[:5]])
    for team in teams[:MANAGER_TEAMS]:
        Budget.objects.create(team=team, name="monthly", monthly_amount=Decimal(20000), created_by=manager)
    services = ", ".join(f"('{code}', '{kind}')" for code, kind in SERVICES)
    daily, lines, owners = CostDaily._meta.db_table, CostLineItem._meta.db_table, CostOwnerDaily._meta.db_table
    with connection.cursor() as cursor:
        cursor.execute(
            f"""
            INSERT INTO {daily} (day, source, team_id, workspace_id, template_id, user_id, instance_type,
                                 product_code, currency, unblended_cost, net_cost, line_count)
            SELECT d::date, 'metering', w.team_id, w.id, %s, w.created_by_id, s.kind, s.code, 'USD',
                   c.cost, c.cost, 14
            FROM generate_series(%s::date, %s::date, interval '1 day') AS d
            CROSS JOIN {Workspace._meta.db_table} AS w
            CROSS JOIN (VALUES {services}) AS s(code, kind)
            CROSS JOIN LATERAL (SELECT round((random() * 20)::numeric, 4) AS cost) AS c
            WHERE w.id = ANY(%s)
            """,  # noqa: S608 - table names from the models, services from the constant above
            [version.template_id, FIRST_DAY, LAST_DAY, [w.pk for w in workspaces]],
        )
        cursor.execute(
            f"""
            INSERT INTO {daily} (day, source, instance_type, product_code, currency, unblended_cost, net_cost,
                                 line_count)
            SELECT d::date, 'metering', s.kind, s.code, 'USD', 3.5, 3.5, 24
            FROM generate_series(%s::date, %s::date, interval '1 day') AS d
            CROSS JOIN (VALUES {services}) AS s(code, kind)
            """,  # noqa: S608
            [FIRST_DAY, LAST_DAY],
        )
        cursor.execute(
            f"""
            INSERT INTO {owners} (day, source, team_id, workspace_id, user_id, currency, unblended_cost, net_cost,
                                  line_count)
            SELECT day, source, team_id, workspace_id, user_id, currency, sum(unblended_cost), sum(net_cost),
                   sum(line_count)
            FROM {daily} WHERE shared_rule_id IS NULL
            GROUP BY day, source, team_id, workspace_id, user_id, currency
            """  # noqa: S608 - as rebuild_days sums them
        )
    # The owner months, by the code `rebuild_days` runs after each rebuild (12 months x 401 owners).
    days = range((LAST_DAY - FIRST_DAY).days + 1)
    rebuild_owner_months(source="metering", months={(FIRST_DAY + timedelta(days=n)).replace(day=1) for n in days})
    with connection.cursor() as cursor:
        # One day of the raw lines the rollups stand for (10M / 365), for the baseline.
        cursor.execute(
            f"""
            INSERT INTO {lines} (source, line_id, billing_period, usage_start, usage_end, payer_account,
                                 usage_account, product_code, usage_type, operation, line_item_type,
                                 usage_amount, pricing_unit, unblended_cost, net_cost, currency, resource_id,
                                 tags, instance_type, team_id, workspace_id)
            SELECT 'metering', 'bench-' || n, %s, %s::timestamptz + (n %% 24) * interval '1 hour',
                   %s::timestamptz + (n %% 24 + 1) * interval '1 hour', '', '', 'AmazonEC2', 'BoxUsage', '',
                   'Usage', 1, 'Hrs', 0.5, 0.5, 'USD', '', '{{}}', 'g5.xlarge', w.team_id, w.id
            FROM generate_series(0, %s) AS n
            JOIN {Workspace._meta.db_table} AS w ON w.id = (%s::int[])[1 + n %% %s]
            """,  # noqa: S608
            [MONTH, datetime(2026, 11, 3, tzinfo=UTC), datetime(2026, 11, 3, tzinfo=UTC),
             LINES_STOOD_FOR // 365 - 1, [w.pk for w in workspaces], len(workspaces)],
        )  # fmt: skip
        cursor.execute(f"ANALYZE {daily}")
        cursor.execute(f"ANALYZE {owners}")
        cursor.execute(f"ANALYZE {CostOwnerMonthly._meta.db_table}")
        cursor.execute(f"ANALYZE {lines}")
    return CostDaily.objects.count(), CostLineItem.objects.count(), manager.pk


def _p95_ms(call: Callable[[], object]) -> tuple[float, float]:
    call()  # warm the connection and the plan cache
    timings = []
    for _ in range(REPEATS):
        started = time.perf_counter()
        call()
        timings.append((time.perf_counter() - started) * 1000)
    return percentile(timings, 50), percentile(timings, 95)


def run() -> list[str]:
    from django.contrib.auth.models import User
    from django.db import connection
    from django.db.models import Sum

    from apps.accounts.models import Team
    from apps.costs.models import Budget, CostLineItem
    from apps.costs.selectors import budget_status, cost_team_ids, explore

    started = time.perf_counter()
    rollup_rows, line_rows, manager_id = _fill()
    fill_s = time.perf_counter() - started
    manager = User.objects.get(pk=manager_id)
    mine = cost_team_ids(manager)
    every = list(Team.objects.values_list("pk", flat=True))

    def trivial() -> None:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
            cursor.fetchall()

    def raw_one_day() -> None:
        list(
            CostLineItem.objects.filter(usage_start__gte=datetime(2026, 11, 3, tzinfo=UTC),
                                        usage_start__lt=datetime(2026, 11, 4, tzinfo=UTC))
            .values("team_id").annotate(total=Sum("net_cost")).order_by()
        )  # fmt: skip

    def month(team_ids: list[int], group_by: str, unallocated: bool = False) -> Callable[[], object]:
        return lambda: explore(
            team_ids=team_ids, start=MONTH, end=NEXT_MONTH, group_by=group_by, include_unallocated=unallocated
        )

    budgets = list(Budget.objects.filter(team_id__in=mine))

    def budgets_page() -> None:
        for budget in budgets:
            budget_status(budget=budget, now=NOW)

    baseline_p50, baseline_p95 = _p95_ms(trivial)
    raw_p50, raw_p95 = _p95_ms(raw_one_day)
    cases = [
        ("explorer month by team, manager of 5 teams", month(mine, "team")),
        ("explorer month by team, platform admin (100 teams + unallocated)", month(every, "team", True)),
        ("explorer month by workspace, platform admin", month(every, "workspace", True)),
        (f"budgets page: budget_status x {len(budgets)}", budgets_page),
    ]
    rows = [["SELECT 1 (baseline)", f"{baseline_p50:.2f}", f"{baseline_p95:.2f}", "1.00x", ""],
            ["raw line items, one day grouped by team (baseline)", f"{raw_p50:.2f}", f"{raw_p95:.2f}",
             ratio(raw_p95, baseline_p95), ""]]  # fmt: skip
    for name, call in cases:
        p50, p95 = _p95_ms(call)
        verdict = "ok" if p95 < GOAL_MS else f"OVER {GOAL_MS:.0f} ms"
        rows.append([name, f"{p50:.2f}", f"{p95:.2f}", ratio(p95, baseline_p95), f"{ratio(p95, raw_p95)} {verdict}"])
    return [
        f"rollups: {rollup_rows:,} CostDaily rows ({TEAMS} teams x {WORKSPACES_PER_TEAM} workspaces x {len(SERVICES)}"
        f" services x 365 days + unallocated), standing for {LINES_STOOD_FOR:,} line items"
        f" ({LINES_STOOD_FOR / rollup_rows:.1f} lines a row); {line_rows:,} raw lines of one day;"
        f" filled in {fill_s:.1f} s",
        *table(["query", "p50 ms", "p95 ms", "vs SELECT 1", "vs raw day"], rows),
        f"goal: every p95 under {GOAL_MS:.0f} ms ({REPEATS} calls each)",
    ]
