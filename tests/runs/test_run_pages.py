"""Run and workspace pages: the live log (polling with an offset, stopping when the run is over), long logs
(tail on the page, older lines on demand, full download), team scoping, the actions a page offers, and the
workspace page's outputs and destroy form. Runs are built with factories and logs with the real RunLogWriter;
no worker runs here, so queued runs stay queued."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import timedelta
from decimal import Decimal
from html.parser import HTMLParser
from typing import Any

import pytest
from django.http import StreamingHttpResponse
from django.test import Client
from django.utils import timezone

from apps.accounts.models import Role, Team
from apps.costs.models import Budget, CostSource
from apps.costs.services.rollups import rebuild_days
from apps.runs.models import Approval, ApprovalStatus, Run, RunKind, RunLogChunk, RunState, Workspace
from apps.runs.services.logs import RunLogWriter
from tests.factories import CostLineItemFactory, RunFactory, WorkspaceFactory, member

pytestmark = pytest.mark.django_db

PLAN = {
    "add": 2,
    "change": 1,
    "destroy": 0,
    "resources": [
        {"address": "terraform_data.sandbox", "actions": ["create"]},
        {"address": "terraform_data.tracking", "actions": ["update"]},
    ],
}
LONG_LOG_LINES = 20_000


# --- helpers ------------------------------------------------------------------------------------------------

VOID_TAGS = {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source", "track", "wbr"}


class _ElementFinder(HTMLParser):
    """The first element whose `attr` equals `value`: its attributes and its text (children included)."""

    def __init__(self, attr: str, value: str) -> None:
        super().__init__(convert_charrefs=True)
        self.attr, self.value = attr, value
        self.attrs: dict[str, str | None] | None = None
        self.text: list[str] = []
        self.depth = 0
        self.done = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if self.done:
            return
        if self.depth:
            self.depth += tag not in VOID_TAGS
        elif dict(attrs).get(self.attr) == self.value:
            self.attrs = dict(attrs)
            self.depth = 0 if tag in VOID_TAGS else 1
            self.done = tag in VOID_TAGS

    def handle_endtag(self, tag: str) -> None:
        if self.depth and not self.done:
            self.depth -= 1
            self.done = self.depth == 0

    def handle_data(self, data: str) -> None:
        if self.depth and not self.done:
            self.text.append(data)


def element(html: str, value: str, *, attr: str = "id") -> tuple[dict[str, str | None], str] | None:
    """(attributes, text) of the first element with `attr="value"`, or None."""
    finder = _ElementFinder(attr, value)
    finder.feed(html)
    return None if finder.attrs is None else (finder.attrs, "".join(finder.text))


def must(html: str, value: str, *, attr: str = "id") -> tuple[dict[str, str | None], str]:
    found = element(html, value, attr=attr)
    assert found is not None, f'no element with {attr}="{value}"'
    return found


def line(n: int) -> str:
    """A log line whose number cannot be mistaken for another's ("line 1" would also match "line 10")."""
    return f"[{n:05d}] terraform_data.sandbox: Still creating... ({n}s elapsed)"


def write_log(run: Run, numbers: Iterable[int]) -> Run:
    """Write lines through the real writer (buffered into chunks) and return the refreshed run."""
    writer = RunLogWriter(run)
    for n in numbers:
        writer.write(line(n))
    writer.flush()
    run.refresh_from_db()
    return run


def page(client: Client, url: str) -> str:
    response = client.get(url)
    assert response.status_code == 200, response.status_code
    return response.content.decode()


@pytest.fixture
def workspace(vision: Team, alice: Any) -> Workspace:
    return WorkspaceFactory(team=vision, created_by=alice, name="alice-sweep")


@pytest.fixture
def alice_client(client: Client, alice: Any) -> Client:
    client.force_login(alice)
    return client


def make_run(workspace: Workspace, state: str = RunState.PLANNING, **fields: Any) -> Run:
    return RunFactory(workspace=workspace, state=state, **fields)


# --- the run page -------------------------------------------------------------------------------------------


def test_run_page_shows_state_plan_summary_and_log(alice_client: Client, workspace: Workspace) -> None:
    run = write_log(make_run(workspace, RunState.APPLYING, plan_summary=PLAN), range(1, 6))

    html = page(alice_client, f"/runs/{run.pk}/")

    assert must(html, "run-state", attr="data-testid")[1].strip() == "Applying"
    plan = must(html, "plan-summary", attr="data-testid")[1]
    assert "+2" in plan
    assert "~1" in plan
    assert "terraform_data.tracking" in plan
    log = must(html, "log")[1]
    assert [text for text in log.split("\n") if text] == [line(n) for n in range(1, 6)]


def test_live_run_page_polls_every_second_after_the_last_line(alice_client: Client, workspace: Workspace) -> None:
    run = write_log(make_run(workspace, RunState.PLANNING), range(1, 8))

    attrs, _ = must(page(alice_client, f"/runs/{run.pk}/"), "log-poller")

    assert attrs["hx-get"] == f"/runs/{run.pk}/log/?after=7"
    assert attrs["hx-trigger"] == "every 1s"


def test_live_run_page_without_output_polls_from_the_start(alice_client: Client, workspace: Workspace) -> None:
    run = make_run(workspace, RunState.QUEUED)

    attrs, _ = must(page(alice_client, f"/runs/{run.pk}/"), "log-poller")

    assert attrs["hx-get"] == f"/runs/{run.pk}/log/?after=0"


@pytest.mark.parametrize("state", [RunState.APPLIED, RunState.FAILED, RunState.CANCELLED, RunState.REJECTED])
def test_finished_run_page_does_not_poll(alice_client: Client, workspace: Workspace, state: str) -> None:
    run = write_log(make_run(workspace, state), range(1, 4))

    html = page(alice_client, f"/runs/{run.pk}/")

    assert element(html, "log-poller") is None
    assert "hx-trigger" not in must(html, "run-status")[0]


def test_poller_continues_after_the_last_line_shown_even_when_the_line_counter_lags(
    alice_client: Client, workspace: Workspace
) -> None:
    run = write_log(make_run(workspace, RunState.APPLYING), range(1, 4))
    # The writer stores a chunk, then bumps run.log_lines in a second statement; a page rendered in between
    # shows lines 4-5 already, so its poller must not ask for them again.
    RunLogChunk.objects.create(run=run, seq=2, first_line=4, line_count=2, text=f"{line(4)}\n{line(5)}")

    html = page(alice_client, f"/runs/{run.pk}/")

    assert line(5) in must(html, "log")[1]
    assert must(html, "log-poller")[0]["hx-get"] == f"/runs/{run.pk}/log/?after=5"


def test_live_run_status_fragment_keeps_refreshing_itself(alice_client: Client, workspace: Workspace) -> None:
    run = make_run(workspace, RunState.PLANNING)

    html = page(alice_client, f"/runs/{run.pk}/status/")

    attrs, _ = must(html, "run-status")
    assert attrs["hx-get"] == f"/runs/{run.pk}/status/"
    assert "<html" not in html
    assert must(html, "run-state", attr="data-testid")[1].strip() == "Planning"


# --- following the log --------------------------------------------------------------------------------------


def test_log_after_returns_only_newer_lines_out_of_band_and_the_next_poller(
    alice_client: Client, workspace: Workspace
) -> None:
    run = write_log(make_run(workspace, RunState.APPLYING), range(1, 4))
    run = write_log(run, range(4, 6))

    html = page(alice_client, f"/runs/{run.pk}/log/?after=3")

    _attrs, text = must(html, "beforeend:#log", attr="hx-swap-oob")
    assert [t for t in text.split("\n") if t] == [line(4), line(5)]
    assert line(3) not in html
    poller, _ = must(html, "log-poller")
    assert poller["hx-get"] == f"/runs/{run.pk}/log/?after=5"


def test_log_poll_of_a_live_run_without_new_lines_keeps_polling_every_second(
    alice_client: Client, workspace: Workspace
) -> None:
    run = write_log(make_run(workspace, RunState.PLANNING), range(1, 4))

    html = page(alice_client, f"/runs/{run.pk}/log/?after=3")

    assert element(html, "beforeend:#log", attr="hx-swap-oob") is None
    poller, _ = must(html, "log-poller")
    assert poller["hx-get"] == f"/runs/{run.pk}/log/?after=3"
    assert poller["hx-trigger"] == "every 1s"


def test_log_poll_of_a_finished_run_delivers_its_last_lines_then_stops(
    alice_client: Client, workspace: Workspace
) -> None:
    run = write_log(make_run(workspace, RunState.APPLYING), range(1, 4))
    run = write_log(run, range(4, 6))
    Run.objects.filter(pk=run.pk).update(state=RunState.APPLIED)

    last = page(alice_client, f"/runs/{run.pk}/log/?after=3")
    after_last = page(alice_client, f"/runs/{run.pk}/log/?after=5")

    assert line(5) in must(last, "beforeend:#log", attr="hx-swap-oob")[1]
    assert must(last, "log-poller")[0]["hx-get"] == f"/runs/{run.pk}/log/?after=5"
    assert after_last.strip() == ""


def test_log_poll_with_an_offset_that_is_not_a_number_reads_from_the_start(
    alice_client: Client, workspace: Workspace
) -> None:
    run = make_run(workspace, RunState.QUEUED)

    html = page(alice_client, f"/runs/{run.pk}/log/?after=abc")

    assert must(html, "log-poller")[0]["hx-get"] == f"/runs/{run.pk}/log/?after=0"


def test_log_lines_are_escaped(alice_client: Client, workspace: Workspace) -> None:
    run = make_run(workspace, RunState.APPLYING)
    writer = RunLogWriter(run)
    writer.write('<script>alert("x")</script>')
    writer.flush()

    html = page(alice_client, f"/runs/{run.pk}/log/?after=0") + page(alice_client, f"/runs/{run.pk}/")

    assert "<script>alert" not in html
    assert "&lt;script&gt;alert" in html


# --- long logs ----------------------------------------------------------------------------------------------


@pytest.fixture
def long_run(workspace: Workspace) -> Run:
    """A finished run with 20,000 lines written one `write` at a time, as Terraform's output arrives."""
    return write_log(make_run(workspace, RunState.APPLIED), range(1, LONG_LOG_LINES + 1))


def test_long_log_is_stored_in_chunks_not_a_row_per_line(long_run: Run) -> None:
    assert long_run.log_lines == LONG_LOG_LINES
    chunks = RunLogChunk.objects.filter(run=long_run)
    assert chunks.count() <= LONG_LOG_LINES // 100
    assert sum(chunks.values_list("line_count", flat=True)) == LONG_LOG_LINES


def test_run_page_of_a_long_log_shows_only_the_tail(alice_client: Client, long_run: Run) -> None:
    response = alice_client.get(f"/runs/{long_run.pk}/")

    assert len(response.content) < 200_000
    html = response.content.decode()
    shown = [text for text in must(html, "log")[1].split("\n") if text]
    assert 500 <= len(shown) <= 1_000
    assert shown[-1] == line(LONG_LOG_LINES)
    assert line(1) not in html
    assert shown == [line(n) for n in range(LONG_LOG_LINES - len(shown) + 1, LONG_LOG_LINES + 1)]


def test_run_page_of_a_long_log_offers_the_earlier_lines(alice_client: Client, long_run: Run) -> None:
    html = page(alice_client, f"/runs/{long_run.pk}/")

    first_shown = next(text for text in must(html, "log")[1].split("\n") if text)
    first_number = int(first_shown[1:6])
    attrs, text = must(html, "load-earlier", attr="data-testid")
    assert text.strip() == "Load earlier lines"
    assert attrs["hx-get"] == f"/runs/{long_run.pk}/log/?before={first_number}"


def test_load_earlier_returns_the_lines_just_before_and_the_next_button(alice_client: Client, long_run: Run) -> None:
    html = page(alice_client, f"/runs/{long_run.pk}/log/?before=19501")

    _, text = must(html, "afterbegin:#log", attr="hx-swap-oob")
    earlier = [t for t in text.split("\n") if t]
    assert earlier[-1] == line(19500)
    assert earlier == [line(n) for n in range(19501 - len(earlier), 19501)]
    assert line(19501) not in html
    assert must(html, "load-earlier", attr="data-testid")[0]["hx-get"] == (
        f"/runs/{long_run.pk}/log/?before={19501 - len(earlier)}"
    )


def test_load_earlier_at_the_start_of_the_log_offers_no_further_button(alice_client: Client, long_run: Run) -> None:
    html = page(alice_client, f"/runs/{long_run.pk}/log/?before=501")

    assert must(html, "afterbegin:#log", attr="hx-swap-oob")[1].startswith(line(1) + "\n")
    assert element(html, "load-earlier", attr="data-testid") is None


def test_download_streams_the_whole_log_in_order(alice_client: Client, long_run: Run) -> None:
    response = alice_client.get(f"/runs/{long_run.pk}/log.txt")

    assert response.status_code == 200
    assert isinstance(response, StreamingHttpResponse)
    assert response["Content-Disposition"] == f'attachment; filename="run-{long_run.pk}.log"'
    lines = b"".join(response.streaming_content).decode().splitlines()
    assert len(lines) == LONG_LOG_LINES
    assert lines[0] == line(1)
    assert lines[-1] == line(LONG_LOG_LINES)
    assert lines == [line(n) for n in range(1, LONG_LOG_LINES + 1)]


def test_api_log_after_an_offset_returns_exactly_the_following_lines(alice_client: Client, long_run: Run) -> None:
    body = alice_client.get(f"/api/v1/runs/{long_run.pk}/log", {"after": 19990}).json()

    assert body["lines"] == [line(n) for n in range(19991, 20001)]
    assert body["next"] == LONG_LOG_LINES
    assert body["complete"] is True


# --- team scoping -------------------------------------------------------------------------------------------


@pytest.mark.parametrize("suffix", ["", "status/", "log/?after=0", "log/?before=10", "log.txt"])
def test_another_teams_run_is_not_found(client: Client, bob: Any, workspace: Workspace, suffix: str) -> None:
    run = write_log(make_run(workspace, RunState.APPLYING), range(1, 20))
    client.force_login(bob)

    assert client.get(f"/runs/{run.pk}/{suffix}").status_code == 404


@pytest.mark.parametrize("action", ["cancel", "retry"])
def test_another_teams_run_cannot_be_acted_on(client: Client, bob: Any, workspace: Workspace, action: str) -> None:
    run = make_run(workspace, RunState.QUEUED)
    client.force_login(bob)

    assert client.post(f"/runs/{run.pk}/{action}/").status_code == 404
    assert Run.objects.get(pk=run.pk).state == RunState.QUEUED


def test_another_teams_workspace_page_and_destroy_are_not_found(client: Client, bob: Any, workspace: Workspace) -> None:
    client.force_login(bob)

    assert client.get(f"/workspaces/{workspace.pk}/").status_code == 404
    assert client.post(f"/workspaces/{workspace.pk}/destroy/", {"confirm": workspace.name}).status_code == 404
    assert not Run.objects.filter(workspace=workspace).exists()


# --- actions offered ----------------------------------------------------------------------------------------


def action_forms(html: str, run: Run) -> set[str]:
    return {action for action in ("cancel", "retry") if f'action="/runs/{run.pk}/{action}/"' in html}


@pytest.mark.parametrize(
    ("state", "offered"),
    [
        (RunState.QUEUED, {"cancel"}),
        (RunState.APPLYING, {"cancel"}),
        (RunState.FAILED, {"retry"}),
        (RunState.ERRORED, {"retry"}),
        (RunState.APPLIED, set()),
        (RunState.REJECTED, set()),
    ],
)
def test_cancel_and_retry_are_offered_only_when_legal(
    alice_client: Client, workspace: Workspace, state: str, offered: set[str]
) -> None:
    run = make_run(workspace, state)

    assert action_forms(page(alice_client, f"/runs/{run.pk}/"), run) == offered


def test_cancelling_a_queued_run_from_its_page(alice_client: Client, workspace: Workspace) -> None:
    run = make_run(workspace, RunState.QUEUED)

    response = alice_client.post(f"/runs/{run.pk}/cancel/", follow=True)

    assert response.redirect_chain == [(f"/runs/{run.pk}/", 302)]
    assert Run.objects.get(pk=run.pk).state == RunState.CANCELLED
    html = response.content.decode()
    assert must(html, "run-state", attr="data-testid")[1].strip() == "Cancelled"
    assert action_forms(html, run) == {"retry"}


def test_retrying_a_failed_run_from_its_page_queues_a_new_run(alice_client: Client, workspace: Workspace) -> None:
    run = make_run(workspace, RunState.FAILED)

    response = alice_client.post(f"/runs/{run.pk}/retry/", follow=True)

    retry = Run.objects.get(retry_of=run)
    assert retry.state == RunState.QUEUED
    assert f"Run #{retry.pk} queued as a retry of #{run.pk}." in response.content.decode()


@pytest.fixture
def awaiting(workspace: Workspace) -> Run:
    run = make_run(workspace, RunState.AWAITING_APPROVAL, plan_summary=PLAN, needs_approval=True)
    Approval.objects.create(
        run=run, team=run.team, why_needed="Sandbox always needs a manager.", expires_at=timezone.now() + timedelta(1)
    )
    return run


def decision_buttons(html: str) -> set[str]:
    return {name for name in ("approve", "reject") if element(html, name, attr="data-testid") is not None}


def test_a_manager_who_did_not_request_the_run_may_approve_or_reject_it(
    client: Client, mark: Any, awaiting: Run
) -> None:
    client.force_login(mark)

    html = page(client, f"/runs/{awaiting.pk}/")

    assert decision_buttons(html) == {"approve", "reject"}
    assert "Sandbox always needs a manager." in must(html, "approval", attr="data-testid")[1]


def test_the_approval_box_shows_what_is_left_of_the_teams_budget(client: Client, mark: Any, awaiting: Run) -> None:
    client.force_login(mark)
    assert "Team has no budget" in must(page(client, f"/runs/{awaiting.pk}/"), "budget-left", attr="data-testid")[1]
    Budget.objects.create(team=awaiting.team, name="Monthly", monthly_amount=Decimal("200"), created_by=mark)
    line = CostLineItemFactory(source=CostSource.METERING, team=awaiting.team, net_cost=Decimal("50"))
    rebuild_days(source=CostSource.METERING, days=[line.usage_start.date()])

    box = must(page(client, f"/runs/{awaiting.pk}/"), "budget-left", attr="data-testid")[1]

    assert "150.00 USD" in box
    assert "left of 200.00 this month (25.0% spent" in box


@pytest.mark.parametrize("viewer", ["requester", "member"])
def test_the_requester_and_plain_members_may_not_decide(
    client: Client, vision: Team, awaiting: Run, alice: Any, viewer: str
) -> None:
    client.force_login(alice if viewer == "requester" else member(vision, Role.MEMBER, username="carol"))

    html = page(client, f"/runs/{awaiting.pk}/")

    assert decision_buttons(html) == set()
    assert element(html, "approval", attr="data-testid") is not None


def test_a_manager_may_not_decide_a_run_they_requested(client: Client, vision: Team) -> None:
    manager = member(vision, Role.MANAGER, username="maria")
    run = make_run(WorkspaceFactory(team=vision, created_by=manager), RunState.AWAITING_APPROVAL)
    Approval.objects.create(run=run, team=vision, why_needed="Policy.", expires_at=timezone.now() + timedelta(1))
    client.force_login(manager)

    assert decision_buttons(page(client, f"/runs/{run.pk}/")) == set()


def test_a_decided_approval_offers_no_buttons(client: Client, mark: Any, alice: Any, awaiting: Run) -> None:
    Approval.objects.filter(run=awaiting).update(
        status=ApprovalStatus.REJECTED, decided_by=alice, decided_at=timezone.now(), comment="too big"
    )
    Run.objects.filter(pk=awaiting.pk).update(state=RunState.REJECTED)
    client.force_login(mark)

    html = page(client, f"/runs/{awaiting.pk}/")

    assert decision_buttons(html) == set()
    assert "too big" in must(html, "approval", attr="data-testid")[1]


# --- the workspace page -------------------------------------------------------------------------------------


def test_workspace_page_masks_sensitive_outputs(alice_client: Client, workspace: Workspace) -> None:
    workspace.outputs = {
        "url": {"value": "https://x", "sensitive": False},
        "token": {"value": "s3cr3t", "sensitive": True},
    }
    workspace.save()

    html = page(alice_client, f"/workspaces/{workspace.pk}/")

    outputs = must(html, "outputs", attr="data-testid")[1]
    assert "https://x" in outputs
    assert "token" in outputs
    assert "sensitive" in outputs
    assert "s3cr3t" not in html


def test_workspace_page_links_its_runs(alice_client: Client, workspace: Workspace) -> None:
    run = make_run(workspace, RunState.APPLIED)

    attrs, text = must(page(alice_client, f"/workspaces/{workspace.pk}/"), "run-link", attr="data-testid")

    assert attrs["href"] == f"/runs/{run.pk}/"
    assert text == f"#{run.pk}"


def test_workspace_page_has_a_destroy_form(alice_client: Client, workspace: Workspace) -> None:
    html = page(alice_client, f"/workspaces/{workspace.pk}/")

    assert f'action="/workspaces/{workspace.pk}/destroy/"' in html
    assert must(html, "destroy-confirm", attr="data-testid")[0]["name"] == "confirm"
    assert element(html, "destroy", attr="data-testid") is not None


def test_destroy_with_the_wrong_name_shows_the_error_and_queues_nothing(
    alice_client: Client, workspace: Workspace
) -> None:
    response = alice_client.post(f"/workspaces/{workspace.pk}/destroy/", {"confirm": "alice-swe"}, follow=True)

    assert response.redirect_chain == [(f"/workspaces/{workspace.pk}/", 302)]
    assert "Type the workspace name" in response.content.decode()
    assert "exactly to confirm the destroy" in response.content.decode()
    assert not Run.objects.filter(workspace=workspace).exists()


def test_destroy_with_the_right_name_queues_a_destroy_run_and_shows_it(
    alice_client: Client, workspace: Workspace
) -> None:
    response = alice_client.post(f"/workspaces/{workspace.pk}/destroy/", {"confirm": workspace.name})

    run = Run.objects.get(workspace=workspace)
    assert run.kind == RunKind.DESTROY
    assert run.state == RunState.QUEUED  # no worker in this test
    assert response.status_code == 302
    assert response["Location"] == f"/runs/{run.pk}/"
    html = page(alice_client, response["Location"])
    assert f"Run #{run.pk} queued." in html
    assert must(html, "run-state", attr="data-testid")[1].strip() == "Queued"


def test_workspace_page_refreshes_itself_while_its_newest_run_is_active(
    alice_client: Client, workspace: Workspace
) -> None:
    make_run(workspace, RunState.APPLIED)
    make_run(workspace, RunState.PLANNING)

    attrs, _ = must(page(alice_client, f"/workspaces/{workspace.pk}/"), "workspace-poller")

    assert attrs["hx-get"] == f"/workspaces/{workspace.pk}/"
    assert attrs["hx-trigger"] == "every 2s"


def test_workspace_page_does_not_refresh_once_its_runs_are_over(alice_client: Client, workspace: Workspace) -> None:
    make_run(workspace, RunState.APPLIED)

    attrs, _ = must(page(alice_client, f"/workspaces/{workspace.pk}/"), "workspace-poller")

    assert "hx-get" not in attrs
    assert "hx-trigger" not in attrs
