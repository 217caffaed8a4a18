"""`Authorization: Bearer pvj_…`: the token a training job's process gets in MLFLOW_TRACKING_TOKEN. It is valid
only while its job is scheduled or running and only for that job's run (the views check the grant); a personal
token (`pvd_…`) falls through to the accounts' Bearer authentication."""

from __future__ import annotations

from typing import Any

from rest_framework import authentication
from rest_framework.request import Request

from apps.accounts.authentication import HeaderTokenAuthentication
from apps.tracking import selectors
from apps.tracking.models import TrackingRun
from apps.tracking.services import JOB_TOKEN_PREFIX


class JobTokenAuthentication(HeaderTokenAuthentication):
    keyword = "Bearer"
    prefix = JOB_TOKEN_PREFIX
    unknown = "The job's tracking token is unknown, or its job has ended."

    def authenticate(self, request: Request) -> tuple[Any, Any] | None:
        header = authentication.get_authorization_header(request).split()
        if len(header) != 2 or header[0].lower() != b"bearer" or not header[1].startswith(JOB_TOKEN_PREFIX.encode()):
            return None  # not a job token: the next class (personal tokens) decides
        return super().authenticate(request)

    def lookup(self, digest: str) -> tuple[Any, Any] | None:
        run = selectors.run_by_token(digest)
        if run is None or run.training_job is None:
            return None
        return run.training_job.owner, JobGrant(run)


class JobGrant:
    """What a job token may touch: its run, and reading its run's experiment."""

    def __init__(self, run: TrackingRun) -> None:
        self.run = run
