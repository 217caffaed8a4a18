"""Contract fuzzing: schemathesis against a live portal, over every operation of /api/schema/.

The live server is pytest-django's (the portal in a thread of this process, on a free 127.0.0.1 port, on the test
database, seeded by tests/contract/seed.py). Schemathesis runs as its own process with the hooks in
tests/contract/schemathesis_hooks.py and fails this test on any failed check; its JUnit report must name every
operation of the schema, so a run that tested nothing can never pass.

Bounds come from the environment so `make fuzz` can run the same test longer: PAVED_FUZZ_EXAMPLES (examples per
operation and phase, 10 here), PAVED_FUZZ_PHASES (examples, coverage, fuzzing here; `make fuzz` adds stateful),
PAVED_FUZZ_SEED (1 here, so `make test` is reproducible; "random" for a new one each run), PAVED_FUZZ_WORKERS (2)
and PAVED_FUZZ_TIMEOUT (seconds, 900)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from django.test import Client

from tests.contract.seed import ContractData, seed_contract_data
from tests.runs.fixtures import private_broker

TIMEOUT = int(os.environ.get("PAVED_FUZZ_TIMEOUT", "900"))
pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True), pytest.mark.timeout(TIMEOUT + 60)]

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "test-artifacts" / "fuzz"
CHECKS = [
    "not_a_server_error",
    "status_code_conformance",
    "content_type_conformance",
    "response_schema_conformance",
    "negative_data_rejection",
]
HTTP_METHODS = {"get", "post", "put", "patch", "delete"}


def schema_operations(client: Client, token: str) -> set[str]:
    schema = client.get("/api/schema/?format=json", HTTP_AUTHORIZATION=f"Bearer {token}").json()
    return {
        f"{method.upper()} {path}"
        for path, item in schema["paths"].items()
        for method in item
        if method in HTTP_METHODS
    }


def assert_credentials_work(base: str, data: ContractData) -> None:
    """A fuzz run whose credentials are refused would only exercise the 401 path: refuse to start one."""
    for token in data.bearer_tokens:
        assert requests.get(f"{base}/api/v1/me", headers={"Authorization": f"Bearer {token}"}, timeout=10).ok
    node = requests.post(f"{base}/api/v1/clusters/telemetry", headers={"Authorization": f"Node {data.node_token}"},
                         json=[], timeout=10)  # fmt: skip
    assert node.status_code == 400, node.text  # authenticated; an empty list is refused
    bootstrap = requests.post(f"{base}/api/v1/clusters/nodes/register", json={"instance_id": "bad"}, timeout=10,
                              headers={"Authorization": f"Bootstrap {data.bootstrap_secret}"})  # fmt: skip
    assert bootstrap.status_code == 400, bootstrap.text


@pytest.fixture
def no_worker() -> Iterator[None]:
    """Runs and clusters the fuzzer launches are queued on a private broker that no worker reads (and that is
    thrown away), so the session's worker never executes them while this test's data is flushed."""
    with private_broker():
        yield


def test_every_operation_keeps_its_contract_under_fuzzing(
    live_server: Any, no_worker: None, tmp_path: Path, moto_endpoint: str, settings: Any
) -> None:
    # Cluster actions that call EC2 in the request (stop, start, terminate) reach the sandbox cloud; the seeded
    # nodes are not in it, so EC2 refuses them: a documented 502 `cloud_error`, never a 500.
    settings.AWS_ENDPOINT_URL = moto_endpoint
    data = seed_contract_data()
    operations = schema_operations(Client(), data.bearer_tokens[0])
    assert_credentials_work(live_server.url, data)
    assert len(operations) > 20, operations
    report = tmp_path / "junit.xml"
    seed = os.environ.get("PAVED_FUZZ_SEED", "1")
    command = [
        str(Path(sys.executable).with_name("schemathesis")), "run", f"{live_server.url}/api/schema/?format=json",
        "--url", live_server.url, "--checks", ",".join(CHECKS),
        "--max-examples", os.environ.get("PAVED_FUZZ_EXAMPLES", "10"),
        "--phases", os.environ.get("PAVED_FUZZ_PHASES", "examples,coverage,fuzzing"),
        "--workers", os.environ.get("PAVED_FUZZ_WORKERS", "2"),
        "--generation-database", "none", "--request-timeout", "30", "--no-color", "--suppress-health-check", "all",
        "--report", "junit", "--report-junit-path", str(report),
    ]  # fmt: skip
    if seed != "random":
        command += ["--seed", seed]
    env = {
        **os.environ,
        "SCHEMATHESIS_HOOKS": "tests.contract.schemathesis_hooks",
        "PAVED_FUZZ_CREDENTIALS": json.dumps(data.as_env()),
        "PYTHONPATH": str(ROOT),
    }
    # Run from tmp_path: schemathesis keeps replay data in ./.schemathesis/.
    result = subprocess.run(
        command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=TIMEOUT, check=False
    )
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    (ARTIFACTS / "schemathesis.txt").write_text(result.stdout + result.stderr)
    print(result.stdout[-20000:], result.stderr[-5000:])  # shown by pytest when the test fails
    assert result.returncode == 0, "schemathesis found failures (see the captured output above)"
    tested = {case.get("name", "") for case in ET.parse(report).getroot().iter("testcase")}  # noqa: S314
    assert operations <= tested, sorted(operations - tested)
