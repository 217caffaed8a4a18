"""KPIs as JSON: every KPI with its value for the caller's teams (or one of them) over a standard window or a
date range, its target status, trend and sparkline; and one KPI by key. Thin: reads go through the selectors."""

from __future__ import annotations

from datetime import datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from drf_spectacular.utils import extend_schema
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from apps.core.errors import NotFound, ValidationFailed
from apps.core.openapi import problem_responses
from apps.core.query import read_query
from apps.dashboards.registry import Area, Period, get_kpi, target_of
from apps.dashboards.selectors import WINDOWS, KpiRow, kpi_rows, scope_for, visible_teams


class InvalidKpiQuery(ValidationFailed):
    code = "invalid_kpi_query"


class KpiQuerySerializer(serializers.Serializer[Any]):
    team = serializers.SlugField(required=False, help_text="One of your teams; default: all of them.")
    days = serializers.IntegerField(
        min_value=min(WINDOWS), max_value=max(WINDOWS), default=30,
        help_text=f"A standard window: one of {', '.join(map(str, WINDOWS))} days (read from the snapshots).",
    )  # fmt: skip
    start = serializers.DateField(required=False, help_text="A custom range instead: first day (UTC) ...")
    end = serializers.DateField(required=False, help_text="... and last day, included (at most 731 days).")
    area = serializers.ChoiceField(choices=[a.value for a in Area], required=False)


class TargetSerializer(serializers.Serializer[Any]):
    green = serializers.FloatField()
    amber = serializers.FloatField()
    better = serializers.CharField()
    note = serializers.CharField()


class KpiSerializer(serializers.Serializer[Any]):
    key = serializers.CharField(source="kpi.key")
    name = serializers.CharField(source="kpi.name")
    area = serializers.CharField(source="kpi.area")
    unit = serializers.CharField(source="kpi.unit")
    formula = serializers.CharField(source="kpi.formula")
    source = serializers.CharField(source="kpi.source")  # type: ignore[assignment]  # a field named like Field.source
    dimensions = serializers.ListField(child=serializers.CharField(), source="kpi.dimensions")
    target = serializers.SerializerMethodField()
    value = serializers.FloatField(allow_null=True)
    previous = serializers.FloatField(allow_null=True, help_text="The period of the same length before.")
    sample = serializers.IntegerField()
    status = serializers.CharField(help_text="green, amber, red, or none (no target or no data).")
    no_data = serializers.CharField(help_text='Why there is no value ("no data yet: ..."), else empty.')
    series = serializers.ListField(child=serializers.FloatField(allow_null=True), help_text="Sparkline.")

    def get_target(self, row: KpiRow) -> dict[str, Any] | None:
        target = target_of(row.kpi)
        if target is None:
            return None
        return {"green": target.green, "amber": target.amber, "better": str(target.better), "note": target.note}


def _rows(request: Request, key: str | None = None) -> list[KpiRow]:
    query = read_query(request, KpiQuerySerializer)
    if query["days"] not in WINDOWS:
        raise InvalidKpiQuery(f"days is one of {', '.join(map(str, WINDOWS))}.", field="days")
    team = None
    if query.get("team"):
        team = next((t for t in visible_teams(request.user) if t.slug == query["team"]), None)
        if team is None:
            raise NotFound(f"You have no team {query['team']}.")
    period = None
    if query.get("start") or query.get("end"):
        if not (query.get("start") and query.get("end")) or query["end"] < query["start"]:
            raise InvalidKpiQuery("Give both start and end, with end on or after start.", field="end")
        if (query["end"] - query["start"]).days > 731:
            raise InvalidKpiQuery("A range is at most 731 days.", field="end")
        utc = ZoneInfo("UTC")
        period = Period(
            start=datetime.combine(query["start"], time.min, utc),
            end=datetime.combine(query["end"], time.min, utc) + timedelta(days=1),
        )
    area = Area(query["area"]) if query.get("area") else None
    if key is not None:
        kpi = get_kpi(key)
        if kpi is None:
            raise NotFound(f"No KPI {key!r}.")
        area = kpi.area
    rows = kpi_rows(scope=scope_for(request.user, team), window_days=query["days"], period=period, area=area)
    return [row for row in rows if key is None or row.kpi.key == key]


class KpiListView(APIView):
    @extend_schema(parameters=[KpiQuerySerializer], responses={200: KpiSerializer(many=True)},
                   summary="Every KPI for your teams (or one team) over a window or a date range")  # fmt: skip
    @problem_responses(404)  # a team that is not one of yours
    def get(self, request: Request) -> Response:
        return Response(KpiSerializer(_rows(request), many=True).data)


class KpiDetailView(APIView):
    @extend_schema(parameters=[KpiQuerySerializer], responses={200: KpiSerializer},
                   summary="One KPI by key")  # fmt: skip
    @problem_responses(404)  # no such KPI, or a team that is not one of yours
    def get(self, request: Request, key: str) -> Response:
        (row,) = _rows(request, key)
        return Response(KpiSerializer(row).data)
