"""Downsampling of raw GPU samples into 5-minute rollups: the aggregates, merging into a bucket rolled up earlier,
idempotence (also two runs at once), what is deleted and what is kept, and the retention system check."""

from __future__ import annotations

import threading
from datetime import datetime, timedelta
from statistics import fmean
from typing import Any, cast

import pytest
from django.core.checks import run_checks
from django.db import connection, connections
from django.utils import timezone

from apps.clusters import tasks
from apps.clusters.models import GpuRollup, GpuSample, Node
from apps.clusters.services.rollups import ROLLUP_BUCKET, bucket_start, hour_start, rollup_telemetry
from tests.factories import NodeFactory

pytestmark = pytest.mark.django_db

RAW_RETENTION = timedelta(hours=24)  # the default TELEMETRY_RAW_RETENTION_HOURS


@pytest.fixture
def start() -> datetime:
    """A bucket boundary two days ago: its samples are past the raw retention."""
    return bucket_start(timezone.now() - timedelta(days=2))


def after_retention(moment: datetime) -> datetime:
    """A `now` at which everything before `moment` (a bucket boundary) is past the raw retention."""
    return moment + RAW_RETENTION


def make_node(gpu_count: int = 1) -> Node:
    return cast(Node, NodeFactory(gpu_count=gpu_count))


def sample(node: Node, at: datetime, gpu: int = 0, **fields: Any) -> GpuSample:
    values = {
        "utilization_pct": 10.0,
        "memory_used_mib": 1000.0,
        "memory_total_mib": 24_000.0,
        "power_w": 100.0,
        "temperature_c": 50.0,
        "process_count": 1,
    }
    return GpuSample(node=node, gpu_index=gpu, sampled_at=at, **{**values, **fields})


def store(*samples: GpuSample) -> None:
    GpuSample.objects.bulk_create(samples)


def test_a_bucket_keeps_averages_and_maxima_of_its_samples(start: datetime) -> None:
    node = make_node(gpu_count=2)
    utils = [0.0, 20.0, 90.0, 30.0]
    memory = [1000.0, 3000.0, 2000.0, 6000.0]
    store(
        *(
            sample(node, start + timedelta(seconds=60 * i), utilization_pct=u, memory_used_mib=m,
                   power_w=100.0 + 10 * i, temperature_c=40.0 + i, process_count=i)
            for i, (u, m) in enumerate(zip(utils, memory, strict=True))
        ),
        sample(node, start, gpu=1, utilization_pct=100.0),
    )  # fmt: skip

    report = rollup_telemetry(now=after_retention(start + ROLLUP_BUCKET))

    assert report.folded_samples == 5
    assert report.rollups_written == 2
    gpu0 = GpuRollup.objects.get(node=node, gpu_index=0)
    assert gpu0.bucket_start == start
    assert gpu0.sample_count == 4
    assert gpu0.utilization_avg == pytest.approx(fmean(utils))
    assert gpu0.utilization_max == 90.0
    assert gpu0.memory_used_avg_mib == pytest.approx(fmean(memory))
    assert gpu0.memory_used_max_mib == 6000.0
    assert gpu0.memory_total_mib == 24_000.0
    assert gpu0.power_avg_w == pytest.approx(115.0)
    assert gpu0.temperature_max_c == 43.0
    assert gpu0.process_count_max == 3
    gpu1 = GpuRollup.objects.get(node=node, gpu_index=1)
    assert (gpu1.sample_count, gpu1.utilization_avg, gpu1.utilization_max) == (1, 100.0, 100.0)


def test_samples_fall_into_five_minute_buckets(start: datetime) -> None:
    node = make_node()
    store(*(sample(node, start + timedelta(seconds=10 * i)) for i in range(60)))  # 10 minutes

    rollup_telemetry(now=after_retention(start + 2 * ROLLUP_BUCKET))

    buckets = list(GpuRollup.objects.filter(node=node).values_list("bucket_start", "sample_count"))
    assert buckets == [(start, 30), (start + ROLLUP_BUCKET, 30)]


def test_folded_samples_are_deleted_and_newer_ones_untouched(start: datetime) -> None:
    node = make_node()
    old = [sample(node, start + timedelta(seconds=10 * i)) for i in range(30)]
    recent = [sample(node, start + ROLLUP_BUCKET + timedelta(seconds=10 * i), utilization_pct=77.0) for i in range(30)]
    store(*old, *recent)

    rollup_telemetry(now=after_retention(start + ROLLUP_BUCKET))

    left = GpuSample.objects.filter(node=node)
    assert left.count() == 30
    assert set(left.values_list("utilization_pct", flat=True)) == {77.0}
    assert min(left.values_list("sampled_at", flat=True)) == start + ROLLUP_BUCKET
    assert GpuRollup.objects.filter(node=node).count() == 1


def test_raw_samples_are_kept_for_the_whole_retention(start: datetime) -> None:
    """The cutoff is rounded down to a bucket: a sample 1 minute short of the retention is kept, with its bucket."""
    node = make_node()
    now = after_retention(start) + timedelta(minutes=2)
    store(sample(node, start - timedelta(minutes=1)), sample(node, start + timedelta(minutes=1)))

    report = rollup_telemetry(now=now)

    assert report.raw_cutoff == start
    assert list(GpuSample.objects.values_list("sampled_at", flat=True)) == [start + timedelta(minutes=1)]


def test_running_twice_changes_nothing(start: datetime) -> None:
    node = make_node()
    store(*(sample(node, start + timedelta(seconds=10 * i), utilization_pct=float(i)) for i in range(30)))
    now = after_retention(start + ROLLUP_BUCKET)
    rollup_telemetry(now=now)
    first = list(GpuRollup.objects.values())

    again = rollup_telemetry(now=now)

    assert (again.folded_samples, again.rollups_written) == (0, 0)
    assert list(GpuRollup.objects.values()) == first


def test_a_late_sample_is_merged_into_its_bucket_rolled_up_earlier(start: datetime) -> None:
    node = make_node()
    early = [sample(node, start + timedelta(seconds=10 * i), utilization_pct=float(i), memory_used_mib=100.0 * i,
                    power_w=200.0, temperature_c=60.0) for i in range(20)]  # fmt: skip
    late = [sample(node, start + timedelta(seconds=200 + 10 * i), utilization_pct=90.0 + i, memory_used_mib=50.0,
                   power_w=260.0, temperature_c=55.0, process_count=4) for i in range(10)]  # fmt: skip
    now = after_retention(start + ROLLUP_BUCKET)
    store(*early)
    rollup_telemetry(now=now)
    store(*late)  # e.g. an agent that was cut off sends its buffer

    report = rollup_telemetry(now=now)

    assert (report.folded_samples, report.rollups_written) == (10, 1)
    rollup = GpuRollup.objects.get(node=node)
    every = early + late
    assert rollup.sample_count == 30
    assert rollup.utilization_avg == pytest.approx(fmean(s.utilization_pct for s in every))
    assert rollup.utilization_max == 99.0
    assert rollup.memory_used_avg_mib == pytest.approx(fmean(s.memory_used_mib for s in every))
    assert rollup.memory_used_max_mib == 1900.0
    assert rollup.power_avg_w == pytest.approx((20 * 200.0 + 10 * 260.0) / 30)
    assert rollup.temperature_max_c == 60.0
    assert rollup.process_count_max == 4
    assert not GpuSample.objects.exists()


def test_a_merge_keeps_readings_that_only_one_side_has(start: datetime) -> None:
    node = make_node()
    now = after_retention(start + ROLLUP_BUCKET)
    store(sample(node, start, power_w=None, temperature_c=None))
    rollup_telemetry(now=now)
    store(sample(node, start + timedelta(seconds=10), power_w=150.0, temperature_c=70.0))

    rollup_telemetry(now=now)

    rollup = GpuRollup.objects.get(node=node)
    assert (rollup.sample_count, rollup.power_avg_w, rollup.temperature_max_c) == (2, 150.0, 70.0)


def test_merged_power_is_weighted_by_the_samples_that_reported_it(start: datetime) -> None:
    node = make_node()
    now = after_retention(start + ROLLUP_BUCKET)
    # First fold: 3 samples, one with power 100 W. Second fold: 1 sample with 200 W.
    store(sample(node, start, power_w=100.0))
    store(sample(node, start + timedelta(seconds=10), power_w=None))
    store(sample(node, start + timedelta(seconds=20), power_w=None))
    rollup_telemetry(now=now)
    store(sample(node, start + timedelta(seconds=30), power_w=200.0))

    rollup_telemetry(now=now)

    rollup = GpuRollup.objects.get(node=node)
    assert (rollup.sample_count, rollup.power_sample_count) == (4, 2)
    assert rollup.power_avg_w == pytest.approx(150.0)  # not (100 * 3 + 200) / 4


def test_expired_rollups_are_deleted_and_younger_ones_kept(settings: Any) -> None:
    settings.TELEMETRY_ROLLUP_RETENTION_DAYS = 90
    node = make_node()
    now = timezone.now()
    values = {"sample_count": 1, "utilization_avg": 1.0, "utilization_max": 1.0, "memory_used_avg_mib": 1.0,
              "memory_used_max_mib": 1.0, "memory_total_mib": 1.0}  # fmt: skip
    expired = bucket_start(now - timedelta(days=91))
    kept = bucket_start(now - timedelta(days=89))
    GpuRollup.objects.create(node=node, gpu_index=0, bucket_start=expired, **values)
    GpuRollup.objects.create(node=node, gpu_index=0, bucket_start=kept, **values)

    report = rollup_telemetry(now=now)

    assert report.rollups_deleted == 1
    # The kept one is older than the fine tier's 7 days, so it now lives in its hour.
    assert list(GpuRollup.objects.values_list("bucket_start", "bucket_seconds")) == [(hour_start(kept), 3600)]


def fine_rollup(node: Node, at: datetime, **values: Any) -> GpuRollup:
    fields: dict[str, Any] = {"sample_count": 30, "utilization_avg": 10.0, "utilization_max": 20.0,
                              "memory_used_avg_mib": 1000.0, "memory_used_max_mib": 1200.0, "memory_total_mib": 23028.0,
                              "power_avg_w": 100.0, "power_sample_count": 30, "temperature_max_c": 50.0,
                              "process_count_max": 1}  # fmt: skip
    return GpuRollup.objects.create(node=node, gpu_index=0, bucket_start=at, bucket_seconds=300, **{**fields, **values})


def test_five_minute_rollups_older_than_the_fine_tier_become_hourly_ones(settings: Any) -> None:
    settings.TELEMETRY_FINE_ROLLUP_DAYS = 7
    node = make_node()
    now = timezone.now()
    hour = hour_start(now - timedelta(days=8))
    fine_rollup(node, hour, sample_count=30, utilization_avg=10.0, power_avg_w=100.0, power_sample_count=30)
    fine_rollup(node, hour + timedelta(minutes=5), sample_count=10, utilization_avg=50.0, utilization_max=90.0,
                power_avg_w=None, power_sample_count=0, temperature_max_c=70.0, process_count_max=3)  # fmt: skip
    fine_rollup(node, hour + timedelta(minutes=55), sample_count=20, utilization_avg=40.0, power_avg_w=300.0,
                power_sample_count=10)  # fmt: skip
    recent = fine_rollup(node, hour_start(now - timedelta(days=6)))

    report = rollup_telemetry(now=now)

    hourly = GpuRollup.objects.get(node=node, bucket_seconds=3600)
    assert (report.coarsened, report.hourly_written) == (3, 1)
    assert (hourly.bucket_start, hourly.sample_count) == (hour, 60)
    assert hourly.utilization_avg == pytest.approx((30 * 10.0 + 10 * 50.0 + 20 * 40.0) / 60)
    assert (hourly.utilization_max, hourly.temperature_max_c, hourly.process_count_max) == (90.0, 70.0, 3)
    assert hourly.power_sample_count == 40
    assert hourly.power_avg_w == pytest.approx((30 * 100.0 + 10 * 300.0) / 40)
    assert list(GpuRollup.objects.filter(bucket_seconds=300).values_list("pk", flat=True)) == [recent.pk]


def test_coarsening_merges_into_an_hour_folded_before_and_is_idempotent(settings: Any) -> None:
    settings.TELEMETRY_FINE_ROLLUP_DAYS = 7
    node = make_node()
    now = timezone.now()
    hour = hour_start(now - timedelta(days=8))
    fine_rollup(node, hour, sample_count=30, utilization_avg=10.0)
    rollup_telemetry(now=now)
    fine_rollup(node, hour + timedelta(minutes=10), sample_count=30, utilization_avg=30.0, utilization_max=80.0)

    rollup_telemetry(now=now)
    again = rollup_telemetry(now=now)

    hourly = GpuRollup.objects.get(node=node)
    assert (hourly.bucket_seconds, hourly.sample_count, hourly.utilization_max) == (3600, 60, 80.0)
    assert hourly.utilization_avg == pytest.approx(20.0)
    assert (again.coarsened, again.hourly_written) == (0, 0)


def test_the_raw_retention_setting_moves_the_cutoff(settings: Any, start: datetime) -> None:
    settings.TELEMETRY_RAW_RETENTION_HOURS = 48
    node = make_node()
    store(sample(node, start))

    rollup_telemetry(now=after_retention(start + ROLLUP_BUCKET))  # 24 h later: still inside 48 h

    assert GpuSample.objects.count() == 1
    assert not GpuRollup.objects.exists()


def test_the_beat_task_folds_old_samples(start: datetime) -> None:
    node = make_node()
    store(sample(node, start))

    tasks.rollup_telemetry()

    assert GpuRollup.objects.get(node=node).sample_count == 1
    assert not GpuSample.objects.exists()


@pytest.mark.django_db(transaction=True)
def test_two_runs_at_once_count_every_sample_once() -> None:
    if connection.vendor != "postgresql":
        pytest.skip("SQLite lets one writer in at a time; concurrency is PostgreSQL's case")
    start = bucket_start(timezone.now() - timedelta(days=2))
    nodes = [make_node(gpu_count=8) for _ in range(3)]
    store(
        *(sample(node, start + timedelta(seconds=10 * i), gpu=gpu, utilization_pct=float(i))
          for node in nodes for gpu in range(8) for i in range(60))
    )  # fmt: skip
    now = after_retention(start + 2 * ROLLUP_BUCKET)
    barrier = threading.Barrier(2)
    reports = []

    def run() -> None:
        try:
            barrier.wait()
            reports.append(rollup_telemetry(now=now))
        finally:
            connections.close_all()

    threads = [threading.Thread(target=run) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert sum(report.folded_samples for report in reports) == 3 * 8 * 60
    assert GpuRollup.objects.count() == 3 * 8 * 2
    assert set(GpuRollup.objects.values_list("sample_count", flat=True)) == {30}
    assert not GpuSample.objects.exists()


def retention_errors() -> list[str]:
    return [message.id for message in run_checks() if message.id and message.id.startswith("clusters.")]


def test_the_default_retention_passes_the_system_check() -> None:
    assert retention_errors() == []


def test_a_raw_retention_shorter_than_idle_lookback_fails_the_system_check(settings: Any) -> None:
    settings.MAX_IDLE_WINDOW_MINUTES = 120  # idle detection looks back 3 windows: 6 hours
    settings.TELEMETRY_RAW_RETENTION_HOURS = 5

    messages = [message for message in run_checks() if message.id == "clusters.E001"]

    assert len(messages) == 1
    assert "TELEMETRY_RAW_RETENTION_HOURS=5" in messages[0].msg
    assert messages[0].hint == "Set TELEMETRY_RAW_RETENTION_HOURS to 6 or more, or lower MAX_IDLE_WINDOW_MINUTES."


def test_a_rollup_retention_under_a_day_fails_the_system_check(settings: Any) -> None:
    settings.TELEMETRY_ROLLUP_RETENTION_DAYS = 0
    assert retention_errors() == ["clusters.E002"]
