"""The service catalog: Templates and their immutable, versioned TemplateVersions.

A launch always pins a TemplateVersion; publishing a newer version never touches existing workspaces. Once a
version leaves `draft`, its content (schema, module, price, policy) is frozen: only its lifecycle moves on.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from django.conf import settings
from django.db import models

from apps.core.models import BaseModel


class VersionFrozenError(Exception):
    """A published, deprecated or retired version's content cannot change."""


class TemplateKind(models.TextChoices):
    TERRAFORM = "terraform", "Terraform"
    GPU_CLUSTER = "gpu_cluster", "GPU cluster"
    DEPLOYMENT = "deployment", "Model deployment"
    TRAINING_JOB = "training_job", "Training job"


class Lifecycle(models.TextChoices):
    DRAFT = "draft", "Draft"
    PUBLISHED = "published", "Published"
    DEPRECATED = "deprecated", "Deprecated"
    RETIRED = "retired", "Retired"


class ApprovalPolicy(models.TextChoices):
    NEVER = "never", "Never"
    ALWAYS = "always", "Always"
    COST_ABOVE = "cost_above", "When the hourly estimate exceeds a threshold"


# Fields of a version that are frozen once it leaves draft.
VERSION_CONTENT_FIELDS = (
    "version",
    "parameters_schema",
    "ui_schema",
    "module_path",
    "price_model",
    "default_ttl_hours",
    "max_ttl_hours",
    "approval_policy",
    "approval_threshold",
    "plan_timeout_seconds",
    "apply_timeout_seconds",
    "changelog",
)


class Tag(models.Model):
    name = models.SlugField(max_length=40, unique=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class Template(BaseModel):
    slug = models.SlugField(max_length=63, unique=True)
    name = models.CharField(max_length=100)
    summary = models.CharField(max_length=200)
    description = models.TextField(blank=True, help_text="Markdown.")
    kind = models.CharField(max_length=16, choices=TemplateKind.choices, default=TemplateKind.TERRAFORM)
    icon = models.CharField(max_length=16, default="flask")
    tags = models.ManyToManyField(Tag, blank=True, related_name="templates")
    owner_team = models.ForeignKey(
        "accounts.Team", null=True, blank=True, on_delete=models.PROTECT, related_name="owned_templates"
    )
    visible_to_all = models.BooleanField(default=True)
    visible_to = models.ManyToManyField("accounts.Team", blank=True, related_name="visible_templates")
    launch_count = models.PositiveIntegerField(
        default=0,
        editable=False,
        help_text="Workspaces launched from its versions: kept by database triggers on the workspace table "
        "(runs migration 0009), in the transaction that inserts, deletes or re-pins a workspace.",
    )

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class ProviderCheck(models.Model):
    """Whether this installation can install one set of Terraform providers: the verdict of a real
    `terraform init` in a scratch directory, shared by every version that needs the same set. `key` digests the
    set and the CLI configuration it was tried with, so a new provider mirror means a new check."""

    key = models.CharField(max_length=64, unique=True)
    providers = models.JSONField(default=list, help_text="[[source, version constraints], ...], sorted.")
    installable = models.BooleanField()
    reason = models.TextField(blank=True, help_text="Why not: what terraform init said.")
    seconds = models.FloatField(default=0, help_text="How long terraform init took.")
    checked_at = models.DateTimeField()

    class Meta:
        ordering = ["-checked_at"]

    def __str__(self) -> str:
        return f"providers {self.providers}: {'installable' if self.installable else 'not installable'}"


class TemplateVersion(BaseModel):
    template = models.ForeignKey(Template, on_delete=models.CASCADE, related_name="versions")
    version = models.CharField(max_length=32, help_text="Semantic version, e.g. 1.2.0.")
    lifecycle = models.CharField(max_length=16, choices=Lifecycle.choices, default=Lifecycle.DRAFT)
    parameters_schema = models.JSONField(default=dict)
    ui_schema = models.JSONField(default=dict, blank=True)
    module_path = models.CharField(
        max_length=300, blank=True, help_text="Terraform module folder, relative to the repository or absolute."
    )
    price_model = models.JSONField(default=dict, blank=True)
    default_ttl_hours = models.PositiveIntegerField(null=True, blank=True)
    max_ttl_hours = models.PositiveIntegerField(null=True, blank=True)
    approval_policy = models.CharField(max_length=16, choices=ApprovalPolicy.choices, default=ApprovalPolicy.NEVER)
    approval_threshold = models.DecimalField(max_digits=12, decimal_places=2, null=True, blank=True)
    plan_timeout_seconds = models.PositiveIntegerField(
        null=True, blank=True, help_text="Empty: the platform default (PLAN_TIMEOUT_SECONDS)."
    )
    apply_timeout_seconds = models.PositiveIntegerField(
        null=True, blank=True, help_text="Empty: the platform default (APPLY_TIMEOUT_SECONDS)."
    )
    changelog = models.TextField(blank=True)
    source = models.CharField(max_length=32, default="portal", help_text="portal, infra (sync_templates), backstage")
    import_report = models.JSONField(default=list, blank=True, help_text="What an import could not carry over.")
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    required_providers = models.JSONField(
        null=True,
        blank=True,
        help_text="Non-builtin providers of the module, [[source, constraints], ...]; null: not read yet.",
    )
    providers_check = models.ForeignKey(
        ProviderCheck, null=True, blank=True, on_delete=models.SET_NULL, related_name="versions"
    )
    published_at = models.DateTimeField(null=True, blank=True)
    deprecated_at = models.DateTimeField(null=True, blank=True)
    retired_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["template__slug", "-created_at"]
        constraints = [models.UniqueConstraint(fields=["template", "version"], name="unique_template_version")]

    def __str__(self) -> str:
        return f"{self.template.slug}@{self.version}"

    @property
    def is_launchable(self) -> bool:
        return self.lifecycle == Lifecycle.PUBLISHED

    @property
    def providers_problem(self) -> str:
        """Why this installation cannot install the module's providers; "" when it can (or was never checked)."""
        check = self.providers_check
        return "" if check is None or check.installable else check.reason

    @property
    def currency(self) -> str:
        return str(self.price_model.get("currency", "USD"))

    def approval_threshold_or_zero(self) -> Decimal:
        return self.approval_threshold if self.approval_threshold is not None else Decimal("0")

    def save(self, *args: Any, **kwargs: Any) -> None:
        if self.pk is not None:
            stored = TemplateVersion.objects.filter(pk=self.pk).values(*VERSION_CONTENT_FIELDS, "lifecycle").first()
            if stored is not None and stored["lifecycle"] != Lifecycle.DRAFT:
                changed = [field for field in VERSION_CONTENT_FIELDS if stored[field] != getattr(self, field)]
                if changed:
                    raise VersionFrozenError(
                        f"{self} is {stored['lifecycle']}: its content is frozen "
                        f"(tried to change {', '.join(changed)}). Create a new version instead."
                    )
        super().save(*args, **kwargs)

    def content(self) -> dict[str, Any]:
        """The frozen part of a version, as plain data (used for immutability checks and diffs)."""
        return {field: getattr(self, field) for field in VERSION_CONTENT_FIELDS}


class TemplateViewDay(models.Model):
    """How often a template's catalog page was opened on one (UTC) day, by the viewer's current team (none: a
    viewer without a team): the top of the template funnel (views -> launches -> first apply). A counter, not an
    audit event: opening a page changes nothing. Incremented in place (`catalog.services.page_views`)."""

    template = models.ForeignKey(Template, on_delete=models.CASCADE, related_name="view_days")
    team = models.ForeignKey("accounts.Team", null=True, blank=True, on_delete=models.CASCADE, related_name="+")
    day = models.DateField()
    views = models.PositiveIntegerField(default=0)

    class Meta:
        ordering = ["-day", "template"]
        constraints = [
            # NULLs compare unequal in a plain unique constraint, so the team-less row has its own.
            models.UniqueConstraint(
                fields=["template", "team", "day"], condition=models.Q(team__isnull=False), name="unique_view_day"
            ),
            models.UniqueConstraint(
                fields=["template", "day"], condition=models.Q(team__isnull=True), name="unique_view_day_no_team"
            ),
        ]
        indexes = [models.Index(fields=["day", "team"])]

    def __str__(self) -> str:
        return f"{self.day} {self.template_id} team {self.team_id}: {self.views}"
