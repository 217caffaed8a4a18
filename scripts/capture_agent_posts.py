"""Run the real agent (NVML, --register) for a while against a stand-in portal that records what it receives.

For a GPU machine: ``python3 scripts/capture_agent_posts.py OUT_DIR [SECONDS [REPLAY_FILE]]`` (a replay file
instead of NVML is for trying the script where there is no GPU). The stand-in answers the two
endpoints the agent calls (registration, telemetry) the way the portal does and writes every request it got
to OUT_DIR/agent_posts.json; tests/clusters/test_agent_capture.py then replays those requests through the real
portal. Standard library only, like the agent. A PyTorch load (if torch is there) runs during the middle third.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

NODE_ID = "i-0c0ffee0c0ffee001"
TOKEN = "pvn_captured-on-a-gpu-node"  # noqa: S105 - a made-up token for the stand-in
received: list[dict[str, Any]] = []


class StandIn(BaseHTTPRequestHandler):
    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        received.append({"path": self.path, "authorization": self.headers.get("Authorization"), "body": body})
        if self.path.endswith("/nodes/register"):
            status, answer = 201, {"node": body["instance_id"], "cluster": 1, "gpu_count": 1, "token": TOKEN}
        else:
            status, answer = 202, {"accepted": len(body), "received": 0, "stored": 0, "duplicates": 0}
        payload = json.dumps(answer).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, *args: Any) -> None:
        pass


def gpu_load(seconds: float) -> subprocess.Popen[bytes] | None:
    code = (
        "import sys, time, torch\n"
        "a = torch.randn(8192, 8192, device='cuda', dtype=torch.bfloat16)\n"
        "end = time.monotonic() + float(sys.argv[1])\n"
        "while time.monotonic() < end:\n"
        "    a = (a @ a).clamp_(-1, 1); torch.cuda.synchronize()\n"
    )
    try:
        return subprocess.Popen([sys.executable, "-c", code, str(seconds)])  # noqa: S603
    except OSError:
        return None


def main() -> int:
    out = Path(sys.argv[1])
    seconds = float(sys.argv[2]) if len(sys.argv) > 2 else 45.0
    out.mkdir(parents=True, exist_ok=True)
    server = ThreadingHTTPServer(("127.0.0.1", 0), StandIn)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    secrets = out / "secrets"
    secrets.mkdir(exist_ok=True)
    (secrets / "bootstrap-token").write_text("pvb_" + "b" * 43 + "\n")
    token_file = secrets / "node-token"
    token_file.unlink(missing_ok=True)
    agent = subprocess.Popen(  # noqa: S603
        [sys.executable, "-m", "apps.clusters.agent", "--portal", f"http://127.0.0.1:{server.server_port}",
         "--register", "--bootstrap-token-file", str(secrets / "bootstrap-token"), "--token-file", str(token_file),
         "--node-id", NODE_ID, "--interval", "2", *(["--replay", sys.argv[3]] if len(sys.argv) > 3 else [])],
        env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])},
    )  # fmt: skip
    time.sleep(seconds / 3)
    load = gpu_load(seconds / 3)
    time.sleep(seconds * 2 / 3)
    agent.send_signal(signal.SIGTERM)
    code = agent.wait(timeout=30)
    if load is not None:
        load.wait(timeout=60)
    server.shutdown()
    (out / "agent_posts.json").write_text(json.dumps({"node": NODE_ID, "agent_exit": code, "requests": received}))
    samples = sum(len(batch["gpus"]) for r in received if r["path"].endswith("telemetry") for batch in r["body"])
    print(f"agent exit {code}; {len(received)} requests, {samples} GPU samples; token file mode "
          f"{oct(token_file.stat().st_mode & 0o777) if token_file.exists() else 'missing'}")  # fmt: skip
    return 0 if code == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
