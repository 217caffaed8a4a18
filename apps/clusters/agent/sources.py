"""Where GPU readings come from: NVML on a real node, or a recorded JSON-lines file everywhere else.

Recorded files let the portal side, the tests and demos run on machines without a GPU; ``record`` produces them
from a real node, so the replayed shape is the shape NVML gives.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any, Protocol

MIB = 1024 * 1024


@dataclass(frozen=True)
class GpuReading:
    index: int
    uuid: str
    name: str
    utilization_pct: float
    memory_used_mib: float
    memory_total_mib: float
    power_w: float | None
    temperature_c: float | None
    process_count: int

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> GpuReading:
        """Build a reading from a recorded or posted dict, refusing missing or unknown fields."""
        names = {f.name for f in fields(cls)}
        missing = names - data.keys()
        unknown = data.keys() - names
        if missing or unknown:
            raise ValueError(f"GPU reading fields: missing {sorted(missing)}, unknown {sorted(unknown)}")
        power = data["power_w"]
        temperature = data["temperature_c"]
        return cls(
            index=int(data["index"]),
            uuid=str(data["uuid"]),
            name=str(data["name"]),
            utilization_pct=float(data["utilization_pct"]),
            memory_used_mib=float(data["memory_used_mib"]),
            memory_total_mib=float(data["memory_total_mib"]),
            power_w=None if power is None else float(power),
            temperature_c=None if temperature is None else float(temperature),
            process_count=int(data["process_count"]),
        )


class GpuSource(Protocol):
    def read(self) -> list[GpuReading]: ...

    def close(self) -> None: ...


class NvmlUnavailable(Exception):
    """NVML could not start here (no library, no driver, no device access); the message is NVML's own text."""


def _text(value: str | bytes) -> str:
    # Older nvidia-ml-py releases return bytes for names and UUIDs.
    return value.decode() if isinstance(value, bytes) else value


class NvmlSource:
    """Live readings from the NVIDIA driver through nvidia-ml-py."""

    def __init__(self) -> None:
        try:
            import pynvml
        except ImportError as exc:  # the agent's one dependency is missing on this node
            raise NvmlUnavailable(f"the nvidia-ml-py package is not installed ({exc})") from exc
        self._nvml: Any = pynvml
        try:
            pynvml.nvmlInit()
        except pynvml.NVMLError as exc:
            raise NvmlUnavailable(str(exc)) from exc
        self._closed = False

    def read(self) -> list[GpuReading]:
        nvml = self._nvml
        readings = []
        for index in range(nvml.nvmlDeviceGetCount()):
            handle = nvml.nvmlDeviceGetHandleByIndex(index)
            memory = nvml.nvmlDeviceGetMemoryInfo(handle)
            readings.append(
                GpuReading(
                    index=index,
                    uuid=_text(nvml.nvmlDeviceGetUUID(handle)),
                    name=_text(nvml.nvmlDeviceGetName(handle)),
                    utilization_pct=float(nvml.nvmlDeviceGetUtilizationRates(handle).gpu),
                    memory_used_mib=round(memory.used / MIB, 1),
                    memory_total_mib=round(memory.total / MIB, 1),
                    power_w=self._optional(nvml.nvmlDeviceGetPowerUsage, handle, scale=1000.0),
                    temperature_c=self._optional(nvml.nvmlDeviceGetTemperature, handle, nvml.NVML_TEMPERATURE_GPU),
                    process_count=len(nvml.nvmlDeviceGetComputeRunningProcesses(handle)),
                )
            )
        return readings

    def _optional(self, reader: Callable[..., float], *args: Any, scale: float = 1.0) -> float | None:
        """Some boards (and most vGPU/MIG setups) do not report power or temperature: that is None, not a crash.

        ``scale`` divides the raw value: NVML gives power in milliwatts.
        """
        try:
            return float(reader(*args)) / scale
        except self._nvml.NVMLError_NotSupported:
            return None

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self._nvml.nvmlShutdown()


@dataclass(frozen=True)
class Tick:
    """One sampling tick of a recording: its offset in seconds from the first tick, and what every GPU read."""

    t: float
    gpus: list[GpuReading]


def load_ticks(path: str | Path) -> list[Tick]:
    ticks = []
    with open(path, encoding="utf-8") as lines:
        for number, line in enumerate(lines, start=1):
            if not line.strip():
                continue
            try:
                data = json.loads(line)
                ticks.append(Tick(t=float(data["t"]), gpus=[GpuReading.from_dict(g) for g in data["gpus"]]))
            except (ValueError, KeyError, TypeError) as exc:
                raise ValueError(f"{path}:{number}: not a recorded tick: {exc}") from exc
    if not ticks:
        raise ValueError(f"{path}: no recorded ticks")
    return ticks


class ReplaySource:
    """Replays a recording one tick per ``read()``; at the end it starts over, or raises StopIteration."""

    def __init__(self, path: str | Path, *, loop: bool = True) -> None:
        self.path = Path(path)
        self.loop = loop
        self.ticks = load_ticks(self.path)
        self.position = 0

    def read(self) -> list[GpuReading]:
        if self.position >= len(self.ticks):
            if not self.loop:
                raise StopIteration(f"{self.path}: all {len(self.ticks)} recorded ticks replayed")
            self.position = 0
        tick = self.ticks[self.position]
        self.position += 1
        return list(tick.gpus)

    def close(self) -> None:
        pass


def record(
    source: GpuSource,
    path: str | Path,
    ticks: int,
    interval: float,
    *,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> int:
    """Write ``ticks`` readings of ``source`` to ``path`` in the replay format; returns how many were written.

    Each line is flushed as it is written, so a recording stopped with Ctrl-C keeps every finished tick.
    """
    start = clock()
    written = 0
    with open(path, "w", encoding="utf-8") as out:
        for number in range(ticks):
            if number:
                sleep(max(0.0, start + number * interval - clock()))
            offset = round(clock() - start, 3)
            gpus = [reading.to_dict() for reading in source.read()]
            out.write(json.dumps({"t": offset, "gpus": gpus}) + "\n")
            out.flush()
            written += 1
    return written
