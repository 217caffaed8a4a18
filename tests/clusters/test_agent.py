"""The GPU telemetry agent: sources, batches, buffering, the portal client and the command line.

No database and no Django: the agent runs on GPU nodes with only the standard library and nvidia-ml-py.
"""

from __future__ import annotations

import itertools
import json
import os
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from apps.clusters.agent.client import PortalClient, PortalRejected, PortalUnavailable
from apps.clusters.agent.sampler import Sampler, build_batch
from apps.clusters.agent.sources import GpuReading, NvmlSource, NvmlUnavailable, ReplaySource, load_ticks, record
from tests.waiting import wait_for

pytestmark: list[pytest.MarkDecorator] = []

ROOT = Path(__file__).resolve().parents[2]
DATA = Path(__file__).parent / "data"
IDLE = DATA / "g5xlarge_idle.jsonl"
BUSY_THEN_IDLE = DATA / "g5_48xlarge_busy_then_idle.jsonl"
H100_IDLE = DATA / "h100_idle.jsonl"  # recorded from real NVML, see data/README.md
H100_BUSY_THEN_IDLE = DATA / "h100_busy_then_idle.jsonl"
TOKEN = "node-token-123"


def nvml_works() -> bool:
    import pynvml

    try:
        pynvml.nvmlInit()
    except pynvml.NVMLError:
        return False
    pynvml.nvmlShutdown()
    return True


needs_no_gpu = pytest.mark.skipif(nvml_works(), reason="NVML works on this machine")


# --- a tiny portal ---------------------------------------------------------------------------------------------


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: Any
    status: int


@dataclass
class PortalStub:
    url: str = ""
    status: int = 202
    detail: str = "node n1 is not registered"
    requests: list[Received] = field(default_factory=list)

    @property
    def delivered(self) -> list[dict[str, Any]]:
        return [batch for r in self.requests if r.status < 300 for batch in r.body]


class StubHandler(BaseHTTPRequestHandler):
    server: Any

    def do_POST(self) -> None:
        stub: PortalStub = self.server.stub
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        status = stub.status
        stub.requests.append(Received(self.path, dict(self.headers), body, status))
        if status < 300:
            payload: dict[str, Any] = {"accepted": len(body)}
        else:
            payload = {
                "type": "about:blank",
                "title": "Refused",
                "status": status,
                "detail": stub.detail,
                "code": "unknown_node",
            }
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/problem+json" if status >= 400 else "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def portal() -> Iterator[PortalStub]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), StubHandler)
    stub = PortalStub(url=f"http://127.0.0.1:{server.server_address[1]}")
    server.stub = stub
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield stub
    server.shutdown()
    server.server_close()


def fixed_clock(start: datetime = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)) -> Any:
    ticks = iter(range(10_000))
    return lambda: start + timedelta(seconds=10 * next(ticks))


def agent(*args: str, **kwargs: Any) -> subprocess.Popen[str]:
    env = {**os.environ, "PAVED_NODE_TOKEN": TOKEN}
    return subprocess.Popen(
        [sys.executable, "-m", "apps.clusters.agent", *args],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        **kwargs,
    )


# --- sources ---------------------------------------------------------------------------------------------------


@needs_no_gpu
def test_nvml_source_raises_nvml_unavailable_with_the_nvml_text_when_there_is_no_driver() -> None:
    with pytest.raises(NvmlUnavailable, match="NVML Shared Library Not Found"):
        NvmlSource()


def test_nvml_source_converts_nvml_units_and_reports_unsupported_sensors_as_none(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    class NVMLError(Exception):
        pass

    class NVMLError_NotSupported(NVMLError):
        pass

    def power(handle: int) -> int:
        if handle == 1:
            raise NVMLError_NotSupported
        return 21_067

    fake = SimpleNamespace(
        NVMLError=NVMLError,
        NVMLError_NotSupported=NVMLError_NotSupported,
        NVML_TEMPERATURE_GPU=0,
        nvmlInit=lambda: None,
        nvmlShutdown=lambda: None,
        nvmlDeviceGetCount=lambda: 2,
        nvmlDeviceGetHandleByIndex=lambda i: i,
        nvmlDeviceGetUUID=lambda h: f"GPU-{h}",
        nvmlDeviceGetName=lambda h: b"NVIDIA A10G",
        nvmlDeviceGetUtilizationRates=lambda h: SimpleNamespace(gpu=97, memory=40),
        nvmlDeviceGetMemoryInfo=lambda h: SimpleNamespace(used=255 * 1024 * 1024, total=23028 * 1024 * 1024),
        nvmlDeviceGetPowerUsage=power,
        nvmlDeviceGetTemperature=lambda h, sensor: 30,
        nvmlDeviceGetComputeRunningProcesses=lambda h: [object()] * h,
    )
    monkeypatch.setitem(sys.modules, "pynvml", fake)

    readings = NvmlSource().read()

    assert readings == [
        GpuReading(0, "GPU-0", "NVIDIA A10G", 97.0, 255.0, 23028.0, 21.067, 30.0, 0),
        GpuReading(1, "GPU-1", "NVIDIA A10G", 97.0, 255.0, 23028.0, None, 30.0, 1),
    ]


def test_replay_source_replays_ticks_in_order_then_loops() -> None:
    source = ReplaySource(IDLE)
    first = source.read()
    assert first == [
        GpuReading(0, "GPU-9fb93534-081c-5253-71e2-73a87984a8ab", "NVIDIA A10G", 0.0, 255.2, 23028.0, 21.067, 30.0, 0)
    ]
    ticks = [first] + [source.read() for _ in range(39)]
    assert ticks == [tick.gpus for tick in load_ticks(IDLE)]

    assert source.read() == first


def test_replay_source_without_loop_stops_at_the_end() -> None:
    source = ReplaySource(IDLE, loop=False)
    for _ in range(40):
        source.read()
    with pytest.raises(StopIteration):
        source.read()


def test_busy_then_idle_fixture_has_eight_busy_gpus_then_eight_idle_ones() -> None:
    ticks = load_ticks(BUSY_THEN_IDLE)
    assert len(ticks) == 40
    assert [tick.t for tick in ticks[:3]] == [0.0, 10.0, 20.0]
    assert all(len(tick.gpus) == 8 for tick in ticks)
    assert all(90 <= g.utilization_pct <= 100 and g.process_count == 1 for tick in ticks[:20] for g in tick.gpus)
    assert all(g.utilization_pct == 0 and g.process_count == 0 for tick in ticks[20:] for g in tick.gpus)


@pytest.mark.parametrize("recording", [H100_IDLE, H100_BUSY_THEN_IDLE], ids=lambda path: path.stem)
def test_real_nvml_recordings_load_and_pass_the_ingest_field_checks(recording: Path) -> None:
    """The files recorded on an H100 by the agent's own --record are what the replay and the ingest expect."""
    ticks = load_ticks(recording)

    assert all(len(tick.gpus) == 1 for tick in ticks)
    assert {g.name for tick in ticks for g in tick.gpus} == {"NVIDIA H100 80GB HBM3"}
    assert all(g.memory_total_mib == 81559.0 and g.power_w is not None for tick in ticks for g in tick.gpus)
    assert [round(b.t - a.t) for a, b in itertools.pairwise(ticks)] == [2] * (len(ticks) - 1)
    from apps.clusters.api import BatchSerializer  # the portal side; the agent itself never imports Django

    for tick in ticks:
        serializer = BatchSerializer(data=build_batch("n1", tick.gpus, datetime(2026, 11, 26, tzinfo=UTC)))
        assert serializer.is_valid(), serializer.errors


def test_real_h100_recording_shows_a_training_process_then_its_exit() -> None:
    ticks = load_ticks(H100_BUSY_THEN_IDLE)
    busy = [tick.gpus[0] for tick in ticks if tick.gpus[0].utilization_pct >= 99]
    after = [tick.gpus[0] for tick in ticks[-20:]]

    assert len(busy) >= 15
    assert all(g.process_count == 1 and g.memory_used_mib > 16 * 1024 for g in busy)
    assert all(g.utilization_pct == 0 and g.process_count == 0 and g.memory_used_mib < 1024 for g in after)


def test_a_malformed_recording_names_the_file_and_line(tmp_path: Path) -> None:
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"t": 0, "gpus": []}\n{"t": 10, "gpus": [{"index": 0}]}\n')
    with pytest.raises(ValueError, match=r"bad\.jsonl:2"):
        ReplaySource(bad)


def test_record_writes_a_file_that_replays_to_the_same_readings(tmp_path: Path) -> None:
    out = tmp_path / "recorded.jsonl"

    written = record(ReplaySource(BUSY_THEN_IDLE), out, ticks=40, interval=0)

    assert written == 40
    assert [tick.gpus for tick in load_ticks(out)] == [tick.gpus for tick in load_ticks(BUSY_THEN_IDLE)]


# --- batches and the sampler -----------------------------------------------------------------------------------


def test_build_batch_has_node_utc_timestamp_and_one_entry_per_gpu() -> None:
    readings = ReplaySource(BUSY_THEN_IDLE).read()
    at = datetime(2026, 11, 26, 13, 0, tzinfo=timezone(timedelta(hours=1)))

    batch = build_batch("n1", readings, at)

    assert batch["node"] == "n1"
    assert batch["sampled_at"] == "2026-11-26T12:00:00+00:00"
    assert len(batch["gpus"]) == 8
    assert batch["gpus"][0] == readings[0].to_dict()
    assert set(batch["gpus"][0]) == {
        "index", "uuid", "name", "utilization_pct", "memory_used_mib", "memory_total_mib", "power_w",
        "temperature_c", "process_count",
    }  # fmt: skip
    json.dumps(batch)


def test_build_batch_refuses_a_naive_timestamp() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        build_batch("n1", [], datetime(2026, 11, 26))  # noqa: DTZ001


def test_sampler_posts_batches_with_the_node_authorization_header(portal: PortalStub) -> None:
    sampler = Sampler(ReplaySource(IDLE), PortalClient(portal.url, TOKEN), "n1", clock=fixed_clock())

    sampler.sample()
    result = sampler.flush()

    assert result.accepted == 1
    assert not sampler.buffer
    [request] = portal.requests
    assert request.path == "/api/v1/clusters/telemetry"
    assert request.headers["Authorization"] == f"Node {TOKEN}"
    assert request.headers["Content-Type"] == "application/json"
    assert request.body[0]["node"] == "n1"
    assert request.body[0]["sampled_at"] == "2026-11-26T12:00:00+00:00"


def test_sampler_buffers_while_the_portal_answers_503_and_flushes_oldest_first(portal: PortalStub) -> None:
    sampler = Sampler(ReplaySource(BUSY_THEN_IDLE), PortalClient(portal.url, TOKEN), "n1", clock=fixed_clock())
    portal.status = 503
    for _ in range(3):
        sampler.sample()
        result = sampler.flush()
        assert result.error is not None
        assert result.sent == 0
    assert len(sampler.buffer) == 3

    portal.status = 202
    sampler.sample()
    result = sampler.flush()

    assert (result.sent, result.accepted, result.buffered) == (4, 4, 0)
    expected = load_ticks(BUSY_THEN_IDLE)[:4]
    assert [b["sampled_at"][11:19] for b in portal.delivered] == ["12:00:00", "12:00:10", "12:00:20", "12:00:30"]
    assert [b["gpus"] for b in portal.delivered] == [[g.to_dict() for g in tick.gpus] for tick in expected]


def test_sampler_buffers_while_nothing_listens() -> None:
    sampler = Sampler(ReplaySource(IDLE), PortalClient("http://127.0.0.1:9", TOKEN, timeout=2), "n1")
    sampler.sample()
    result = sampler.flush()
    assert result.error is not None
    assert "cannot reach" in result.error
    assert len(sampler.buffer) == 1


def test_a_full_buffer_drops_the_oldest_batches() -> None:
    sampler = Sampler(
        ReplaySource(IDLE), PortalClient("http://127.0.0.1:9", TOKEN), "n1", buffer_size=3, clock=fixed_clock()
    )
    for _ in range(5):
        sampler.sample()
    assert sampler.dropped == 2
    assert [b["sampled_at"][11:19] for b in sampler.buffer] == ["12:00:20", "12:00:30", "12:00:40"]


def test_sampler_drops_a_chunk_the_portal_rejects_but_raises_on_a_bad_token(portal: PortalStub) -> None:
    sampler = Sampler(ReplaySource(IDLE), PortalClient(portal.url, TOKEN), "n1")
    portal.status = 422
    sampler.sample()
    assert sampler.flush().rejected == 1
    assert not sampler.buffer

    portal.status = 401
    sampler.sample()
    with pytest.raises(PortalRejected):
        sampler.flush()
    assert len(sampler.buffer) == 1


# --- the portal client -----------------------------------------------------------------------------------------


def test_client_raises_portal_rejected_with_the_problem_detail_on_4xx(portal: PortalStub) -> None:
    portal.status = 403
    with pytest.raises(PortalRejected) as caught:
        PortalClient(portal.url, TOKEN).send([build_batch("n1", [], datetime.now(UTC))])
    assert caught.value.status == 403
    assert caught.value.detail == "node n1 is not registered"
    assert caught.value.code == "unknown_node"


def test_client_raises_portal_unavailable_on_5xx_and_when_nothing_listens(portal: PortalStub) -> None:
    portal.status = 502
    with pytest.raises(PortalUnavailable, match="HTTP 502"):
        PortalClient(portal.url, TOKEN).send([])
    with pytest.raises(PortalUnavailable, match="cannot reach"):
        PortalClient("http://127.0.0.1:9", TOKEN, timeout=2).send([])


def test_client_refuses_a_url_that_is_not_http() -> None:
    with pytest.raises(ValueError, match="http"):
        PortalClient("file:///etc/passwd", TOKEN)


# --- the command line ------------------------------------------------------------------------------------------


@needs_no_gpu
def test_agent_without_nvml_prints_one_line_and_exits_2() -> None:
    proc = agent("--portal", "http://127.0.0.1:9", "--node-id", "n1", "--once")
    _stdout, stderr = proc.communicate(timeout=30)

    assert proc.returncode == 2
    assert "Traceback" not in stderr
    lines = stderr.splitlines()
    assert len(lines) == 1
    assert lines[0].startswith("NVML not available: NVML Shared Library Not Found")
    assert "use --replay FILE" in lines[0]


@needs_no_gpu
def test_the_paved_gpu_agent_console_script_is_the_same_agent() -> None:
    script = Path(sys.executable).parent / "paved-gpu-agent"
    result = subprocess.run(
        [str(script), "--portal", "http://127.0.0.1:9", "--node-id", "n1", "--once"],
        capture_output=True, text=True, timeout=30, env={**os.environ, "PAVED_NODE_TOKEN": TOKEN},
    )  # fmt: skip

    assert result.returncode == 2
    assert result.stderr.startswith("NVML not available: ")


def test_agent_replay_once_posts_one_batch(portal: PortalStub) -> None:
    proc = agent("--portal", portal.url, "--node-id", "n1", "--replay", str(BUSY_THEN_IDLE), "--once")
    _stdout, stderr = proc.communicate(timeout=30)

    assert proc.returncode == 0, stderr
    [request] = portal.requests
    assert request.headers["Authorization"] == f"Node {TOKEN}"
    [batch] = request.body
    assert batch["node"] == "n1"
    assert batch["gpus"] == [g.to_dict() for g in load_ticks(BUSY_THEN_IDLE)[0].gpus]
    assert "flushed 1 batches (1 accepted" in stderr


def test_agent_reads_the_token_file(portal: PortalStub, tmp_path: Path) -> None:
    token_file = tmp_path / "token"
    token_file.write_text("from-file\n")
    proc = agent(
        "--portal", portal.url, "--node-id", "n1", "--replay", str(IDLE), "--once", "--token-file", str(token_file)
    )
    proc.communicate(timeout=30)
    assert proc.returncode == 0
    assert portal.requests[0].headers["Authorization"] == "Node from-file"


def test_agent_on_ctrl_c_flushes_what_it_buffered_and_exits_0(portal: PortalStub) -> None:
    portal.status = 503
    proc = agent("--portal", portal.url, "--node-id", "n1", "--replay", str(IDLE), "--interval", "0.05")
    wait_for(
        lambda: len(portal.requests) >= 3,
        timeout=20,
        interval=0.02,
        message=lambda: f"three tries of the agent (it made {len(portal.requests)})",
    )
    portal.status = 202
    proc.send_signal(signal.SIGINT)
    _stdout, stderr = proc.communicate(timeout=30)

    assert proc.returncode == 0, stderr
    assert "Traceback" not in stderr
    delivered = portal.delivered
    assert len(delivered) >= 3
    stamps = [b["sampled_at"] for b in delivered]
    assert stamps == sorted(stamps)
    ticks = load_ticks(IDLE)
    assert [b["gpus"][0]["power_w"] for b in delivered] == [
        ticks[i % 40].gpus[0].power_w for i in range(len(delivered))
    ]


def test_agent_record_mode_writes_a_replayable_file(tmp_path: Path) -> None:
    out = tmp_path / "rec.jsonl"
    proc = agent("--record", str(out), "--ticks", "5", "--interval", "0", "--replay", str(IDLE))
    proc.communicate(timeout=30)
    assert proc.returncode == 0
    assert [t.gpus for t in load_ticks(out)] == [t.gpus for t in load_ticks(IDLE)[:5]]


def test_the_agent_never_imports_django() -> None:
    code = "import sys, apps.clusters.agent.__main__; print(sorted(m for m in sys.modules if m.startswith('django')))"
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=30, check=True
    )
    assert result.stdout.strip() == "[]"
