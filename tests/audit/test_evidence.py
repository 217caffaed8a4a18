"""Audit evidence export (issue 15, acceptance 6): a team's trail over [start, end) as CSV + JSON + manifest."""

from __future__ import annotations

import csv
import hashlib
import io
import json
import zipfile
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from apps.accounts.models import Role, Team
from apps.audit.errors import EvidenceExportDenied, InvalidEvidencePeriod
from apps.audit.evidence import export_evidence
from apps.audit.models import AuditEvent
from tests.factories import AuditEventFactory, UserFactory, member

pytestmark = pytest.mark.django_db

START = datetime(2025, 3, 1, tzinfo=UTC)
END = datetime(2025, 4, 1, tzinfo=UTC)
API = "/api/v1/audit/evidence/"
PERIOD = {"start": "2025-03-01", "end": "2025-04-01"}


def unzip(content: bytes) -> dict[str, bytes]:
    with zipfile.ZipFile(io.BytesIO(content)) as bundle:
        return {name: bundle.read(name) for name in bundle.namelist()}


def export(actor: Any, team: Team, start: datetime = START, end: datetime = END) -> dict[str, bytes]:
    bundle = export_evidence(actor=actor, team=team, start=start, end=end)
    with bundle.file:
        return unzip(bundle.file.read())


def csv_rows(files: dict[str, bytes]) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(files["events.csv"].decode(), newline="")))


def test_bundle_holds_the_teams_events_of_the_period_in_order_and_nothing_else(
    mark: Any, vision: Team, nlp: Team
) -> None:
    at_start = AuditEventFactory(team=vision, created_at=START, verb="run.created")
    tie_a = AuditEventFactory(team=vision, created_at=START + timedelta(days=3), verb="tie.a")
    tie_b = AuditEventFactory(team=vision, created_at=START + timedelta(days=3), verb="tie.b")
    last = AuditEventFactory(team=vision, created_at=END - timedelta(microseconds=1), verb="run.finished")
    AuditEventFactory(team=vision, created_at=END, verb="at.end")
    AuditEventFactory(team=vision, created_at=START - timedelta(microseconds=1), verb="before.start")
    AuditEventFactory(team=nlp, created_at=START + timedelta(days=1), verb="other.team")
    AuditEventFactory(team=None, created_at=START + timedelta(days=1), verb="no.team")

    files = export(mark, vision)

    expected = [at_start.pk, tie_a.pk, tie_b.pk, last.pk]
    assert set(files) == {"events.csv", "events.json", "manifest.json"}
    assert [int(row["id"]) for row in csv_rows(files)] == expected
    assert [item["id"] for item in json.loads(files["events.json"])] == expected
    assert json.loads(files["manifest.json"])["event_count"] == 4


def test_every_column_of_an_event_is_exported_exactly(mark: Any, vision: Team) -> None:
    event = AuditEventFactory(
        team=vision,
        created_at=datetime(2025, 3, 2, 8, 30, 15, 250000, tzinfo=UTC),
        actor=mark,
        actor_label="mark",
        verb="budget.changed",
        target_type="costs.budget",
        target_id="17",
        target_label="monthly",
        data={"from": "100.00", "to": "250.00", "nested": {"n": [1, 2]}},
        ip_address="10.1.2.3",
        user_agent="curl/8.5",
    )

    files = export(mark, vision)

    expected = {
        "id": event.pk,
        "created_at": "2025-03-02T08:30:15.250000Z",
        "actor_id": mark.pk,
        "actor_label": "mark",
        "verb": "budget.changed",
        "target_type": "costs.budget",
        "target_id": "17",
        "target_label": "monthly",
        "ip_address": "10.1.2.3",
        "user_agent": "curl/8.5",
        "data": {"from": "100.00", "to": "250.00", "nested": {"n": [1, 2]}},
    }
    assert json.loads(files["events.json"]) == [expected]
    (row,) = csv_rows(files)
    assert list(row) == list(expected)
    assert json.loads(row.pop("data")) == expected["data"]
    assert row == {key: str(value) for key, value in expected.items() if key != "data"}


def test_an_event_without_actor_or_address_exports_empty_cells_and_nulls(mark: Any, vision: Team) -> None:
    AuditEventFactory(team=vision, created_at=START, actor=None, actor_label="", ip_address=None)

    files = export(mark, vision)

    (row,) = csv_rows(files)
    assert (row["actor_id"], row["actor_label"], row["ip_address"]) == ("", "", "")
    (item,) = json.loads(files["events.json"])
    assert (item["actor_id"], item["actor_label"], item["ip_address"], item["data"]) == (None, "", None, {})


def test_manifest_names_team_period_author_and_each_files_size_and_sha256(mark: Any, vision: Team) -> None:
    AuditEventFactory(team=vision, created_at=START + timedelta(hours=1))
    before = timezone.now()

    files = export(mark, vision)

    manifest = json.loads(files["manifest.json"])
    assert manifest["team"] == "vision"
    assert manifest["period"] == {
        "start": "2025-03-01T00:00:00.000000Z",
        "end": "2025-04-01T00:00:00.000000Z",
        "start_inclusive": True,
        "end_inclusive": False,
    }
    assert manifest["generated_by"] == "mark"
    assert before <= datetime.fromisoformat(manifest["generated_at"]) <= timezone.now()
    assert [entry["name"] for entry in manifest["files"]] == ["events.csv", "events.json"]
    for entry in manifest["files"]:
        assert entry["size"] == len(files[entry["name"]])
        assert entry["sha256"] == hashlib.sha256(files[entry["name"]]).hexdigest()
    assert any("single quote" in note for note in manifest["notes"])


def test_an_empty_period_gives_a_header_only_csv_and_an_empty_json_array(mark: Any, vision: Team) -> None:
    files = export(mark, vision)

    assert json.loads(files["events.json"]) == []
    assert files["events.csv"].decode().splitlines() == [
        "id,created_at,actor_id,actor_label,verb,target_type,target_id,target_label,ip_address,user_agent,data"
    ]
    assert json.loads(files["manifest.json"])["event_count"] == 0


def test_csv_round_trips_commas_quotes_and_newlines(mark: Any, vision: Team) -> None:
    label = 'ws "prod", eu-west\nsecond line\r\nthird'
    AuditEventFactory(team=vision, created_at=START, verb="a,b", target_label=label, data={"note": 'x, "y"\n'})

    files = export(mark, vision)

    (row,) = csv_rows(files)
    assert (row["verb"], row["target_label"]) == ("a,b", label)
    assert json.loads(row["data"]) == {"note": 'x, "y"\n'}
    assert json.loads(files["events.json"])[0]["target_label"] == label


@pytest.mark.parametrize("value", ['=HYPERLINK("http://x")', "+1+1", "-2+3", "@SUM(A1)", "\tcmd", "\rcmd"])
def test_csv_cells_that_a_spreadsheet_would_run_are_prefixed_with_a_quote(mark: Any, vision: Team, value: str) -> None:
    AuditEventFactory(team=vision, created_at=START, verb=value[:64], target_label=value, actor_label=value)

    files = export(mark, vision)

    (row,) = csv_rows(files)
    assert (row["verb"], row["target_label"], row["actor_label"]) == ("'" + value,) * 3
    item = json.loads(files["events.json"])[0]
    assert (item["target_label"], item["actor_label"]) == (value, value)


def test_the_export_is_audited_with_period_count_and_manifest_sha256(mark: Any, vision: Team) -> None:
    AuditEventFactory(team=vision, created_at=START)

    bundle = export_evidence(actor=mark, team=vision, start=START, end=END)
    with bundle.file:
        files = unzip(bundle.file.read())

    event = AuditEvent.objects.get(verb="audit.evidence_exported")
    assert (event.actor, event.team, event.target_type, event.target_id) == (
        mark,
        vision,
        "accounts.team",
        str(vision.pk),
    )
    assert event.data["start"] == "2025-03-01T00:00:00.000000Z"
    assert event.data["end"] == "2025-04-01T00:00:00.000000Z"
    assert event.data["event_count"] == 1
    assert event.data["manifest_sha256"] == hashlib.sha256(files["manifest.json"]).hexdigest() == bundle.manifest_sha256
    assert event.data["files"]["events.csv"] == hashlib.sha256(files["events.csv"]).hexdigest()
    assert b"audit.evidence_exported" not in files["events.csv"]


def test_the_export_event_is_not_in_its_own_bundle(mark: Any, vision: Team) -> None:
    """Recorded after the bundle is built: an export up to now never holds its own event."""
    now = timezone.now()
    AuditEventFactory(team=vision, created_at=now - timedelta(minutes=1))

    files = export(mark, vision, start=now - timedelta(days=1), end=timezone.now())

    assert [item["verb"] for item in json.loads(files["events.json"])] == ["test.event"]
    assert AuditEvent.objects.filter(verb="audit.evidence_exported").count() == 1


@pytest.mark.parametrize(
    ("start", "end"),
    [
        (END, START),  # backwards
        (START, START),  # empty
        (START, START + timedelta(days=401)),  # more than 400 days
    ],
    ids=["end-before-start", "empty", "over-400-days"],
)
def test_a_bad_period_is_refused_with_a_stable_code(mark: Any, vision: Team, start: datetime, end: datetime) -> None:
    with pytest.raises(InvalidEvidencePeriod) as refused:
        export_evidence(actor=mark, team=vision, start=start, end=end)
    assert (refused.value.code, refused.value.field) == ("invalid_evidence_period", "end")
    assert not AuditEvent.objects.filter(verb="audit.evidence_exported").exists()


def test_a_period_ending_in_the_future_is_refused(mark: Any, vision: Team) -> None:
    with pytest.raises(InvalidEvidencePeriod):
        export_evidence(actor=mark, team=vision, start=START, end=timezone.now() + timedelta(minutes=1))


def test_exactly_400_days_is_allowed(mark: Any, vision: Team) -> None:
    bundle = export_evidence(actor=mark, team=vision, start=START, end=START + timedelta(days=400))
    bundle.file.close()
    assert bundle.event_count == 0


def test_a_member_may_not_export_their_own_team(alice: Any, vision: Team) -> None:
    with pytest.raises(EvidenceExportDenied):
        export_evidence(actor=alice, team=vision, start=START, end=END)


def test_a_platform_admin_may_export_any_team(vision: Team) -> None:
    admin = UserFactory(is_superuser=True, username="root")
    AuditEventFactory(team=vision, created_at=START)

    files = export(admin, vision)

    assert json.loads(files["manifest.json"])["generated_by"] == "root"
    assert len(csv_rows(files)) == 1


# --- API ---------------------------------------------------------------------------------------------------


def test_api_returns_the_zip_with_its_name_and_manifest_hash(api: Any, mark: Any, vision: Team) -> None:
    AuditEventFactory(team=vision, created_at=START + timedelta(days=2))
    api.force_authenticate(mark)

    response = api.get(API, {"team": "vision", **PERIOD})

    assert response.status_code == 200
    assert response["Content-Type"] == "application/zip"
    assert response["Content-Disposition"] == 'attachment; filename="audit-vision-2025-03-01-2025-04-01.zip"'
    files = unzip(b"".join(response.streaming_content))
    assert response["X-Evidence-Manifest-SHA256"] == hashlib.sha256(files["manifest.json"]).hexdigest()
    assert len(csv_rows(files)) == 1


def test_api_answers_a_client_that_accepts_only_zip(api: Any, mark: Any, vision: Team) -> None:
    api.force_authenticate(mark)

    response = api.get(API, {"team": "vision", **PERIOD}, HTTP_ACCEPT="application/zip")

    assert response.status_code == 200
    assert "manifest.json" in unzip(b"".join(response.streaming_content))


def test_api_refuses_a_member_with_a_problem_before_reading_the_period(api: Any, alice: Any, vision: Team) -> None:
    api.force_authenticate(alice)

    response = api.get(API, {"team": "vision", "start": "not-a-date"})

    assert response.status_code == 403
    assert response["Content-Type"] == "application/problem+json"
    assert response.json()["code"] == "audit_export_denied"
    assert not AuditEvent.objects.filter(verb="audit.evidence_exported").exists()


def test_api_refuses_another_teams_export_like_an_unknown_team(api: Any, vision: Team, nlp: Team) -> None:
    api.force_authenticate(member(vision, Role.MANAGER))

    other = api.get(API, {"team": "nlp", **PERIOD})
    unknown = api.get(API, {"team": "no-such-team", **PERIOD})

    assert (other.status_code, other.json()["code"]) == (403, "audit_export_denied")
    assert (unknown.status_code, unknown.json()) == (403, other.json())


def test_api_refuses_a_bad_period_naming_the_field(api: Any, mark: Any, vision: Team) -> None:
    api.force_authenticate(mark)

    backwards = api.get(API, {"team": "vision", "start": "2025-04-01", "end": "2025-03-01"})
    not_a_date = api.get(API, {"team": "vision", "start": "2025-03-01", "end": "March"})

    assert backwards.status_code == 400
    assert backwards.json()["code"] == "invalid_evidence_period"
    assert list(backwards.json()["errors"]) == ["end"]
    assert (not_a_date.status_code, not_a_date.json()["code"]) == (400, "invalid_query")


def test_api_export_is_in_the_openapi_schema_as_a_zip(db: None) -> None:
    from drf_spectacular.generators import SchemaGenerator

    schema = SchemaGenerator().get_schema(request=None, public=True)

    operation = schema["paths"]["/api/v1/audit/evidence/"]["get"]
    assert operation["responses"]["200"]["content"] == {
        "application/zip": {"schema": {"type": "string", "format": "binary"}}
    }
    assert {p["name"] for p in operation["parameters"]} == {"team", "start", "end", "format"}  # format: json|zip
    assert "audit_export_denied" in operation["responses"]["403"]["description"]


# --- the audit page ------------------------------------------------------------------------------------------


def test_audit_page_offers_the_export_form_with_the_last_30_days(client: Client, mark: Any, nlp: Team) -> None:
    client.force_login(mark)
    today = timezone.now().astimezone(UTC).date()

    form = client.get(reverse("audit:list")).context["evidence_form"]

    assert [slug for slug, _ in form.fields["team"].choices] == ["nlp", "vision"]
    assert (form.initial["start"], form.initial["end"]) == (today - timedelta(days=30), today)


def test_the_page_form_downloads_the_zip(client: Client, mark: Any, vision: Team) -> None:
    AuditEventFactory(team=vision, created_at=START, target_label="from-the-page")
    client.force_login(mark)

    response = client.post(reverse("audit:evidence"), {"team": "vision", **PERIOD})

    assert response.status_code == 200
    assert response["Content-Disposition"] == 'attachment; filename="audit-vision-2025-03-01-2025-04-01.zip"'
    files = unzip(b"".join(response.streaming_content))
    assert csv_rows(files)[0]["target_label"] == "from-the-page"
    assert AuditEvent.objects.filter(verb="audit.evidence_exported", actor=mark).count() == 1


def test_the_page_form_shows_a_bad_period_on_the_field(client: Client, mark: Any, vision: Team) -> None:
    client.force_login(mark)
    today = timezone.now().astimezone(UTC).date()
    period = {"start": today - timedelta(days=10), "end": today + timedelta(days=1)}

    response = client.post(reverse("audit:evidence"), {"team": "vision", **period})

    assert response.status_code == 422
    assert "cannot end in the future" in response.context["evidence_form"].errors["end"][0]


def test_the_page_refuses_a_members_export_and_another_teams(
    client: Client, alice: Any, vision: Team, nlp: Team
) -> None:
    client.force_login(alice)
    assert client.post(reverse("audit:evidence"), {"team": "vision", **PERIOD}).status_code == 403
    client.force_login(member(vision, Role.MANAGER))
    assert client.post(reverse("audit:evidence"), {"team": "nlp", **PERIOD}).status_code == 403
    assert not AuditEvent.objects.filter(verb="audit.evidence_exported").exists()
