"""apps/core/query.py applies to any list an app adds: a new FilterSet's booleans and integer filters are strict
without the app doing anything, and the schema shows the same bounds."""

from __future__ import annotations

from typing import Any

import django_filters
import pytest
from django.urls import path
from drf_spectacular.generators import SchemaGenerator
from rest_framework import generics, serializers
from rest_framework.test import APIRequestFactory, force_authenticate

from apps.catalog.models import Template
from tests.factories import TemplateFactory

pytestmark = pytest.mark.django_db


class TemplateFlags(django_filters.FilterSet):
    visible_to_all = django_filters.BooleanFilter()
    id = django_filters.NumberFilter()

    class Meta:
        model = Template
        fields = ["visible_to_all", "id"]


class TemplateSlugSerializer(serializers.ModelSerializer[Template]):
    class Meta:
        model = Template
        fields = ["slug"]


class FlaggedTemplates(generics.ListAPIView[Template]):
    queryset = Template.objects.order_by("slug")
    serializer_class = TemplateSlugSerializer
    filterset_class = TemplateFlags


def get(user: Any, **query: str) -> Any:
    request = APIRequestFactory().get("/api/v1/flagged", query)
    force_authenticate(request, user)
    return FlaggedTemplates.as_view()(request)


def test_a_new_lists_boolean_filter_refuses_anything_but_true_or_false(alice: Any) -> None:
    TemplateFactory(slug="everyone", visible_to_all=True)
    TemplateFactory(slug="hidden", visible_to_all=False)

    maybe = get(alice, visible_to_all="maybe")
    shown = get(alice, visible_to_all="false")

    assert maybe.status_code == 400
    assert maybe.data["code"] == "invalid_query"
    assert maybe.data["errors"] == {"visible_to_all": ["Use true or false."]}
    assert [row["slug"] for row in shown.data["results"]] == ["hidden"]


@pytest.mark.parametrize("value", ["9223372036854775808", "1.5", "two"])
def test_a_new_lists_integer_filter_refuses_what_no_row_can_hold(alice: Any, value: str) -> None:
    response = get(alice, id=value)

    assert response.status_code == 400
    assert set(response.data["errors"]) == {"id"}


def test_the_schema_of_a_new_list_shows_those_bounds(db: None) -> None:
    schema = SchemaGenerator(patterns=[path("api/v1/flagged", FlaggedTemplates.as_view())]).get_schema(public=True)

    parameters = {p["name"]: p["schema"] for p in schema["paths"]["/api/v1/flagged"]["get"]["parameters"]}

    assert parameters["visible_to_all"] == {"type": "boolean"}
    assert parameters["id"] == {"type": "integer", "minimum": -(2**63), "maximum": 2**63 - 1}
    assert parameters["limit"]["maximum"] == 1000
