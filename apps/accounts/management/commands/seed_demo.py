"""Idempotent demo data: run it any number of times and the demo ends in the same state."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from django.conf import settings
from django.contrib.auth.models import User
from django.core.management import call_command
from django.core.management.base import BaseCommand

from apps.accounts.models import Role
from apps.accounts.services import ensure_membership, ensure_team, ensure_user
from apps.costs.models import Budget
from apps.costs.services.budgets import create_budget
from apps.deployments.models import Endpoint
from apps.deployments.services.endpoints import create_endpoint
from apps.deployments.services.rollouts import start_deployment
from apps.registry.models import Model
from apps.registry.services import approve_version, register_model, register_version

TEAMS = [
    ("vision", "Vision", "Computer vision research and production models."),
    ("nlp", "NLP", "Language models, retrieval and text pipelines."),
]
# (username, first name, superuser, [(team, role), ...])
PEOPLE: list[tuple[str, str, bool, list[tuple[str, Role]]]] = [
    ("alice", "Alice", False, [("vision", Role.MEMBER)]),
    ("bob", "Bob", False, [("nlp", Role.MEMBER)]),
    ("mark", "Mark", False, [("vision", Role.MANAGER), ("nlp", Role.MANAGER)]),
    ("ada", "Ada", True, [("vision", Role.ADMIN), ("nlp", Role.ADMIN)]),
]
# Monthly team budgets (USD, guardrail): vision warns, nlp needs a manager's approval past what is left.
BUDGETS = [("vision", "2000", "warn"), ("nlp", "1500", "approve")]
DESCRIPTIONS = {
    "alice": "data scientist, vision",
    "bob": "data scientist, nlp",
    "mark": "manager of vision and nlp",
    "ada": "platform admin",
}


# The demo models `make serving` writes (apps/deployments/serving/train_demo_model.py), served by the local target.
DEMO_MODELS = settings.BASE_DIR / "var" / "models" / "iris"
# (file, evaluation accuracy, serving parameters, description): v3 rehearses a bad release (30% of answers 5xx).
DEMO_VERSIONS = [
    ("v1.joblib", 0.973, {}, "Logistic regression, C=1.0."),
    ("v2.joblib", 0.967, {}, "Logistic regression, C=0.5: a healthy canary."),
    ("v2.joblib", 0.967, {"fail_rate": 0.3}, "Rehearsal of a bad release: 30% of its answers are 5xx."),
]


class Command(BaseCommand):
    help = "Create or reset the demo teams (vision, nlp) and users (alice, bob, mark, ada)."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("--password", default=settings.DEMO_PASSWORD, help="Password for every demo user.")

    def handle(self, *args: Any, password: str, **options: Any) -> None:
        teams = {slug: ensure_team(slug=slug, name=name, description=desc) for slug, name, desc in TEAMS}
        for username, first_name, superuser, roles in PEOPLE:
            user = ensure_user(
                username=username,
                password=password,
                email=f"{username}@example.com",
                first_name=first_name,
                is_superuser=superuser,
            )
            for team_slug, role in roles:
                ensure_membership(user=user, team=teams[team_slug], role=role)
        manager = User.objects.get(username="mark")
        for team_slug, amount, guardrail in BUDGETS:
            if not Budget.objects.filter(team=teams[team_slug], template=None, user=None).exists():
                create_budget(
                    actor=manager,
                    team=teams[team_slug],
                    name="Monthly",
                    monthly_amount=Decimal(amount),
                    guardrail=guardrail,
                )
        self._models(alice=User.objects.get(username="alice"), manager=manager, team=teams["vision"])
        call_command("sync_templates", stdout=self.stdout)
        self.stdout.write(self.style.SUCCESS("Demo data ready. Log in as:"))
        for username, *_ in PEOPLE:
            self.stdout.write(f"  {username:<6} / {password:<12} ({DESCRIPTIONS[username]})")

    def _models(self, *, alice: User, manager: User, team: Any) -> None:
        """The iris classifier (three approved versions) and its endpoint, with v1 rolled out (the worker
        starts its model server); skipped until `make serving` has written the demo models."""
        if Model.objects.filter(team=team, name="iris-classifier").exists():
            return
        if not (DEMO_MODELS / "v1.joblib").exists():
            self.stdout.write(
                f"No demo models in {DEMO_MODELS} (run `make serving`): skipping the model registry demo."
            )
            return
        model = register_model(actor=alice, team=team, name="iris-classifier", description="Iris species, 4 features.")
        versions = [
            register_version(
                actor=alice,
                model=model,
                artifact_uri=f"file://{DEMO_MODELS / filename}",
                framework="sklearn",
                metrics={"accuracy": accuracy},
                parameters=parameters,
                description=description,
                dataset_uri="sklearn://datasets/iris",
                code_commit="0a1b2c3",
            )
            for filename, accuracy, parameters, description in DEMO_VERSIONS
        ]
        for version in versions:
            approve_version(actor=manager, version=version)
        if not Endpoint.objects.filter(team=team, name="iris").exists():
            # An SLO and a drift monitor, so the SLO, error budget and drift coverage KPIs have numbers once the
            # traffic beat has read some predictions (`manage.py send_predictions iris`).
            endpoint = create_endpoint(
                actor=alice, team=team, model=model, name="iris", slo_availability_percent=99.5, slo_latency_ms=300
            )
            start_deployment(
                actor=alice,
                endpoint=endpoint,
                version=versions[0],
                reason="Demo: first version",
                analysis={"monitors": [{"kind": "drift", "name": "feature-drift", "threshold": 0.2}]},
            )
