from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from django.test import Client
from drf_spectacular.generators import SchemaGenerator
from drf_spectacular.validation import validate_schema

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
