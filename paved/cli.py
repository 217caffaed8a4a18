"""The `paved` command line, built on `paved.client.Paved` (no HTTP here). `--json` on every command prints the
API's JSON for scripts; errors print the problem's title and field errors to stderr and exit non-zero.

Exit statuses: 0 done (a followed run applied, a followed job succeeded), 1 an API error or a run or job that
did not succeed, 2 bad input on the command line, 3 a run or job still in flight (`runs log` without --follow),
130 interrupted."""

from __future__ import annotations

import argparse
import getpass
import json
import sys
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

import yaml
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from paved.client import JOB_UNFINISHED_STATES, JSON, RUN_TERMINAL_STATES, LogPage, Paved, PavedError

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_IN_FLIGHT, EXIT_INTERRUPTED = 0, 1, 2, 3, 130

out = Console(highlight=False, soft_wrap=True)
err = Console(stderr=True, highlight=False, soft_wrap=True)


class UsageError(Exception):
    """Bad input on the command line, found before anything is sent."""


# --- parameters: -p key=value and -f params.yaml ----------------------------------------------------------------


def parse_value(text: str) -> Any:
    """A JSON value when the text is one (`2`, `0.5`, `true`, `null`, `["a"]`, `"2"`), else the text itself."""
    try:
        return json.loads(text)
    except ValueError:
        return text


def parse_assignment(text: str) -> tuple[str, Any]:
    key, sep, value = text.partition("=")
    if not sep or not key.strip():
        raise UsageError(f"Expected key=value, got {text!r}.")
    return key.strip(), parse_value(value)


def load_params(file: str | None, assignments: Sequence[str]) -> JSON:
    """Parameters from a YAML (or JSON) file, then `-p key=value` on top of them."""
    params: JSON = {}
    if file:
        try:
            loaded = yaml.safe_load(Path(file).read_text()) if file != "-" else yaml.safe_load(sys.stdin)
        except OSError as exc:
            raise UsageError(f"Cannot read {file}: {exc.strerror}.") from exc
        except yaml.YAMLError as exc:
            raise UsageError(f"{file} is not valid YAML: {exc}") from exc
        if loaded is None:
            loaded = {}
        if not isinstance(loaded, dict):
            raise UsageError(f"{file} must hold a mapping of parameter names to values.")
        params.update({str(key): value for key, value in loaded.items()})
    params.update(parse_assignment(item) for item in assignments)
    return params


def parse_mapping(assignments: Sequence[str], *, typed: bool) -> JSON:
    """`-e NAME=value` (strings) or `--hp key=value` (typed like -p)."""
    pairs = [parse_assignment(item) for item in assignments]
    raw = [item.partition("=")[2] for item in assignments]
    return {key: value if typed else text for (key, value), text in zip(pairs, raw, strict=True)}


# --- output ---------------------------------------------------------------------------------------------------


def emit_json(data: Any) -> None:
    sys.stdout.write(json.dumps(data, indent=2, default=str) + "\n")


def cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, dict | list):
        return json.dumps(value, default=str)
    return str(value)


def money(value: JSON) -> str:
    """`{"amount": "12.30", "currency": "USD"}` as `12.30 USD`."""
    return f"{value['amount']} {value['currency']}"


def table(rows: Iterable[JSON], columns: Sequence[str], *, title: str = "") -> None:
    grid = Table(title=title or None, show_lines=False)
    for column in columns:
        grid.add_column(column.replace("_", " "))
    count = 0
    for row in rows:
        grid.add_row(*(cell(row.get(column)) for column in columns))
        count += 1
    if count:
        out.print(grid)
    else:
        out.print(f"No {title.lower() or 'items'}.")


def details(item: JSON, *, title: str = "") -> None:
    grid = Table(title=title or None, show_header=False)
    grid.add_column(style="bold")
    grid.add_column()
    for key, value in item.items():
        grid.add_row(key, cell(value))
    out.print(grid)


def show(args: argparse.Namespace, data: Any, render: Callable[[], None]) -> int:
    if args.json:
        emit_json(data)
    else:
        render()
    return EXIT_OK


def print_problem(error: PavedError) -> None:
    problem = error.problem
    err.print(f"[bold red]Error:[/] {escape(problem.title)}" + (f" ({problem.status})" if problem.status else ""))
    if problem.detail:
        err.print(problem.detail, markup=False)
    for name, messages in problem.errors.items():
        for message in messages:
            err.print(f"  {name}: {message}", markup=False)


# --- following logs ---------------------------------------------------------------------------------------------


def follow(args: argparse.Namespace, pages: Iterator[LogPage], *, what: str, key: str = "run") -> JSON:
    """Print the lines as they come, the owner's state as a spinner; returns the owner as it ended."""
    owner: JSON = {}
    status = err.status(f"{what}: starting") if not args.json else None
    if status:
        status.start()
    try:
        for page in pages:
            owner = page.owner
            for line in page.lines:
                if args.json:
                    sys.stdout.write(json.dumps({"line": line}) + "\n")
                else:
                    out.print(line, markup=False)
            sys.stdout.flush()
            if status:
                status.update(f"{what}: {owner.get('state')}")
    finally:
        if status:
            status.stop()
    if args.json:
        sys.stdout.write(json.dumps({key: owner}, default=str) + "\n")
    return owner


def run_exit(run: JSON, args: argparse.Namespace) -> int:
    state = run.get("state")
    if not args.json:
        colour = "green" if state == "applied" else "red" if state in RUN_TERMINAL_STATES else "yellow"
        reason = f" — {escape(run['state_reason'])}" if run.get("state_reason") else ""
        err.print(f"Run #{run.get('id')}: [{colour}]{state}[/]{reason}")
    if state == "applied":
        return EXIT_OK
    return EXIT_FAILED if state in RUN_TERMINAL_STATES else EXIT_IN_FLIGHT


def job_exit(job: JSON, args: argparse.Namespace) -> int:
    state = job.get("state")
    if not args.json:
        err.print(f"Training job #{job.get('id')}: {state}")
    if state == "succeeded":
        return EXIT_OK
    return EXIT_IN_FLIGHT if state in JOB_UNFINISHED_STATES else EXIT_FAILED


# --- commands ---------------------------------------------------------------------------------------------------

TEMPLATE_COLUMNS = ["slug", "name", "kind", "latest_version", "summary"]
RUN_COLUMNS = ["id", "workspace", "team", "kind", "state", "template", "created_by", "queued_at"]
WORKSPACE_COLUMNS = ["id", "name", "team", "template", "version", "status", "expires_at", "estimated_hourly_cost"]
CLUSTER_COLUMNS = ["id", "name", "team", "instance_type", "node_count", "state", "hourly_price", "cost_so_far"]
JOB_COLUMNS = ["id", "team", "owner", "cluster_name", "gpus", "state", "state_reason", "submitted_at"]
APPROVAL_COLUMNS = ["approval_for", "id", "kind", "team", "state", "template", "workspace", "created_by"]
MODEL_COLUMNS = ["id", "name", "team", "version_count", "aliases", "created_by"]
DEPLOYMENT_COLUMNS = ["id", "team", "endpoint", "model", "version", "strategy", "state", "created_at"]
KPI_COLUMNS = ["key", "name", "area", "value", "unit", "status", "no_data"]


def cmd_login(args: argparse.Namespace) -> int:
    url = args.url or input("Paved URL: ").strip()
    username = args.username or input("Username: ").strip()
    password = sys.stdin.readline().rstrip("\n") if args.password_stdin else getpass.getpass("Password: ")
    client = Paved.login(url, username, password, name=args.token_name)
    me = client.me()
    data = {"url": client.url, "username": me["username"], "teams": [m["team"] for m in me["memberships"]]}
    return show(args, data, lambda: out.print(f"Signed in to {client.url} as {me['username']}; token saved."))


def cmd_whoami(args: argparse.Namespace, client: Paved) -> int:
    me = client.me()
    return show(args, me, lambda: table(me["memberships"], ["team", "role"], title=f"{me['username']} at {client.url}"))


def cmd_templates(args: argparse.Namespace, client: Paved) -> int:
    if args.action == "show":
        if not args.slug:
            raise UsageError("Say which template: paved templates show SLUG.")
        template = client.template(args.slug)
        version = client.template_version(args.slug) if template.get("latest_version") else None
        data = {**template, "parameters_schema": version["parameters_schema"] if version else None}

        def render() -> None:
            details({k: v for k, v in template.items() if k != "description"}, title=template["name"])
            if version:
                schema = version["parameters_schema"]
                required = set(schema.get("required", []))
                rows = [
                    {"parameter": key, "title": spec.get("title"), "type": spec.get("type"),
                     "default": spec.get("default"), "required": key in required}
                    for key, spec in schema.get("properties", {}).items()
                ]  # fmt: skip
                table(rows, ["parameter", "title", "type", "default", "required"], title="Parameters")

        return show(args, data, render)
    templates = client.templates(search=args.search)
    return show(args, templates, lambda: table(templates, TEMPLATE_COLUMNS, title="Templates"))


def cmd_launch(args: argparse.Namespace, client: Paved) -> int:
    params = load_params(args.file, args.param)
    launched = client.launch(
        args.slug, name=args.name, params=params, team=args.team, version=args.version, ttl_hours=args.ttl_hours,
        reason=args.reason,
    )  # fmt: skip
    if not args.wait:
        return show(args, launched, lambda: render_launch(launched))
    if not args.json:
        render_launch(launched)
    if "run" in launched:
        run = follow(args, client.follow_run_log(launched["run"]["id"]), what=f"Run #{launched['run']['id']}")
        return run_exit(run, args)
    if "training_job" in launched:
        job_id = launched["training_job"]["id"]
        return job_exit(follow(args, client.follow_job_log(job_id), what=f"Training job #{job_id}", key="job"), args)
    if args.json:
        emit_json(launched)
    return EXIT_OK


def render_launch(launched: JSON) -> None:
    for key in ("workspace", "cluster", "deployment", "training_job"):
        if key in launched:
            item = launched[key]
            out.print(f"Launched {key.replace('_', ' ')} #{item['id']} {item.get('name', '')}".rstrip())
    if "run" in launched:
        run = launched["run"]
        out.print(f"Run #{run['id']}: {run['state']} (follow it: paved runs log {run['id']} --follow)")
    for warning in launched.get("warnings", []):
        err.print(f"[yellow]Warning:[/] {warning}")


def cmd_runs(args: argparse.Namespace, client: Paved) -> int:
    if args.action == "list":
        runs = client.runs(state=args.state, workspace=args.workspace, limit=args.limit)
        return show(args, runs, lambda: table(runs, RUN_COLUMNS, title="Runs"))
    run_id = need_id(args, "runs")
    if args.action == "show":
        run = client.run(run_id)
        return show(args, run, lambda: details(run, title=f"Run #{run_id}"))
    if args.action == "cancel":
        run = client.cancel_run(run_id)
        return show(args, run, lambda: out.print(f"Run #{run_id}: {run['state']}"))
    run = follow(args, client.follow_run_log(run_id, follow=args.follow), what=f"Run #{run_id}")
    return run_exit(run, args)


def confirmed(args: argparse.Namespace, name_of: Callable[[], str], warning: str) -> str:
    """The name that confirms a destructive action: `--confirm NAME`, or the object's own name with `--yes`."""
    confirm = (args.confirm or name_of()) if args.yes else args.confirm
    if not confirm:
        raise UsageError(f"{warning}: confirm with --confirm NAME (or --yes).")
    return str(confirm)


def cmd_workspaces(args: argparse.Namespace, client: Paved) -> int:
    if args.action == "list":
        found = client.workspaces(status=args.status, search=args.search, limit=args.limit)
        return show(args, found, lambda: table(found, WORKSPACE_COLUMNS, title="Workspaces"))
    workspace_id = need_id(args, "workspaces")
    if args.action == "show":
        workspace = client.workspace(workspace_id)
        return show(args, workspace, lambda: details(workspace, title=workspace["name"]))
    if args.action == "extend":
        if args.hours is None:
            raise UsageError("Say for how long: paved workspaces extend ID --hours H.")
        workspace = client.extend_workspace(workspace_id, hours=args.hours)
        return show(
            args, workspace, lambda: out.print(f"{workspace['name']} now expires at {workspace['expires_at']}.")
        )
    confirm = confirmed(args, lambda: client.workspace(workspace_id)["name"],
                        "Destroying deletes everything the workspace made")  # fmt: skip
    run = client.destroy_workspace(workspace_id, confirm=confirm)
    if args.wait:
        return run_exit(follow(args, client.follow_run_log(run["id"]), what=f"Run #{run['id']}"), args)
    return show(args, run, lambda: out.print(f"Destroy queued: run #{run['id']} ({run['state']})."))


def cmd_clusters(args: argparse.Namespace, client: Paved) -> int:
    if args.action == "list":
        found = client.clusters(state=args.state, search=args.search, limit=args.limit)
        return show(args, found, lambda: table(found, CLUSTER_COLUMNS, title="Clusters"))
    if args.action == "request":
        if not (args.name and args.instance_type):
            raise UsageError("A cluster request needs --name and --instance-type.")
        cluster = client.request_cluster(
            name=args.name, instance_type=args.instance_type, team=args.team, node_count=args.nodes,
            purchase_option=args.purchase_option, region=args.region, max_hours=args.max_hours,
        )  # fmt: skip
        return show(args, cluster, lambda: out.print(f"Cluster #{cluster['id']} {cluster['name']}: {cluster['state']}"))
    cluster_id = need_id(args, "clusters")
    if args.action == "show":
        cluster = client.cluster(cluster_id)
        return show(args, cluster, lambda: details(cluster, title=cluster["name"]))
    if args.action == "terminate":
        confirm = confirmed(args, lambda: client.cluster(cluster_id)["name"], "Terminating deletes the cluster's disks")
        cluster = client.terminate_cluster(cluster_id, confirm=confirm)
    else:
        cluster = client.stop_cluster(cluster_id) if args.action == "stop" else client.start_cluster(cluster_id)
    return show(args, cluster, lambda: out.print(f"Cluster #{cluster_id} {cluster['name']}: {cluster['state']}"))


def cmd_approvals(args: argparse.Namespace, client: Paved) -> int:
    if args.action == "list":
        waiting = client.approvals(limit=args.limit)
        return show(args, waiting, lambda: table(waiting, APPROVAL_COLUMNS, title="Approvals"))
    item_id = need_id(args, "approvals")
    act = client.approve if args.action == "approve" else client.reject
    item = act(item_id, kind=args.kind, comment=args.comment)
    return show(args, item, lambda: out.print(f"{args.kind.capitalize()} #{item_id}: {item['state']}"))


def cmd_jobs(args: argparse.Namespace, client: Paved) -> int:
    if args.action == "list":
        found = client.jobs(state=args.state, cluster=args.cluster, limit=args.limit)
        return show(args, found, lambda: table(found, JOB_COLUMNS, title="Training jobs"))
    if args.action == "submit":
        command = list(args.rest)
        if not (args.image and command and args.gpus and args.minutes):
            raise UsageError("A job needs --image, --gpus, --minutes and a command after --.")
        job = client.submit_job(
            image=args.image, command=command, gpus_per_node=args.gpus, max_run_minutes=args.minutes, team=args.team,
            node_count=args.nodes, cluster=args.cluster, framework=args.framework,
            environment=parse_mapping(args.env, typed=False), hyperparameters=parse_mapping(args.hp, typed=True),
            dataset_uri=args.dataset_uri, output_uri=args.output_uri, new_cluster=args.new_cluster,
            cluster_template=args.cluster_template, cluster_template_version=args.cluster_template_version,
        )  # fmt: skip
        return show(args, job, lambda: out.print(f"Training job #{job['id']}: {job['state']} ({job['state_reason']})"))
    job_id = need_id(args, "jobs")
    if args.action == "show":
        job = client.job(job_id)
        return show(args, job, lambda: details(job, title=f"Training job #{job_id}"))
    if args.action == "cancel":
        job = client.cancel_job(job_id)
        return show(args, job, lambda: out.print(f"Training job #{job_id}: {job['state']}"))
    job = follow(args, client.follow_job_log(job_id, follow=args.follow), what=f"Training job #{job_id}", key="job")
    return job_exit(job, args)


def cmd_costs(args: argparse.Namespace, client: Paved) -> int:
    if args.estimates:
        rows = client.cost_estimates(group_by=args.group_by, start=args.start, end=args.end, team=args.team)
        shown = [
            {"kind": row["kind"], "id": row["id"], "name": row["label"], "hours": row["hours"],
             **{key: money(row[key]) for key in ("hourly", "estimate", "actual", "error")},
             "error_percent": row["error_percent"]}
            for row in rows
        ]  # fmt: skip
        columns = ["kind", "id", "name", "hourly", "hours", "estimate", "actual", "error", "error_percent"]
        return show(args, rows, lambda: table(shown, columns, title="Estimates vs actuals"))
    data = client.costs(group_by=args.group_by, start=args.start, end=args.end, team=args.team)

    def render() -> None:
        rows = [
            {"group": group["label"], "kind": group["kind"], "total": money(group["total"])} for group in data["groups"]
        ]
        table(rows, ["group", "kind", "total"], title=f"Spend by {data['group_by']}, {data['start']} to {data['end']}")
        out.print(f"Total: {', '.join(money(total) for total in data['totals']) or '0'}")

    return show(args, data, render)


def cmd_models(args: argparse.Namespace, client: Paved) -> int:
    if args.action == "show":
        model = client.model(need_id(args, "models"))
        versions = client.model_versions(model=model["id"])
        data = {**model, "versions": versions}

        def render() -> None:
            details(model, title=model["name"])
            table(versions, ["version", "status", "framework", "artifact_uri", "created_at"], title="Versions")

        return show(args, data, render)
    found = client.models(search=args.search, limit=args.limit)
    return show(args, found, lambda: table(found, MODEL_COLUMNS, title="Models"))


def cmd_deployments(args: argparse.Namespace, client: Paved) -> int:
    if args.action == "show":
        deployment = client.deployment(need_id(args, "deployments"))
        return show(args, deployment, lambda: details(deployment, title=f"Deployment #{deployment['id']}"))
    found = client.deployments(state=args.state, limit=args.limit)
    return show(args, found, lambda: table(found, DEPLOYMENT_COLUMNS, title="Deployments"))


def cmd_kpis(args: argparse.Namespace, client: Paved) -> int:
    if args.action == "show":
        if not args.key:
            raise UsageError("Say which KPI: paved kpis show KEY.")
        kpi = client.kpi(args.key, days=args.days, start=args.start, end=args.end, team=args.team)
        return show(args, kpi, lambda: details(kpi, title=kpi["name"]))
    found = client.kpis(area=args.area, days=args.days, start=args.start, end=args.end, team=args.team)
    return show(args, found, lambda: table(found, KPI_COLUMNS, title="KPIs"))


def need_id(args: argparse.Namespace, group: str) -> int:
    if args.id is None:
        raise UsageError(f"Say which one: paved {group} {args.action} ID.")
    return int(args.id)


# --- the parser -------------------------------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    # SUPPRESS: `paved --json runs list` and `paved runs list --json` both work; the subparser must not reset it.
    common.add_argument("--json", action="store_true", default=argparse.SUPPRESS, help="print machine-readable JSON")
    common.add_argument("--url", default=argparse.SUPPRESS, help="the portal's URL (default: PAVED_URL or login's)")

    parser = argparse.ArgumentParser(prog="paved", description="Paved from the terminal.", parents=[common])
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    def command(name: str, help_text: str, handler: Any, actions: Sequence[str] = ()) -> argparse.ArgumentParser:
        sub = commands.add_parser(name, help=help_text, parents=[common], description=help_text)
        sub.set_defaults(handler=handler)
        if actions:
            sub.add_argument("action", nargs="?", choices=actions, default=actions[0])
        return sub

    login = command("login", "sign in and store a personal token in your config dir (mode 600)", cmd_login)
    login.add_argument("--username")
    login.add_argument("--password-stdin", action="store_true", help="read the password from stdin")
    login.add_argument("--token-name", default="paved-cli", help="what the new token is called")

    command("whoami", "who you are signed in as, and your teams", cmd_whoami)

    templates = command("templates", "catalog templates: list, or show SLUG", cmd_templates, ["list", "show"])
    templates.add_argument("slug", nargs="?")
    templates.add_argument("--search")

    launch = command("launch", "launch a template", cmd_launch)
    launch.add_argument("slug")
    launch.add_argument("--name", required=True, help="the workspace's name")
    launch.add_argument(
        "-p", "--param", action="append", default=[], metavar="KEY=VALUE", help="a parameter (JSON-typed)"
    )
    launch.add_argument("-f", "--file", metavar="PARAMS.yaml", help="parameters from a YAML or JSON file (- for stdin)")
    launch.add_argument("--team", help="default: your only team")
    launch.add_argument("--version", help="default: the newest published")
    launch.add_argument("--ttl-hours", type=int)
    launch.add_argument("--reason", default="")
    launch.add_argument("--wait", action="store_true", help="follow the run's log until it is over")

    runs = command("runs", "Terraform runs: list, show ID, log ID [--follow], cancel ID", cmd_runs,
                   ["list", "show", "log", "cancel"])  # fmt: skip
    runs.add_argument("id", nargs="?", type=int)
    runs.add_argument("--follow", action="store_true", help="stream the log until the run is over")
    runs.add_argument("--state")
    runs.add_argument("--workspace", type=int)
    runs.add_argument("--limit", type=int, default=50)

    workspaces = command("workspaces", "workspaces: list, show ID, extend ID --hours H, destroy ID", cmd_workspaces,
                         ["list", "show", "extend", "destroy"])  # fmt: skip
    workspaces.add_argument("id", nargs="?", type=int)
    workspaces.add_argument("--status")
    workspaces.add_argument("--search")
    workspaces.add_argument("--hours", type=int)
    workspaces.add_argument("--confirm", metavar="NAME", help="destroy: the workspace's name")
    workspaces.add_argument("--yes", action="store_true", help="destroy without typing the name")
    workspaces.add_argument("--wait", action="store_true", help="destroy: follow the run until it is over")
    workspaces.add_argument("--limit", type=int, default=50)

    clusters = command("clusters", "GPU clusters: list, show, request, stop, start, terminate", cmd_clusters,
                       ["list", "show", "request", "stop", "start", "terminate"])  # fmt: skip
    clusters.add_argument("id", nargs="?", type=int)
    clusters.add_argument("--name")
    clusters.add_argument("--instance-type")
    clusters.add_argument("--nodes", type=int, default=1)
    clusters.add_argument("--purchase-option", default="on_demand", choices=["on_demand", "spot", "spot_with_fallback"])
    clusters.add_argument("--region", default="us-east-1")
    clusters.add_argument("--max-hours", type=int)
    clusters.add_argument("--team")
    clusters.add_argument("--state")
    clusters.add_argument("--search", help="list: name or instance type contains")
    clusters.add_argument("--confirm", metavar="NAME", help="terminate: the cluster's name")
    clusters.add_argument("--yes", action="store_true", help="terminate without typing the name")
    clusters.add_argument("--limit", type=int, default=50)

    approvals = command("approvals", "what waits for approval: list, approve ID, reject ID", cmd_approvals,
                        ["list", "approve", "reject"])  # fmt: skip
    approvals.add_argument("id", nargs="?", type=int)
    approvals.add_argument("--kind", choices=["run", "deployment"], default="run")
    approvals.add_argument("--comment", default="")
    approvals.add_argument("--limit", type=int, default=50)

    jobs = command("jobs", "training jobs: list, show ID, submit, logs ID [--follow], cancel ID", cmd_jobs,
                   ["list", "show", "submit", "logs", "cancel"])  # fmt: skip
    jobs.add_argument("id", nargs="?", type=int)
    jobs.add_argument("--follow", action="store_true", help="stream the output until the job is over")
    jobs.add_argument("--state")
    jobs.add_argument("--image")
    jobs.add_argument("--gpus", type=int, help="GPUs per node")
    jobs.add_argument("--minutes", type=int, help="maximum run time")
    jobs.add_argument("--nodes", type=int, default=1)
    jobs.add_argument("--cluster", type=int, help="submit: one of your team's clusters; list: only its jobs")
    jobs.add_argument("--new-cluster", metavar="INSTANCE_TYPE", help="submit: on a cluster made for the job")
    jobs.add_argument("--cluster-template", metavar="SLUG", help="submit: the new cluster's gpu_cluster template")
    jobs.add_argument("--cluster-template-version", metavar="VERSION", help="default: its newest published")
    jobs.add_argument("--framework", default="pytorch")
    jobs.add_argument("-e", "--env", action="append", default=[], metavar="NAME=VALUE")
    jobs.add_argument("--hp", action="append", default=[], metavar="KEY=VALUE", help="a hyperparameter (JSON-typed)")
    jobs.add_argument("--dataset-uri", default="")
    jobs.add_argument("--output-uri", default="")
    jobs.add_argument("--team")
    jobs.add_argument("--limit", type=int, default=50)
    jobs.set_defaults(rest=[])  # submit: the command after `--` (split off in main: argparse would read it as ID)

    costs = command("costs", "spend by team, template, workspace, user, instance type or service", cmd_costs)
    costs.add_argument("--group-by", default="team",
                       choices=["team", "template", "workspace", "user", "instance_type", "service"])  # fmt: skip
    costs.add_argument("--start", help="YYYY-MM-DD, the first day (default: this month's first)")
    costs.add_argument("--end", help="YYYY-MM-DD, the day after the last (default: the next month's first)")
    costs.add_argument("--team")
    costs.add_argument("--estimates", action="store_true", help="estimate vs actual of each workspace and cluster")

    models = command("models", "registered models: list, show ID (with versions)", cmd_models, ["list", "show"])
    models.add_argument("id", nargs="?", type=int)
    models.add_argument("--search")
    models.add_argument("--limit", type=int, default=50)

    deployments = command("deployments", "model rollouts: list, show ID", cmd_deployments, ["list", "show"])
    deployments.add_argument("id", nargs="?", type=int)
    deployments.add_argument("--state")
    deployments.add_argument("--limit", type=int, default=50)

    kpis = command("kpis", "platform KPIs: list, show KEY", cmd_kpis, ["list", "show"])
    kpis.add_argument("key", nargs="?")
    kpis.add_argument("--area", choices=["adoption", "delivery", "spend", "satisfaction", "governance"])
    kpis.add_argument("--days", type=int, help="a standard window: 7, 30, 90 or 365 days")
    kpis.add_argument("--start", help="YYYY-MM-DD, the first day of a custom range (with --end)")
    kpis.add_argument("--end", help="YYYY-MM-DD, the range's last day, included (as on the dashboards)")
    kpis.add_argument("--team")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    rest: list[str] = []
    if "--" in argv:  # `paved jobs submit ... -- python train.py --epochs 3`
        at = argv.index("--")
        argv, rest = argv[:at], argv[at + 1 :]
    args = build_parser().parse_args(argv)  # bad input: argparse prints the usage and exits 2
    args.rest = rest
    args.json = getattr(args, "json", False)
    args.url = getattr(args, "url", None)
    try:
        if args.handler is cmd_login:
            return int(cmd_login(args))
        return int(args.handler(args, Paved(url=args.url)))
    except PavedError as error:
        print_problem(error)
        return EXIT_FAILED
    except UsageError as error:
        err.print(f"[bold red]Error:[/] {escape(str(error))}")
        return EXIT_USAGE
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED


if __name__ == "__main__":
    sys.exit(main())
