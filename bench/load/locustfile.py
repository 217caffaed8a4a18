"""Locust users for `make load` (run by `python -m bench.load`, which seeds the data and starts the portal).

* Browser: a person clicking through catalog, template, workspace, run (page, live log, status), cluster and audit
  pages with the session cookie a login made (seeded; nobody logs in under load). Detail pages are opened from
  links found on the list pages, as a person would.
* ApiClient: a script reading the API with a personal token.
* Launcher: one user launching the builtin-only template at LOAD_LAUNCHES_PER_MINUTE, so runs really apply.

Configuration comes from the environment the runner sets: LOAD_SEED_FILE (JSON from `seed.py`),
LOAD_LAUNCHES_PER_MINUTE, LOAD_WAIT_MIN / LOAD_WAIT_MAX (seconds a person thinks between pages).
Any answer that is not 2xx, or a page that lands on the login form, counts as an error.
"""

from __future__ import annotations

import itertools
import json
import os
import random
import re
import uuid
from typing import Any

from locust import HttpUser, between, constant_throughput, task

SEED: dict[str, Any] = json.loads(open(os.environ["LOAD_SEED_FILE"]).read())  # noqa: SIM115
USERS = SEED["users"]
NEXT_USER = itertools.count()
WAIT = between(float(os.environ.get("LOAD_WAIT_MIN", "3")), float(os.environ.get("LOAD_WAIT_MAX", "12")))
LAUNCHES_PER_MINUTE = float(os.environ.get("LOAD_LAUNCHES_PER_MINUTE", "20"))
RUN_LINK = re.compile(r'href="/runs/(\d+)/"')
WORKSPACE_LINK = re.compile(r'href="/workspaces/(\d+)/"')
HTMX = {"HX-Request": "true"}


def next_seeded_user() -> dict[str, Any]:
    """Each simulated user is a different seeded person (round robin when there are more users than people)."""
    return dict(USERS[next(NEXT_USER) % len(USERS)])


class Browser(HttpUser):
    weight = 4
    wait_time = WAIT

    def on_start(self) -> None:
        self.person = next_seeded_user()
        self.client.cookies.set("sessionid", self.person["session"])
        self.runs: list[str] = []
        self.workspaces: list[str] = []

    def page(self, path: str, name: str, headers: dict[str, str] | None = None) -> str:
        with self.client.get(path, name=name, headers=headers, catch_response=True) as response:
            if response.status_code != 200:
                response.failure(f"HTTP {response.status_code}")
            elif "/accounts/login/" in response.url:
                response.failure("sent to the login page: the session was not accepted")
            return str(response.text or "")

    @task(3)
    def catalog(self) -> None:
        self.page("/catalog/", "/catalog/")

    @task(2)
    def template(self) -> None:
        self.page(f"/catalog/{random.choice(SEED['templates'])}/", "/catalog/[slug]/")  # noqa: S311

    @task(3)
    def workspace_list(self) -> None:
        self.workspaces = WORKSPACE_LINK.findall(self.page("/workspaces/", "/workspaces/"))[:20] or self.workspaces

    @task(3)
    def workspace(self) -> None:
        if self.workspaces:
            self.page(f"/workspaces/{random.choice(self.workspaces)}/", "/workspaces/[id]/")  # noqa: S311

    @task(3)
    def run_list(self) -> None:
        self.runs = RUN_LINK.findall(self.page("/runs/", "/runs/"))[:20] or self.runs

    @task(3)
    def run_page(self) -> None:
        if self.runs:
            run = random.choice(self.runs)  # noqa: S311
            self.page(f"/runs/{run}/", "/runs/[id]/")
            self.page(f"/runs/{run}/log/?after=0", "/runs/[id]/log/ (htmx)", HTMX)
            self.page(f"/runs/{run}/status/", "/runs/[id]/status/ (htmx)", HTMX)

    @task(2)
    def cluster_list(self) -> None:
        self.page("/clusters/", "/clusters/")

    @task(2)
    def cluster(self) -> None:
        clusters = SEED["clusters"].get(self.person["team"], [])
        if clusters:
            self.page(f"/clusters/{random.choice(clusters)}/", "/clusters/[id]/")  # noqa: S311

    @task(2)
    def audit(self) -> None:
        if self.person["manager"]:  # the audit page is for managers and admins
            self.page("/audit/", "/audit/")

    @task(1)
    def home(self) -> None:
        self.page("/", "/")


class ApiClient(HttpUser):
    weight = 1
    wait_time = WAIT

    def on_start(self) -> None:
        self.person = next_seeded_user()
        self.client.headers["Authorization"] = f"Bearer {self.person['token']}"

    def read(self, path: str) -> None:
        with self.client.get(path, name=path.split("?")[0], catch_response=True) as response:
            if response.status_code != 200:
                response.failure(f"HTTP {response.status_code}")

    @task
    def me(self) -> None:
        self.read("/api/v1/me")

    @task(2)
    def templates(self) -> None:
        self.read("/api/v1/templates")

    @task(2)
    def workspaces(self) -> None:
        self.read("/api/v1/workspaces?limit=20")

    @task(2)
    def runs(self) -> None:
        self.read("/api/v1/runs?limit=20")

    @task
    def clusters(self) -> None:
        self.read("/api/v1/clusters")

    @task
    def audit(self) -> None:
        if self.person["manager"]:  # the audit log is for managers and admins
            self.read("/api/v1/audit-events?limit=20")


class Launcher(HttpUser):
    """Launches at a steady rate; every launch is a real run the worker plans and applies with Terraform."""

    fixed_count = 1
    wait_time = constant_throughput(LAUNCHES_PER_MINUTE / 60)

    def on_start(self) -> None:
        self.person = next_seeded_user()
        self.client.headers["Authorization"] = f"Bearer {self.person['token']}"

    @task
    def launch(self) -> None:
        name = f"load-{uuid.uuid4().hex[:12]}"
        body = {"team": self.person["team"], "name": name, "parameters": {"experiment_name": name}}
        path = f"/api/v1/templates/{SEED['launch_template']}/launch"
        with self.client.post(path, json=body, name="/api/v1/templates/[slug]/launch", catch_response=True) as response:
            if response.status_code != 201:
                response.failure(f"HTTP {response.status_code}: {response.text[:200]}")
