"""Prometheus request metrics at /metrics and the JSON-lines log formatter."""

from __future__ import annotations

import io
import json
import logging
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from apps.ops.logging import JsonFormatter

HEALTHZ_COUNTER = 'paved_http_requests_total{method="GET",route="/healthz",status="200"}'
HEALTHZ_REQUESTS = ("paved_http_requests_total", {"method": "GET", "route": "/healthz", "status": "200"})
UNMATCHED_REQUESTS = ("paved_http_requests_total", {"method": "GET", "route": "<unmatched>", "status": "404"})
HEALTHZ_LATENCY_INF = (
    "paved_http_request_duration_seconds_bucket",
    {"method": "GET", "route": "/healthz", "le": "+Inf"},
)
HEALTHZ_LATENCY_COUNT = ("paved_http_request_duration_seconds_count", {"method": "GET", "route": "/healthz"})


@pytest.fixture(autouse=True)
def _single_process_registry(monkeypatch: Any) -> None:
    # /metrics reads the in-process registry unless gunicorn's multiprocess directory is configured.
    monkeypatch.delenv("PROMETHEUS_MULTIPROC_DIR", raising=False)


def scrape(client: Any) -> str:
    response = client.get("/metrics")
    assert response.status_code == 200
    return response.content.decode()


def sample(text: str, series: tuple[str, dict[str, str]]) -> float:
    """The value of one series (sample name + exact label set), 0 when it does not exist yet."""
    name, labels = series
    for family in text_string_to_metric_families(text):
        for found in family.samples:
            if found.name == name and found.labels == labels:
                return float(found.value)
    return 0.0


def test_metrics_is_prometheus_text_exposition(client: Any, db: None) -> None:  # KPI gauges read the snapshots
    response = client.get("/metrics")

    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/plain")
    body = response.content.decode()
    assert "# TYPE paved_http_requests_total counter" in body
    assert "# TYPE paved_http_request_duration_seconds histogram" in body


def test_request_counter_increases_by_the_number_of_requests_made(client: Any, db: None) -> None:
    before = sample(scrape(client), HEALTHZ_REQUESTS)

    for _ in range(3):
        assert client.get("/healthz").status_code == 200
    after_text = scrape(client)

    assert HEALTHZ_COUNTER in after_text
    assert sample(after_text, HEALTHZ_REQUESTS) - before == 3


def test_request_latency_histogram_has_buckets_for_the_route(client: Any, db: None) -> None:
    before_text = scrape(client)
    before_inf, before_count = sample(before_text, HEALTHZ_LATENCY_INF), sample(before_text, HEALTHZ_LATENCY_COUNT)

    client.get("/healthz")
    client.get("/healthz")
    text = scrape(client)

    bucket_lines = [
        line
        for line in text.splitlines()
        if line.startswith("paved_http_request_duration_seconds_bucket{") and 'route="/healthz"' in line
    ]
    assert len(bucket_lines) >= 2, "expected finite buckets plus +Inf for /healthz"
    assert sample(text, HEALTHZ_LATENCY_INF) - before_inf == 2
    assert sample(text, HEALTHZ_LATENCY_COUNT) - before_count == 2


def test_unmatched_paths_are_labelled_unmatched_not_by_raw_path(db: None, client: Any) -> None:
    raw_path = f"/no-such-page-{uuid.uuid4().hex}"
    before = sample(scrape(client), UNMATCHED_REQUESTS)

    assert client.get(raw_path).status_code == 404
    text = scrape(client)

    assert sample(text, UNMATCHED_REQUESTS) - before == 1
    assert raw_path not in text


# --- JsonFormatter ------------------------------------------------------------------------------------------


@pytest.fixture
def json_logger() -> Iterator[tuple[logging.Logger, io.StringIO]]:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    logger = logging.getLogger(f"paved.tests.json.{uuid.uuid4().hex}")
    logger.setLevel(logging.DEBUG)
    logger.propagate = False
    logger.addHandler(handler)
    yield logger, stream
    logger.removeHandler(handler)


def records(stream: io.StringIO) -> list[dict[str, Any]]:
    return [json.loads(line) for line in stream.getvalue().splitlines()]


def test_json_formatter_emits_time_level_logger_and_message(json_logger: Any) -> None:
    logger, stream = json_logger

    logger.warning("deployed %s to %s", "api", "prod")

    (entry,) = records(stream)
    assert entry["level"] == "WARNING"
    assert entry["logger"] == logger.name
    assert entry["message"] == "deployed api to prod"
    logged_at = datetime.fromisoformat(entry["time"])
    assert logged_at.utcoffset() == timedelta(0)
    assert abs(datetime.now(tz=UTC) - logged_at) < timedelta(minutes=1)


def test_json_formatter_includes_extra_fields(json_logger: Any) -> None:
    logger, stream = json_logger

    logger.info("request served", extra={"request_id": "req-42", "status": 201, "elapsed": 0.5, "cached": False})

    (entry,) = records(stream)
    assert entry["request_id"] == "req-42"
    assert entry["status"] == 201
    assert entry["elapsed"] == 0.5
    assert entry["cached"] is False


def test_json_formatter_renders_non_json_extras_with_repr(json_logger: Any) -> None:
    logger, stream = json_logger

    logger.info("with a set", extra={"tags": {"gpu"}})

    (entry,) = records(stream)
    assert entry["tags"] == "{'gpu'}"


def test_json_formatter_writes_one_json_object_per_record(json_logger: Any) -> None:
    logger, stream = json_logger

    logger.info("first\nwith a newline")
    logger.error("second")

    entries = records(stream)
    assert [entry["message"] for entry in entries] == ["first\nwith a newline", "second"]


def test_json_formatter_includes_the_exception_traceback(json_logger: Any) -> None:
    logger, stream = json_logger

    try:
        raise ValueError("boom")
    except ValueError:
        logger.exception("provisioning failed")

    (entry,) = records(stream)
    assert entry["level"] == "ERROR"
    assert entry["message"] == "provisioning failed"
    assert entry["exc_info"].startswith("Traceback (most recent call last):")
    assert "ValueError: boom" in entry["exc_info"]


def test_json_formatter_omits_exc_info_without_an_exception(json_logger: Any) -> None:
    logger, stream = json_logger

    logger.info("all good")

    (entry,) = records(stream)
    assert "exc_info" not in entry
