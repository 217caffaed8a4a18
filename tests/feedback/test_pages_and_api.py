"""The survey card on the home and workspace pages (htmx posts that swap the card, plain posts that come back to
the page) and the API: the due prompt or 204, answer, dismiss, a teammate's prompt a 404."""

from __future__ import annotations

from typing import Any

import pytest
from django.test import Client
from django.urls import reverse
from rest_framework.test import APIClient

from apps.accounts.models import Role, Team
from apps.feedback.models import SurveyPrompt, SurveyResponse
from tests.factories import member
from tests.feedback.helpers import launches

pytestmark = pytest.mark.django_db
HTMX = {"HTTP_HX_REQUEST": "true"}


@pytest.fixture
def first_launch(alice: Any, vision: Team) -> Any:
    return launches(alice, vision, 1)[0]


def test_the_home_page_shows_the_card_and_an_htmx_answer_swaps_it_for_thanks(
    client: Client, alice: Any, first_launch: Any
) -> None:
    client.force_login(alice)
    page = client.get("/").content.decode()
    assert 'data-testid="survey-prompt"' in page
    prompt = SurveyPrompt.objects.get(user=alice)
    answer_url = reverse("feedback:answer", args=[prompt.pk])
    assert f'hx-post="{answer_url}"' in page
    assert f'action="{answer_url}"' in page  # the same form without JavaScript

    swapped = client.post(answer_url, {"score": "5", "comment": "smooth", "next": "/"}, **HTMX)

    assert swapped.status_code == 200
    assert 'data-testid="survey-thanks"' in swapped.content.decode()
    assert SurveyResponse.objects.get().score == 5
    assert 'data-testid="survey-prompt"' not in client.get("/").content.decode()


def test_an_htmx_answer_without_a_score_shows_the_card_again_with_the_error(
    client: Client, alice: Any, first_launch: Any
) -> None:
    client.force_login(alice)
    client.get("/")
    prompt = SurveyPrompt.objects.get(user=alice)
    swapped = client.post(reverse("feedback:answer", args=[prompt.pk]), {"comment": "kept", "next": "/"}, **HTMX)
    body = swapped.content.decode()
    assert swapped.status_code == 200  # htmx swaps 2xx only
    assert 'data-testid="survey-error"' in body
    assert ">kept</textarea>" in body
    assert not SurveyResponse.objects.exists()


def test_the_workspace_page_shows_the_card_and_a_plain_dismiss_comes_back_to_it(
    client: Client, alice: Any, first_launch: Any
) -> None:
    client.force_login(alice)
    page_url = reverse("runs:workspace-detail", args=[first_launch.pk])
    assert 'data-testid="survey-prompt"' in client.get(page_url).content.decode()
    prompt = SurveyPrompt.objects.get(user=alice)

    back = client.post(reverse("feedback:dismiss", args=[prompt.pk]), {"next": page_url})

    assert (back.status_code, back["Location"]) == (302, page_url)
    prompt.refresh_from_db()
    assert prompt.dismissed_at is not None
    assert 'data-testid="survey-prompt"' not in client.get(page_url).content.decode()


def test_an_htmx_dismiss_empties_the_card_and_a_plain_post_never_leaves_the_site(
    client: Client, alice: Any, first_launch: Any
) -> None:
    client.force_login(alice)
    client.get("/")
    prompt = SurveyPrompt.objects.get(user=alice)
    gone = client.post(reverse("feedback:dismiss", args=[prompt.pk]), **HTMX)
    assert (gone.status_code, gone.content) == (200, b"")
    again = client.post(reverse("feedback:answer", args=[prompt.pk]), {"score": "3", "next": "https://evil.example/"})
    assert (again.status_code, again["Location"]) == (302, "/")  # closed already: an error message, back home
    assert not SurveyResponse.objects.exists()


def test_a_teammates_prompt_is_not_found_on_the_pages(
    client: Client, alice: Any, vision: Team, first_launch: Any
) -> None:
    client.force_login(alice)
    client.get("/")
    prompt = SurveyPrompt.objects.get(user=alice)
    client.force_login(member(vision, Role.MANAGER))
    assert client.post(reverse("feedback:answer", args=[prompt.pk]), {"score": "1"}).status_code == 404
    assert client.post(reverse("feedback:dismiss", args=[prompt.pk])).status_code == 404
    prompt.refresh_from_db()
    assert prompt.is_open


def test_the_api_offers_the_due_prompt_then_answers_it(api: APIClient, alice: Any, first_launch: Any) -> None:
    api.force_authenticate(alice)
    due = api.get("/api/v1/feedback/prompt")
    assert due.status_code == 200
    body = due.json()
    assert (body["launch_number"], body["team"], body["workspace"]) == (1, "vision", first_launch.pk)
    assert body["template"] == first_launch.template_version.template.slug

    refused = api.post(f"/api/v1/feedback/prompts/{body['id']}/answer", {"score": 7}, format="json")
    assert refused.status_code == 400
    assert refused.json()["code"] == "invalid_survey_score"
    assert not SurveyResponse.objects.exists()

    answered = api.post(f"/api/v1/feedback/prompts/{body['id']}/answer", {"score": 4, "comment": "ok"}, format="json")
    assert answered.status_code == 200
    assert answered.json()["answered_at"] is not None
    assert api.get("/api/v1/feedback/prompt").status_code == 204
    again = api.post(f"/api/v1/feedback/prompts/{body['id']}/dismiss", format="json")
    assert (again.status_code, again.json()["code"]) == (409, "survey_prompt_closed")
    assert [item["id"] for item in api.get("/api/v1/feedback/prompts").json()["results"]] == [body["id"]]


def test_the_api_dismisses_and_a_teammates_prompt_is_a_404(
    api: APIClient, alice: Any, vision: Team, first_launch: Any
) -> None:
    api.force_authenticate(alice)
    prompt_id = api.get("/api/v1/feedback/prompt").json()["id"]
    api.force_authenticate(member(vision, Role.MANAGER))
    for path in (f"prompts/{prompt_id}/answer", f"prompts/{prompt_id}/dismiss"):
        response = api.post(f"/api/v1/feedback/{path}", {"score": 5}, format="json")
        assert (response.status_code, response.json()["code"]) == (404, "not_found")
    assert api.get(f"/api/v1/feedback/prompts/{prompt_id}").status_code == 404
    assert api.get("/api/v1/feedback/prompts").json()["results"] == []
    api.force_authenticate(alice)
    dismissed = api.post(f"/api/v1/feedback/prompts/{prompt_id}/dismiss", format="json")
    assert dismissed.status_code == 200
    assert dismissed.json()["dismissed_at"] is not None
    assert api.get("/api/v1/feedback/prompt").status_code == 204


def test_the_schema_documents_the_survey_routes(api: APIClient, alice: Any) -> None:
    api.force_authenticate(alice)
    paths = api.get("/api/schema/?format=json").json()["paths"]
    assert "204" in paths["/api/v1/feedback/prompt"]["get"]["responses"]
    answer = paths["/api/v1/feedback/prompts/{id}/answer/"]["post"]
    assert "`invalid_survey_score`" in answer["responses"]["400"]["description"]
    assert "/api/v1/feedback/prompts/{id}/dismiss/" in paths
