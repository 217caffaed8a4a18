from __future__ import annotations

from typing import Any

from django.contrib.auth.models import User
from django.core.management.base import BaseCommand, CommandError

from apps.accounts.services import create_api_token
from apps.core.errors import ApplicationError


class Command(BaseCommand):
    help = "Create a personal API token for USERNAME and print it (the only time it is shown)."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("username")
        parser.add_argument("--name", default="cli", help="A label for the token (default: cli).")

    def handle(self, *args: Any, username: str, name: str, **options: Any) -> None:
        user = User.objects.filter(username=username, is_active=True).first()
        if user is None:
            raise CommandError(f"No active user named {username!r}. Create the user first (or run seed_demo).")
        try:
            _, raw = create_api_token(actor=user, name=name)
        except ApplicationError as exc:
            raise CommandError(exc.message) from exc
        self.stdout.write(raw)
