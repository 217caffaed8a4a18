"""Who spent it: the `paved:*` tags Paved writes on everything it creates, resolved to rows.

The same tag arrives spelled three ways: `paved:team` (EC2, Terraform, Cost Explorer), `user_paved_team` (CUR 2.0
`resource_tags` keys) and `resourceTags/user:paved:team` (legacy CUR headers). `tag_key` folds all three to one key.
Values are what Paved wrote: the team slug, the workspace name, the cluster's id, `template-slug@version`, the
owner's username. A line whose team tag resolves to no team is unallocated (team None), never guessed.

`Resolver` caches each distinct tag combination, so an import of a million lines resolves a few hundred tuples.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.contrib.auth.models import User

from apps.accounts.models import Team
from apps.catalog.models import Template
from apps.clusters.models import Cluster
from apps.runs.models import Workspace

TEAM, WORKSPACE, CLUSTER, TEMPLATE, OWNER = "team", "workspace", "cluster", "template", "owner"
PAVED_TAGS = (TEAM, WORKSPACE, CLUSTER, TEMPLATE, OWNER)
# What EC2's usage types look like: "BoxUsage:g5.xlarge", "USW2-SpotUsage:p4d.24xlarge".
INSTANCE_USAGE = re.compile(r"(?:BoxUsage|SpotUsage|DedicatedUsage|HostUsage)[^:]*:([a-z0-9]+\.[a-z0-9]+)$")
_NOT_ALNUM = re.compile(r"[^a-z0-9]+")


def tag_key(raw: str) -> str:
    """`paved:team`, `user_paved_team`, `resourceTags/user:paved:team` -> `paved_team`."""
    key = _NOT_ALNUM.sub("_", raw.lower()).strip("_")
    for prefix in ("resourcetags_", "user_"):
        if key.startswith(prefix):
            key = key[len(prefix) :]
    return key


def paved_tags(tags: Mapping[str, Any]) -> dict[str, str]:
    """The Paved tags among `tags`, by short name (`team`, `workspace`, ...); other tags are ignored."""
    found: dict[str, str] = {}
    for raw, value in tags.items():
        key = tag_key(str(raw))
        if key.startswith("paved_") and value not in (None, ""):
            name = key[len("paved_") :]
            if name in PAVED_TAGS:
                found[name] = str(value).strip()
    return found


def instance_type_of(usage_type: str) -> str:
    match = INSTANCE_USAGE.search(usage_type or "")
    return match.group(1) if match else ""


@dataclass(frozen=True)
class Attribution:
    team_id: int | None = None
    workspace_id: int | None = None
    cluster_id: int | None = None
    template_id: int | None = None
    user_id: int | None = None
    instance_type: str = ""

    def owners(self) -> dict[str, int | None]:
        """The resolved rows as a line item's foreign keys (`CostLineItem(**attribution.owners(), ...)`)."""
        return {
            "team_id": self.team_id,
            "workspace_id": self.workspace_id,
            "cluster_id": self.cluster_id,
            "template_id": self.template_id,
            "user_id": self.user_id,
        }


UNALLOCATED = Attribution()
TagTuple = tuple[str, str, str, str, str]


def tag_tuple(tags: Mapping[str, str]) -> TagTuple:
    """The resolver's cache key: the five Paved tag values, "" where missing."""
    return (
        tags.get(TEAM, ""),
        tags.get(WORKSPACE, ""),
        tags.get(CLUSTER, ""),
        tags.get(TEMPLATE, ""),
        tags.get(OWNER, ""),
    )


class Resolver:
    """Resolves tag tuples to rows, one query per distinct tuple at most; build one per import or metering pass."""

    def __init__(self) -> None:
        self._cache: dict[tuple[TagTuple, str], Attribution] = {}
        self._teams = {team.slug: team.pk for team in Team.objects.only("pk", "slug")}
        self._users: dict[str, int | None] = {}
        self._templates: dict[str, int | None] = {}

    def resolve(self, tags: Mapping[str, Any], *, usage_type: str = "", when: datetime | None = None) -> Attribution:
        found = paved_tags(tags)
        key = (tag_tuple(found), instance_type_of(usage_type))
        if key not in self._cache:
            self._cache[key] = self._resolve(found, key[1], when)
        return self._cache[key]

    def _resolve(self, tags: Mapping[str, str], instance_type: str, when: datetime | None) -> Attribution:
        cluster = self._cluster(tags.get(CLUSTER, ""))
        team_id = self._teams.get(tags.get(TEAM, ""))
        if cluster is not None:
            team_id = team_id or cluster.team_id
            if cluster.team_id != team_id:  # a cluster tag from another team's cluster: trust the team tag only
                cluster = None
        if team_id is None:
            return Attribution(instance_type=instance_type)
        workspace = self._workspace(team_id, tags.get(WORKSPACE, ""), when)
        template_id = self._template(tags.get(TEMPLATE, ""))
        if template_id is None and workspace is not None:
            template_id = workspace.template_version.template_id
        user_id = self._user(tags.get(OWNER, ""))
        if user_id is None:
            user_id = workspace.created_by_id if workspace else (cluster.owner_id if cluster else None)
        return Attribution(
            team_id=team_id,
            workspace_id=workspace.pk if workspace else None,
            cluster_id=cluster.pk if cluster else None,
            template_id=template_id,
            user_id=user_id,
            instance_type=(cluster.instance_type if cluster else "") or instance_type,
        )

    @staticmethod
    def _cluster(value: str) -> Cluster | None:
        if not value.isdigit():
            return None
        return Cluster.objects.filter(pk=int(value)).only("pk", "team_id", "owner_id", "instance_type").first()

    @staticmethod
    def _workspace(team_id: int, name: str, when: datetime | None) -> Workspace | None:
        """Names are unique among a team's live workspaces and may be reused later: take the newest one that
        existed when the spend happened."""
        if not name:
            return None
        workspaces = Workspace.objects.filter(team_id=team_id, name=name).select_related("template_version")
        if when is not None:
            workspaces = workspaces.filter(created_at__lte=when)
        return workspaces.order_by("-created_at").first()

    def _template(self, value: str) -> int | None:
        slug = value.split("@", 1)[0]
        if slug and slug not in self._templates:
            self._templates[slug] = Template.objects.filter(slug=slug).values_list("pk", flat=True).first()
        return self._templates.get(slug)

    def _user(self, username: str) -> int | None:
        if username and username not in self._users:
            self._users[username] = User.objects.filter(username=username).values_list("pk", flat=True).first()
        return self._users.get(username)
