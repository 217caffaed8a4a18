"""A realistic year of platform history, generated: teams of different sizes with their people, workspaces and
their runs, GPU clusters with nodes and hourly telemetry rollups, training jobs, registered models with their
endpoints, deployments and DORA records, survey answers, budgets, and cost line items per day and resource with
the cost rollups rebuilt from them. `manage.py generate_history` and the benchmarks (bench/dashboards.py,
bench/list_pages.py) build through this module: one builder per model, each writing with bulk_create in batches
(the line items with PostgreSQL COPY), every choice drawn from one `random.Random(seed)` so a seed gives the
same history.

Sizes at scale 1.0 for 50 teams (`Sizes.at`): 100,000 workspaces, 1,000,000 runs, 10,000,000 cost line items,
500 clusters with 1,500,000 GPU-hour rollups, 100,000 training jobs, 10,000 deployments, 250,000 sign-ins;
each grows with the scale and in proportion to the number of teams. Everything it makes is recognisable: team
slugs and usernames start with `hist-`, line ids with `hist-`.
"""

from __future__ import annotations

import bisect
import json
import math
import random
import time
from collections import defaultdict
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any, TypeVar

from django.db import connection, models

PREFIX = "hist-"
BATCH = 5000
BASE_TEAMS = 50
M = TypeVar("M", bound=models.Model)
ADJECTIVES = ["Vision", "Speech", "Search", "Ranking", "Fraud", "Forecast", "Robotics", "Health", "Ads", "Maps"]
NOUNS = ["Core", "Lab", "Platform", "Research", "Apps"]
INSTANCE_TYPES = [  # (type, GPUs a node, USD an hour a node, weight)
    ("g5.xlarge", 1, "1.006", 5),
    ("g5.12xlarge", 4, "5.672", 3),
    ("g6.2xlarge", 1, "0.978", 3),
    ("p4d.24xlarge", 8, "32.773", 1),
]
# The policy of seven rollouts in ten: a drift monitor (the drift detection coverage KPI counts it).
MONITORED_ANALYSIS = {"monitors": [{"kind": "drift", "name": "feature-drift", "threshold": 0.2}]}
WORKSPACE_SERVICES = [
    ("AmazonEC2", "m6i.large", "BoxUsage"),
    ("AmazonEBS", "", "EBS:VolumeUsage.gp3"),
    ("AmazonS3", "", "TimedStorage-ByteHrs"),
    ("AmazonRDS", "db.t4g.medium", "InstanceUsage"),
]


@dataclass(frozen=True)
class Sizes:
    teams: int
    users: int
    workspaces: int
    runs: int
    logins: int
    clusters: int
    gpu_rollups: int
    jobs: int
    models: int
    deployments: int
    prompts: int
    cost_lines: int

    @classmethod
    def at(cls, *, teams: int, scale: float) -> Sizes:
        """The sizes for `teams` teams at `scale` (1.0: a year of 50 teams as the acceptance criterion states)."""
        f = scale * teams / BASE_TEAMS

        def n(base: int, minimum: int) -> int:
            return max(minimum, round(base * f))

        return cls(
            teams=teams,
            users=max(2 * teams, round(2000 * math.sqrt(f))),
            workspaces=n(100_000, teams),
            runs=n(1_000_000, 2 * teams),
            logins=n(250_000, 10 * teams),
            clusters=n(500, teams),
            gpu_rollups=n(1_500_000, 24 * teams),
            jobs=n(100_000, 2 * teams),
            models=n(300, teams),
            deployments=n(10_000, 2 * teams),
            prompts=n(20_000, teams),
            cost_lines=n(10_000_000, 100 * teams),
        )


@dataclass
class Report:
    """What each builder made and how long it took, in the order they ran."""

    parts: list[tuple[str, int, float]] = field(default_factory=list)

    def add(self, name: str, count: int, seconds: float) -> None:
        self.parts.append((name, count, seconds))

    def counts(self) -> dict[str, int]:
        return {name: count for name, count, _ in self.parts}

    @property
    def seconds(self) -> float:
        return sum(seconds for _, _, seconds in self.parts)


def split(total: int, weights: Sequence[float], minimum: int = 0) -> list[int]:
    """`total` shared out in proportion to `weights` (largest remainders), each share at least `minimum`."""
    if not weights:
        return []
    spare = max(0, total - minimum * len(weights))
    whole = sum(weights)
    exact = [spare * w / whole for w in weights]
    shares = [math.floor(x) for x in exact]
    order = sorted(range(len(weights)), key=lambda i: exact[i] - shares[i], reverse=True)
    for i in order[: spare - sum(shares)]:
        shares[i] += 1
    return [minimum + share for share in shares]


@contextmanager
def _launch_counts_once() -> Iterator[None]:
    """On PostgreSQL, hold the workspace table's launch-count trigger while the workspaces are written and count
    once after: the trigger updates a few template rows once per workspace, and 100,000 updates of the same rows
    in one transaction took 27 minutes. SQLite (small scales) keeps its triggers."""
    from django.db.models import Count, OuterRef, Subquery
    from django.db.models.functions import Coalesce

    from apps.catalog.models import Template
    from apps.runs.models import Workspace

    if connection.vendor != "postgresql":
        yield
        return

    def switch(to: str) -> None:
        # ALTER TABLE refuses a table with pending (deferred foreign-key) trigger events: `generate` checks
        # constraints immediately; say so again for a caller that did not.
        with connection.cursor() as cursor:
            cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")
            cursor.execute(f"ALTER TABLE runs_workspace {to} TRIGGER runs_workspace_launch_count")

    switch("DISABLE")
    try:
        yield
    finally:
        switch("ENABLE")
    launches = (
        Workspace.objects.filter(template_version__template=OuterRef("pk"))
        .values("template_version__template")
        .annotate(n=Count("pk"))
        .values("n")
    )
    Template.objects.update(launch_count=Coalesce(Subquery(launches), 0))


@contextmanager
def explicit_times(*model_classes: type[models.Model]) -> Iterator[None]:
    """Let bulk_create keep the `created_at`/`updated_at` a builder set (auto_now and auto_now_add would overwrite
    them with now)."""
    saved = []
    for model in model_classes:
        for f in model._meta.concrete_fields:
            if isinstance(f, models.DateField) and (f.auto_now or f.auto_now_add):
                saved.append((f, f.auto_now, f.auto_now_add))
                f.auto_now = f.auto_now_add = False
    try:
        yield
    finally:
        for f, auto_now, auto_now_add in saved:
            f.auto_now, f.auto_now_add = auto_now, auto_now_add


def bulk(model: type[M], objects: Sequence[M]) -> list[M]:
    """bulk_create in batches, keeping the times the builder set."""
    made: list[M] = []
    with explicit_times(model):
        for start in range(0, len(objects), BATCH):
            made += model.objects.bulk_create(objects[start : start + BATCH])  # type: ignore[attr-defined]
    return made


def _lognormal(rng: random.Random, median: float, sigma: float, cap: float) -> float:
    return min(cap, rng.lognormvariate(math.log(median), sigma))


def _pick(rng: random.Random, weighted: Sequence[tuple[Any, float]]) -> Any:
    return rng.choices([value for value, _ in weighted], weights=[w for _, w in weighted])[0]


@dataclass(frozen=True)
class WorkspaceRef:
    pk: int
    team: int  # index into History.teams
    version_id: int
    template_id: int
    user_id: int
    created_at: datetime
    gone_at: datetime | None  # destroyed: it bills nothing after


@dataclass(frozen=True)
class ClusterRef:
    pk: int
    team: int
    instance_type: str
    gpus_per_node: int
    hourly_price: Decimal
    node_ids: tuple[int, ...]
    owner_id: int
    created_at: datetime


class History:
    """The builders, sharing the seed's random stream, the year [start, end) and what earlier builders made."""

    def __init__(self, *, seed: int, end: datetime, days: int = 365) -> None:
        self.rng = random.Random(seed)  # noqa: S311 - reproducible data, not secrets
        self.seed = seed
        self.end = end
        self.start = end - timedelta(days=days)
        self.teams: list[Any] = []
        self.weights: list[float] = []
        self.users: list[list[tuple[int, str]]] = []  # per team: (user id, username); the first is its manager
        self.admin_id: int | None = None
        self.workspaces: list[WorkspaceRef] = []
        self.clusters: list[ClusterRef] = []
        self.spend: dict[int, Decimal] = defaultdict(Decimal)  # team pk -> cost line total
        # endpoint pk -> (team pk, target name, when its first rollout succeeded)
        self.serving: dict[int, tuple[int, str, datetime]] = {}

    # --- time ---------------------------------------------------------------------------------------------------

    def moment(self, after: datetime | None = None) -> datetime:
        """A time in the year, denser towards its end (the platform grows), not before `after`."""
        u = self.rng.random()
        share = u if self.rng.random() < 0.5 else math.sqrt(u)
        start = max(self.start, after) if after else self.start
        return start + (self.end - start) * share

    # --- people -------------------------------------------------------------------------------------------------

    def build_teams(self, count: int) -> list[Any]:
        """Teams of different sizes: weights fall off like Zipf's law, so a few teams do most of the work."""
        from apps.accounts.models import Team

        teams = []
        for n in range(count):
            name = f"{ADJECTIVES[n % len(ADJECTIVES)]} {NOUNS[(n // len(ADJECTIVES)) % len(NOUNS)]} {n}"
            onboarded = self.start - timedelta(days=self.rng.uniform(30, 400)) if n % 10 < 7 else self.moment()
            teams.append(Team(slug=f"{PREFIX}{n:02d}", name=name, created_at=onboarded, updated_at=onboarded))
        self.teams = bulk(Team, teams)
        self.weights = [1 / (n + 1) ** 0.9 for n in range(count)]
        return self.teams

    def build_users(self, count: int) -> int:
        """Users spread over the teams by size (at least two each: a manager and a member), their memberships,
        and one platform admin (a superuser)."""
        from django.contrib.auth.models import User

        from apps.accounts.models import Membership, Role

        per_team = split(count, self.weights, minimum=2)
        users, memberships = [], []
        for t, size in enumerate(per_team):
            for k in range(size):
                users.append(User(username=f"{PREFIX}{t:02d}-{k:03d}", first_name=f"User {k}", date_joined=self.start))
        made = bulk(User, users)
        at = 0
        for t, size in enumerate(per_team):
            team_users = made[at : at + size]
            at += size
            self.users.append([(user.pk, user.username) for user in team_users])
            for k, user in enumerate(team_users):
                joined = max(self.teams[t].created_at, self.moment()) if k else self.teams[t].created_at
                memberships.append(
                    Membership(
                        user=user,
                        team=self.teams[t],
                        role=Role.MANAGER if k == 0 else Role.MEMBER,
                        created_at=joined,
                        updated_at=joined,
                    )
                )
        bulk(Membership, memberships)
        admin = User.objects.create(username=f"{PREFIX}admin", is_superuser=True, is_staff=True)
        self.admin_id = admin.pk
        return len(made) + 1

    def _user(self, team: int) -> int:
        members = self.users[team]
        return members[min(len(members) - 1, int(self.rng.paretovariate(1.2)) - 1)][0]

    # --- workspaces and runs ------------------------------------------------------------------------------------

    def build_workspaces(self, count: int) -> int:
        """Workspaces over the shipped templates' published versions (a few golden paths most used); most ready,
        a fifth destroyed, some failed or drifted."""
        from apps.catalog.models import Lifecycle, TemplateVersion
        from apps.runs.models import WorkspaceStatus

        versions = list(TemplateVersion.objects.filter(lifecycle=Lifecycle.PUBLISHED).order_by("pk"))
        if not versions:
            raise HistoryRefused("no published template version: run sync_templates first")
        version_weights = [1 / (i + 1) for i in range(len(versions))]
        statuses = [
            (WorkspaceStatus.READY, 70),
            (WorkspaceStatus.DESTROYED, 20),
            (WorkspaceStatus.FAILED, 5),
            (WorkspaceStatus.DRIFTED, 3),
            (WorkspaceStatus.FORGOTTEN, 2),
        ]
        with _launch_counts_once():
            return self._build_workspaces(count, versions, version_weights, statuses)

    def _build_workspaces(self, count: int, versions: list[Any], version_weights: list[float],
                          statuses: Sequence[tuple[str, int]]) -> int:  # fmt: skip
        from apps.runs.models import Workspace, WorkspaceStatus

        n = 0
        for t, size in enumerate(split(count, self.weights, minimum=1)):
            pending = []
            for _ in range(size):
                version = self.rng.choices(versions, weights=version_weights)[0]
                created = self.moment(after=self.teams[t].created_at)
                status = _pick(self.rng, statuses)
                cost = Decimal(str(round(_lognormal(self.rng, 0.8, 1.0, 60), 4)))
                pending.append(
                    Workspace(
                        team=self.teams[t],
                        name=f"ws-{n}",
                        template_version=version,
                        created_by_id=self._user(t),
                        status=status,
                        estimated_hourly_cost=cost,
                        parameters={"size": self.rng.choice("smlx")},
                        created_at=created,
                        updated_at=created,
                    )
                )
                n += 1
            for ws in bulk(Workspace, pending):
                gone = None
                if ws.status == WorkspaceStatus.DESTROYED:
                    gone = ws.created_at + (self.end - ws.created_at) * self.rng.random()
                self.workspaces.append(
                    WorkspaceRef(
                        ws.pk,
                        t,
                        ws.template_version_id,
                        ws.template_version.template_id,
                        ws.created_by_id,
                        ws.created_at,
                        gone,
                    )
                )
        return n

    def build_runs(self, count: int) -> int:
        """Each workspace's launch run, then the rest over the workspaces with a long tail (some see hundreds):
        mostly applies that applied, some failed or errored; drift checks; queue times log-normal (median 6 s,
        a tail of minutes); runs still going at the end of the year are planning or queued."""
        from apps.runs.models import DRIFT_DETECTED, Run, RunKind, RunState

        busy = [self.rng.lognormvariate(0, 1.2) for _ in self.workspaces]
        extra = self.rng.choices(range(len(self.workspaces)), weights=busy, k=max(0, count - len(self.workspaces)))
        targets = list(range(len(self.workspaces))) + extra
        applies = [
            (RunState.APPLIED, 86),
            (RunState.FAILED, 6),
            (RunState.ERRORED, 3),
            (RunState.CANCELLED, 2),
            (RunState.REJECTED, 1.5),
            (RunState.DISCARDED, 1.5),
        ]
        made = 0
        for start in range(0, len(targets), BATCH):
            pending = []
            for i in targets[start : start + BATCH]:
                ws = self.workspaces[i]
                first = made < len(self.workspaces)
                created = ws.created_at if first else ws.created_at + (self.end - ws.created_at) * self.rng.random()
                kind = (
                    RunKind.APPLY
                    if first
                    else _pick(self.rng, [(RunKind.APPLY, 85), (RunKind.DESTROY, 5), (RunKind.DRIFT_CHECK, 10)])
                )
                reason = ""
                if kind == RunKind.DRIFT_CHECK:
                    state = RunState.DISCARDED
                    reason = f"{DRIFT_DETECTED}: 2 resources changed" if self.rng.random() < 0.2 else "No drift"
                else:
                    state = _pick(self.rng, applies)
                start_at = created + timedelta(seconds=_lognormal(self.rng, 6, 1.3, 6 * 3600))
                started: datetime | None = start_at
                finished: datetime | None = start_at + timedelta(seconds=_lognormal(self.rng, 75, 0.8, 4 * 3600))
                if start_at >= self.end:
                    state, started, finished = RunState.QUEUED, None, None
                elif finished and finished >= self.end:
                    state, finished = RunState.PLANNING, None
                pending.append(
                    Run(
                        workspace_id=ws.pk,
                        team=self.teams[ws.team],
                        template_version_id=ws.version_id,
                        kind=kind,
                        created_by_id=ws.user_id if first else self._user(ws.team),
                        state=state,
                        state_reason=reason,
                        parameters={"n": made},
                        created_at=created,
                        updated_at=finished or created,
                        queued_at=created,
                        started_at=started,
                        finished_at=finished,
                    )
                )
                made += 1
            bulk(Run, pending)
        return made

    # --- the audit trail ----------------------------------------------------------------------------------------

    def build_logins(self, count: int) -> int:
        """Sign-ins (`auth.login`, no team), by people of busier teams more often."""
        from apps.audit.models import AuditEvent

        team_of = self.rng.choices(range(len(self.teams)), weights=self.weights, k=count)
        for start in range(0, count, BATCH):
            pending = []
            for t in team_of[start : start + BATCH]:
                user_id, username = self.rng.choice(self.users[t])
                pending.append(
                    AuditEvent(
                        created_at=self.moment(),
                        actor_id=user_id,
                        actor_label=username,
                        team=None,
                        verb="auth.login",
                        target_type="auth.user",
                        target_id=str(user_id),
                    )
                )
            AuditEvent.objects.bulk_create(pending)
        return count

    def build_audit_events(self, count: int, verbs: Sequence[str]) -> int:
        """Audit events over the teams and `verbs` (a tenth without a team, as sign-ins are)."""
        from apps.audit.models import AuditEvent

        for start in range(0, count, BATCH):
            pending = []
            for n in range(start, min(start + BATCH, count)):
                t = self.rng.choices(range(len(self.teams)), weights=self.weights)[0]
                user_id, username = self.rng.choice(self.users[t])
                pending.append(
                    AuditEvent(
                        created_at=self.moment(),
                        team=None if n % 10 == 0 else self.teams[t],
                        actor_id=user_id,
                        actor_label=username,
                        verb=self.rng.choice(verbs),
                        target_label=f"target-{n}",
                    )
                )
            AuditEvent.objects.bulk_create(pending)
        return count

    # --- clusters and telemetry ---------------------------------------------------------------------------------

    def build_clusters(self, count: int) -> int:
        """GPU clusters (at least one a team) with their nodes, and each provisioning in the audit trail
        (`cluster.running`, or `cluster.failed` from provisioning for about one in sixteen)."""
        from apps.audit.models import AuditEvent
        from apps.clusters.models import Cluster, ClusterState, Node, NodeState, PurchaseOption

        types = [(t[:3], t[3]) for t in INSTANCE_TYPES]
        states = [
            (ClusterState.TERMINATED, 60),
            (ClusterState.STOPPED, 25),
            (ClusterState.RUNNING, 10),
            (ClusterState.FAILED, 5),
        ]
        node_state = {ClusterState.RUNNING: NodeState.RUNNING, ClusterState.STOPPED: NodeState.STOPPED}
        pending: list[Any] = []
        for t, size in enumerate(split(count, self.weights, minimum=1)):
            for k in range(size):
                kind, gpus, price = _pick(self.rng, types)
                nodes = _pick(self.rng, [(1, 6), (2, 2), (4, 1)])
                created = self.moment(after=self.teams[t].created_at)
                pending.append(
                    Cluster(
                        team=self.teams[t],
                        owner_id=self._user(t),
                        name=f"gpu-{k}",
                        region="us-east-1",
                        instance_type=kind,
                        node_count=nodes,
                        gpus_per_node=gpus,
                        purchase_option=_pick(self.rng, [(PurchaseOption.ON_DEMAND, 3), (PurchaseOption.SPOT, 1)]),
                        state=_pick(self.rng, states),
                        hourly_price=Decimal(price) * nodes,
                        created_at=created,
                        updated_at=created,
                    )
                )
        clusters = bulk(Cluster, pending)
        node_rows = [
            Node(
                cluster=c,
                instance_id=f"i-{PREFIX}{c.pk:08x}{k:02x}",
                gpu_count=c.gpus_per_node,
                state=node_state.get(c.state, NodeState.TERMINATED),
                token_digest=f"{PREFIX}{c.pk:020d}{k:04d}",
                registered_at=c.created_at,
                created_at=c.created_at,
                updated_at=c.created_at,
            )
            for c in clusters
            for k in range(c.node_count)
        ]
        nodes_of: dict[int, list[int]] = defaultdict(list)
        for node in bulk(Node, node_rows):
            nodes_of[node.cluster_id].append(node.pk)
        events = []
        team_index = {team.pk: t for t, team in enumerate(self.teams)}
        for c in clusters:
            t = team_index[c.team_id]
            self.clusters.append(
                ClusterRef(
                    c.pk,
                    t,
                    c.instance_type,
                    c.gpus_per_node,
                    c.hourly_price,
                    tuple(nodes_of[c.pk]),
                    c.owner_id,
                    c.created_at,
                )
            )
            at = c.created_at
            for _ in range(1 + int(self.rng.expovariate(0.5))):
                at += timedelta(seconds=_lognormal(self.rng, 240, 0.7, 3 * 3600))
                if at >= self.end:
                    break
                failed = self.rng.random() < 1 / 16
                events.append(
                    AuditEvent(
                        created_at=at,
                        actor_id=c.owner_id,
                        team_id=c.team_id,
                        target_type="clusters.cluster",
                        target_id=str(c.pk),
                        target_label=c.name,
                        verb="cluster.failed" if failed else "cluster.running",
                        data={"from": "provisioning"},
                    )
                )
                at += timedelta(hours=self.rng.uniform(4, 24 * 14))
        AuditEvent.objects.bulk_create(events, batch_size=BATCH)
        return len(clusters) + len(node_rows) + len(events)

    def build_gpu_rollups(self, count: int) -> int:
        """Hourly telemetry rollups per GPU: stretches of 4-48 hours, some busy (55-98% utilization), some idle
        (under 3%: what idle auto-stop and the idle GPU cost find), until the cluster's share of `count`."""
        from apps.clusters.models import GpuRollup

        weights = [self.weights[c.team] for c in self.clusters]
        made = 0
        pending: list[GpuRollup] = []
        for cluster, budget in zip(self.clusters, split(count, weights), strict=True):
            gpus = [(node, g) for node in cluster.node_ids for g in range(cluster.gpus_per_node)]
            hours = max(1, budget // len(gpus))
            at = cluster.created_at.replace(minute=0, second=0, microsecond=0) + timedelta(hours=1)
            while hours > 0 and at < self.end:
                stretch = min(hours, self.rng.randint(4, 48))
                busy = self.rng.random() < 0.65
                for h in range(stretch):
                    bucket = at + timedelta(hours=h)
                    if bucket >= self.end:
                        break
                    for node, g in gpus:
                        avg = self.rng.uniform(55, 95) if busy else self.rng.uniform(0, 2)
                        pending.append(
                            GpuRollup(
                                node_id=node,
                                gpu_index=g,
                                bucket_start=bucket,
                                bucket_seconds=3600,
                                sample_count=360,
                                utilization_avg=avg,
                                utilization_max=min(100, avg + 3 if busy else avg + 0.8),
                                memory_used_avg_mib=20000 if busy else 500,
                                memory_used_max_mib=22000 if busy else 600,
                                memory_total_mib=24576,
                                power_avg_w=250 if busy else 60,
                                power_sample_count=360,
                                temperature_max_c=70 if busy else 40,
                                process_count_max=1 if busy else 0,
                            )
                        )
                hours -= stretch
                at += timedelta(hours=stretch + self.rng.expovariate(1 / 36))
                if len(pending) >= BATCH:
                    GpuRollup.objects.bulk_create(pending)
                    made += len(pending)
                    pending = []
        GpuRollup.objects.bulk_create(pending)
        return made + len(pending)

    # --- training -----------------------------------------------------------------------------------------------

    def build_training_jobs(self, count: int) -> int:
        """Jobs on the team's clusters: most succeed, some fail, are lost, cancelled or time out; queue times
        log-normal (median 2 minutes, a tail of hours)."""
        from apps.training.models import Framework, JobState, TrainingJob

        by_team: dict[int, list[ClusterRef]] = defaultdict(list)
        for c in self.clusters:
            by_team[c.team].append(c)
        outcomes = [
            (JobState.SUCCEEDED, 78),
            (JobState.FAILED, 12),
            (JobState.LOST, 3),
            (JobState.CANCELLED, 4),
            (JobState.TIMED_OUT, 3),
        ]
        frameworks = [(Framework.PYTORCH, 70), (Framework.JAX, 10), (Framework.XGBOOST, 10), (Framework.TENSORFLOW, 10)]
        made = 0
        for t, size in enumerate(split(count, self.weights, minimum=1)):
            pending = []
            for _ in range(size):
                cluster = self.rng.choice(by_team[t])
                submitted = self.moment(after=cluster.created_at)
                start_at = submitted + timedelta(seconds=_lognormal(self.rng, 120, 1.4, 12 * 3600))
                state = _pick(self.rng, outcomes)
                started: datetime | None = start_at
                finished: datetime | None = start_at + timedelta(seconds=_lognormal(self.rng, 2400, 1.0, 72 * 3600))
                if start_at >= self.end:
                    state, started, finished = JobState.QUEUED, None, None
                elif finished is not None and finished >= self.end:
                    state, finished = JobState.RUNNING, None
                pending.append(
                    TrainingJob(
                        team=self.teams[t],
                        owner_id=self._user(t),
                        cluster_id=cluster.pk,
                        node_id=cluster.node_ids[0],
                        image="ghcr.io/paved/train:2.3",
                        command=["python", "train.py"],
                        framework=_pick(self.rng, frameworks),
                        gpus_per_node=cluster.gpus_per_node,
                        max_run_minutes=72 * 60,
                        state=state,
                        submitted_at=submitted,
                        scheduled_at=started,
                        started_at=started,
                        finished_at=finished,
                        exit_code=None if finished is None else 0 if state == JobState.SUCCEEDED else 1,
                        created_at=submitted,
                        updated_at=finished or submitted,
                    )
                )
            made += len(bulk(TrainingJob, pending))
        return made

    # --- models and deployments ---------------------------------------------------------------------------------

    def build_deployments(self, models_count: int, count: int) -> int:
        """Registered models, each with a production endpoint; every deployment rolls a new version out to it
        (canary mostly): most succeed, some roll back (half after reaching full traffic: change failures, restored
        in minutes), some fail or are aborted; each finished one has its DORA record."""
        from apps.deployments.models import (
            Deployment,
            DeploymentState,
            DoraOutcome,
            DoraRecord,
            Endpoint,
            Environment,
            Strategy,
            target_name,
        )
        from apps.registry.models import Framework, Model, ModelVersion

        owners = [t for t, size in enumerate(split(models_count, self.weights, minimum=1)) for _ in range(size)]
        registered = bulk(
            Model,
            [
                Model(
                    team=self.teams[t],
                    name=f"model-{k}",
                    created_by_id=self.users[t][0][0],
                    created_at=self.start,
                    updated_at=self.start,
                )
                for k, t in enumerate(owners)
            ],
        )
        endpoints = bulk(
            Endpoint,
            [
                Endpoint(
                    team_id=m.team_id,
                    model=m,
                    name=f"{m.name}-prod",
                    created_by_id=m.created_by_id,
                    environment=Environment.PRODUCTION,
                    created_at=self.start,
                    updated_at=self.start,
                    # Most endpoints keep the default SLO, every fourth promises 99.9%, every tenth declares none.
                    slo_availability_percent=None if k % 10 == 9 else 99.9 if k % 4 == 0 else 99.5,
                    slo_latency_ms=None if k % 10 == 9 else 300 if k % 4 == 0 else 500,
                )
                for k, m in enumerate(registered)
            ],
        )
        outcomes = [
            (DeploymentState.SUCCEEDED, 86),
            ("change_failure", 4),
            ("caught", 4),
            (DeploymentState.FAILED, 3),
            (DeploymentState.ABORTED, 3),
        ]
        plans: list[tuple[Any, Any, list[datetime]]] = []
        for model, endpoint, size in zip(
            registered, endpoints, split(count, [self.weights[t] for t in owners], minimum=1), strict=True
        ):
            plans.append((model, endpoint, sorted(self.moment() for _ in range(size))))
        versions = bulk(
            ModelVersion,
            [
                ModelVersion(
                    model=model,
                    team_id=model.team_id,
                    version=v + 1,
                    artifact_uri=f"s3://models/{model.name}/{v + 1}",
                    framework=Framework.SKLEARN if v % 3 else Framework.PYTORCH,
                    registered_by_id=model.created_by_id,
                    code_commit=f"{self.rng.getrandbits(40):010x}",
                    created_at=at,
                    updated_at=at,
                    code_committed_at=at - timedelta(seconds=_lognormal(self.rng, 86400, 1.0, 30 * 86400)),
                )
                for model, _, times in plans
                for v, at in enumerate(times)
            ],
        )
        rollouts, records = [], []
        at_version = 0
        slugs = {team.pk: team.slug for team in self.teams}
        for _model, endpoint, times in plans:
            stable = None
            for _ in times:
                version = versions[at_version]
                at_version += 1
                outcome = _pick(self.rng, outcomes)
                requested = version.created_at + timedelta(seconds=_lognormal(self.rng, 6 * 3600, 1.2, 20 * 86400))
                started = requested + timedelta(seconds=30)
                bake = timedelta(minutes=self.rng.uniform(15, 60))
                promoted = breach = restored = None
                if outcome in (DeploymentState.SUCCEEDED, "change_failure"):
                    promoted = started + bake
                if outcome in ("change_failure", "caught"):
                    breach = (promoted or started + bake / 2) + timedelta(minutes=self.rng.uniform(1, 120))
                    restored = breach + timedelta(seconds=_lognormal(self.rng, 90, 1.0, 3600))
                finished = restored or promoted or started + bake / 3
                state = {"change_failure": DeploymentState.ROLLED_BACK, "caught": DeploymentState.ROLLED_BACK}.get(
                    outcome, outcome
                )
                rollouts.append(
                    Deployment(
                        team_id=endpoint.team_id,
                        endpoint=endpoint,
                        version=version,
                        baseline_version=stable,
                        strategy=Strategy.CANARY if self.rng.random() < 0.8 else Strategy.BLUE_GREEN,
                        steps=[{"weight": 10, "bake_seconds": 600}, {"weight": 50, "bake_seconds": 600}],
                        analysis=MONITORED_ANALYSIS if at_version % 10 < 7 else {},
                        state=state,
                        requested_by_id=version.registered_by_id,
                        started_at=started,
                        promoted_at=promoted,
                        first_breach_at=breach,
                        restored_at=restored,
                        finished_at=finished,
                        canary_weight=100 if promoted and not breach else 0,
                        created_at=requested,
                        updated_at=finished,
                    )
                )
                records.append((outcome, version, requested, promoted, breach, restored, finished))
                if outcome == DeploymentState.SUCCEEDED:
                    stable = version
                    self.serving.setdefault(
                        endpoint.pk, (endpoint.team_id, target_name(slugs[endpoint.team_id], endpoint.name), finished)
                    )
            endpoint.stable_version = stable
        made = bulk(Deployment, rollouts)
        dora = {
            DeploymentState.SUCCEEDED: DoraOutcome.SUCCESS,
            "change_failure": DoraOutcome.CHANGE_FAILURE,
            "caught": DoraOutcome.CAUGHT_IN_CANARY,
            DeploymentState.FAILED: DoraOutcome.FAILED,
            DeploymentState.ABORTED: DoraOutcome.ABORTED,
        }
        DoraRecord.objects.bulk_create(
            [
                DoraRecord(
                    deployment=d,
                    team_id=d.team_id,
                    environment=Environment.PRODUCTION,
                    outcome=dora[outcome],
                    finished_at=finished,
                    lead_time_seconds=int((promoted - version.created_at).total_seconds()) if promoted else None,
                    commit_lead_time_seconds=int((promoted - version.code_committed_at).total_seconds())
                    if promoted and version.code_committed_at
                    else None,
                    time_to_restore_seconds=int((restored - breach).total_seconds()) if restored and breach else None,
                )
                for d, (outcome, version, _, promoted, breach, restored, finished) in zip(made, records, strict=True)
            ],
            batch_size=BATCH,
        )
        Endpoint.objects.bulk_update(endpoints, ["stable_version"], batch_size=BATCH)
        return len(registered) + len(endpoints) + len(versions) + 2 * len(made)

    # --- satisfaction -------------------------------------------------------------------------------------------

    def build_survey(self, count: int) -> int:
        """Survey prompts after launches (on random workspaces), about 45% answered, scores leaning to 4-5."""
        from apps.feedback.models import SurveyPrompt, SurveyResponse

        launches: dict[int, int] = defaultdict(int)
        prompts = []
        for ws in self.rng.sample(self.workspaces, min(count, len(self.workspaces))):
            launches[ws.user_id] += 1
            shown = ws.created_at + timedelta(hours=1)
            answered = shown + timedelta(minutes=5) if self.rng.random() < 0.45 and shown < self.end else None
            prompts.append(
                SurveyPrompt(
                    user_id=ws.user_id,
                    team=self.teams[ws.team],
                    template_id=ws.template_id,
                    workspace_id=ws.pk,
                    launch_number=launches[ws.user_id],
                    shown_at=shown,
                    answered_at=answered,
                    created_at=shown,
                    updated_at=shown,
                )
            )
        made = bulk(SurveyPrompt, prompts)
        responses = bulk(
            SurveyResponse,
            [
                SurveyResponse(
                    prompt=p,
                    user_id=p.user_id,
                    team_id=p.team_id,
                    template_id=p.template_id,
                    workspace_id=p.workspace_id,
                    score=self.rng.choices([5, 4, 3, 2, 1], [45, 30, 13, 7, 5])[0],
                    created_at=p.answered_at,
                    updated_at=p.answered_at,
                )
                for p in made
                if p.answered_at
            ],
        )
        return len(made) + len(responses)

    # --- costs --------------------------------------------------------------------------------------------------

    def build_cost_lines(self, count: int) -> int:
        """Metering line items, day by day in time order (more on weekdays and as the year goes on): three in four
        for a workspace's services (team, workspace, template and user attributed), one in five a cluster's GPU
        instance hours, the rest untagged (the unallocated bucket). Written with COPY."""
        from apps.costs.models import CostLineItem

        days = (self.end - self.start).days
        day_weights = [
            (0.5 + d / days) * (0.6 if (self.start + timedelta(days=d)).weekday() >= 5 else 1.0) for d in range(days)
        ]
        workspaces = sorted(self.workspaces, key=lambda w: w.created_at)
        ws_times = [w.created_at for w in workspaces]
        clusters = sorted(self.clusters, key=lambda c: c.created_at)
        cluster_times = [c.created_at for c in clusters]
        columns = [
            "source",
            "line_id",
            "billing_period",
            "usage_start",
            "usage_end",
            "payer_account",
            "usage_account",
            "product_code",
            "usage_type",
            "operation",
            "line_item_type",
            "usage_amount",
            "pricing_unit",
            "unblended_cost",
            "net_cost",
            "currency",
            "resource_id",
            "tags",
            "instance_type",
            "team_id",
            "workspace_id",
            "cluster_id",
            "template_id",
            "user_id",
        ]
        team_pk = [team.pk for team in self.teams]
        rng = self.rng
        n = 0
        with self._line_writer(CostLineItem, columns) as write:
            for d, size in enumerate(split(count, day_weights)):
                day = (self.start + timedelta(days=d)).replace(hour=0, minute=0, second=0, microsecond=0)
                period = day.date().replace(day=1)
                open_ws = bisect.bisect_right(ws_times, day + timedelta(days=1))
                open_clusters = bisect.bisect_right(cluster_times, day + timedelta(days=1))
                for _ in range(size):
                    start = day + timedelta(hours=rng.randrange(24))
                    kind = rng.random()
                    team = ws_id = cluster_id = template_id = user_id = None
                    if kind < 0.2 and open_clusters:
                        c = clusters[rng.randrange(open_clusters)]
                        product, instance, usage = "AmazonEC2", c.instance_type, f"BoxUsage:{c.instance_type}"
                        cost = c.hourly_price
                        team, cluster_id, user_id, resource = team_pk[c.team], c.pk, c.owner_id, f"i-{c.pk}"
                    elif kind < 0.95 and open_ws:
                        w = workspaces[rng.randrange(open_ws)]
                        product, instance, usage = rng.choice(WORKSPACE_SERVICES)
                        cost = Decimal(str(round(_lognormal(rng, 0.6, 1.1, 200), 4)))
                        team, ws_id, template_id, user_id, resource = (
                            team_pk[w.team],
                            w.pk,
                            w.template_id,
                            w.user_id,
                            f"ws-{w.pk}",
                        )
                    else:
                        product, instance, usage, resource = "AmazonVPC", "", "NatGateway-Hours", "nat-shared"
                        cost = Decimal("0.045")
                    if team is not None:
                        self.spend[team] += cost
                    write(
                        (
                            "metering",
                            f"{PREFIX}{self.seed}-{n}",
                            period,
                            start,
                            start + timedelta(hours=1),
                            "",
                            "",
                            product,
                            usage,
                            "",
                            "Usage",
                            1,
                            "Hrs",
                            cost,
                            cost,
                            "USD",
                            resource,
                            "{}",
                            instance,
                            team,
                            ws_id,
                            cluster_id,
                            template_id,
                            user_id,
                        )
                    )
                    n += 1
        return n

    def build_endpoint_traffic(self) -> int:
        """Each production endpoint's hourly traffic rollups from its first successful rollout to the year's end
        (busier by day, growing; errors and slow answers mostly well inside a 99.5% SLO, with an incident hour now
        and then), and a day's SageMaker hosting line per endpoint tagged `paved:endpoint` (the cost per 1k
        inferences reads both). Written with COPY; its own random stream, so the other builders' draws are the
        same with or without it."""
        from apps.costs.models import CostLineItem
        from apps.deployments.models import EndpointTraffic

        rng = random.Random(f"{self.seed}-traffic")  # noqa: S311 - reproducible data, not secrets
        columns = ["endpoint_id", "team_id", "start", "read_at", "requests", "errors", "slow", "counters"]
        n = 0
        with self._line_writer(EndpointTraffic, columns) as write:
            for endpoint_id, (team_id, _, since) in sorted(self.serving.items()):
                base = _lognormal(rng, 2000, 1.0, 50_000)
                hour = since.replace(minute=0, second=0, microsecond=0) + timedelta(hours=1)
                while hour < self.end:
                    grown = 0.5 + (hour - self.start) / (self.end - self.start)
                    daily = 0.4 + 0.6 * math.sin(math.pi * hour.hour / 24)
                    requests = max(0, round(base * grown * daily * rng.uniform(0.8, 1.2)))
                    incident = rng.random() < 0.002
                    errors = round(requests * (rng.uniform(0.02, 0.2) if incident else rng.uniform(0, 0.002)))
                    slow = round((requests - errors) * rng.uniform(0, 0.003))
                    write((endpoint_id, team_id, hour, hour + timedelta(minutes=55), requests, errors, slow, "{}"))
                    hour += timedelta(hours=1)
                    n += 1
        line_columns = ["source", "line_id", "billing_period", "usage_start", "usage_end", "payer_account",
                        "usage_account", "product_code", "usage_type", "operation", "line_item_type", "usage_amount",
                        "pricing_unit", "unblended_cost", "net_cost", "currency", "resource_id", "tags",
                        "instance_type", "team_id"]  # fmt: skip
        with self._line_writer(CostLineItem, line_columns) as write:
            for endpoint_id, (team_id, target, since) in sorted(self.serving.items()):
                cost = Decimal(str(round(rng.uniform(20, 120), 4)))  # an ml.* instance or two, a day
                day = since.replace(hour=0, minute=0, second=0, microsecond=0) + timedelta(days=1)
                while day < self.end:
                    self.spend[team_id] += cost
                    write(("metering", f"{PREFIX}{self.seed}-endpoint-{endpoint_id}-{day:%Y%m%d}",
                           day.date().replace(day=1), day, day + timedelta(days=1), "", "", "AmazonSageMaker",
                           "Host:ml.m5.large", "", "Usage", 24, "Hrs", cost, cost, "USD", f"endpoint/{target}",
                           json.dumps({"paved:endpoint": target}), "", team_id))  # fmt: skip
                    day += timedelta(days=1)
                    n += 1
        return n

    @contextmanager
    def _line_writer(
        self, model: type[models.Model], columns: list[str]
    ) -> Iterator[Callable[[tuple[Any, ...]], None]]:
        """A row writer into `model`'s table: PostgreSQL COPY, or bulk_create batches elsewhere (SQLite)."""
        if connection.vendor == "postgresql":
            sql = f"COPY {model._meta.db_table} ({', '.join(columns)}) FROM STDIN"
            with connection.cursor() as cursor, cursor.cursor.copy(sql) as copy:
                yield copy.write_row
            return
        pending: list[models.Model] = []

        json_columns = [c for c in columns if isinstance(model._meta.get_field(c), models.JSONField)]

        def write(row: tuple[Any, ...]) -> None:
            values = dict(zip(columns, row, strict=True))
            for column in json_columns:
                values[column] = json.loads(values[column])
            pending.append(model(**values))
            if len(pending) >= BATCH:
                model.objects.bulk_create(pending)  # type: ignore[attr-defined]
                pending.clear()

        yield write
        model.objects.bulk_create(pending)  # type: ignore[attr-defined]

    def rebuild_cost_rollups(self) -> int:
        """The cost rollups from the line items, a month at a time, by the code imports and metering run
        (`rebuild_days`)."""
        from apps.costs.services.rollups import rebuild_days

        days = [(self.start + timedelta(days=d)).date() for d in range((self.end - self.start).days)]
        by_month: dict[date, list[date]] = defaultdict(list)
        for day in days:
            by_month[day.replace(day=1)].append(day)
        return sum(rebuild_days(source="metering", days=month) for month in by_month.values())

    def build_budgets(self) -> int:
        """One monthly budget a team, set around its average month of spend (some teams over, most under)."""
        from apps.costs.models import Budget

        months = max(1.0, (self.end - self.start).days / 30.4)
        budgets = []
        for t, team in enumerate(self.teams):
            amount = (self.spend[team.pk] / Decimal(months) * Decimal(str(self.rng.uniform(0.8, 1.5)))).quantize(
                Decimal("1")
            )
            budgets.append(
                Budget(
                    team=team,
                    name="monthly",
                    monthly_amount=max(amount, Decimal(100)),
                    created_by_id=self.users[t][0][0],
                    scope_key=f"team:{team.pk}/template:-/user:-",
                    created_at=self.start,
                    updated_at=self.start,
                )
            )
        return len(bulk(Budget, budgets))

    def analyze(self) -> int:
        """Fresh planner statistics for the tables just filled (autovacuum would get there, later)."""
        if connection.vendor != "postgresql":
            return 0
        tables = generated_tables()
        with connection.cursor() as cursor:
            for table in tables:
                cursor.execute(f"ANALYZE {table}")
        return len(tables)


GENERATED_MODELS = (
    "accounts.Team",
    "accounts.Membership",
    "auth.User",
    "runs.Workspace",
    "runs.Run",
    "audit.AuditEvent",
    "clusters.Cluster",
    "clusters.Node",
    "clusters.GpuRollup",
    "training.TrainingJob",
    "deployments.Deployment",
    "deployments.DoraRecord",
    "costs.CostLineItem",
    "costs.CostDaily",
    "costs.CostOwnerDaily",
    "costs.CostOwnerMonthly",
    "feedback.SurveyPrompt",
    "feedback.SurveyResponse",
)


def generated_tables() -> list[str]:
    from django.apps import apps

    return [apps.get_model(label)._meta.db_table for label in GENERATED_MODELS]


def vacuum() -> int:
    """VACUUM the filled tables once the history is committed (it cannot run in a transaction): until their
    visibility map is set, every COUNT of a list page's pager reads the heap (a team's 185,000 runs: 87 ms, 7 ms
    after). Autovacuum does this on a live database some time after a bulk load; a benchmark should not wait.
    Inside a caller's transaction (a test's) VACUUM cannot run, and it is left to autovacuum: returns 0."""
    if connection.vendor != "postgresql" or connection.in_atomic_block:
        return 0
    tables = generated_tables()
    with connection.cursor() as cursor:
        for table in tables:
            cursor.execute(f"VACUUM {table}")
    return len(tables)


class HistoryRefused(Exception):
    """The database holds data that was not generated (or a generated history already)."""


def check_empty() -> None:
    """Refuse a database with real data (teams, workspaces or line items not made here) or a history already."""
    from apps.accounts.models import Team
    from apps.costs.models import CostLineItem
    from apps.runs.models import Workspace

    if Team.objects.filter(slug__startswith=PREFIX).exists():
        raise HistoryRefused(f"the database already holds a generated history (teams {PREFIX}*)")
    real = [
        label
        for label, found in (
            ("teams", Team.objects.exists()),
            ("workspaces", Workspace.objects.exists()),
            ("cost line items", CostLineItem.objects.exists()),
        )
        if found
    ]
    if real:
        raise HistoryRefused(f"the database already holds {', '.join(real)} that were not generated")


def generate(
    *,
    teams: int,
    scale: float,
    seed: int,
    end: datetime,
    force: bool = False,
    progress: Callable[[str, int, float], None] | None = None,
) -> tuple[History, Report]:
    """Build the whole history (see the module docstring); `progress(name, count, seconds)` after each part."""
    from apps.catalog.models import Lifecycle, TemplateVersion

    if not force:
        check_empty()
    from apps.accounts.models import Team

    if Team.objects.filter(slug__startswith=PREFIX).exists():
        raise HistoryRefused(f"the database already holds a generated history (teams {PREFIX}*); use a fresh one")
    if not TemplateVersion.objects.filter(lifecycle=Lifecycle.PUBLISHED).exists():
        import io

        from django.core.management import call_command

        call_command("sync_templates", stdout=io.StringIO())
    sizes = Sizes.at(teams=teams, scale=scale)
    if connection.vendor == "postgresql":
        # Check foreign keys as each statement ends: deferred to COMMIT, the checks of ~20 million generated rows
        # queue up and the full year's COMMIT ran for more than 45 minutes.
        with connection.cursor() as cursor:
            cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")
    history = History(seed=seed, end=end)
    report = Report()
    parts: list[tuple[str, Callable[[], int]]] = [
        ("teams", lambda: len(history.build_teams(sizes.teams))),
        ("users and memberships", lambda: history.build_users(sizes.users)),
        ("workspaces", lambda: history.build_workspaces(sizes.workspaces)),
        ("runs", lambda: history.build_runs(sizes.runs)),
        ("sign-ins (audit)", lambda: history.build_logins(sizes.logins)),
        ("clusters, nodes, provisioning events", lambda: history.build_clusters(sizes.clusters)),
        ("GPU telemetry rollups (hourly)", lambda: history.build_gpu_rollups(sizes.gpu_rollups)),
        ("training jobs", lambda: history.build_training_jobs(sizes.jobs)),
        (
            "models, endpoints, versions, deployments, DORA",
            lambda: history.build_deployments(sizes.models, sizes.deployments),
        ),
        ("survey prompts and answers", lambda: history.build_survey(sizes.prompts)),
        ("cost line items (COPY)", lambda: history.build_cost_lines(sizes.cost_lines)),
        ("endpoint traffic and hosting lines (COPY)", history.build_endpoint_traffic),
        ("cost rollups (rebuild_days)", history.rebuild_cost_rollups),
        ("budgets", history.build_budgets),
        ("ANALYZE (tables)", history.analyze),
    ]
    for name, build in parts:
        started = time.perf_counter()
        count = build()
        report.add(name, count, time.perf_counter() - started)
        if progress:
            progress(name, count, report.parts[-1][2])
    return history, report


def day_end(day: date) -> datetime:
    """The end of `day` (UTC): a history `--end` day includes the day itself."""
    return datetime(day.year, day.month, day.day, tzinfo=UTC) + timedelta(days=1)
