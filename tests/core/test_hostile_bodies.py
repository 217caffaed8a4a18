"""Hostile bodies get a documented answer: JSON nested too deep is a 400, a body over the limit a 413."""

from __future__ import annotations

import json
from typing import Any

import pytest
from django import forms
from django.test import Client
from django.test.client import MULTIPART_CONTENT

from apps.accounts.models import ApiToken
from apps.catalog.forms import JsonField
from apps.core.parsers import JsonTooDeep, check_depth
from tests.core.test_problem_details import assert_problem

DEEP = "[" * 10_000 + "]" * 10_000


def nested(depth: int) -> str:
    """`{"name": [[...["x"]...]]}`: the body's depth is `depth` (the outer object counts as one level)."""
    return '{"name": ' + "[" * (depth - 1) + '"x"' + "]" * (depth - 1) + "}"


@pytest.fixture
def alice_api(api: Any, alice: Any) -> Any:
    api.force_authenticate(user=alice)
    return api


def test_json_nested_10000_deep_is_a_400_problem(alice_api: Any) -> None:
    response = alice_api.post("/api/v1/tokens/", DEEP, content_type="application/json")

    body = assert_problem(response, 400, "malformed_request")
    assert "deeper than 64" in body["detail"]


def test_unbalanced_deep_json_is_a_400_problem(alice_api: Any) -> None:
    response = alice_api.post("/api/v1/tokens/", "[" * 10_000 + "}", content_type="application/json")

    assert_problem(response, 400, "malformed_request")


def test_json_at_the_depth_limit_reaches_validation_and_one_deeper_does_not(alice_api: Any) -> None:
    at_limit = alice_api.post("/api/v1/tokens/", nested(64), content_type="application/json")
    over = alice_api.post("/api/v1/tokens/", nested(65), content_type="application/json")

    assert assert_problem(at_limit, 400, "validation_failed")["errors"].keys() == {"name"}
    assert_problem(over, 400, "malformed_request")


def test_brackets_inside_strings_do_not_count_as_nesting(alice_api: Any) -> None:
    name = '[{"' + "[" * 90 + '\\"' + "{" * 5

    response = alice_api.post("/api/v1/tokens/", json.dumps({"name": name}), content_type="application/json")

    assert response.status_code == 201, response.content
    assert ApiToken.objects.get().name == name


def test_the_depth_limit_is_a_setting(alice_api: Any, settings: Any) -> None:
    settings.API_MAX_JSON_DEPTH = 3

    response = alice_api.post("/api/v1/tokens/", nested(4), content_type="application/json")

    assert "deeper than 3" in assert_problem(response, 400, "malformed_request")["detail"]


def test_depth_check_refuses_alternating_and_mixed_nesting() -> None:
    six_deep = b'{"a": [{"b": [1, 2, {"c": []}]}], "d": "]]]]", "e": [[], {}]}'
    check_depth(six_deep, max_depth=6)
    with pytest.raises(JsonTooDeep):
        check_depth(six_deep, max_depth=5)
    with pytest.raises(JsonTooDeep):
        check_depth(b'[{"a":' * 40 + b"1" + b"}]" * 40, max_depth=64)
    padded = b"[[], " * 63 + b"1" + b"]" * 63  # 64 deep, no long run of openers until the [] padding is peeled away
    check_depth(padded, max_depth=64)
    with pytest.raises(JsonTooDeep):
        check_depth(b"[[], " + padded + b"]", max_depth=64)


def test_json_form_fields_refuse_deep_json_with_a_field_error() -> None:
    with pytest.raises(forms.ValidationError, match="deeper than 64"):
        JsonField().clean('{"a": ' + DEEP + "}")


@pytest.fixture
def small_limit(settings: Any) -> int:
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 10_000
    return 10_000


def test_oversized_api_body_is_a_413_problem(alice_api: Any, small_limit: int) -> None:
    body = json.dumps({"name": "x" * small_limit})

    response = alice_api.post("/api/v1/tokens/", body, content_type="application/json")

    problem = assert_problem(response, 413, "payload_too_large")
    assert "9.8\xa0KB" in problem["detail"]
    assert not ApiToken.objects.exists()


def test_declared_length_over_the_limit_is_refused_before_the_body_is_read(alice_api: Any, small_limit: int) -> None:
    # The test client's payload refuses reads past what was sent: a 413 here means nothing tried to read 1 GB.
    response = alice_api.post(
        "/api/v1/tokens/", '{"name": "ci"}', content_type="application/json", CONTENT_LENGTH=str(2**30)
    )

    assert_problem(response, 413, "payload_too_large")


def test_oversized_form_post_shows_the_friendly_413_page(client: Client, db: None, small_limit: int) -> None:
    response = client.post("/accounts/login/", {"username": "alice", "password": "x" * small_limit})

    assert response.status_code == 413
    assert response["Content-Type"].startswith("text/html")
    assert "That was too much to send" in response.content.decode()
    assert "9.8\xa0KB" in response.content.decode()


def test_oversized_multipart_field_in_a_page_shows_the_friendly_413_page(
    client: Client, db: None, small_limit: int
) -> None:
    # Under the declared-length limit for uploads, so Django raises RequestDataTooBig while it parses the fields.
    response = client.post(
        "/accounts/login/", {"username": "alice", "password": "x" * small_limit}, content_type=MULTIPART_CONTENT
    )

    assert response.status_code == 413
    assert "That was too much to send" in response.content.decode()
