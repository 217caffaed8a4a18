"""Audit the virtualenv's installed packages for known vulnerabilities with pip-audit (`make audit`).

Fails (exit 1) on any vulnerability not accepted in security/accepted-vulnerabilities.toml (with a reason and a
review date). A vulnerability service that answers for none of the packages is not a finding: it prints NOT
AUDITED and exits 0, so `make test` never fails for the network, unless AUDIT_REQUIRED=1 (exit 2; for release
gates that must prove the audit ran). Environment:
  AUDIT_SERVICE   pip-audit's service: `pypi` (default, PyPI's JSON API) or `osv` (api.osv.dev)
  AUDIT_OSV_URL   an OSV-compatible query endpoint (a mirror for air-gapped sites); implies `osv`
  AUDIT_OSV_DIR   offline: a directory of OSV advisories (JSON, e.g. the unzipped PyPI export of osv.dev,
                  https://osv-vulnerabilities.storage.googleapis.com/PyPI/all.zip); this script serves it
                  on 127.0.0.1 as an OSV query endpoint for pip-audit, so nothing leaves the machine
  AUDIT_ACCEPTED  the accepted-vulnerabilities file (default security/accepted-vulnerabilities.toml)
  AUDIT_REQUIRED  1: an audit that could not run fails
"""

from __future__ import annotations

import datetime
import importlib.metadata
import json
import os
import subprocess
import sys
import tempfile
import threading
import tomllib
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from packaging.utils import canonicalize_name
from packaging.version import InvalidVersion, Version

ROOT = Path(__file__).resolve().parent.parent
ACCEPTED = Path(os.environ.get("AUDIT_ACCEPTED", ROOT / "security" / "accepted-vulnerabilities.toml"))


def installed_requirements() -> list[str]:
    """`name==version` for every installed distribution except editable ones (the project itself)."""
    pins = set()
    for dist in importlib.metadata.distributions():
        direct_url = json.loads(dist.read_text("direct_url.json") or "{}")
        if not direct_url.get("dir_info", {}).get("editable") and dist.metadata["Name"]:
            pins.add(f"{dist.metadata['Name']}=={dist.version}")
    return sorted(pins, key=str.lower)


def accepted_ids(today: datetime.date) -> dict[str, str]:
    entries = tomllib.loads(ACCEPTED.read_text())["accepted"]
    live = {entry["id"]: entry["reason"] for entry in entries if datetime.date.fromisoformat(entry["until"]) >= today}
    for entry in entries:
        if entry["id"] not in live:
            print(f"accepted vulnerability {entry['id']} ({entry['package']}) expired on {entry['until']}: review it")
    return live


def _in_range(current: Version, events: list[dict[str, str]]) -> bool:
    """OSV's ECOSYSTEM range walk: events in version order; the last one at or below `current` decides."""
    inside = False
    for event in sorted(events, key=lambda event: Version(next(iter(event.values())))):
        kind, at = next(iter(event.items()))
        if kind == "introduced" and current >= Version(at):
            inside = True
        elif (kind == "fixed" and current >= Version(at)) or (kind == "last_affected" and current > Version(at)):
            inside = False
    return inside


def affects(advisory: dict[str, Any], name: str, version: str) -> bool:
    """Whether an OSV advisory names this PyPI package version: listed outright, or inside one of its ranges."""
    for affected in advisory.get("affected", []):
        package = affected.get("package", {})
        if package.get("ecosystem") != "PyPI" or canonicalize_name(package.get("name", "")) != name:
            continue
        if version in affected.get("versions", []):
            return True
        try:
            current = Version(version)
            ranges = [span["events"] for span in affected.get("ranges", []) if span.get("type") == "ECOSYSTEM"]
            if any(_in_range(current, events) for events in ranges):
                return True
        except InvalidVersion:
            continue
    return False


@contextmanager
def serve_advisories(directory: Path) -> Iterator[str]:
    """An OSV `/v1/query` endpoint on 127.0.0.1 over a directory of advisories; yields its URL."""
    by_package: dict[str, list[dict[str, Any]]] = {}
    for path in directory.rglob("*.json"):
        advisory = json.loads(path.read_text(encoding="utf-8"))
        for affected in advisory.get("affected", []):
            package = affected.setdefault("package", {})
            package["name"] = canonicalize_name(package.get("name", ""))  # pip-audit matches fixes by this name
            by_package.setdefault(package["name"], []).append(advisory)

    class Query(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            query = json.loads(self.rfile.read(int(self.headers.get("Content-Length") or 0)))
            name, version = canonicalize_name(query["package"]["name"]), query["version"]
            vulns = [adv for adv in by_package.get(name, []) if affects(adv, name, version)]
            body = json.dumps({"vulns": vulns} if vulns else {}).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Query)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/v1/query"
    finally:
        server.shutdown()
        server.server_close()


def run_pip_audit(pins: list[str], accepted: dict[str, str], osv_url: str = "") -> dict[str, Any] | None:
    service = "osv" if osv_url else os.environ.get("AUDIT_SERVICE", "pypi")
    with tempfile.TemporaryDirectory() as scratch:
        requirements = Path(scratch) / "requirements.txt"
        requirements.write_text("\n".join(pins) + "\n")
        report = Path(scratch) / "report.json"
        command = [
            sys.executable, "-m", "pip_audit", "--requirement", str(requirements), "--no-deps", "--disable-pip",
            "--vulnerability-service", service, "--format", "json", "--output", str(report),
            "--progress-spinner", "off", "--timeout", "10",
        ]  # fmt: skip
        if osv_url:
            command += ["--osv-url", osv_url]
        for vuln_id in accepted:
            command += ["--ignore-vuln", vuln_id]
        completed = subprocess.run(command, capture_output=True, text=True, check=False)  # noqa: S603
        if not report.exists():  # pip-audit itself gave up (no network at all, bad URL)
            print(completed.stderr.strip()[-2000:])
            return None
        result: dict[str, Any] = json.loads(report.read_text())
        return result


def main() -> int:
    pins = installed_requirements()
    accepted = accepted_ids(datetime.datetime.now(tz=datetime.UTC).date())
    if os.environ.get("AUDIT_OSV_DIR"):
        with serve_advisories(Path(os.environ["AUDIT_OSV_DIR"])) as local_url:
            result = run_pip_audit(pins, accepted, local_url)
    else:
        result = run_pip_audit(pins, accepted, os.environ.get("AUDIT_OSV_URL", ""))
    dependencies = result["dependencies"] if result else []
    audited = [dep for dep in dependencies if "skip_reason" not in dep]
    if not audited:
        print(f"NOT AUDITED: the vulnerability service answered for none of the {len(pins)} installed packages")
        print("(no network, or an index mirror without PyPI's per-version JSON API; see README, Security)")
        return 2 if os.environ.get("AUDIT_REQUIRED") == "1" else 0
    findings = [(dep["name"], dep["version"], vuln) for dep in audited for vuln in dep.get("vulns", [])]
    for name, version, vuln in findings:
        fixed = ", ".join(vuln.get("fix_versions", [])) or "no fix yet"
        print(f"VULNERABLE {name} {version}: {vuln['id']} (fixed in {fixed}) {vuln.get('description', '')[:200]}")
    skipped = [dep["name"] for dep in dependencies if "skip_reason" in dep]
    if skipped:
        print(f"not audited (unknown to the service): {', '.join(skipped)}")
    for vuln_id, reason in accepted.items():
        print(f"accepted {vuln_id}: {reason}")
    print(f"{len(audited)} packages audited, {len(findings)} known vulnerabilities, {len(accepted)} accepted")
    return 1 if findings else 0


if __name__ == "__main__":
    sys.exit(main())
