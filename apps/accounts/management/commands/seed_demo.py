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
        call_command("sync_templates", stdout=self.stdout)
        self.stdout.write(self.style.SUCCESS("Demo data ready. Log in as:"))
        for username, *_ in PEOPLE:
            self.stdout.write(f"  {username:<6} / {password:<12} ({DESCRIPTIONS[username]})")
