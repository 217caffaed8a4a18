"""Data for the load test: two teams of users, each with a browser session and an API token (so locust never logs
in: a login rate limit cannot get in the way, and no password hashing runs under load), the shipped golden paths
(sync_templates), a few runs applied for real through the worker, and GPU clusters with live telemetry.

Runs and their audit trail come from real launches, not fabricated rows; clusters are recorded directly, with
their telemetry, because provisioning them needs a cloud (the load test talks to 127.0.0.1 only)."""

from __future__ import annotations

import io
import random
from dataclasses import asdict, dataclass, field
from datetime import timedelta
from importlib import import_module
from typing import Any

from django.conf import settings
from django.contrib.auth import BACKEND_SESSION_KEY, HASH_SESSION_KEY, SESSION_KEY
from django.contrib.auth.models import User
from django.core.management import call_command
from django.utils import timezone

from apps.accounts.models import Role, Team
from apps.accounts.services import create_api_token, ensure_membership, ensure_team
from apps.catalog.models import TemplateVersion
from apps.catalog.services import launch_template
from apps.clusters.models import Cluster, ClusterState, GpuSample, Node, NodeState, PurchaseOption

TEAMS = [("vision", "Vision"), ("nlp", "NLP")]
# Builtin-only golden path (terraform_data): it applies here, where no provider can be downloaded.
LAUNCH_TEMPLATE = "sandbox-experiment"
CLUSTERS_PER_TEAM = 3
TELEMETRY_MINUTES = 30
SAMPLE_SECONDS = 10


@dataclass
class LoadUser:
    username: str
    team: str
    session: str  # a session key: the value of the session cookie
    token: str  # a personal API token
    manager: bool  # managers also read the audit log (members may not)


@dataclass
class Seed:
    users: list[LoadUser] = field(default_factory=list)
    templates: list[str] = field(default_factory=list)
    launch_template: str = LAUNCH_TEMPLATE
    clusters: dict[str, list[int]] = field(default_factory=dict)  # team slug -> cluster ids
    seed_runs: list[int] = field(default_factory=list)  # the runs launched while seeding

    def as_json(self) -> dict[str, Any]:
        return asdict(self)


def session_for(user: User) -> str:
    """A logged-in session for `user`, as `auth.login` would store it."""
    engine = import_module(settings.SESSION_ENGINE)
    session = engine.SessionStore()
    session[SESSION_KEY] = str(user.pk)
    session[BACKEND_SESSION_KEY] = "django.contrib.auth.backends.ModelBackend"
    session[HASH_SESSION_KEY] = user.get_session_auth_hash()
    session.create()
    return str(session.session_key)


def seed_users(users_per_team: int) -> tuple[dict[str, Team], list[LoadUser], dict[str, User]]:
    teams = {slug: ensure_team(slug=slug, name=name) for slug, name in TEAMS}
    users: list[LoadUser] = []
    first: dict[str, User] = {}
    for slug, team in teams.items():
        for index in range(users_per_team):
            username = f"load-{slug}-{index:03d}"
            manager = index % 10 == 0  # one in ten manages the team: both kinds of page are exercised
            user, _ = User.objects.get_or_create(username=username, defaults={"email": f"{username}@example.com"})
            user.set_unusable_password()  # never logs in: the session below is what a login would have made
            user.save(update_fields=["password"])
            ensure_membership(user=user, team=team, role=Role.MANAGER if manager else Role.MEMBER)
            _, token = create_api_token(actor=user, name="load-test")
            users.append(LoadUser(username, slug, session_for(user), token, manager))
            first.setdefault(slug, user)
    return teams, users, first


def seed_clusters(teams: dict[str, Team], owners: dict[str, User]) -> dict[str, list[int]]:
    """Running GPU clusters with the last half hour of telemetry, so the cluster pages draw real sparklines."""
    rng = random.Random(7)  # noqa: S311 - telemetry values, not secrets
    now = timezone.now()
    found: dict[str, list[int]] = {}
    for slug, team in teams.items():
        for index in range(CLUSTERS_PER_TEAM):
            cluster = Cluster.objects.create(
                team=team,
                owner=owners[slug],
                name=f"load-{slug}-{index}",
                region="us-east-1",
                instance_type="g5.12xlarge",
                node_count=2,
                gpus_per_node=4,
                purchase_option=PurchaseOption.ON_DEMAND,
                purchase_option_used=PurchaseOption.ON_DEMAND,
                state=ClusterState.RUNNING,
                hourly_price="11.3440",
                running_since=now - timedelta(hours=2),
                max_hours=72,
            )
            samples: list[GpuSample] = []
            for node_index in range(cluster.node_count):
                node = Node.objects.create(
                    cluster=cluster,
                    instance_id=f"i-load{cluster.pk:06d}{node_index:07d}",
                    gpu_count=cluster.gpus_per_node,
                    state=NodeState.RUNNING,
                    token_digest=f"load-{cluster.pk}-{node_index}".ljust(64, "0"),
                    registered_at=now - timedelta(hours=2),
                    last_sample_at=now,
                )
                for step in range(TELEMETRY_MINUTES * 60 // SAMPLE_SECONDS):
                    at = now - timedelta(seconds=step * SAMPLE_SECONDS)
                    samples.extend(
                        GpuSample(
                            node=node,
                            gpu_index=gpu,
                            sampled_at=at,
                            utilization_pct=rng.uniform(20, 95),
                            memory_used_mib=rng.uniform(10_000, 20_000),
                            memory_total_mib=24_576,
                            power_w=rng.uniform(100, 300),
                            temperature_c=rng.uniform(40, 80),
                            process_count=1,
                        )
                        for gpu in range(cluster.gpus_per_node)
                    )
            GpuSample.objects.bulk_create(samples, batch_size=2000)
            found.setdefault(slug, []).append(cluster.pk)
    return found


def seed(*, users_per_team: int, launches_per_team: int) -> Seed:
    """Everything locust needs, recorded in the database the portal under test uses. Launches are queued here and
    applied by the worker (the caller waits for them)."""
    call_command("sync_templates", stdout=io.StringIO())
    teams, users, first = seed_users(users_per_team)
    version = TemplateVersion.objects.filter(template__slug=LAUNCH_TEMPLATE, lifecycle="published").latest("pk")
    runs: list[int] = []
    for slug, team in teams.items():
        for index in range(launches_per_team):
            result = launch_template(
                actor=first[slug],
                team=team,
                version=version,
                params={"experiment_name": f"seed-{index}"},
                name=f"seed-{index}",
            )
            runs.append(result.run.pk)
    templates = list(TemplateVersion.objects.filter(lifecycle="published").values_list("template__slug", flat=True))
    return Seed(
        users=users,
        templates=sorted(set(templates)),
        clusters=seed_clusters(teams, first),
        seed_runs=runs,
    )
