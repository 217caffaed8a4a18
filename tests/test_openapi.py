from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from django.test import Client
from django.urls import path as route
from drf_spectacular.generators import SchemaGenerator
from drf_spectacular.validation import validate_schema
from rest_framework.response import Response
from rest_framework.views import APIView

from apps.core.openapi import problem_responses

ROOT = Path(__file__).resolve().parents[1]
CDN = re.compile(r"https?://(cdn|unpkg|cdnjs|[a-z.]*jsdelivr|fonts\.googleapis|ajax\.googleapis)", re.IGNORECASE)


def test_openapi_schema_builds_validates_and_documents_every_route(db: None) -> None:
    schema = SchemaGenerator().get_schema(request=None, public=True)
    validate_schema(schema)
    paths = set(schema["paths"])
    for expected in ["/api/v1/me", "/api/v1/teams/", "/api/v1/tokens/", "/api/v1/tokens/{id}/revoke/"]:
        assert expected in paths, expected
    assert "/api/v1/audit-events/" in paths
    assert schema["components"]["securitySchemes"]["bearerAuth"]["scheme"] == "bearer"


def test_schema_endpoint_serves_openapi_3(client: Client, alice: Any) -> None:
    client.force_login(alice)
    response = client.get("/api/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json")
    assert response.status_code == 200
    assert response.json()["openapi"].startswith("3.")


def test_swagger_ui_loads_its_assets_from_our_own_static_files(client: Client, alice: Any) -> None:
    client.force_login(alice)
    body = client.get("/api/docs/").content.decode()
    assets = re.findall(r'(?:src|href)="([^"]+swagger[^"]+)"', body)
    assert assets
    assert all(asset.startswith("/static/") for asset in assets), assets


@pytest.mark.parametrize("folder", ["templates", "static"])
def test_no_page_or_asset_loads_from_a_cdn(folder: str) -> None:
    offenders = [
        str(path.relative_to(ROOT))
        for path in (ROOT / folder).rglob("*")
        if path.is_file() and path.suffix in {".html", ".css", ".js"} and CDN.search(path.read_text(errors="ignore"))
    ]
    assert offenders == []


def test_pages_load_htmx_from_the_vendored_copy(client: Client, alice: Any) -> None:
    client.force_login(alice)
    body = client.get("/").content.decode()
    assert '<script src="/static/vendor/htmx/htmx.min.js"' in body
    assert client.get("/static/vendor/htmx/htmx.min.js").status_code == 200


# --- The schema tells the truth about errors and bounds (apps/core/openapi.py) -----------------------------

PROBLEM_REF = {"$ref": "#/components/schemas/Problem"}


def operations(schema: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    return [
        (method.upper(), path, operation)
        for path, item in schema["paths"].items()
        for method, operation in item.items()
        if method in {"get", "post", "put", "patch", "delete"}
    ]


def test_every_operation_declares_its_problem_responses(db: None) -> None:
    schema = SchemaGenerator().get_schema(request=None, public=True)
    assert len(operations(schema)) > 30
    for method, path, operation in operations(schema):
        where = {p["in"] for p in operation.get("parameters", [])}
        # An operation open to anonymous callers (`security: [{}]`: trading a password for a token) still answers
        # 401 for bad credentials, but there is no caller yet to refuse with a 403.
        anonymous = not operation.get("security") or {} in operation["security"]
        expected = {"401"} if anonymous else {"401", "403"}
        if "requestBody" in operation or "query" in where or method != "GET":
            expected.add("400")
        if "path" in where or method != "GET":
            expected.add("404")
        if method != "GET":
            expected.add("409")
        if method in {"POST", "PUT", "PATCH"}:  # a DELETE reads no body, so it cannot answer 413 or 415
            expected |= {"413", "415"}
        responses = operation["responses"]
        assert expected <= set(responses), (method, path, sorted(expected - set(responses)))
        for status in expected:
            assert responses[status]["content"] == {"application/problem+json": {"schema": PROBLEM_REF}}, (path, status)
            if status != "413":  # the body-size limit's code belongs to whoever enforces it (no ApplicationError yet)
                assert "Known codes: `" in responses[status]["description"], (path, status)


def test_problem_responses_list_their_stable_codes_and_throttled_operations_declare_429(db: None) -> None:
    schema = SchemaGenerator().get_schema(request=None, public=True)
    problem = schema["components"]["schemas"]["Problem"]
    paths = schema["paths"]

    assert set(problem["required"]) == {"type", "title", "status", "detail", "code"}
    list_400 = paths["/api/v1/runs/"]["get"]["responses"]["400"]["description"]
    assert "`invalid_query`" in list_400
    assert "`validation_failed`" in list_400
    approve_409 = paths["/api/v1/runs/{id}/approve/"]["post"]["responses"]["409"]["description"]
    assert "`approval_not_pending`" in approve_409
    assert "`approval_not_required`" in approve_409
    assert "`throttled`" in paths["/api/v1/clusters/telemetry"]["post"]["responses"]["429"]["description"]
    assert "429" in paths["/api/v1/clusters/nodes/register"]["post"]["responses"]
    assert "429" not in paths["/api/v1/runs/"]["get"]["responses"]


def test_every_integer_query_parameter_declares_the_bounds_the_server_enforces(db: None) -> None:
    schema = SchemaGenerator().get_schema(request=None, public=True)
    checked = 0
    for method, path, operation in operations(schema):
        for parameter in operation.get("parameters", []):
            if parameter["in"] == "query" and parameter["schema"].get("type") == "integer":
                assert {"minimum", "maximum"} <= set(parameter["schema"]), (method, path, parameter["name"])
                checked += 1
            if parameter["in"] == "query" and parameter["name"] == "ordering":
                assert parameter["schema"]["pattern"].startswith("^-?("), (method, path)
    assert checked > 10


def test_api_request_bodies_are_declared_json_only_but_the_module_upload(db: None) -> None:
    schema = SchemaGenerator().get_schema(request=None, public=True)
    bodies = {
        path: operation["requestBody"] for _m, path, operation in operations(schema) if "requestBody" in operation
    }
    assert bodies
    uploads = {path for path in bodies if path.endswith("/module")}
    assert len(uploads) == 1
    assert all(set(body["content"]) == {"application/json"} for path, body in bodies.items() if path not in uploads)
    assert set(bodies[uploads.pop()]["content"]) == {"application/json", "multipart/form-data"}


class UnprocessableView(APIView):
    @problem_responses(422)
    def get(self, request: Any) -> Response:
        return Response({})


def test_an_operation_declares_extra_problem_statuses_with_the_helper(db: None) -> None:
    schema = SchemaGenerator(patterns=[route("api/v1/odd", UnprocessableView.as_view())]).get_schema(public=True)

    responses = schema["paths"]["/api/v1/odd"]["get"]["responses"]

    assert set(responses) == {"200", "401", "403", "422"}
    assert responses["422"]["content"] == {"application/problem+json": {"schema": PROBLEM_REF}}
