"""factory_boy factories for every model. The API scoping test looks factories up by model, so each new
team-owned model registers one in TEAM_SCOPED_FACTORIES."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

import factory
from django.contrib.auth import get_user_model
from django.db.models import Model
from django.utils import timezone

from apps.accounts.models import ApiToken, Membership, Role, Team
from apps.accounts.tokens import digest
from apps.audit.models import AuditEvent
from apps.catalog.models import Lifecycle, Template, TemplateVersion
from apps.clusters.models import Cluster, GpuRollup, Node, PurchaseOption
from apps.clusters.services import new_node_token
from apps.costs.models import Budget, CostLineItem, CostSource, SharedCostRule
from apps.deployments.models import Deployment, Endpoint, EndpointTraffic, Experiment
from apps.feedback.models import SurveyPrompt, SurveyResponse
from apps.registry.models import Model as RegisteredModel
from apps.registry.models import ModelVersion
from apps.runs.models import Run, Workspace
from apps.training.models import JobDefinition, TrainingJob

User = get_user_model()
PASSWORD = "correct-horse-battery"


class UserFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = User
        django_get_or_create = ("username",)
        skip_postgeneration_save = True

    username = factory.Sequence(lambda n: f"user{n}")
    email = factory.LazyAttribute(lambda u: f"{u.username}@example.com")
    password = factory.PostGenerationMethodCall("set_password", PASSWORD)

    @factory.post_generation
    def save_password(obj: Any, create: bool, extracted: Any, **kwargs: Any) -> None:
        if create:
            obj.save()


class TeamFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Team
        django_get_or_create = ("slug",)

    slug = factory.Sequence(lambda n: f"team{n}")
    name = factory.LazyAttribute(lambda t: t.slug.title())


class MembershipFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Membership

    user = factory.SubFactory(UserFactory)
    team = factory.SubFactory(TeamFactory)
    role = Role.MEMBER


class ApiTokenFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = ApiToken

    user = factory.SubFactory(UserFactory)
    name = factory.Sequence(lambda n: f"token{n}")
    prefix = "pvd_test"
    digest = factory.Sequence(lambda n: digest(f"pvd_test_secret_{n}"))


class AuditEventFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = AuditEvent

    created_at = factory.LazyFunction(timezone.now)
    team = factory.SubFactory(TeamFactory)
    verb = "test.event"
    actor_label = "someone"


# A small schema in the shape of the shipped golden paths, for tests that need a launchable version.
SIMPLE_SCHEMA: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "required": ["experiment_name"],
    "properties": {
        "experiment_name": {"type": "string", "pattern": "^[a-z][a-z0-9-]{2,39}$", "maxLength": 40},
        "framework": {"type": "string", "enum": ["pytorch", "jax"], "default": "pytorch"},
        "gpu_count": {"type": "integer", "minimum": 0, "maximum": 8, "default": 1},
        "notes": {"type": "string", "maxLength": 500},
    },
}
SIMPLE_PRICE: dict[str, Any] = {
    "currency": "USD",
    "base_hourly": "0.10",
    "components": [{"label": "GPUs", "parameter": "gpu_count", "hourly_per_unit": "1.50"}],
}


class TemplateFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Template
        django_get_or_create = ("slug",)

    slug = factory.Sequence(lambda n: f"template-{n}")
    name = factory.LazyAttribute(lambda t: t.slug.replace("-", " ").title())
    summary = "A template for tests."
    description = "# Heading\n\nSome *markdown*."


class TemplateVersionFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = TemplateVersion

    template = factory.SubFactory(TemplateFactory)
    version = "1.0.0"
    lifecycle = Lifecycle.PUBLISHED
    parameters_schema = factory.LazyFunction(lambda: dict(SIMPLE_SCHEMA))
    price_model = factory.LazyFunction(lambda: dict(SIMPLE_PRICE))
    module_path = "infra/templates/sandbox-experiment"
    default_ttl_hours = 24
    max_ttl_hours = 72
    published_at = factory.LazyFunction(timezone.now)


class WorkspaceFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Workspace

    team = factory.SubFactory(TeamFactory)
    name = factory.Sequence(lambda n: f"workspace-{n}")
    template_version = factory.SubFactory(TemplateVersionFactory)
    module_path = factory.LazyAttribute(lambda workspace: workspace.template_version.module_path)
    parameters = factory.LazyFunction(lambda: {"experiment_name": "exp-one", "framework": "pytorch", "gpu_count": 1})
    created_by = factory.SubFactory(UserFactory)


class RunFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Run

    workspace = factory.SubFactory(WorkspaceFactory)
    team = factory.LazyAttribute(lambda run: run.workspace.team)
    template_version = factory.LazyAttribute(lambda run: run.workspace.template_version)
    module_path = factory.LazyAttribute(lambda run: run.workspace.module_path)
    parameters = factory.LazyAttribute(lambda run: run.workspace.parameters)
    created_by = factory.LazyAttribute(lambda run: run.workspace.created_by)


class ClusterFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Cluster

    team = factory.SubFactory(TeamFactory)
    owner = factory.SubFactory(UserFactory)
    name = factory.Sequence(lambda n: f"cluster-{n}")
    region = "us-east-1"
    instance_type = "g5.xlarge"
    node_count = 1
    gpus_per_node = 1
    purchase_option = PurchaseOption.ON_DEMAND


class NodeFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Node

    cluster = factory.SubFactory(ClusterFactory)
    instance_id = factory.Sequence(lambda n: f"i-{n:017x}")
    gpu_count = 1
    token_digest = factory.LazyFunction(lambda: new_node_token()[1])


class CostLineItemFactory(factory.django.DjangoModelFactory):
    """One hour of spend; pass usage_start, team/workspace/... and net_cost (unblended follows it)."""

    class Meta:
        model = CostLineItem

    source = CostSource.CUR
    line_id = factory.Sequence(lambda n: f"line-{n}")
    usage_start = factory.LazyFunction(lambda: timezone.now().replace(minute=0, second=0, microsecond=0))
    usage_end = factory.LazyAttribute(lambda line: line.usage_start + timezone.timedelta(hours=1))
    billing_period = factory.LazyAttribute(lambda line: line.usage_start.date().replace(day=1))
    product_code = "AmazonEC2"
    usage_type = "BoxUsage:g5.xlarge"
    line_item_type = "Usage"
    net_cost = factory.LazyFunction(lambda: __import__("decimal").Decimal("1.00"))
    unblended_cost = factory.LazyAttribute(lambda line: line.net_cost)


class RegisteredModelFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = RegisteredModel

    team = factory.SubFactory(TeamFactory)
    name = factory.Sequence(lambda n: f"model-{n}")
    created_by = factory.SubFactory(UserFactory)


class ModelVersionFactory(factory.django.DjangoModelFactory):
    """A registered version; `approved=True` adds a production approval by the registrant."""

    class Meta:
        model = ModelVersion

    class Params:
        approved = factory.Trait(
            production_approved_by=factory.SelfAttribute("registered_by"),
            production_approved_at=factory.LazyFunction(timezone.now),
        )

    model = factory.SubFactory(RegisteredModelFactory)
    team = factory.LazyAttribute(lambda version: version.model.team)
    version = factory.Sequence(lambda n: n + 1)
    artifact_uri = "file:///var/models/iris/model.joblib"
    framework = "sklearn"
    registered_by = factory.LazyAttribute(lambda version: version.model.created_by)


class EndpointFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Endpoint

    model = factory.SubFactory(RegisteredModelFactory)
    team = factory.LazyAttribute(lambda endpoint: endpoint.model.team)
    name = factory.Sequence(lambda n: f"endpoint-{n}")
    created_by = factory.LazyAttribute(lambda endpoint: endpoint.model.created_by)


class EndpointTrafficFactory(factory.django.DjangoModelFactory):
    """An hour of an endpoint's traffic; pass endpoint, start and the counts."""

    class Meta:
        model = EndpointTraffic

    endpoint = factory.SubFactory(EndpointFactory)
    team = factory.LazyAttribute(lambda row: row.endpoint.team)
    start = factory.LazyFunction(lambda: timezone.now().replace(minute=0, second=0, microsecond=0))
    read_at = factory.LazyAttribute(lambda row: row.start + timedelta(minutes=55))


def deployment_for(team: Team, owner: Any) -> Deployment:
    """A finished (succeeded) deployment in `team`, written directly: the engine is not what is under test."""
    endpoint: Endpoint = EndpointFactory(model=RegisteredModelFactory(team=team, created_by=owner))
    version: ModelVersion = ModelVersionFactory(model=endpoint.model, approved=True)
    return Deployment.objects.create(
        team=team, endpoint=endpoint, version=version, requested_by=owner, state="succeeded", steps=[{"weight": 100}]
    )


def experiment_for(team: Team, owner: Any) -> Experiment:
    """A stopped A/B test in `team`, written directly."""
    endpoint: Endpoint = EndpointFactory(model=RegisteredModelFactory(team=team, created_by=owner))
    a: ModelVersion = ModelVersionFactory(model=endpoint.model, approved=True)
    b: ModelVersion = ModelVersionFactory(model=endpoint.model, approved=True)
    return Experiment.objects.create(
        team=team, endpoint=endpoint, name="a-vs-b", version_a=a, version_b=b, started_by=owner, state="stopped"
    )


def node_with_token(**fields: Any) -> tuple[Node, str]:
    """A node and the raw token its agent would hold."""
    raw, digest = new_node_token()
    return NodeFactory(token_digest=digest, **fields), raw


def team_only_template(team: Team) -> Template:
    """A template shared with `team` only, with one published version."""
    template = TemplateFactory(visible_to_all=False)
    template.visible_to.set([team])
    TemplateVersionFactory(template=template)
    return template


def member(team: Team, role: Role = Role.MEMBER, **user_fields: Any) -> Any:
    """A user who belongs to `team` with `role`."""
    user = UserFactory(**user_fields)
    MembershipFactory(user=user, team=team, role=role)
    return user


def shared_rule_for(team: Team) -> SharedCostRule:
    """A shared-cost rule that splits onto `team` only (what members of `team` may see of the rules)."""
    admin: Any = UserFactory(is_superuser=True)
    rule = SharedCostRule.objects.create(name=f"shared-{team.slug}", usage_type_contains="NatGateway", created_by=admin)
    rule.teams.set([team])
    return rule


class SurveyPromptFactory(factory.django.DjangoModelFactory):
    """A shown, open survey prompt about one of the user's launches (tests of when one is due go through
    feedback.services.offer_survey)."""

    class Meta:
        model = SurveyPrompt

    workspace = factory.SubFactory(WorkspaceFactory)
    user = factory.LazyAttribute(lambda prompt: prompt.workspace.created_by)
    team = factory.LazyAttribute(lambda prompt: prompt.workspace.team)
    template = factory.LazyAttribute(lambda prompt: prompt.workspace.template_version.template)
    launch_number = factory.Sequence(lambda n: n + 1)  # unique per user
    shown_at = factory.LazyFunction(timezone.now)


class SurveyResponseFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = SurveyResponse

    prompt = factory.SubFactory(SurveyPromptFactory, answered_at=factory.LazyFunction(timezone.now))
    user = factory.LazyAttribute(lambda response: response.prompt.user)
    team = factory.LazyAttribute(lambda response: response.prompt.team)
    template = factory.LazyAttribute(lambda response: response.prompt.template)
    workspace = factory.LazyAttribute(lambda response: response.prompt.workspace)
    score = 4


# model -> builder(team, owner) for the tenancy walker in tests/test_api_scoping.py.
# `owner` is a member of `team`, for personal objects such as tokens.
TEAM_SCOPED_FACTORIES: dict[type[Model], Callable[[Team, Any], Model]] = {
    Team: lambda team, owner: team,
    ApiToken: lambda team, owner: ApiTokenFactory(user=owner),
    AuditEvent: lambda team, owner: AuditEventFactory(team=team),
    Template: lambda team, owner: team_only_template(team),
    Workspace: lambda team, owner: WorkspaceFactory(team=team, created_by=owner),
    Run: lambda team, owner: RunFactory(workspace=WorkspaceFactory(team=team, created_by=owner)),
    Cluster: lambda team, owner: ClusterFactory(team=team, owner=owner),
    SharedCostRule: lambda team, owner: shared_rule_for(team),
    Budget: lambda team, owner: Budget.objects.create(
        team=team, name="Monthly", monthly_amount=Decimal("100"), created_by=owner
    ),
    RegisteredModel: lambda team, owner: RegisteredModelFactory(team=team, created_by=owner),
    ModelVersion: lambda team, owner: ModelVersionFactory(model=RegisteredModelFactory(team=team, created_by=owner)),
    Endpoint: lambda team, owner: EndpointFactory(model=RegisteredModelFactory(team=team, created_by=owner)),
    Deployment: deployment_for,
    EndpointTraffic: lambda team, owner: EndpointTrafficFactory(
        endpoint=EndpointFactory(model=RegisteredModelFactory(team=team, created_by=owner))
    ),
    Experiment: experiment_for,
    SurveyPrompt: lambda team, owner: SurveyPromptFactory(workspace=WorkspaceFactory(team=team, created_by=owner)),
}


class TrainingJobFactory(factory.django.DjangoModelFactory):
    """A queued job built directly (tests of the submission itself go through training.services.submit_job)."""

    class Meta:
        model = TrainingJob

    team = factory.SubFactory(TeamFactory)
    owner = factory.SubFactory(UserFactory)
    image = "ghcr.io/acme/trainer:1.0"
    command = factory.LazyFunction(lambda: ["python", "train.py"])
    gpus_per_node = 1
    node_count = 1
    max_run_minutes = 60
    submitted_at = factory.LazyFunction(timezone.now)


TEAM_SCOPED_FACTORIES[TrainingJob] = lambda team, owner: TrainingJobFactory(team=team, owner=owner)


class JobDefinitionFactory(factory.django.DjangoModelFactory):
    """A trigger-only definition built directly (tests of the contract go through definitions.create_definition)."""

    class Meta:
        model = JobDefinition

    team = factory.SubFactory(TeamFactory)
    owner = factory.SubFactory(UserFactory)
    name = factory.Sequence(lambda n: f"nightly-{n}")
    image = "ghcr.io/acme/trainer:1.0"
    command = factory.LazyFunction(lambda: ["python", "train.py"])
    gpus_per_node = 1
    max_run_minutes = 60


TEAM_SCOPED_FACTORIES[JobDefinition] = lambda team, owner: JobDefinitionFactory(team=team, owner=owner)


def gpu_rollups(node: Node, gpu: int, start: datetime, buckets: int, utilization: float, seconds: int = 300) -> None:
    """`buckets` telemetry rollups of one GPU of `node` from `start`, each `seconds` long, at `utilization` %."""
    GpuRollup.objects.bulk_create(
        GpuRollup(
            node=node,
            gpu_index=gpu,
            bucket_start=start + timedelta(seconds=seconds * n),
            bucket_seconds=seconds,
            sample_count=30,
            utilization_avg=utilization,
            utilization_max=utilization * 2,
            memory_used_avg_mib=6000,
            memory_used_max_mib=8000,
            memory_total_mib=24000,
        )
        for n in range(buckets)
    )
