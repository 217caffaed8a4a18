"""The rollout engine. `start_deployment` checks and records a rollout; `advance` does the next piece of work of
one deployment (prepare a variant, shift weights, wait out a bake, measure, promote, roll back) and says when to
come back. Each piece is idempotent and leaves the deployment saying what traffic looks like, so a worker killed
anywhere is replaced by the next `advance` (a task, or the beat's `resume_deployments`) once its lease runs out.

People act through `approve`, `pause`, `resume`, `promote`, `rollback` and `abort`: each changes the state under
the row lock and hands the traffic change to the engine right away."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.contrib.auth.models import User
from django.db import IntegrityError, transaction
from django.db.models import Q
from django.utils import timezone

from apps.accounts.permissions import require
from apps.audit.services import record
from apps.deployments import selectors
from apps.deployments.analysis.spec import parse_analysis
from apps.deployments.errors import EndpointBusy, InvalidDeployment, TargetError
from apps.deployments.models import (
    ACTIVE_DEPLOYMENT_STATES,
    Deployment,
    DeploymentEvent,
    DeploymentState,
    Endpoint,
    Environment,
    EventKind,
    ExperimentState,
    Strategy,
)
from apps.deployments.plan import Step, as_json, plan_steps
from apps.deployments.services import gates
from apps.deployments.services.backends import target_for, variant_name, variant_spec
from apps.deployments.services.transitions import IllegalDeploymentTransition, deployment_transition
from apps.registry.errors import VersionArchived
from apps.registry.models import ModelVersion, VersionStatus

S = DeploymentState
# An experiment holds the endpoint's traffic split until its winner is promoted or it is stopped.
EXPERIMENT_HOLDS_TRAFFIC = frozenset({ExperimentState.STARTING, ExperimentState.RUNNING, ExperimentState.CONCLUDED})
# States the engine works on by itself; paused and awaiting approval wait for a person.
WORKING_STATES = frozenset(ACTIVE_DEPLOYMENT_STATES - {S.PAUSED, S.AWAITING_APPROVAL})
RETRY_LIMIT = 5
MAX_INLINE_STEPS = 20  # pieces of work one `advance` call does back to back while none has to wait


class VersionNotApproved(InvalidDeployment):
    code = "version_not_approved"


# --- Starting ---------------------------------------------------------------------------------------------


def _check_version(*, endpoint: Endpoint, version: ModelVersion) -> None:
    if version.team_id != endpoint.team_id or version.model_id != endpoint.model_id:
        raise InvalidDeployment(
            f"{version} is not a version of {endpoint.model.name}, the model this endpoint serves.", field="version"
        )
    if version.status == VersionStatus.ARCHIVED:
        raise VersionArchived(f"{version} is archived; it cannot be deployed.", field="version")
    if endpoint.environment == Environment.PRODUCTION and not version.approved:
        raise VersionNotApproved(
            f"{version} has no production approval yet; a manager of the team approves it on the model page.",
            field="version",
        )
    if endpoint.stable_version_id == version.pk:
        raise InvalidDeployment(f"{version} is already what {endpoint.name} serves.", field="version")
    if endpoint.torn_down_at is not None:
        raise InvalidDeployment(f"{endpoint.name} was torn down.", field="endpoint")
    experiment = endpoint.experiments.filter(state__in=sorted(EXPERIMENT_HOLDS_TRAFFIC)).first()
    if experiment is not None:
        raise EndpointBusy(
            f"{endpoint.name} runs experiment {experiment.name} ({experiment.get_state_display().lower()}); "
            "promote its winner or stop it first.",
            field="endpoint",
        )


def start_deployment(
    *,
    actor: User,
    endpoint: Endpoint,
    version: ModelVersion,
    strategy: str = Strategy.CANARY,
    steps: list[Any] | None = None,
    analysis: Mapping[str, Any] | None = None,
    reason: str = "",
    reverts: Deployment | None = None,
) -> Deployment:
    """Record a rollout of `version` onto `endpoint` and hand it to the engine. One active rollout per endpoint
    (a database constraint, so two at once cannot both win)."""
    require(actor, "deployment.operate", endpoint, message="Only members of the team deploy to its endpoints.")
    _check_version(endpoint=endpoint, version=version)
    planned = plan_steps(strategy=strategy, steps=steps)
    parse_analysis(dict(analysis or {}))
    try:
        with transaction.atomic():
            deployment = Deployment.objects.create(
                team=endpoint.team,
                endpoint=endpoint,
                version=version,
                baseline_version=endpoint.stable_version,
                strategy=strategy,
                steps=as_json(planned),
                analysis=dict(analysis or {}),
                requested_by=actor,
                next_action_at=timezone.now(),
                reverts=reverts,
            )
    except IntegrityError as exc:
        busy = endpoint.deployments.filter(state__in=sorted(ACTIVE_DEPLOYMENT_STATES)).first()
        raise EndpointBusy(
            f"{endpoint.name} already has a rollout in progress"
            + (f" (deployment #{busy.pk}, {busy.get_state_display().lower()})" if busy else "")
            + "; wait for it, or abort it, first.",
            field="endpoint",
        ) from exc
    _event(deployment, EventKind.REQUESTED, actor=actor, message=reason or f"{strategy.replace('_', ' ')} rollout")
    record(
        actor=actor,
        team=endpoint.team,
        verb="deployment.requested",
        target=deployment,
        data={"endpoint": endpoint.name, "version": version.version, "strategy": strategy},
    )
    schedule(deployment, delay=0)
    return deployment


# A rollback returns to the version that served before, so it is not watched after promotion (like Argo Rollouts
# skipping analysis for a rollback within its window): traffic is back on it the moment it is ready.
ROLLBACK_ANALYSIS = {"post_promotion": {"seconds": 0}}


def rollback_endpoint(*, actor: User, endpoint: Endpoint) -> Deployment:
    """One-click rollback of a finished rollout: the version the endpoint served before its last successful
    rollout goes back to 100% at once (a rollout of its own, so it is judged, recorded and audited like any).
    When it succeeds, the undone rollout counts as a change failure for DORA (`dora.record_dora`)."""
    require(actor, "deployment.operate", endpoint, message="Only members of the team deploy to its endpoints.")
    last = selectors.rollback_candidate(endpoint)
    if last is None or last.baseline_version is None:
        raise InvalidDeployment(
            f"{endpoint.name} has no earlier version to go back to: its last successful rollout was its first.",
            field="endpoint",
        )
    return start_deployment(
        actor=actor,
        endpoint=endpoint,
        version=last.baseline_version,
        strategy=Strategy.ALL_AT_ONCE,
        analysis=ROLLBACK_ANALYSIS,
        reason=f"Rollback of #{last.pk}: back to v{last.baseline_version.version}",
        reverts=last,
    )


# --- Engine -----------------------------------------------------------------------------------------------


def schedule(deployment: Deployment, *, delay: float) -> None:
    """Queue the next `advance` once the current transaction commits."""
    from apps.deployments import tasks

    pk = deployment.pk
    transaction.on_commit(lambda: tasks.advance_deployment.apply_async(args=[pk], countdown=max(0.0, delay)))


def _event(
    deployment: Deployment,
    kind: str,
    *,
    message: str,
    actor: User | None = None,
    now: datetime | None = None,
    weights: Mapping[str, int] | None = None,
) -> None:
    DeploymentEvent.objects.create(
        deployment=deployment,
        at=now or timezone.now(),
        kind=kind,
        step_index=deployment.step_index,
        weights=dict(weights if weights is not None else deployment.endpoint.traffic),
        message=message[:500],
        actor=actor,
    )


def _claim(pk: int, now: datetime) -> Deployment | None:
    """Take the deployment's lease if it is due and nobody holds it."""
    lease = timedelta(seconds=settings.DEPLOYMENT_LEASE_SECONDS)
    with transaction.atomic():
        found = (
            Deployment.objects.select_for_update(skip_locked=True)
            .filter(pk=pk, state__in=sorted(WORKING_STATES))
            .filter(Q(lease_until__isnull=True) | Q(lease_until__lt=now))
            .filter(Q(next_action_at__isnull=True) | Q(next_action_at__lte=now))
            .first()
        )
        if found is None:
            return None
        Deployment.objects.filter(pk=pk).update(lease_until=now + lease)
    return Deployment.objects.select_related("endpoint", "endpoint__team", "version", "version__model").get(pk=pk)


def advance(*, deployment_id: int, now: datetime | None = None) -> float | None:
    """Do the due work of one deployment; returns the seconds until it wants to act again (None: it waits for a
    person, or it is over), having queued that next call itself."""
    clock_given = now is not None
    now = now or timezone.now()
    deployment = _claim(deployment_id, now)
    if deployment is None:
        return None
    delay: float | None = 0.0
    try:
        for _ in range(MAX_INLINE_STEPS):
            if not clock_given:
                now = timezone.now()  # a step may take seconds (a model server starting): later steps see it
            delay = _work(deployment, now)
            deployment.refresh_from_db()
            if delay != 0 or deployment.state not in WORKING_STATES:
                break
    finally:
        Deployment.objects.filter(pk=deployment.pk).update(
            lease_until=None,
            next_action_at=(now + timedelta(seconds=delay)) if delay is not None else None,
        )
    if delay is not None and deployment.state in WORKING_STATES:
        schedule(deployment, delay=delay)
    return delay


def _work(deployment: Deployment, now: datetime) -> float | None:
    """One piece of work, translating a target's failure into a retry, a rollback or a failure."""
    handler = HANDLERS[S(deployment.state)]
    try:
        result = handler(deployment, now)
    except IllegalDeploymentTransition:
        return 0.0  # a person moved it meanwhile (paused, promoted, aborted): carry on from the new state
    except TargetError as exc:
        return _target_failed(deployment, exc, now)
    if deployment.attempts:
        Deployment.objects.filter(pk=deployment.pk).update(attempts=0)
    return result


def _target_failed(deployment: Deployment, exc: TargetError, now: datetime) -> float | None:
    attempts = deployment.attempts + 1
    if exc.retryable and attempts <= RETRY_LIMIT:
        Deployment.objects.filter(pk=deployment.pk).update(attempts=attempts)
        backoff = min(60.0, 2.0**attempts)
        _event(deployment, EventKind.RETRY, now=now, message=f"{exc.message} (retry {attempts} in {backoff:.0f} s)")
        return backoff
    _event(deployment, EventKind.ERROR, now=now, message=exc.message)
    state = deployment.state
    if state in {S.PENDING, S.PROVISIONING}:
        _remove_new_variant(deployment, now)
        deployment_transition(deployment=deployment, to=S.FAILED, reason=exc.message[:300], attempts=0)
        return None
    if state == S.ROLLING_BACK:
        traffic = _actual_traffic(deployment)
        deployment_transition(
            deployment=deployment,
            to=S.FAILED,
            reason=f"Rolling back failed: {exc.message}; the target reports traffic {traffic}."[:300],
            attempts=0,
        )
        return None
    deployment_transition(
        deployment=deployment, to=S.ROLLING_BACK, reason=f"Target error: {exc.message}"[:300], attempts=0
    )
    return 0.0


def _actual_traffic(deployment: Deployment) -> dict[str, int]:
    """What the target says it applies now, saved on the endpoint so no page shows a split nobody set."""
    try:
        weights = target_for(deployment.endpoint).status().weights
    except TargetError:
        return dict(deployment.endpoint.traffic)
    Endpoint.objects.filter(pk=deployment.endpoint_id).update(traffic=weights)
    deployment.endpoint.traffic = weights
    return weights


def _plan(deployment: Deployment) -> list[Step]:
    """The stored plan. Only a canary's steps are its own; the others' one 100% step is what planning gives."""
    custom = deployment.strategy == Strategy.CANARY and deployment.steps
    return plan_steps(strategy=deployment.strategy, steps=deployment.steps if custom else None)


def _names(deployment: Deployment) -> tuple[str, str | None]:
    baseline = deployment.baseline_version
    return variant_name(deployment.version.version), (variant_name(baseline.version) if baseline else None)


def _set_traffic(deployment: Deployment, *, new_weight: int, now: datetime, message: str) -> None:
    new, stable = _names(deployment)
    weights = {new: new_weight}
    if stable is not None:
        weights[stable] = 100 - new_weight
    elif new_weight != 100:
        weights[new] = 100  # nothing else to send traffic to
    target_for(deployment.endpoint).set_weights(weights=weights)
    Endpoint.objects.filter(pk=deployment.endpoint_id).update(traffic=weights, updated_at=now)
    deployment.endpoint.traffic = weights
    Deployment.objects.filter(pk=deployment.pk).update(canary_weight=weights[new])
    deployment.canary_weight = weights[new]
    _event(deployment, EventKind.SHIFTED, now=now, weights=weights, message=message)


def _pending(deployment: Deployment, now: datetime) -> float | None:
    if deployment.endpoint.require_approval:
        deployment_transition(deployment=deployment, to=S.AWAITING_APPROVAL, reason="Waiting for a manager's go.")
        return None
    deployment_transition(deployment=deployment, to=S.PROVISIONING, reason="Preparing the new version.")
    return 0.0


def _provisioning(deployment: Deployment, now: datetime) -> float | None:
    endpoint = deployment.endpoint
    target = target_for(endpoint)
    if deployment.baseline_version is not None:
        target.prepare(variant=variant_spec(endpoint, deployment.baseline_version))  # idempotent: already there
    target.prepare(variant=variant_spec(endpoint, deployment.version))
    url = target.status().url
    if url and url != endpoint.url:
        Endpoint.objects.filter(pk=endpoint.pk).update(url=url)
        endpoint.url = url
    _event(deployment, EventKind.PREPARED, now=now, message=f"v{deployment.version.version} is ready at 0%.")
    if deployment.baseline_version is None:
        deployment_transition(deployment=deployment, to=S.PROMOTING, reason="First version of the endpoint.")
        return 0.0
    deployment_transition(deployment=deployment, to=S.SHIFTING, reason="Shifting traffic.", step_index=0)
    return 0.0


def _shifting(deployment: Deployment, now: datetime) -> float | None:
    steps = _plan(deployment)
    step = steps[deployment.step_index]
    if step.pause:
        deployment_transition(
            deployment=deployment,
            to=S.PAUSED,
            reason="Manual judgement: resume to carry on, or roll back.",
            resume_to=S.SHIFTING,
            step_index=deployment.step_index + 1,
        )
        _event(deployment, EventKind.PAUSED, now=now, message="Waiting for a manual judgement.")
        return None
    if step.weight is None or step.weight >= 100:
        deployment_transition(deployment=deployment, to=S.PROMOTING, reason="Last step: promoting.")
        return 0.0
    _set_traffic(
        deployment,
        new_weight=step.weight,
        now=now,
        message=f"Step {deployment.step_index + 1}: {step.weight}% on v{deployment.version.version}.",
    )
    deployment_transition(
        deployment=deployment, to=S.BAKING, reason=f"Baking {step.bake_seconds} s.", step_started_at=now
    )
    return _baking(deployment, now)  # wakes for the first measurement, not only at the bake's end


def _baking(deployment: Deployment, now: datetime) -> float | None:
    """Wait out the step's bake while its checks are already measured (Argo Rollouts' background analysis):
    a failing measurement rolls back at once, mid-bake; once the bake is over, the step is analyzed with the
    measurements taken so far counting towards each check's `count`."""
    step = _plan(deployment)[deployment.step_index]
    started = deployment.step_started_at or now
    left = (started + timedelta(seconds=step.bake_seconds) - now).total_seconds()
    analyzed = step.analyzed and gates.has_checks(deployment)
    if analyzed and left > 0:
        verdict = gates.measure_due(deployment, now=now)
        if verdict.phase == gates.FAILED:
            return _gate_failed(deployment, verdict)
        return min(left, gates.next_measurement_in(deployment, now=now))
    if left > 0:
        return left
    if analyzed:
        deployment_transition(deployment=deployment, to=S.ANALYZING, reason="Measuring.")
        return _analyzing(deployment, now)
    return _next_step(deployment, now)


def _gate_failed(deployment: Deployment, verdict: gates.Verdict) -> float:
    deployment_transition(deployment=deployment, to=S.ROLLING_BACK, reason=f"Gate failed: {verdict.message}"[:300])
    return 0.0


def _next_step(deployment: Deployment, now: datetime) -> float:
    deployment_transition(
        deployment=deployment, to=S.SHIFTING, reason="Next step.", step_index=deployment.step_index + 1
    )
    return 0.0


def _analyzing(deployment: Deployment, now: datetime) -> float | None:
    verdict = gates.measure_due(deployment, now=now)
    if verdict.phase == gates.FAILED:
        return _gate_failed(deployment, verdict)
    if verdict.phase == gates.INCONCLUSIVE:
        deployment_transition(
            deployment=deployment,
            to=S.PAUSED,
            reason=f"Inconclusive: {verdict.message}"[:300],
            resume_to=S.SHIFTING,
            step_index=deployment.step_index + 1,
        )
        _event(deployment, EventKind.PAUSED, now=now, message=f"Inconclusive analysis: {verdict.message}")
        return None
    if verdict.phase == gates.SUCCESSFUL:
        _event(deployment, EventKind.ANALYSIS, now=now, message=f"Step {deployment.step_index + 1} passed.")
        return _next_step(deployment, now)
    return gates.next_measurement_in(deployment, now=now)


def _promoting(deployment: Deployment, now: datetime) -> float | None:
    """Send everything to the new version, watch its SLO burn rate for the post-promotion window (the old
    variant stays ready for an instant rollback), then make it the endpoint's stable version."""
    if deployment.canary_weight != 100 or deployment.promoted_at is None:
        _set_traffic(deployment, new_weight=100, now=now, message=f"100% on v{deployment.version.version}.")
        Deployment.objects.filter(pk=deployment.pk).update(promoted_at=now)
        deployment.promoted_at = now
        _event(deployment, EventKind.PROMOTED, now=now, message="Promoted; watching the SLO burn rate.")
    watch = gates.post_promotion_seconds(deployment)
    if deployment.baseline_version is not None and watch > 0:
        breach = gates.burn_rate_breach(deployment, now=now)
        if breach is not None:
            deployment_transition(deployment=deployment, to=S.ROLLING_BACK, reason=f"SLO burn: {breach}"[:300])
            return 0.0
        left = (deployment.promoted_at + timedelta(seconds=watch) - now).total_seconds()
        if left > 0:
            return min(left, gates.burn_rate_interval(deployment))
    _, stable = _names(deployment)
    new, stable = _names(deployment)
    if stable is not None:
        target_for(deployment.endpoint).teardown(variant=stable)
        _event(deployment, EventKind.TORN_DOWN, now=now, weights={new: 100}, message=f"Removed {stable}.")
    Endpoint.objects.filter(pk=deployment.endpoint_id).update(
        stable_version=deployment.version, traffic={new: 100}, updated_at=now
    )
    deployment_transition(deployment=deployment, to=S.SUCCEEDED, reason=f"v{deployment.version.version} serves 100%.")
    return None


def _rolling_back(deployment: Deployment, now: datetime) -> float | None:
    _, stable = _names(deployment)
    if stable is not None:
        _set_traffic(deployment, new_weight=0, now=now, message=f"100% back on {stable}.")
        Deployment.objects.filter(pk=deployment.pk).update(restored_at=now)
        deployment.restored_at = now
    _remove_new_variant(deployment, now)
    end = deployment.end_state or S.ROLLED_BACK
    deployment_transition(
        deployment=deployment,
        to=end,
        reason=deployment.state_reason or ("Aborted." if end == S.ABORTED else "Rolled back."),
    )
    return None


def _remove_new_variant(deployment: Deployment, now: datetime) -> None:
    """Tear the new variant down (never the one serving); a failure to do so is recorded, not raised."""
    new, stable = _names(deployment)
    try:
        if stable is None:
            target_for(deployment.endpoint).teardown()
            Endpoint.objects.filter(pk=deployment.endpoint_id).update(traffic={})
            deployment.endpoint.traffic = {}
        else:
            target_for(deployment.endpoint).teardown(variant=new)
            Endpoint.objects.filter(pk=deployment.endpoint_id).update(traffic={stable: 100})
            deployment.endpoint.traffic = {stable: 100}
        _event(deployment, EventKind.TORN_DOWN, now=now, message=f"Removed {new}.")
    except TargetError as exc:
        _event(deployment, EventKind.ERROR, now=now, message=f"Could not remove {new}: {exc.message}")


def _waiting(deployment: Deployment, now: datetime) -> float | None:
    return None


HANDLERS: dict[DeploymentState, Callable[[Deployment, datetime], float | None]] = {
    S.PENDING: _pending,
    S.AWAITING_APPROVAL: _waiting,
    S.PROVISIONING: _provisioning,
    S.SHIFTING: _shifting,
    S.BAKING: _baking,
    S.ANALYZING: _analyzing,
    S.PAUSED: _waiting,
    S.PROMOTING: _promoting,
    S.ROLLING_BACK: _rolling_back,
}


def due_deployments(*, now: datetime) -> list[int]:
    """Deployments whose next action is due and whose lease (if any) ran out: a killed worker's, say."""
    return list(
        Deployment.objects.filter(state__in=sorted(WORKING_STATES))
        .filter(Q(next_action_at__isnull=True) | Q(next_action_at__lte=now))
        .filter(Q(lease_until__isnull=True) | Q(lease_until__lt=now))
        .values_list("pk", flat=True)
    )


def resume_due(*, now: datetime | None = None) -> int:
    """The beat's safety net: advance every due deployment (a lost task, a killed worker)."""
    now = now or timezone.now()
    count = 0
    for pk in due_deployments(now=now):
        advance(deployment_id=pk, now=now)
        count += 1
    return count


# --- People -----------------------------------------------------------------------------------------------


def _act(*, actor: User, deployment: Deployment, to: str, reason: str, kind: str, **fields: Any) -> Deployment:
    require(actor, "deployment.operate", deployment, message="Only members of the team operate its rollouts.")
    deployment = deployment_transition(deployment=deployment, to=to, actor=actor, reason=reason, **fields)
    _event(deployment, kind, actor=actor, message=reason)
    Deployment.objects.filter(pk=deployment.pk).update(next_action_at=timezone.now())
    schedule(deployment, delay=0)
    return deployment


def approve(*, actor: User, deployment: Deployment) -> Deployment:
    require(actor, "model.approve", deployment, message="Only a manager of the team approves its rollouts.")
    if actor.pk == deployment.requested_by_id:
        raise InvalidDeployment("You requested this rollout; another manager approves it.")
    return _act(
        actor=actor,
        deployment=deployment,
        to=S.PROVISIONING,
        reason=f"Approved by {actor.username}.",
        kind=EventKind.APPROVED,
        approved_by=actor,
    )


def pause(*, actor: User, deployment: Deployment) -> Deployment:
    if deployment.state not in {S.SHIFTING, S.BAKING, S.ANALYZING}:
        raise InvalidDeployment("Only a rollout that is shifting, baking or analyzing can be paused.")
    return _act(
        actor=actor,
        deployment=deployment,
        to=S.PAUSED,
        reason=f"Paused by {actor.username}.",
        kind=EventKind.PAUSED,
        resume_to=S.SHIFTING,
    )


def resume(*, actor: User, deployment: Deployment) -> Deployment:
    """Carry on where it paused: the step it was on (or, after a pause step or an inconclusive analysis, the
    next one), re-applying that step's traffic first."""
    if deployment.state != S.PAUSED:
        raise InvalidDeployment("Only a paused rollout can be resumed.")
    return _act(
        actor=actor,
        deployment=deployment,
        to=deployment.resume_to or S.SHIFTING,
        reason=f"Resumed by {actor.username}.",
        kind=EventKind.RESUMED,
    )


def promote(*, actor: User, deployment: Deployment) -> Deployment:
    """Skip the remaining steps: 100% on the new version now (the post-promotion watch still applies)."""
    return _act(
        actor=actor,
        deployment=deployment,
        to=S.PROMOTING,
        reason=f"Promoted by {actor.username}, skipping the remaining steps.",
        kind=EventKind.PROMOTED,
    )


def rollback(*, actor: User, deployment: Deployment) -> Deployment:
    return _act(
        actor=actor,
        deployment=deployment,
        to=S.ROLLING_BACK,
        reason=f"Rolled back by {actor.username}.",
        kind=EventKind.ROLLBACK,
    )


def abort(*, actor: User, deployment: Deployment) -> Deployment:
    """Stop the rollout for good: traffic back on stable, ending as aborted rather than rolled back."""
    if deployment.state in {S.PENDING, S.AWAITING_APPROVAL}:
        return _act(
            actor=actor,
            deployment=deployment,
            to=S.ABORTED,
            reason=f"Aborted by {actor.username}.",
            kind=EventKind.DONE,
        )
    return _act(
        actor=actor,
        deployment=deployment,
        to=S.ROLLING_BACK,
        reason=f"Aborted by {actor.username}.",
        kind=EventKind.ROLLBACK,
        end_state=S.ABORTED,
    )
