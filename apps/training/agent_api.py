"""The node agent's side of training jobs (`Authorization: Node <token>`, never a person): claim a rank of the job
scheduled on the node's cluster (a multi-node job answers once all its ranks are claimed), post its output in
batches (the answer says `stop` once it was cancelled), report its exit. Thin: `services/agent.py` scopes every
call to the node and decides."""

from __future__ import annotations

from typing import Any

from drf_spectacular.utils import extend_schema
from rest_framework import serializers, status
from rest_framework.permissions import BasePermission
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.throttling import SimpleRateThrottle
from rest_framework.views import APIView

from apps.clusters.authentication import NodeTokenAuthentication
from apps.clusters.models import Node
from apps.training.api import CommandField, EnvironmentField
from apps.training.services import agent


class IsNodeAgent(BasePermission):
    message = "Training jobs are claimed and reported by node agents: Authorization: Node <token>."

    def has_permission(self, request: Request, view: APIView) -> bool:
        return isinstance(request.auth, Node)


class IsNodeAgentOrSignedIn(BasePermission):
    """A job's endpoints answer any signed-in caller, but only the node that claimed the job finds it: anyone else
    (another node, or a person, who never reaches them with a real credential) gets the same 404."""

    message = IsNodeAgent.message

    def has_permission(self, request: Request, view: APIView) -> bool:
        return isinstance(request.auth, Node) or bool(request.user and request.user.is_authenticated)


class NodeJobsThrottle(SimpleRateThrottle):
    """Per node: a running job's agent posts its log about once a second; a flood is refused with 429."""

    scope = "node_jobs"
    rate = "300/min"

    def get_cache_key(self, request: Request, view: APIView) -> str | None:
        return f"node-jobs-{request.auth.pk}" if isinstance(request.auth, Node) else None


class ClaimedJobSerializer(serializers.Serializer[Any]):
    id = serializers.IntegerField()
    image = serializers.CharField()
    command = CommandField(help_text="Arguments, run as given (never through a shell).")
    environment = EnvironmentField(help_text="The job's environment plus RANK, WORLD_SIZE, MASTER_ADDR, ….")
    max_run_seconds = serializers.IntegerField(help_text="Stop the process once it has run this long.")
    next_log_line = serializers.IntegerField(help_text="Number the first log line sent with (a retry continues).")
    rank = serializers.IntegerField(required=False, help_text="This node's rank of the job (0: the rendezvous).")
    gpus_per_node = serializers.IntegerField(required=False, help_text="GPUs the job uses on this node.")
    gpu_ids = serializers.ListField(
        child=serializers.IntegerField(), required=False, help_text="The node's GPU indexes to give the job."
    )


class LogBatchSerializer(serializers.Serializer[Any]):
    first_line = serializers.IntegerField(min_value=1, max_value=2**31 - 1, help_text="Number of lines[0], from 1.")
    lines = serializers.ListField(
        child=serializers.CharField(max_length=agent.MAX_LOG_LINE_CHARS, allow_blank=True, trim_whitespace=False),
        max_length=agent.MAX_LOG_LINES,
        help_text="stdout and stderr lines, without their newlines; empty: just a heartbeat.",
    )


class LogAppendSerializer(serializers.Serializer[Any]):
    accepted = serializers.IntegerField(help_text="Lines stored (a resent batch stores none).")
    next_line = serializers.IntegerField()
    state = serializers.CharField()
    stop = serializers.BooleanField(help_text="The job no longer runs here (cancelled, timed out): stop it.")


class ExitSerializer(serializers.Serializer[Any]):
    exit_code = serializers.IntegerField(min_value=-(2**31), max_value=2**31 - 1)
    timed_out = serializers.BooleanField(default=False, help_text="The agent stopped it at its max run time.")


class JobOutcomeSerializer(serializers.Serializer[Any]):
    id = serializers.IntegerField()
    state = serializers.CharField()
    exit_code = serializers.IntegerField(allow_null=True)


class NodeAgentView(APIView):
    authentication_classes = [NodeTokenAuthentication]
    permission_classes = [IsNodeAgent]
    throttle_classes = [NodeJobsThrottle]

    def node(self, request: Request) -> Node:
        assert isinstance(request.auth, Node)  # noqa: S101 - guaranteed by IsNodeAgent
        return request.auth


class NodeJobView(NodeAgentView):
    permission_classes = [IsNodeAgentOrSignedIn]

    def node_or_none(self, request: Request) -> Node | None:
        return request.auth if isinstance(request.auth, Node) else None


class ClaimJobView(NodeAgentView):
    @extend_schema(
        request=None,
        responses={200: ClaimedJobSerializer, 204: None},
        summary="Claim a rank of the training job scheduled on this node's cluster; 204: none, or its other "
        "nodes have not claimed yet (claim again)",
    )
    def post(self, request: Request) -> Response:
        node = self.node(request)
        part = agent.claim_job(node=node)
        if part is None:
            return Response(status=status.HTTP_204_NO_CONTENT)
        job = part.job
        data = {
            "id": job.pk,
            "image": job.image,
            "command": job.command,
            "environment": agent.job_environment(job, node),
            "max_run_seconds": job.max_run_minutes * 60,
            "next_log_line": part.next_line,
            "rank": part.rank,
            "gpus_per_node": job.gpus_per_node,
            "gpu_ids": list(range(job.gpus_per_node)),
        }
        return Response(ClaimedJobSerializer(data).data)


class JobLogView(NodeJobView):
    @extend_schema(
        request=LogBatchSerializer,
        responses={200: LogAppendSerializer},
        summary="Append a batch of the job's output lines (and learn whether it should stop)",
    )
    def post(self, request: Request, pk: int) -> Response:
        agent.job_of_node(node=self.node_or_none(request), job_id=pk)  # an unknown job is a 404, whatever the body
        payload = LogBatchSerializer(data=request.data)
        payload.is_valid(raise_exception=True)
        result = agent.append_log(
            node=self.node_or_none(request),
            job_id=pk,
            first_line=payload.validated_data["first_line"],
            lines=list(payload.validated_data["lines"]),
        )
        return Response(LogAppendSerializer(result.__dict__).data)


class JobExitView(NodeJobView):
    @extend_schema(
        request=ExitSerializer,
        responses={200: JobOutcomeSerializer},
        summary="Report the job's exit code (0 succeeded, other failed); resending is harmless",
    )
    def post(self, request: Request, pk: int) -> Response:
        agent.job_of_node(node=self.node_or_none(request), job_id=pk)
        payload = ExitSerializer(data=request.data)
        payload.is_valid(raise_exception=True)
        job = agent.report_exit(node=self.node_or_none(request), job_id=pk, **payload.validated_data)
        return Response(JobOutcomeSerializer({"id": job.pk, "state": job.state, "exit_code": job.exit_code}).data)
