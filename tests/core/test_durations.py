"""Durations on pages: one formatter, seconds under a minute, the two largest units above."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from django.test import Client
from django.utils import timezone

from apps.accounts.models import Team
from apps.core.durations import format_duration
from apps.runs.models import RunState
from tests.factories import RunFactory, WorkspaceFactory


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (0, "0 s"),
        (42, "42 s"),
        (60, "1 min"),
        (185, "3 min 5 s"),
        (2 * 3600 + 4 * 60 + 59, "2 h 4 min"),
        (3 * 3600, "3 h"),
        (86400 + 5 * 3600 + 7, "1 d 5 h"),
        (timedelta(seconds=42.9), "42 s"),
        (None, ""),
    ],
)
def test_durations_show_seconds_under_a_minute_and_two_units_above(seconds: Any, text: str) -> None:
    assert format_duration(seconds) == text


@pytest.mark.django_db
def test_a_short_run_page_shows_its_seconds_not_zero_minutes(client: Client, vision: Team, alice: Any) -> None:
    started = timezone.now() - timedelta(minutes=5)
    workspace = WorkspaceFactory(team=vision, created_by=alice)
    run = RunFactory(
        workspace=workspace, state=RunState.APPLIED, started_at=started, finished_at=started + timedelta(seconds=42)
    )
    client.force_login(alice)

    html = client.get(f"/runs/{run.pk}/").content.decode()

    assert 'data-testid="elapsed">42 s<' in html
    assert "0 minutes" not in html
