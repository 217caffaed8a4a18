"""A typed Python client for Paved's REST API (/api/v1/), for notebooks and scripts; the `paved` CLI is built on it.

It speaks HTTP to the portal and nothing else: no Django, no database. Credentials come from the arguments, then
the `PAVED_URL` / `PAVED_TOKEN` environment variables, then the config file `paved login` writes
(`~/.config/paved/config.json`, mode 0600). Every API error raises one `PavedError` carrying the RFC 7807 problem.

    from paved.client import Paved
    paved = Paved()                      # or Paved(url="https://paved.example.com", token="pvd_...")
    launched = paved.launch("sandbox-experiment", name="resnet-sweep", params={"experiment_name": "resnet"})
    run = paved.wait_for_run(launched["run"]["id"])
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import platformdirs
import requests

JSON = dict[str, Any]
# Run states after which nothing more happens (apps.runs.models.TERMINAL_STATES).
RUN_TERMINAL_STATES = frozenset({"applied", "failed", "errored", "cancelled", "rejected", "discarded"})
# Training job states that may still change (apps.training.models.UNFINISHED_JOB_STATES).
JOB_UNFINISHED_STATES = frozenset({"queued", "scheduling", "running"})
DEFAULT_TIMEOUT = 30.0


@dataclass(frozen=True)
class Problem:
    """An RFC 7807 problem as the API answers it; `errors` maps a field to its messages."""

    status: int
    code: str
    title: str
    detail: str = ""
    errors: dict[str, list[str]] = field(default_factory=dict)

    @classmethod
    def from_body(cls, status: int, body: Any) -> Problem:
        if not isinstance(body, Mapping):
            return cls(status=status, code="unexpected_response", title=f"HTTP {status}", detail=str(body)[:500])
        errors = body.get("errors") or {}
        return cls(
            status=int(body.get("status") or status),
            code=str(body.get("code") or "error"),
            title=str(body.get("title") or f"HTTP {status}"),
            detail=str(body.get("detail") or ""),
            errors={str(key): _messages(value) for key, value in errors.items()} if isinstance(errors, dict) else {},
        )


def _messages(value: Any) -> list[str]:
    """A field's messages as strings (nested errors, e.g. of a list item, are flattened to JSON)."""
    if isinstance(value, list):
        return [item if isinstance(item, str) else json.dumps(item) for item in value]
    return [value if isinstance(value, str) else json.dumps(value)]


class PavedError(Exception):
    """Anything that went wrong talking to Paved: an API problem (status 400-599), or, with status 0, a server
    that cannot be reached or a client that is not configured. `problem` holds the details."""

    def __init__(self, problem: Problem) -> None:
        super().__init__(f"{problem.title}: {problem.detail}" if problem.detail else problem.title)
        self.problem = problem

    @property
    def status(self) -> int:
        return self.problem.status

    @property
    def code(self) -> str:
        return self.problem.code

    @property
    def title(self) -> str:
        return self.problem.title

    @property
    def detail(self) -> str:
        return self.problem.detail

    @property
    def errors(self) -> dict[str, list[str]]:
        return self.problem.errors


def local_error(code: str, title: str, detail: str = "") -> PavedError:
    """An error found on this side, before or instead of an API answer (status 0)."""
    return PavedError(Problem(status=0, code=code, title=title, detail=detail))


# --- configuration -------------------------------------------------------------------------------------------


def config_path() -> Path:
    """Where `paved login` keeps the URL and token: the user's config dir (XDG_CONFIG_HOME on Linux)."""
    return platformdirs.user_config_path("paved") / "config.json"


def load_config(path: Path | None = None) -> JSON:
    path = path or config_path()
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as exc:
        raise local_error("bad_config", f"Cannot read {path}", str(exc)) from exc
    return data if isinstance(data, dict) else {}


def save_config(url: str, token: str, path: Path | None = None) -> Path:
    """Write the URL and token readable by the user only (0600, its folder 0700): the token is a password."""
    path = path or config_path()
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w") as handle:
        json.dump({"url": url, "token": token}, handle, indent=2)
    os.chmod(path, 0o600)  # an older file keeps its mode through O_CREAT: set it anyway
    return path


@dataclass(frozen=True)
class LogPage:
    """What following a log yields: the new lines and the owner (run or training job) as it is now."""

    lines: list[str]
    owner: JSON
    complete: bool


class Paved:
    """The Paved REST API. Methods return the API's JSON (dicts); lists are followed through every page up to
    `limit` items. Errors raise `PavedError`."""

    def __init__(
        self,
        url: str | None = None,
        token: str | None = None,
        *,
        timeout: float = DEFAULT_TIMEOUT,
        config: Path | None = None,
    ) -> None:
        saved = load_config(config) if url is None or token is None else {}
        resolved_url = url or os.environ.get("PAVED_URL") or saved.get("url")
        if not resolved_url:
            raise local_error("not_configured", "No Paved URL", "Run `paved login`, or set PAVED_URL and PAVED_TOKEN.")
        self.url = str(resolved_url).rstrip("/")
        self.token: str | None = token or os.environ.get("PAVED_TOKEN") or saved.get("token")
        self.timeout = timeout
        self.session = requests.Session()
        self.session.headers["Accept"] = "application/json"
        self.session.headers["User-Agent"] = "paved-client"

    @classmethod
    def login(
        cls,
        url: str,
        username: str,
        password: str,
        *,
        name: str = "paved-cli",
        save: bool = True,
        config: Path | None = None,
    ) -> Paved:
        """Trade a username and password for a new personal token; `save` writes both to the config file."""
        client = cls(url=url, token="", config=config)
        created = client._request("POST", "auth/token", json={"username": username, "password": password, "name": name})
        client.token = str(created["token"])
        if save:
            save_config(client.url, client.token, config)
        return client

    # --- transport --------------------------------------------------------------------------------------------

    def _request(self, method: str, path: str, *, params: Mapping[str, Any] | None = None, json: Any = None) -> Any:
        url = path if path.startswith("http") else f"{self.url}/api/v1/{path.lstrip('/')}"
        headers = {"Authorization": f"Bearer {self.token}"} if self.token else {}
        query = {key: value for key, value in (params or {}).items() if value is not None}
        try:
            response = self.session.request(method, url, params=query, json=json, headers=headers, timeout=self.timeout)
        except requests.RequestException as exc:
            raise local_error("connection_failed", f"Cannot reach Paved at {self.url}", str(exc)) from exc
        try:
            body = response.json() if response.content else None
        except ValueError:
            body = response.text
        if response.status_code >= 400:
            raise PavedError(Problem.from_body(response.status_code, body))
        return body

    def _list(self, path: str, params: Mapping[str, Any] | None = None, *, limit: int | None = None) -> list[JSON]:
        """Every item of a paginated list (`limit`/`offset`, following `next`), or the first `limit`."""
        page_size = min(limit or 200, 200)
        body = self._request("GET", path, params={**(params or {}), "limit": page_size})
        if isinstance(body, list):  # an unpaginated list
            return body[:limit] if limit else body
        items: list[JSON] = list(body["results"])
        while body.get("next") and (limit is None or len(items) < limit):
            body = self._request("GET", body["next"])
            items.extend(body["results"])
        return items[:limit] if limit else items

    # --- who am I ---------------------------------------------------------------------------------------------

    def me(self) -> JSON:
        """The signed-in user and their team memberships (`memberships`: team, role)."""
        return dict(self._request("GET", "me"))

    def default_team(self) -> str:
        """The caller's team when they have exactly one; otherwise the caller must name it."""
        teams = sorted({membership["team"] for membership in self.me()["memberships"]})
        if len(teams) != 1:
            listed = ", ".join(teams) or "none"
            raise local_error("team_required", "Say which team", f"You belong to several teams or none ({listed}).")
        return str(teams[0])

    # --- templates and launches -------------------------------------------------------------------------------

    def templates(self, *, search: str | None = None, kind: str | None = None, limit: int | None = None) -> list[JSON]:
        """Catalog templates you may launch."""
        return self._list("templates/", {"search": search, "kind": kind}, limit=limit)

    def template(self, slug: str) -> JSON:
        return dict(self._request("GET", f"templates/{slug}/"))

    def template_version(self, slug: str, version: str | None = None) -> JSON:
        """A version with its parameter schema; default: the newest published one."""
        version = version or self.template(slug).get("latest_version")
        if not version:
            raise local_error("no_published_version", f"Template '{slug}' has no published version")
        return dict(self._request("GET", f"templates/{slug}/versions/{version}/"))

    def launch(
        self,
        slug: str,
        *,
        name: str,
        params: Mapping[str, Any],
        team: str | None = None,
        version: str | None = None,
        ttl_hours: int | None = None,
        reason: str = "",
        wait: bool = False,
        poll_seconds: float = 1.0,
    ) -> JSON:
        """Launch a template. A Terraform template answers `workspace` and `run`; `wait` then blocks until the
        run is over and puts it, final, in `run`. Other kinds answer `cluster`, `deployment` or `training_job`."""
        body: JSON = {"team": team or self.default_team(), "name": name, "parameters": dict(params), "reason": reason}
        if version:
            body["version"] = version
        if ttl_hours is not None:
            body["ttl_hours"] = ttl_hours
        launched = dict(self._request("POST", f"templates/{slug}/launch", json=body))
        if wait and "run" in launched:
            launched["run"] = self.wait_for_run(launched["run"]["id"], poll_seconds=poll_seconds)
        return launched

    # --- runs -------------------------------------------------------------------------------------------------

    def runs(
        self,
        *,
        state: str | None = None,
        workspace: int | None = None,
        team: str | None = None,
        limit: int | None = 50,
    ) -> list[JSON]:
        return self._list("runs/", {"state": state, "workspace": workspace, "team": team}, limit=limit)

    def run(self, run_id: int) -> JSON:
        return dict(self._request("GET", f"runs/{run_id}/"))

    def run_log(self, run_id: int, *, after: int = 0) -> JSON:
        """One page of the run's Terraform output after line `after`: `lines`, `next`, `complete`."""
        return dict(self._request("GET", f"runs/{run_id}/log/", params={"after": after}))

    def follow_run_log(self, run_id: int, *, follow: bool = True, poll_seconds: float = 1.0) -> Iterator[LogPage]:
        """The run's log as it grows, with the run's state at each step; ends once the run is over and every line
        was read (or, without `follow`, once the lines so far were read)."""
        return self._follow(f"runs/{run_id}/", self.run_log, run_id, follow=follow, poll_seconds=poll_seconds)

    def wait_for_run(self, run_id: int, *, poll_seconds: float = 1.0) -> JSON:
        """Block until the run is over; returns it (check `state == "applied"`)."""
        last = None
        for page in self.follow_run_log(run_id, poll_seconds=poll_seconds):
            last = page
        return last.owner if last else self.run(run_id)

    def approve_run(self, run_id: int, *, comment: str = "") -> JSON:
        return dict(self._request("POST", f"runs/{run_id}/approve/", json={"comment": comment}))

    def reject_run(self, run_id: int, *, comment: str = "") -> JSON:
        return dict(self._request("POST", f"runs/{run_id}/reject/", json={"comment": comment}))

    def cancel_run(self, run_id: int) -> JSON:
        return dict(self._request("POST", f"runs/{run_id}/cancel/"))

    def _follow(
        self, owner_path: str, read: Any, owner_id: int, *, follow: bool, poll_seconds: float
    ) -> Iterator[LogPage]:
        after = 0
        while True:
            page = read(owner_id, after=after)
            owner = dict(self._request("GET", owner_path))
            after = int(page["next"])
            complete = bool(page["complete"])
            yield LogPage(lines=list(page["lines"]), owner=owner, complete=complete)
            if complete or (not follow and not page["lines"]):
                return
            if not page["lines"]:
                time.sleep(poll_seconds)

    # --- workspaces -------------------------------------------------------------------------------------------

    def workspaces(
        self,
        *,
        status: str | None = None,
        template: str | None = None,
        search: str | None = None,
        team: str | None = None,
        limit: int | None = 50,
    ) -> list[JSON]:
        params = {"status": status, "template": template, "search": search, "team": team}
        return self._list("workspaces/", params, limit=limit)

    def workspace(self, workspace_id: int) -> JSON:
        return dict(self._request("GET", f"workspaces/{workspace_id}/"))

    def extend_workspace(self, workspace_id: int, *, hours: int) -> JSON:
        """Set the time to live to `hours` from now (at most the template's maximum)."""
        return dict(self._request("POST", f"workspaces/{workspace_id}/extend/", json={"hours": hours}))

    def destroy_workspace(self, workspace_id: int, *, confirm: str) -> JSON:
        """Queue the destroy run; `confirm` is the workspace's name. Returns the run."""
        body = {"kind": "destroy", "confirm": confirm}
        return dict(self._request("POST", f"workspaces/{workspace_id}/runs/", json=body))

    def apply_workspace(self, workspace_id: int, *, reason: str = "") -> JSON:
        """Queue a new plan-and-apply of the workspace. Returns the run."""
        body = {"kind": "apply", "reason": reason}
        return dict(self._request("POST", f"workspaces/{workspace_id}/runs/", json=body))

    # --- clusters ---------------------------------------------------------------------------------------------

    def clusters(self, *, state: str | None = None, search: str | None = None, limit: int | None = 50) -> list[JSON]:
        return self._list("clusters/", {"state": state, "search": search}, limit=limit)

    def cluster(self, cluster_id: int) -> JSON:
        return dict(self._request("GET", f"clusters/{cluster_id}/"))

    def request_cluster(
        self,
        *,
        name: str,
        instance_type: str,
        team: str | None = None,
        node_count: int = 1,
        purchase_option: str = "on_demand",
        region: str = "us-east-1",
        max_hours: int | None = None,
    ) -> JSON:
        """Request a GPU cluster (checked against the catalog and the team's quota)."""
        body = {
            "team": team or self.default_team(), "name": name, "instance_type": instance_type,
            "node_count": node_count, "purchase_option": purchase_option, "region": region, "max_hours": max_hours,
        }  # fmt: skip
        return dict(self._request("POST", "clusters/", json=body))

    def stop_cluster(self, cluster_id: int) -> JSON:
        return dict(self._request("POST", f"clusters/{cluster_id}/stop/"))

    def start_cluster(self, cluster_id: int) -> JSON:
        return dict(self._request("POST", f"clusters/{cluster_id}/start/"))

    def terminate_cluster(self, cluster_id: int, *, confirm: str) -> JSON:
        """Terminate every node and delete its disks; `confirm` is the cluster's name."""
        return dict(self._request("POST", f"clusters/{cluster_id}/terminate/", json={"confirm": confirm}))

    # --- approvals --------------------------------------------------------------------------------------------

    def approvals(self, *, limit: int | None = 50) -> list[JSON]:
        """What waits for an approval in your teams: runs and rollouts, each tagged with `approval_for` ("run" or
        "deployment"; a run keeps its own `kind`, apply or destroy)."""
        runs = [{**run, "approval_for": "run"} for run in self.runs(state="awaiting_approval", limit=limit)]
        waiting = self.deployments(state="awaiting_approval", limit=limit)
        rollouts = [{**deployment, "approval_for": "deployment"} for deployment in waiting]
        return runs + rollouts

    def approve(self, item_id: int, *, kind: str = "run", comment: str = "") -> JSON:
        """Approve a run (managers; with a comment) or a deployment (team managers)."""
        if kind == "deployment":
            return dict(self._request("POST", f"deployments/{item_id}/approve/"))
        return self.approve_run(item_id, comment=comment)

    def reject(self, item_id: int, *, kind: str = "run", comment: str = "") -> JSON:
        """Reject a run; a rollout waiting for approval is refused by aborting it."""
        if kind == "deployment":
            return dict(self._request("POST", f"deployments/{item_id}/abort/"))
        return self.reject_run(item_id, comment=comment)

    # --- training jobs ----------------------------------------------------------------------------------------

    def jobs(self, *, state: str | None = None, cluster: int | None = None, limit: int | None = 50) -> list[JSON]:
        return self._list("training-jobs/", {"state": state, "cluster": cluster}, limit=limit)

    def job(self, job_id: int) -> JSON:
        return dict(self._request("GET", f"training-jobs/{job_id}/"))

    def submit_job(
        self,
        *,
        image: str,
        command: list[str],
        gpus_per_node: int,
        max_run_minutes: int,
        team: str | None = None,
        node_count: int = 1,
        cluster: int | None = None,
        framework: str = "pytorch",
        environment: Mapping[str, str] | None = None,
        hyperparameters: Mapping[str, Any] | None = None,
        dataset_uri: str = "",
        output_uri: str = "",
        max_retries: int = 0,
        new_cluster: str | None = None,
        cluster_template: str | None = None,
        cluster_template_version: str | None = None,
    ) -> JSON:
        """Submit a training job to one of the team's clusters (`cluster`, or any that fits), or, with
        `new_cluster` (an instance type), to a cluster made for it and terminated when it ends; that cluster takes
        the settings of the gpu_cluster template `cluster_template` (its latest published version unless
        `cluster_template_version`) when one is named."""
        if (cluster_template or cluster_template_version) and not new_cluster:
            raise local_error(
                "new_cluster_required", "A cluster template needs a new cluster", "Name its instance type too."
            )
        body = {
            "team": team or self.default_team(), "image": image, "command": list(command),
            "gpus_per_node": gpus_per_node, "max_run_minutes": max_run_minutes, "node_count": node_count,
            "cluster": cluster, "framework": framework, "environment": dict(environment or {}),
            "hyperparameters": dict(hyperparameters or {}), "dataset_uri": dataset_uri, "output_uri": output_uri,
            "max_retries": max_retries,
        }  # fmt: skip
        if new_cluster:
            body["new_cluster"] = {
                "instance_type": new_cluster, "template": cluster_template or "",
                "version": cluster_template_version or "",
            }  # fmt: skip
        return dict(self._request("POST", "training-jobs/", json=body))

    def cancel_job(self, job_id: int) -> JSON:
        return dict(self._request("POST", f"training-jobs/{job_id}/cancel/"))

    def job_log(self, job_id: int, *, after: int = 0) -> JSON:
        """One page of the job's output after line `after`: `lines`, `next`, `complete`."""
        return dict(self._request("GET", f"training-jobs/{job_id}/log/", params={"after": after}))

    def follow_job_log(self, job_id: int, *, follow: bool = True, poll_seconds: float = 1.0) -> Iterator[LogPage]:
        """The job's output as it grows, with the job's state at each step; ends once the job is over."""
        return self._follow(f"training-jobs/{job_id}/", self.job_log, job_id, follow=follow, poll_seconds=poll_seconds)

    # --- costs, models, deployments, KPIs -----------------------------------------------------------------------

    def costs(
        self,
        *,
        group_by: str = "team",
        start: str | None = None,
        end: str | None = None,
        team: str | None = None,
    ) -> JSON:
        """Spend of your teams grouped by one dimension over a date range (ISO dates; default: this month)."""
        return dict(self._request("GET", "costs/explorer", params=_range(group_by, start, end, team)))

    def cost_estimates(
        self, *, group_by: str = "team", start: str | None = None, end: str | None = None, team: str | None = None
    ) -> list[JSON]:
        """Estimate vs actual to date of each workspace and cluster that spent in the range (a plain list)."""
        return list(self._request("GET", "costs/estimates", params=_range(group_by, start, end, team)))

    def budgets(self, *, limit: int | None = 50) -> list[JSON]:
        return self._list("costs/budgets/", limit=limit)

    def models(self, *, search: str | None = None, limit: int | None = 50) -> list[JSON]:
        return self._list("models/", {"search": search}, limit=limit)

    def model(self, model_id: int) -> JSON:
        return dict(self._request("GET", f"models/{model_id}/"))

    def model_versions(self, *, model: int | None = None, limit: int | None = 50) -> list[JSON]:
        return self._list("model-versions/", {"model": model}, limit=limit)

    def deployments(self, *, state: str | None = None, limit: int | None = 50) -> list[JSON]:
        return self._list("deployments/", {"state": state}, limit=limit)

    def deployment(self, deployment_id: int) -> JSON:
        return dict(self._request("GET", f"deployments/{deployment_id}/"))

    def endpoints(self, *, limit: int | None = 50) -> list[JSON]:
        return self._list("endpoints/", limit=limit)

    def kpis(
        self,
        *,
        area: str | None = None,
        days: int | None = None,
        start: str | None = None,
        end: str | None = None,
        team: str | None = None,
    ) -> list[JSON]:
        """Every KPI for your teams (or one team) over the last `days`, or from `start` to `end` (YYYY-MM-DD, both
        days included, as on the dashboards' date-range filter)."""
        params = {"area": area, "days": days, "start": start, "end": end, "team": team}
        return list(self._request("GET", "kpis/", params=params))

    def kpi(
        self,
        key: str,
        *,
        days: int | None = None,
        start: str | None = None,
        end: str | None = None,
        team: str | None = None,
    ) -> JSON:
        """One KPI by key, over the same window or range as `kpis`."""
        params = {"days": days, "start": start, "end": end, "team": team}
        return dict(self._request("GET", f"kpis/{key}/", params=params))


def _range(group_by: str, start: str | None, end: str | None, team: str | None) -> JSON:
    return {"group_by": group_by, "start": start, "end": end, "team": team}
