"""A GPU cluster's life on EC2: request (validate, check quota, record intent), provision (launch, wait, record
nodes), stop, start, terminate, and reconciliation of what the database believes against what EC2 says.

Cloud calls never run inside a database transaction: a slow EC2 call must not hold row locks. Each step records
its state change (and its audit event, through `cluster_transition`) before or after the call instead.
Services take an optional `provider` so tests (and scripts) can hand in an `Ec2Provider` built on their own boto3
session; by default one is built from settings.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from django.conf import settings
from django.contrib.auth.models import User
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from apps.accounts.models import Team
from apps.accounts.permissions import require
from apps.audit.services import record
from apps.clusters import selectors
from apps.clusters.cloud import CloudError, CloudThrottled, Ec2Provider, InstanceNotFound, NodeInfo
from apps.clusters.cloud.ec2 import TAG_CLUSTER
from apps.clusters.errors import (
    ClusterNameTaken,
    IllegalClusterTransition,
    InvalidClusterName,
    InvalidIdleWindow,
    InvalidMaxHours,
    InvalidNodeCount,
    InvalidPurchaseOption,
    RegionNotOfferedForType,
    TerminationNotConfirmed,
    UnknownClusterInstanceType,
)
from apps.clusters.instance_catalog import RegionNotOffered, UnknownInstanceType, load_catalog, price_for
from apps.clusters.models import Cluster, ClusterState, Node, NodeState, PurchaseOption
from apps.clusters.services.quotas import check_cluster_request
from apps.clusters.services.registration import new_bootstrap_token, node_user_data
from apps.clusters.services.states import cluster_transition, node_transition, nodes_transition
from apps.clusters.services.telemetry import new_node_token
from apps.core.names import name_problem
from apps.core.tasks import send_on_commit

logger = logging.getLogger(__name__)

MIN_NODES, MAX_NODES = 1, 16
WAIT_TIMEOUT_SECONDS = 900.0
WAIT_POLL_SECONDS = 5.0
STUCK_REQUESTED = timedelta(minutes=2)
STUCK_PROVISIONING = timedelta(seconds=WAIT_TIMEOUT_SECONDS) + timedelta(minutes=5)
GONE_STATES = frozenset({"shutting-down", "terminated"})
INTERRUPTED_STATES = frozenset({"stopping", "stopped"})
LIVE_NODE_STATES = (NodeState.PENDING, NodeState.RUNNING, NodeState.STOPPED)


def ec2_provider(*, region: str) -> Ec2Provider:
    return Ec2Provider(region, endpoint_url=settings.AWS_ENDPOINT_URL or None)


def _require_operator(actor: User, cluster: Cluster) -> None:
    """Stop, start, terminate: members of the cluster's team and platform admins."""
    message = f"You are not a member of team {cluster.team.slug}; ask one of its managers to add you."
    require(actor, "cluster.operate", cluster, message=message)


def _dispatch_provision(cluster_pk: int) -> None:
    """Send `provision_cluster` once the surrounding transaction commits. An unreachable broker is logged, not
    raised: the request is recorded and reconciliation can send it again."""

    from apps.clusters import tasks

    send_on_commit(tasks.provision_cluster, cluster_pk, what=f"provisioning of cluster #{cluster_pk}")


def _live_nodes(cluster: Cluster) -> list[Node]:
    return list(cluster.nodes.filter(state__in=LIVE_NODE_STATES))


def _fail(cluster: Cluster, reason: str, actor: User | None = None) -> Cluster:
    return cluster_transition(cluster=cluster, to=ClusterState.FAILED, actor=actor, reason=reason)


# -- request ---------------------------------------------------------------------------------------------------


def request_cluster(
    *,
    actor: User,
    team: Team,
    name: str,
    region: str,
    instance_type: str,
    node_count: int,
    purchase_option: str,
    max_hours: int | None = None,
    idle_window_minutes: int | None = None,
    dispatch: bool = True,
) -> Cluster:
    """Validate a cluster request against the catalog and the team's quota, record it as `requested`, and hand
    it to a worker after commit. `idle_window_minutes` may shorten the team's idle auto-stop window (a template
    or a user asking for a stricter stop), never lengthen it. `dispatch=False` leaves provisioning to the caller
    (the demo provisions its node before any worker runs, and must not race one)."""
    require(
        actor,
        "team.act_in",
        team,
        message=f"You are not a member of team {team.slug}; ask one of its managers to add you.",
        field="team",
    )
    problem = name_problem(name, what="A cluster name")
    if problem:
        raise InvalidClusterName(problem)
    if purchase_option not in PurchaseOption.values:
        raise InvalidPurchaseOption(
            f"Unknown purchase option {purchase_option!r}; choose one of {', '.join(PurchaseOption.values)}.",
            extra={"valid": list(PurchaseOption.values)},
        )
    if not MIN_NODES <= node_count <= MAX_NODES:
        raise InvalidNodeCount(
            f"A cluster has {MIN_NODES} to {MAX_NODES} nodes, not {node_count}.",
            extra={"min": MIN_NODES, "max": MAX_NODES},
        )
    catalog = load_catalog()
    try:
        unit_price = price_for(instance_type, region, purchase_option, catalog=catalog)
    except UnknownInstanceType as exc:
        raise UnknownClusterInstanceType(exc.message, extra=exc.extra) from exc
    except RegionNotOffered as exc:
        raise RegionNotOfferedForType(exc.message, extra=exc.extra) from exc
    gpus_per_node = catalog[instance_type].gpus
    policy = selectors.team_idle_policy(team)
    if idle_window_minutes is None:
        idle_window_minutes = policy.window_minutes
    if not selectors.MIN_IDLE_WINDOW_MINUTES <= idle_window_minutes <= policy.window_minutes:
        raise InvalidIdleWindow(
            f"The idle auto-stop window is {selectors.MIN_IDLE_WINDOW_MINUTES} to {policy.window_minutes} minutes "
            f"for team {team.slug}, not {idle_window_minutes}: auto-stop can be made stricter, not looser.",
            extra={"min": selectors.MIN_IDLE_WINDOW_MINUTES, "max": policy.window_minutes},
        )

    with transaction.atomic():
        # One request at a time per team: the quota check below must see every earlier request.
        Team.objects.select_for_update().get(pk=team.pk)
        if Cluster.objects.filter(team=team, name=name).exists():
            raise ClusterNameTaken(f"Team {team.slug} already has a cluster named {name!r}; choose another name.")
        check_cluster_request(
            team=team, instance_type=instance_type, node_count=node_count, gpus_per_node=gpus_per_node
        )
        quota = selectors.effective_quota(team)
        if max_hours is None:
            max_hours = quota.max_cluster_hours
        if not 1 <= max_hours <= quota.max_cluster_hours:
            raise InvalidMaxHours(
                f"max_hours must be between 1 and {quota.max_cluster_hours} (team {team.slug}'s limit), "
                f"not {max_hours}.",
                extra={"max": quota.max_cluster_hours},
            )
        cluster = Cluster.objects.create(
            team=team,
            owner=actor,
            name=name,
            region=region,
            instance_type=instance_type,
            node_count=node_count,
            gpus_per_node=gpus_per_node,
            purchase_option=purchase_option,
            state=ClusterState.REQUESTED,
            hourly_price=unit_price * node_count,
            max_hours=max_hours,
            idle_threshold_pct=policy.threshold_pct,
            idle_window_minutes=idle_window_minutes,
        )
        record(
            actor=actor,
            team=team,
            verb="cluster.requested",
            target=cluster,
            data={
                "region": region,
                "instance_type": instance_type,
                "node_count": node_count,
                "gpus": node_count * gpus_per_node,
                "purchase_option": purchase_option,
                "hourly_price": cluster.hourly_price,
                "max_hours": max_hours,
                "idle_window_minutes": idle_window_minutes,
            },
        )
        if dispatch:
            _dispatch_provision(cluster.pk)
    return cluster


# -- provision (and start) -------------------------------------------------------------------------------------


def provision_cluster(*, cluster_pk: int, provider: Ec2Provider | None = None, may_retry: bool = False) -> Cluster:
    """Bring a `requested` cluster (or one `start_cluster` moved back to `provisioning`) to `running`.

    Safe to run twice: a cluster in any other state is left alone, and a re-run for a cluster already in
    `provisioning` adopts the nodes it already has (or instances tagged with its id) instead of launching more.
    Throttling is re-raised when `may_retry` (the task retries with backoff); otherwise the cluster fails.
    """
    with transaction.atomic():
        cluster = Cluster.objects.select_for_update().select_related("team", "owner").get(pk=cluster_pk)
        if cluster.state == ClusterState.REQUESTED:
            cluster_transition(cluster=cluster, to=ClusterState.PROVISIONING, reason="Launching nodes.")
        elif cluster.state != ClusterState.PROVISIONING:
            logger.info("Cluster #%s is %s; nothing to provision.", cluster_pk, cluster.state)
            return cluster
    provider = provider or ec2_provider(region=cluster.region)
    running_reason = "All nodes are running."
    launched: list[str] = []
    try:
        nodes = _live_nodes(cluster)
        if nodes:
            instance_ids = [node.instance_id for node in nodes]
            provider.start_nodes(instance_ids)
        else:
            instance_ids, running_reason = _launch(cluster, provider)
            launched = instance_ids
        infos = provider.wait_until_running(instance_ids, timeout=WAIT_TIMEOUT_SECONDS, poll_interval=WAIT_POLL_SECONDS)
    except CloudThrottled as exc:
        if may_retry:
            raise
        return _fail(cluster, f"EC2 kept throttling our requests; provisioning gave up. {exc.message}")
    except CloudError as exc:
        if launched:
            _terminate_quietly(provider, launched, cluster)
        return _fail(cluster, f"Provisioning failed: {exc.message}")

    by_id = {info.instance_id: info for info in infos}
    try:
        with transaction.atomic():
            for node in cluster.nodes.filter(instance_id__in=list(by_id)):
                private_ip = by_id[node.instance_id].private_ip
                if node.state == NodeState.RUNNING:  # already back (reconciled): only its address may be new
                    node.private_ip = private_ip
                    node.save(update_fields=["private_ip", "updated_at"])
                else:
                    node_transition(node=node, to=NodeState.RUNNING, private_ip=private_ip)
            cluster_transition(cluster=cluster, to=ClusterState.RUNNING, reason=running_reason)
    except IllegalClusterTransition:
        # Terminated while we were waiting: terminate_cluster also terminated the instances it could find.
        logger.info("Cluster #%s changed state while provisioning; leaving it as it is.", cluster_pk)
    cluster.refresh_from_db()
    return cluster


def _launch(cluster: Cluster, provider: Ec2Provider) -> tuple[list[str], str]:
    """Launch the cluster's nodes (or adopt instances an interrupted earlier attempt launched) and record them."""
    adopted = [info for info in provider.find_tagged_instances(str(cluster.pk)) if info.state not in GONE_STATES]
    if adopted:
        instance_ids = [info.instance_id for info in adopted]
        used = adopted[0].lifecycle
        reason = f"All nodes are running ({used}); adopted instances of an interrupted launch."
    else:
        # A new secret per launch: the digest is stored before the call, so a node that boots fast can register.
        bootstrap_secret, digest = new_bootstrap_token()
        Cluster.objects.filter(pk=cluster.pk).update(bootstrap_token_digest=digest)
        result = provider.launch_nodes(
            cluster_id=str(cluster.pk),
            team=cluster.team.slug,
            owner=cluster.owner.get_username(),
            instance_type=cluster.instance_type,
            count=cluster.node_count,
            purchase_option=cluster.purchase_option,  # type: ignore[arg-type]
            user_data=node_user_data(cluster=cluster, bootstrap_secret=bootstrap_secret),
        )
        instance_ids, used = result.instance_ids, result.purchase_option_used
        reason = (
            "All nodes are running on-demand: EC2 had no spot capacity, so the launch fell back to on-demand."
            if result.fell_back
            else f"All nodes are running ({used})."
        )
    with transaction.atomic():
        for instance_id in instance_ids:
            # A placeholder nobody holds: the node's agent gets its real token by registering (services.registration).
            _unused, digest = new_node_token()
            Node.objects.create(
                cluster=cluster,
                instance_id=instance_id,
                gpu_count=cluster.gpus_per_node,
                state=NodeState.PENDING,
                token_digest=digest,
            )
        Cluster.objects.filter(pk=cluster.pk).update(purchase_option_used=used)
        record(
            actor=None,
            team=cluster.team,
            verb="cluster.nodes_launched",
            target=cluster,
            data={"instance_ids": instance_ids, "used": used},
        )
    return instance_ids, reason


def _terminate_quietly(provider: Ec2Provider, instance_ids: list[str], cluster: Cluster) -> None:
    """Best effort after a failed launch, so a half-started cluster does not keep billing."""
    try:
        provider.terminate_nodes(instance_ids)
    except CloudError:
        logger.exception("Could not terminate instances %s of failed cluster #%s.", instance_ids, cluster.pk)
        return
    nodes_transition(nodes=cluster.nodes.filter(instance_id__in=instance_ids), to=NodeState.TERMINATED)


# -- stop, start, terminate ------------------------------------------------------------------------------------


def stop_cluster(
    *, actor: User | None, cluster: Cluster, reason: str = "", provider: Ec2Provider | None = None
) -> Cluster:
    """Stop a running cluster's nodes (disks are kept, GPUs are released). `actor` None is the system (idle
    auto-stop). If EC2 refuses, the cluster becomes `failed` (its nodes may still run: terminate it) and the
    error is raised."""
    if actor is not None:
        _require_operator(actor, cluster)
    reason = reason or (f"Stopped by {actor.get_username()}." if actor is not None else "Stopped by Paved.")
    cluster_transition(cluster=cluster, to=ClusterState.STOPPING, actor=actor, reason=reason)
    instance_ids = [node.instance_id for node in _live_nodes(cluster)]
    try:
        (provider or ec2_provider(region=cluster.region)).stop_nodes(instance_ids)
    except CloudError as exc:
        _fail(cluster, f"Stopping failed; the nodes may still be running, so terminate the cluster. {exc.message}")
        raise
    with transaction.atomic():
        nodes_transition(nodes=cluster.nodes.filter(instance_id__in=instance_ids), to=NodeState.STOPPED)
        locked = cluster_transition(cluster=cluster, to=ClusterState.STOPPED, actor=actor, reason=reason)
    return locked


def stop_cluster_for_idleness(*, cluster: Cluster, reason: str, provider: Ec2Provider | None = None) -> Cluster:
    return stop_cluster(actor=None, cluster=cluster, reason=reason, provider=provider)


def start_cluster(*, actor: User, cluster: Cluster, dispatch: bool = True) -> Cluster:
    """Move a stopped cluster back to `provisioning` (its GPUs count against quota again) and hand the start
    of its nodes to a worker, which runs `provision_cluster` (`dispatch=False`: the caller runs it)."""
    _require_operator(actor, cluster)
    with transaction.atomic():
        Team.objects.select_for_update().get(pk=cluster.team_id)
        if cluster.state == ClusterState.STOPPED:
            check_cluster_request(
                team=cluster.team,
                instance_type=cluster.instance_type,
                node_count=cluster.node_count,
                gpus_per_node=cluster.gpus_per_node,
            )
        locked = cluster_transition(
            cluster=cluster, to=ClusterState.PROVISIONING, actor=actor, reason=f"Started by {actor.get_username()}."
        )
        if dispatch:
            _dispatch_provision(cluster.pk)
    return locked


def request_termination(
    *, actor: User, cluster: Cluster, confirm_name: str, provider: Ec2Provider | None = None
) -> Cluster:
    """A person's termination, confirmed by typing the cluster's name (the page and the API alike)."""
    _require_operator(actor, cluster)
    if confirm_name.strip() != cluster.name:
        raise TerminationNotConfirmed(
            f"Type the cluster name {cluster.name} to confirm termination; nothing was terminated."
        )
    return terminate_cluster(actor=actor, cluster=cluster, provider=provider)


def terminate_cluster(
    *, actor: User | None, cluster: Cluster, reason: str = "", provider: Ec2Provider | None = None
) -> Cluster:
    """Terminate every instance of the cluster (also ones tagged with it that a launch had not recorded yet)."""
    if actor is not None:
        _require_operator(actor, cluster)
    reason = reason or (f"Terminated by {actor.get_username()}." if actor is not None else "Terminated by Paved.")
    cluster.refresh_from_db(fields=["state"])
    if cluster.state == ClusterState.REQUESTED:
        # Nothing was launched yet; the provisioning task will find the cluster terminated and do nothing.
        return cluster_transition(cluster=cluster, to=ClusterState.TERMINATED, actor=actor, reason=reason)
    cluster_transition(cluster=cluster, to=ClusterState.TERMINATING, actor=actor, reason=reason)
    provider = provider or ec2_provider(region=cluster.region)
    try:
        tagged = [i.instance_id for i in provider.find_tagged_instances(str(cluster.pk)) if i.state not in GONE_STATES]
        instance_ids = sorted({node.instance_id for node in _live_nodes(cluster)} | set(tagged))
        provider.terminate_nodes(instance_ids)
    except CloudError as exc:
        _fail(cluster, f"Terminating failed; nodes may still be running. Try again. {exc.message}", actor)
        raise
    with transaction.atomic():
        nodes_transition(nodes=cluster.nodes.filter(state__in=LIVE_NODE_STATES), to=NodeState.TERMINATED)
        locked = cluster_transition(cluster=cluster, to=ClusterState.TERMINATED, actor=actor, reason=reason)
    return locked


# -- reconciliation --------------------------------------------------------------------------------------------


@dataclass
class ReconcileReport:
    clusters_checked: int = 0
    missing_nodes: list[str] = field(default_factory=list)
    failed_clusters: list[int] = field(default_factory=list)
    orphans: list[str] = field(default_factory=list)  # instance ids tagged paved:cluster with no live cluster
    errors: list[str] = field(default_factory=list)
    redispatched: list[int] = field(default_factory=list)  # requests no worker picked up (the broker was down)
    interrupted_nodes: list[str] = field(default_factory=list)  # stopped by EC2 under a running cluster
    resumed_nodes: list[str] = field(default_factory=list)


def _describe_tolerant(provider: Ec2Provider, instance_ids: list[str]) -> dict[str, NodeInfo]:
    """Describe instances; ones EC2 no longer knows at all are simply absent from the result."""
    try:
        return {info.instance_id: info for info in provider.describe_nodes(instance_ids)}
    except InstanceNotFound:
        found: dict[str, NodeInfo] = {}
        for instance_id in instance_ids:
            try:
                found.update({info.instance_id: info for info in provider.describe_nodes([instance_id])})
            except InstanceNotFound:
                continue
        return found


def reconcile_clusters(*, provider: Ec2Provider | None = None, now: datetime | None = None) -> ReconcileReport:
    """Compare running and stopped clusters with EC2: nodes terminated outside Paved become `missing`, a cluster
    with no node left fails, and Paved-tagged instances of no live cluster are reported as orphans (never
    terminated here: a person decides). Clusters stuck before running at `now` (beat's clock unless a caller
    gives its own) are sent again first."""
    report = ReconcileReport()
    report.redispatched = redispatch_stuck_clusters(now=now)
    providers: dict[str, Ec2Provider] = {}

    def provider_for(region: str) -> Ec2Provider:
        if provider is not None:
            return provider
        if region not in providers:
            providers[region] = ec2_provider(region=region)
        return providers[region]

    clusters = Cluster.objects.filter(state__in=[ClusterState.RUNNING, ClusterState.STOPPED]).select_related("team")
    for cluster in clusters:
        nodes = _live_nodes(cluster)
        if not nodes:
            continue
        report.clusters_checked += 1
        try:
            infos = _describe_tolerant(provider_for(cluster.region), [node.instance_id for node in nodes])
        except CloudError as exc:
            report.errors.append(f"cluster #{cluster.pk}: {exc.message}")
            continue
        gone = [n.instance_id for n in nodes if n.instance_id not in infos or infos[n.instance_id].state in GONE_STATES]
        if gone:
            _mark_missing(cluster, gone, all_gone=len(gone) == len(nodes), report=report)
        if cluster.state == ClusterState.RUNNING:
            _follow_interruptions(cluster, nodes, infos, report)

    regions = set(Cluster.objects.values_list("region", flat=True).distinct()) | {settings.AWS_REGION}
    live_ids = {str(pk) for pk in Cluster.objects.exclude(state=ClusterState.TERMINATED).values_list("pk", flat=True)}
    for region in sorted(regions) if provider is None else [provider.region]:
        try:
            tagged = provider_for(region).find_tagged_instances()
        except CloudError as exc:
            report.errors.append(f"orphan scan in {region}: {exc.message}")
            continue
        for info in tagged:
            if info.state not in GONE_STATES and info.tags.get(TAG_CLUSTER) not in live_ids:
                report.orphans.append(info.instance_id)
    if report.orphans:
        logger.warning(
            "Orphaned Paved instances (no live cluster; not terminated): %s", ", ".join(sorted(report.orphans))
        )
    return report


def redispatch_stuck_clusters(*, now: datetime | None = None) -> list[int]:
    """Send provisioning again for clusters no worker took: `requested` for over STUCK_REQUESTED (the broker was
    down when they were requested), or `provisioning` for longer than a launch can wait (the worker died). The
    task is safe to receive twice: it adopts nodes an earlier attempt launched."""
    now = now or timezone.now()
    stuck = Cluster.objects.filter(
        Q(state=ClusterState.REQUESTED, updated_at__lt=now - STUCK_REQUESTED)
        | Q(state=ClusterState.PROVISIONING, updated_at__lt=now - STUCK_PROVISIONING)
    ).values_list("pk", flat=True)
    pks = sorted(stuck)
    for pk in pks:
        logger.warning("Cluster #%s is stuck before running; sending its provisioning again.", pk)
        _dispatch_provision(pk)
    return pks


def _follow_interruptions(
    cluster: Cluster, nodes: list[Node], infos: dict[str, NodeInfo], report: ReconcileReport
) -> None:
    """Nodes of a running cluster that EC2 stopped (a spot interruption: spot nodes are persistent with
    interruption behaviour `stop`) are marked stopped, and marked running again when EC2 restarts them."""
    ec2_state = {node.instance_id: infos[node.instance_id].state for node in nodes if node.instance_id in infos}
    stopped = [
        n.instance_id
        for n in nodes
        if n.state == NodeState.RUNNING and ec2_state.get(n.instance_id) in INTERRUPTED_STATES
    ]
    resumed = [
        n.instance_id for n in nodes if n.state == NodeState.STOPPED and ec2_state.get(n.instance_id) == "running"
    ]
    if not stopped and not resumed:
        return
    with transaction.atomic():
        now = timezone.now()
        nodes_transition(nodes=cluster.nodes.filter(instance_id__in=stopped), to=NodeState.STOPPED)
        nodes_transition(nodes=cluster.nodes.filter(instance_id__in=resumed), to=NodeState.RUNNING)
        if stopped:
            record(
                actor=None,
                team=cluster.team,
                verb="cluster.nodes_interrupted",
                target=cluster,
                data={"instance_ids": sorted(stopped)},
            )
        if resumed:
            record(
                actor=None,
                team=cluster.team,
                verb="cluster.nodes_resumed",
                target=cluster,
                data={"instance_ids": sorted(resumed)},
            )
        down = cluster.nodes.filter(state=NodeState.STOPPED).count()
        reason = (
            f"{down} of {cluster.node_count} nodes stopped by EC2 (spot capacity reclaimed); they start again when "
            "capacity returns."
            if down
            else "All nodes are running again."
        )
        Cluster.objects.filter(pk=cluster.pk).update(state_reason=reason, updated_at=now)
    report.interrupted_nodes += stopped
    report.resumed_nodes += resumed


def _mark_missing(cluster: Cluster, gone: Iterable[str], *, all_gone: bool, report: ReconcileReport) -> None:
    gone = sorted(gone)
    with transaction.atomic():
        nodes_transition(nodes=cluster.nodes.filter(instance_id__in=gone), to=NodeState.MISSING)
        record(actor=None, team=cluster.team, verb="cluster.nodes_missing", target=cluster, data={"instance_ids": gone})
        report.missing_nodes += gone
        if not all_gone:
            return
        reason = f"All nodes ({', '.join(gone)}) were terminated outside Paved; the cluster cannot run again."
        cluster_transition(cluster=cluster, to=ClusterState.FAILED, reason=reason)
        report.failed_clusters.append(cluster.pk)
