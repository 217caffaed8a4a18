"""`make audit`: pip-audit over the installed packages, offline against a directory of OSV advisories."""

from __future__ import annotations

import importlib.metadata
import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SIX = importlib.metadata.version("six")
DJANGO = importlib.metadata.version("django")


def advisory(vuln_id: str, package: str, **affected: object) -> dict[str, object]:
    return {"id": vuln_id, "summary": f"{vuln_id} in {package}", "affected": [{"package": {"ecosystem": "PyPI", "name": package}, **affected}]}  # fmt: skip


def audit(tmp_path: Path, advisories: list[dict[str, object]], accepted: str = "accepted = []", **env: str) -> subprocess.CompletedProcess[str]:  # fmt: skip
    database = tmp_path / "osv"
    database.mkdir(exist_ok=True)
    for entry in advisories:
        (database / f"{entry['id']}.json").write_text(json.dumps(entry))
    (tmp_path / "accepted.toml").write_text(accepted)
    environment = {**os.environ, "AUDIT_OSV_DIR": str(database), "AUDIT_ACCEPTED": str(tmp_path / "accepted.toml"), **env}  # fmt: skip
    return subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "audit_dependencies.py")],
        capture_output=True, text=True, env=environment, timeout=120, check=False,
    )  # fmt: skip


def test_an_installed_vulnerable_version_fails_the_audit_and_others_do_not(tmp_path: Path) -> None:
    major = int(DJANGO.split(".")[0])
    result = audit(
        tmp_path,
        [
            advisory("PYSEC-0000-1", "six", versions=[SIX]),
            advisory(
                "GHSA-in-range",
                "Django",
                ranges=[{"type": "ECOSYSTEM", "events": [{"introduced": "0"}, {"fixed": f"{major + 1}.0"}]}],
            ),
            advisory(
                "GHSA-fixed-long-ago",
                "django",
                ranges=[
                    {
                        "type": "ECOSYSTEM",
                        "events": [{"introduced": "0"}, {"fixed": "1.0"}, {"introduced": f"{major + 2}.0"}],
                    }
                ],
            ),
        ],
    )

    assert result.returncode == 1, result.stdout + result.stderr
    assert f"VULNERABLE six {SIX}: PYSEC-0000-1" in result.stdout
    assert f"VULNERABLE django {DJANGO}: GHSA-in-range (fixed in {major + 1}.0)" in result.stdout
    assert "GHSA-fixed-long-ago" not in result.stdout
    assert "2 known vulnerabilities, 0 accepted" in result.stdout
    assert "paved" not in result.stdout.split("packages audited")[0]  # the editable project itself is skipped


def test_an_accepted_vulnerability_passes_until_its_review_date(tmp_path: Path) -> None:
    entry = 'id = "PYSEC-0000-1"\npackage = "six"\nreason = "Not reachable from Paved."\nuntil = "{}"\n'
    vulnerable = [advisory("PYSEC-0000-1", "six", versions=[SIX])]

    accepted = audit(tmp_path, vulnerable, "[[accepted]]\n" + entry.format("2999-01-01"))
    expired = audit(tmp_path, vulnerable, "[[accepted]]\n" + entry.format("2000-01-01"))

    assert accepted.returncode == 0, accepted.stdout + accepted.stderr
    assert "accepted PYSEC-0000-1: Not reachable from Paved." in accepted.stdout
    assert "0 known vulnerabilities, 1 accepted" in accepted.stdout
    assert expired.returncode == 1
    assert "expired on 2000-01-01" in expired.stdout


@pytest.fixture
def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def test_an_unreachable_service_is_reported_not_audited_and_fails_only_when_required(
    tmp_path: Path, closed_port: int
) -> None:
    url = f"http://127.0.0.1:{closed_port}/v1/query"

    lenient = audit(tmp_path, [], AUDIT_OSV_DIR="", AUDIT_OSV_URL=url)
    required = audit(tmp_path, [], AUDIT_OSV_DIR="", AUDIT_OSV_URL=url, AUDIT_REQUIRED="1")

    assert lenient.returncode == 0
    assert "NOT AUDITED" in lenient.stdout
    assert required.returncode == 2
