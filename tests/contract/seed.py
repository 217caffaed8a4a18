"""The data the contract fuzzer runs against: the demo teams, users and shipped templates (`seed_demo`), plus for
each team a workspace with runs in the states the run actions care about, a cluster with a node, and the
credentials of every scheme the API accepts (Bearer tokens of members of both teams, a cluster's Bootstrap secret,
a node's token)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from io import StringIO
from typing import Any

from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.utils import timezone

from apps.accounts.models import Team
from apps.accounts.services import create_api_token
from apps.clusters.models import ClusterState
from apps.clusters.services.registration import new_bootstrap_token
from apps.runs.models import RunState
from tests.factories import ClusterFactory, NodeFactory, RunFactory, WorkspaceFactory, node_with_token

# The people whose tokens the fuzzer rotates through: a member of each team, a manager of both, a platform admin.
FUZZ_USERS = ("alice", "bob", "mark", "ada")


@dataclass
class ContractData:
    bearer_tokens: list[str] = field(default_factory=list)
    bootstrap_secret: str = ""
    node_token: str = ""
    # Existing objects by collection, which the hooks substitute for some generated path parameters.
    ids: dict[str, list[int]] = field(default_factory=dict)
    slugs: dict[str, list[str]] = field(default_factory=dict)

    def as_env(self) -> dict[str, Any]:
        return asdict(self)


def seed_contract_data() -> ContractData:
    call_command("seed_demo", password="fuzz-password-0123", stdout=StringIO())
    users = {user.username: user for user in get_user_model().objects.filter(username__in=FUZZ_USERS)}
    data = ContractData()
    ids: dict[str, list[int]] = {"runs": [], "workspaces": [], "clusters": [], "tokens": []}
    for username in FUZZ_USERS:
        token, raw = create_api_token(actor=users[username], name="contract-fuzz")
        data.bearer_tokens.append(raw)
        ids["tokens"].append(token.pk)
    for team, owner in (
        (Team.objects.get(slug="vision"), users["alice"]),
        (Team.objects.get(slug="nlp"), users["bob"]),
    ):
        workspace = WorkspaceFactory(team=team, created_by=owner, name=f"{team.slug}-fuzz")
        for state in (RunState.APPLIED, RunState.FAILED, RunState.QUEUED):
            ids["runs"].append(RunFactory(workspace=workspace, state=state).pk)
        ids["workspaces"].append(workspace.pk)
        secret, digest = new_bootstrap_token()
        cluster = ClusterFactory(
            team=team, owner=owner, name=f"{team.slug}-gpus", state=ClusterState.RUNNING, bootstrap_token_digest=digest
        )
        # One node that already registered (its token sends telemetry), one that may still register.
        _node, raw_node = node_with_token(cluster=cluster, registered_at=timezone.now())
        NodeFactory(cluster=cluster)
        ids["clusters"].append(cluster.pk)
        if not data.bootstrap_secret:
            data.bootstrap_secret, data.node_token = secret, raw_node
    data.ids = ids
    data.slugs = {"templates": ["sandbox-experiment", "gpu-cluster", "notebook-workspace"], "teams": ["vision", "nlp"]}
    return data
