#!/usr/bin/env bash
# Record real NVML readings on a GPU machine, for the replay fixtures in tests/clusters/data (see its README).
#
#   scripts/record-gpu-samples.sh [OUT_DIR]
#
# Runs the agent's own --record path (the same NvmlSource the agent sends from), so the files have exactly the
# shape the portal ingests. Needs python3 with nvidia-ml-py; the busy phase needs PyTorch with CUDA.
set -euo pipefail
out=${1:-${OUT:-var/gpu-recordings}}
py=${PYTHON:-python3}
mkdir -p "$out"
{
  nvidia-smi -L
  nvidia-smi --query-gpu=name,driver_version,memory.total,power.limit,temperature.gpu --format=csv
  "$py" -c 'import importlib.metadata as m; print("nvidia-ml-py", m.version("nvidia-ml-py"))'
} | tee "$out/machine.txt"

# How long one NVML read of every GPU takes (the agent's per-tick cost on the node).
"$py" - <<'PY' | tee -a "$out/machine.txt"
import time
from apps.clusters.agent.sources import NvmlSource
source = NvmlSource()
source.read()
start = time.perf_counter()
for _ in range(100):
    source.read()
print(f"NvmlSource.read(): {(time.perf_counter() - start) * 10:.2f} ms per tick of {len(source.read())} GPU(s)")
source.close()
PY

echo "== idle: 30 ticks, 2 s apart"
"$py" -m apps.clusters.agent --record "$out/idle.jsonl" --ticks 30 --interval 2

echo "== busy then idle: a bf16 matmul load for ${BUSY_SECONDS:=40} s, recorded over 90 s"
"$py" - "$BUSY_SECONDS" <<'PY' &
import sys, time
import torch
seconds = float(sys.argv[1])
ballast = torch.empty(16 * 1024**3, dtype=torch.uint8, device="cuda")  # a model's worth of memory in use
a = torch.randn(8192, 8192, device="cuda", dtype=torch.bfloat16)
b = torch.randn(8192, 8192, device="cuda", dtype=torch.bfloat16)
end = time.monotonic() + seconds
while time.monotonic() < end:
    for _ in range(20):
        a = (a @ b).clamp_(-1, 1)
    torch.cuda.synchronize()
print("load done", flush=True)
PY
load=$!
sleep 3
"$py" -m apps.clusters.agent --record "$out/busy_then_idle.jsonl" --ticks 45 --interval 2
wait "$load"
wc -l "$out"/*.jsonl
