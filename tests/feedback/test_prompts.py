"""When the launch survey is due (the 1st, 10th, 20th... successful launch, not between), that it closes when
answered or dismissed, that it is the user's own (a teammate's is a 404), and that a bad score stores nothing."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from apps.accounts.models import Team
from apps.audit.models import AuditEvent
from apps.core.errors import NotFound
from apps.feedback import selectors, services
from apps.feedback.errors import InvalidSurveyComment, InvalidSurveyScore, SurveyPromptClosed
from apps.feedback.models import SurveyPrompt, SurveyResponse
from apps.runs.models import RunKind, RunState
from tests.factories import Role, RunFactory, member
from tests.feedback.helpers import START, launch, launches

pytestmark = pytest.mark.django_db


def test_the_prompt_is_due_exactly_after_the_1st_10th_and_20th_successful_launch(alice: Any, vision: Team) -> None:
    due = {}
    made = []
    for n in range(1, 22):
        made.append(launch(alice, vision, at=START + timedelta(hours=n)))
        prompt = services.offer_survey(user=alice)
        if prompt is not None:
            due[n] = (prompt.launch_number, prompt.workspace_id, prompt.template_id, prompt.team_id)
            services.dismiss_survey(actor=alice, prompt=prompt)
    assert sorted(due) == [1, 10, 20]
    for n, (number, workspace_id, template_id, team_id) in due.items():
        workspace = made[n - 1]
        assert (number, workspace_id, template_id, team_id) == (
            n, workspace.pk, workspace.template_version.template_id, vision.pk
        )  # fmt: skip
    assert SurveyPrompt.objects.filter(user=alice).count() == 3


def test_a_due_prompt_left_open_is_offered_again_as_the_same_row_until_the_next_launch(
    alice: Any, vision: Team
) -> None:
    launches(alice, vision, 1)
    first = services.offer_survey(user=alice)
    again = services.offer_survey(user=alice)
    assert first is not None
    assert again is not None
    assert again.pk == first.pk
    launch(alice, vision)  # the 2nd launch: no survey between the 1st and the 10th
    assert services.offer_survey(user=alice) is None
    assert SurveyPrompt.objects.get().shown_at == first.shown_at  # shown, never answered: counts as not answered


def test_only_workspaces_whose_apply_succeeded_count_and_a_retry_counts_once(
    alice: Any, bob: Any, vision: Team
) -> None:
    launch(alice, vision, states=(RunState.FAILED,))
    launch(alice, vision, states=(RunState.APPLYING,))
    destroyed = launch(alice, vision, states=(RunState.FAILED, RunState.APPLIED, RunState.APPLIED))
    RunFactory(workspace=destroyed, kind=RunKind.DESTROY, state=RunState.APPLIED)
    other = launch(alice, vision, states=())
    RunFactory(workspace=other, kind=RunKind.DRIFT_CHECK, state=RunState.APPLIED)
    launch(bob, vision)  # someone else's launch
    assert selectors.successful_launches(alice) == 1
    prompt = services.offer_survey(user=alice)
    assert prompt is not None
    assert prompt.workspace_id == destroyed.pk


def test_finding_that_none_is_due_takes_one_query_between_prompts(
    alice: Any, vision: Team, django_assert_num_queries: Any
) -> None:
    with django_assert_num_queries(1):
        assert services.offer_survey(user=alice) is None  # no launch yet
    launches(alice, vision, 2)
    with django_assert_num_queries(1):
        assert services.offer_survey(user=alice) is None  # the 2nd launch
    alice_ten = launches(alice, vision, 8)
    prompt = services.offer_survey(user=alice)
    assert prompt is not None
    assert prompt.workspace_id == alice_ten[-1].pk
    services.answer_survey(actor=alice, prompt=prompt, score=5)
    with django_assert_num_queries(2):  # the count, then (a prompt is due at 10) the 10th's prompt: answered
        assert services.offer_survey(user=alice) is None


def test_answering_stores_the_response_closes_the_prompt_and_audits_without_the_comment(
    alice: Any, vision: Team
) -> None:
    workspace = launches(alice, vision, 1)[0]
    prompt = services.offer_survey(user=alice)
    assert prompt is not None
    response = services.answer_survey(actor=alice, prompt=prompt, score=4, comment="  The form was clear. secret-ish  ")
    assert (response.score, response.comment, response.team_id, response.workspace_id) == (
        4, "The form was clear. secret-ish", vision.pk, workspace.pk
    )  # fmt: skip
    assert response.template_id == workspace.template_version.template_id
    prompt.refresh_from_db()
    assert prompt.answered_at is not None
    assert not prompt.is_open
    assert services.offer_survey(user=alice) is None
    event = AuditEvent.objects.get(verb="feedback.answered")
    assert event.team_id == vision.pk
    assert event.data["score"] == 4
    assert event.data["template"] == workspace.template_version.template.slug
    assert "secret-ish" not in str(event.data)
    with pytest.raises(SurveyPromptClosed):
        services.answer_survey(actor=alice, prompt=prompt, score=5)
    with pytest.raises(SurveyPromptClosed):
        services.dismiss_survey(actor=alice, prompt=prompt)
    assert SurveyResponse.objects.count() == 1


def test_dismissing_closes_the_prompt_and_is_audited(alice: Any, vision: Team) -> None:
    launches(alice, vision, 1)
    prompt = services.offer_survey(user=alice)
    assert prompt is not None
    services.dismiss_survey(actor=alice, prompt=prompt)
    prompt.refresh_from_db()
    assert prompt.dismissed_at is not None
    assert prompt.answered_at is None
    assert services.offer_survey(user=alice) is None
    assert AuditEvent.objects.filter(verb="feedback.dismissed", team=vision).count() == 1
    assert not SurveyResponse.objects.exists()


@pytest.mark.parametrize("score", [0, 6, -1, "4", 4.0, True, None])
def test_a_bad_score_is_refused_and_nothing_is_saved(alice: Any, vision: Team, score: Any) -> None:
    launches(alice, vision, 1)
    prompt = services.offer_survey(user=alice)
    assert prompt is not None
    with pytest.raises(InvalidSurveyScore) as refused:
        services.answer_survey(actor=alice, prompt=prompt, score=score, comment="hello")
    assert (refused.value.code, refused.value.field) == ("invalid_survey_score", "score")
    prompt.refresh_from_db()
    assert prompt.is_open
    assert not SurveyResponse.objects.exists()
    assert not AuditEvent.objects.filter(verb__startswith="feedback.").exists()


def test_a_comment_over_1000_characters_is_refused(alice: Any, vision: Team) -> None:
    launches(alice, vision, 1)
    prompt = services.offer_survey(user=alice)
    assert prompt is not None
    with pytest.raises(InvalidSurveyComment):
        services.answer_survey(actor=alice, prompt=prompt, score=3, comment="x" * 1001)
    services.answer_survey(actor=alice, prompt=prompt, score=3, comment="x" * 1000)
    assert SurveyResponse.objects.get().comment == "x" * 1000


def test_another_users_prompt_does_not_exist_for_the_actor_even_in_the_same_team(alice: Any, vision: Team) -> None:
    teammate = member(vision, Role.MANAGER)
    launches(alice, vision, 1)
    prompt = services.offer_survey(user=alice)
    assert prompt is not None
    with pytest.raises(NotFound):
        services.answer_survey(actor=teammate, prompt=prompt, score=5)
    with pytest.raises(NotFound):
        services.dismiss_survey(actor=teammate, prompt=prompt)
    assert not selectors.prompts_for(teammate).exists()
    prompt.refresh_from_db()
    assert prompt.is_open
    assert not SurveyResponse.objects.exists()
