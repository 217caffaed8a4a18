"""The local target: each variant is a real MLServer process (scikit-learn runtime, V2 inference protocol) and
each endpoint one HAProxy process splitting traffic between them by server weight.

Everything a worker must know to carry on lives under `SERVING_ROOT/<endpoint>/`: HAProxy's config, pid, stats
socket (the runtime API), request log and ports, and per variant a folder with MLServer's settings, pid, ports
and log. Processes are started in their own sessions, so they outlive the worker that started them; any worker
builds a `LocalTarget` again from the endpoint's name and finds them.

Variants join HAProxy's backend at run time (`add server` + `enable server`, no reload: HAProxy 2.6 allows
dynamic servers with `hash-type consistent`), and weights change with `set weight` on the next requests. The
backend balances on the `X-Paved-Caller` header when a request has one (consistent hashing honours the weights,
so an A/B test is sticky per caller) and round robin otherwise."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from django.conf import settings

from apps.deployments.errors import ModelServerFailed, TargetError
from apps.deployments.targets.base import (
    DeploymentTarget,
    EndpointRef,
    EndpointStatus,
    VariantSpec,
    VariantStatus,
)

BACKEND = "variants"
CALLER_HEADER = "X-Paved-Caller"
RUNTIME = "runtime.SKLearnWithFaults"  # apps/deployments/serving/runtime.py, on the model servers' PYTHONPATH
SERVING_CODE = Path(__file__).resolve().parent.parent / "serving"
STOP_GRACE_SECONDS = 5.0
LOG_TAIL_LINES = 40
# Per request: accept time (epoch seconds.milliseconds), server, HTTP status, server response time, total (ms).
LOG_FORMAT = "%Ts.%ms %s %ST %Tr %Ta"

HAPROXY_CONFIG = """# Written by Paved (apps/deployments/targets/local.py) for {name}; servers are added at run time.
global
    stats socket {socket} mode 600 level admin
    log stdout format raw local0
defaults
    mode http
    timeout connect 2s
    timeout client 60s
    timeout server 60s
    log global
frontend predict
    bind 127.0.0.1:{frontend}
    log-format "{log_format}"
    default_backend {backend}
frontend exporter
    bind 127.0.0.1:{exporter}
    no log
    http-request use-service prometheus-exporter if {{ path /metrics }}
backend {backend}
    balance hdr({header})
    hash-type consistent
"""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def alive(pid: int | None) -> bool:
    """Whether `pid` runs (a zombie child of ours is reaped and counts as gone)."""
    if not pid:
        return False
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    if state == "Z":
        with contextlib.suppress(ChildProcessError):
            os.waitpid(pid, os.WNOHANG)
        return False
    return True


def stop(pid: int | None) -> None:
    """SIGTERM the process group, SIGKILL what is left after the grace period."""
    if pid is None or not alive(pid):
        return
    for sig, wait in ((signal.SIGTERM, STOP_GRACE_SECONDS), (signal.SIGKILL, 2.0)):
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pid, sig)
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline:
            if not alive(pid):
                return
            time.sleep(0.05)


def _read_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _tail(path: Path, lines: int = LOG_TAIL_LINES) -> str:
    try:
        with path.open("rb") as handle:
            handle.seek(max(0, path.stat().st_size - 16_384))
            return b"\n".join(handle.read().splitlines()[-lines:]).decode(errors="replace")
    except OSError:
        return ""


def _artifact_path(uri: str, folder: Path) -> str:
    """A local path MLServer can load: file:// as is; s3:// downloaded once into the variant's folder (a training
    job writes its model to S3; the local target serves it from disk)."""
    parts = urlsplit(uri)
    if parts.scheme == "file":
        return parts.path
    if parts.scheme != "s3":
        raise TargetError(
            f"The local target serves file:// and s3:// artifacts, not {uri}.", code="unsupported_artifact"
        )
    import boto3
    from botocore.exceptions import BotoCoreError, ClientError

    key = parts.path.lstrip("/")
    digest = hashlib.sha256(uri.encode()).hexdigest()[:16]  # a variant folder may serve another version later
    local = folder / "artifacts" / digest / (key.rsplit("/", 1)[-1] or "model")
    if not local.exists():
        local.parent.mkdir(parents=True, exist_ok=True)
        client = boto3.client("s3", region_name=settings.AWS_REGION, endpoint_url=settings.AWS_ENDPOINT_URL or None)
        partial = local.with_name(local.name + ".part")
        try:
            client.download_file(parts.netloc, key, str(partial))
        except (BotoCoreError, ClientError) as exc:
            raise TargetError(f"Cannot fetch the model artifact {uri}: {exc}", code="artifact_unavailable") from exc
        partial.rename(local)
    return str(local)


class LocalTarget(DeploymentTarget):
    kind = "local"

    def __init__(self, endpoint: EndpointRef) -> None:
        super().__init__(endpoint)
        self.root = Path(settings.SERVING_ROOT) / endpoint.name

    # --- files --------------------------------------------------------------------------------------------

    @property
    def _socket(self) -> Path:
        return self.root / "haproxy.sock"

    @property
    def log_path(self) -> Path:
        """HAProxy's per-request log (LOG_FORMAT), read by `metrics.haproxy.HAProxyMetrics`."""
        return self.root / "requests.log"

    def ports(self) -> dict[str, Any]:
        return _read_json(self.root / "ports.json")

    def _variant_dir(self, name: str) -> Path:
        return self.root / "variants" / name

    def _variants_on_disk(self) -> list[str]:
        folder = self.root / "variants"
        return sorted(path.name for path in folder.iterdir() if path.is_dir()) if folder.is_dir() else []

    def _weights(self) -> dict[str, int]:
        return {name: int(weight) for name, weight in _read_json(self.root / "weights.json").items()}

    def _save_weights(self, weights: Mapping[str, int]) -> None:
        (self.root / "weights.json").write_text(json.dumps(dict(weights)))

    # --- HAProxy ------------------------------------------------------------------------------------------

    def command(self, line: str) -> str:
        """One runtime-API command on the stats socket; TargetError (retryable) when HAProxy does not answer."""
        try:
            with socket.socket(socket.AF_UNIX) as sock:
                sock.settimeout(5)
                sock.connect(str(self._socket))
                sock.sendall(line.encode() + b"\n")
                chunks = []
                while chunk := sock.recv(65536):
                    chunks.append(chunk)
        except OSError as exc:
            raise TargetError(f"HAProxy of {self.endpoint.name} did not answer: {exc}", retryable=True) from exc
        return b"".join(chunks).decode(errors="replace")

    def _haproxy_pid(self) -> int | None:
        return _read_json(self.root / "haproxy.json").get("pid")

    def haproxy_running(self) -> bool:
        return alive(self._haproxy_pid()) and self._socket.exists()

    def _ensure_haproxy(self) -> None:
        if self.haproxy_running():
            return
        self.root.mkdir(parents=True, exist_ok=True)
        ports = self.ports() or {"frontend": free_port(), "exporter": free_port()}
        (self.root / "ports.json").write_text(json.dumps(ports))
        config = self.root / "haproxy.cfg"
        config.write_text(
            HAPROXY_CONFIG.format(
                name=self.endpoint.name, socket=self._socket, frontend=ports["frontend"], exporter=ports["exporter"],
                log_format=LOG_FORMAT, backend=BACKEND, header=CALLER_HEADER,
            )
        )  # fmt: skip
        self._socket.unlink(missing_ok=True)
        with self.log_path.open("ab") as log:
            process = subprocess.Popen(  # noqa: S603 - our binary, our config
                [settings.HAPROXY_BIN, "-db", "-f", str(config)],
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
        (self.root / "haproxy.json").write_text(json.dumps({"pid": process.pid}))
        deadline = time.monotonic() + 10
        while not self._socket.exists():
            if process.poll() is not None or time.monotonic() > deadline:
                raise TargetError(f"HAProxy did not start: {_tail(self.log_path, 10)}")
            time.sleep(0.05)
        weights = self._weights()
        for name in self._variants_on_disk():  # a restarted HAProxy gets its servers back
            self._add_server(name, weight=weights.get(name, 0))

    def _servers(self) -> dict[str, dict[str, str]]:
        """`show servers state` of the backend: server name -> its fields."""
        lines = [line for line in self.command(f"show servers state {BACKEND}").splitlines() if line.strip()]
        header = next((line for line in lines if line.startswith("# be_id")), None)
        if header is None:
            return {}
        names = header.lstrip("# ").split()
        # The first line is the format version ("1"); each server's line holds all the header's fields.
        rows = [dict(zip(names, line.split(), strict=False)) for line in lines[1:] if not line.startswith("#")]
        return {row["srv_name"]: row for row in rows}

    def _add_server(self, name: str, *, weight: int) -> None:
        port = _read_json(self._variant_dir(name) / "ports.json").get("http")
        if not port:
            return
        if name not in self._servers():
            answer = self.command(f"add server {BACKEND}/{name} 127.0.0.1:{port} weight {weight}")
            if "New server registered" not in answer:
                raise TargetError(f"HAProxy refused server {name}: {answer.strip()}")
        self.command(f"set weight {BACKEND}/{name} {weight}")
        self.command(f"enable server {BACKEND}/{name}")

    # --- model servers ------------------------------------------------------------------------------------

    def _server_ready(self, name: str, model: str) -> bool:
        port = _read_json(self._variant_dir(name) / "ports.json").get("http")
        if not port:
            return False
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/v2/models/{model}/ready", timeout=2) as answer:
                return bool(answer.status == 200)
        except (OSError, urllib.error.URLError):
            return False

    def _start_server(self, variant: VariantSpec) -> None:
        folder = self._variant_dir(variant.name)
        folder.mkdir(parents=True, exist_ok=True)
        ports = _read_json(folder / "ports.json") or {"http": free_port(), "grpc": free_port(), "metrics": free_port()}
        (folder / "ports.json").write_text(json.dumps(ports))
        (folder / "variant.json").write_text(json.dumps({"model": variant.model_name, "version": variant.version}))
        (folder / "model-settings.json").write_text(
            json.dumps(
                {
                    "name": variant.model_name,
                    "implementation": RUNTIME,
                    "parameters": {
                        "uri": _artifact_path(variant.artifact_uri, folder),
                        "version": variant.name,
                        "extra": dict(variant.parameters),
                    },
                }
            )
        )
        (folder / "settings.json").write_text(
            json.dumps(
                {
                    "host": "127.0.0.1",
                    "http_port": ports["http"],
                    "grpc_port": ports["grpc"],
                    "metrics_port": ports["metrics"],
                    "parallel_workers": 0,  # FACTS.md: today's uvloop crashes MLServer's parallel workers
                    "debug": False,
                }
            )
        )
        mlserver = Path(settings.SERVING_PYTHON).parent / "mlserver"
        env = {**os.environ, "PYTHONPATH": str(SERVING_CODE)}
        with (folder / "mlserver.log").open("ab") as log:
            process = subprocess.Popen(  # noqa: S603 - our binary, our folder
                [str(mlserver), "start", str(folder)],
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
                env=env,
            )
        (folder / "mlserver.json").write_text(json.dumps({"pid": process.pid}))
        deadline = time.monotonic() + settings.SERVING_START_TIMEOUT_SECONDS
        while not self._server_ready(variant.name, variant.model_name):
            if process.poll() is not None or time.monotonic() > deadline:
                log_tail = _tail(folder / "mlserver.log")
                stop(process.pid)
                shutil.rmtree(folder, ignore_errors=True)
                raise ModelServerFailed(
                    f"The model server of {variant.name} did not become ready: {log_tail[-1500:]}".strip()
                )
            time.sleep(0.1)

    def variant_url(self, name: str) -> str | None:
        """The model server of one variant, bypassing HAProxy (for diagnosis and the latency benchmark)."""
        port = _read_json(self._variant_dir(name) / "ports.json").get("http")
        return f"http://127.0.0.1:{port}" if port else None

    def _server_pid(self, name: str) -> int | None:
        return _read_json(self._variant_dir(name) / "mlserver.json").get("pid")

    # --- the interface ------------------------------------------------------------------------------------

    def prepare(self, *, variant: VariantSpec) -> None:
        self._ensure_haproxy()
        if not (alive(self._server_pid(variant.name)) and self._server_ready(variant.name, variant.model_name)):
            self._start_server(variant)
        weights = self._weights()
        if variant.name not in weights:
            weights[variant.name] = 0 if any(weights.values()) else 100
            self._save_weights(weights)
        self._add_server(variant.name, weight=weights[variant.name])

    def set_weights(self, *, weights: Mapping[str, int]) -> None:
        known = set(self._variants_on_disk())
        unknown = set(weights) - known
        if unknown:
            raise TargetError(
                f"No variant {', '.join(sorted(unknown))} on {self.endpoint.name}.", code="unknown_variant"
            )
        if sum(weights.values()) != 100 or any(not 0 <= weight <= 100 for weight in weights.values()):
            raise TargetError("Weights are percentages adding up to 100.", code="invalid_weights")
        self._ensure_haproxy()
        wanted = {name: int(weights.get(name, 0)) for name in known}
        self._save_weights(wanted)  # first, so a HAProxy restarted midway gets the new split
        # The largest new weight first: one command at a time, and setting a 0 first could leave every server at
        # 0 for a moment, which HAProxy answers with 503.
        for name, weight in sorted(wanted.items(), key=lambda item: -item[1]):
            self.command(f"set weight {BACKEND}/{name} {weight}")

    def status(self) -> EndpointStatus:
        if not alive(self._haproxy_pid()):
            return EndpointStatus(exists=bool(self._variants_on_disk()), detail="HAProxy is not running")
        servers = self._servers()
        variants = []
        for name in self._variants_on_disk():
            row = servers.get(name, {})
            model = _read_json(self._variant_dir(name) / "variant.json").get("model", "")
            up = alive(self._server_pid(name))
            variants.append(
                VariantStatus(
                    name=name,
                    ready=up and self._server_ready(name, model),
                    weight=int(row.get("srv_uweight", 0)) if row else 0,
                    detail="" if up else "model server not running",
                )
            )
        return EndpointStatus(exists=True, variants=tuple(variants), url=f"http://127.0.0.1:{self.ports()['frontend']}")

    def teardown(self, *, variant: str | None = None) -> None:
        if variant is None:
            for name in self._variants_on_disk():
                stop(self._server_pid(name))
            stop(self._haproxy_pid())
            shutil.rmtree(self.root, ignore_errors=True)
            return
        if self._weights().get(variant, 0) > 0 and len([w for w in self._weights().values() if w > 0]) == 1:
            raise TargetError(f"{variant} takes all the traffic; shift it away first.", code="variant_in_use")
        if alive(self._haproxy_pid()) and variant in self._servers():
            self.command(f"set weight {BACKEND}/{variant} 0")
            self.command(f"disable server {BACKEND}/{variant}")
            self.command(f"del server {BACKEND}/{variant}")
        stop(self._server_pid(variant))
        shutil.rmtree(self._variant_dir(variant), ignore_errors=True)
        weights = self._weights()
        weights.pop(variant, None)
        self._save_weights(weights)

    def trim_log(self) -> bool:
        """Free the request log's disk once it passes SERVING_LOG_MAX_BYTES, keeping its last
        SERVING_LOG_TAIL_BYTES where they are. HAProxy writes at its own file offset (its stdout is not in append
        mode), so the file is emptied and the kept tail written back at the same offsets: the file turns sparse
        (its apparent size keeps growing, its blocks do not), HAProxy's next line lands right after the tail, and
        readers skip the hole (a run of NULs is no request line). A line HAProxy writes between the read and the
        cut is lost; that happens once per SERVING_LOG_MAX_BYTES of traffic."""
        try:
            stat = self.log_path.stat()
        except FileNotFoundError:
            return False
        if stat.st_blocks * 512 <= settings.SERVING_LOG_MAX_BYTES:
            return False
        size = stat.st_size
        with self.log_path.open("r+b") as log:
            log.seek(max(0, size - settings.SERVING_LOG_TAIL_BYTES))
            kept = log.read(size)
            kept = b"\n" + kept[kept.find(b"\n") + 1 :]  # whole lines, after a newline that ends the hole
            log.truncate(0)
            os.pwrite(log.fileno(), kept, max(0, size - len(kept)))
        return True

    def supervise(self) -> list[str]:
        """Restart what died: HAProxy (its servers come back from the files) and any model server whose folder
        is still there; trim the request log. Returns what was restarted."""
        self.trim_log()
        restarted = []
        if self._variants_on_disk() and not alive(self._haproxy_pid()):
            self._ensure_haproxy()
            restarted.append("haproxy")
        for name in self._variants_on_disk():
            if alive(self._server_pid(name)):
                continue
            settings_file = _read_json(self._variant_dir(name) / "model-settings.json")
            parameters = settings_file.get("parameters", {})
            spec = VariantSpec(
                name=name,
                model_name=str(settings_file.get("name", "")),
                version=name,
                artifact_uri=f"file://{parameters.get('uri', '')}",
                parameters=parameters.get("extra", {}),
            )
            self._start_server(spec)
            restarted.append(name)
        return restarted


def stop_all() -> list[str]:
    """Stop every local endpoint's HAProxy and model servers but keep their files, so the next `supervise_all`
    (the beat's, once the stack is back) starts them again on the same ports: what `run_stack` does on Ctrl-C.
    Returns the endpoints stopped."""
    root = Path(settings.SERVING_ROOT)
    if not root.is_dir():
        return []
    stopped = []
    for folder in sorted(path for path in root.iterdir() if path.is_dir()):
        target = LocalTarget(EndpointRef(name=folder.name))
        stop(target._haproxy_pid())
        for name in target._variants_on_disk():
            stop(target._server_pid(name))
        stopped.append(folder.name)
    return stopped


def supervise_all() -> list[str]:
    """`supervise()` for every local endpoint with files under SERVING_ROOT (the beat's task)."""
    root = Path(settings.SERVING_ROOT)
    if not root.is_dir():
        return []
    restarted = []
    for folder in sorted(path for path in root.iterdir() if path.is_dir()):
        try:
            restarted += [f"{folder.name}/{name}" for name in LocalTarget(EndpointRef(name=folder.name)).supervise()]
        except TargetError:
            continue  # the next round tries again
    return restarted
