"""What was spent (CostLineItem, from the AWS bill, Paved's own metering or Cost Explorer), rolled up by day
(CostDaily, CostAllocation), and what a team may spend (Budget, with the alerts it fired).

Line items are keyed by their source's own line id, so a re-import replaces rather than duplicates. Each row is
attributed to a team, workspace, cluster, template and user through the `paved:*` tags Paved writes
(`apps.costs.attribution`); a row no tag resolves stays with team NULL: the "unallocated" bucket, never dropped.
Pages read the daily rollups, never the line items (`apps.costs.services.rollups` keeps them current by deleting
and re-inserting the days an import or a metering pass touched).
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from django.conf import settings
from django.db import models

from apps.core.models import BaseModel
from apps.costs.money import amount_field, currency_field


class CostSource(models.TextChoices):
    CUR = "cur", "AWS Cost and Usage Report"
    METERING = "metering", "Paved metering"
    COST_EXPLORER = "cost_explorer", "AWS Cost Explorer"


# Showback reads one source per billing period: the bill where one was imported, else Paved's metering.
# Cost Explorer is only ever compared against the other two (reconciliation), never added to them.
SHOWBACK_SOURCES = (CostSource.CUR, CostSource.METERING)


class ImportStatus(models.TextChoices):
    RUNNING = "running", "Running"
    SUCCEEDED = "succeeded", "Succeeded"
    REJECTED = "rejected", "Rejected"
    FAILED = "failed", "Failed"


IMPORT_TRANSITIONS: dict[str, frozenset[str]] = {
    ImportStatus.RUNNING: frozenset({ImportStatus.SUCCEEDED, ImportStatus.REJECTED, ImportStatus.FAILED}),
    ImportStatus.SUCCEEDED: frozenset(),
    ImportStatus.REJECTED: frozenset(),
    ImportStatus.FAILED: frozenset(),
}


class CostImport(BaseModel):
    """One pass of one source over one billing period: what it read, what it loaded, and every problem found
    (file, row, column, message). A rejected or failed import changed nothing; re-running it is safe."""

    source = models.CharField(max_length=16, choices=CostSource.choices)
    billing_period = models.DateField(help_text="First day of the billing month.")
    location = models.CharField(max_length=500, blank=True, help_text="s3://bucket/prefix or a local folder.")
    execution_id = models.CharField(max_length=100, blank=True, help_text="The manifest's executionId.")
    status = models.CharField(max_length=16, choices=ImportStatus.choices, default=ImportStatus.RUNNING)
    status_reason = models.CharField(max_length=300, blank=True)
    started_at = models.DateTimeField()
    finished_at = models.DateTimeField(null=True, blank=True)
    files = models.JSONField(default=list, blank=True, help_text="The data files read, in order.")
    rows_read = models.PositiveBigIntegerField(default=0)
    rows_loaded = models.PositiveBigIntegerField(default=0)
    rows_skipped = models.PositiveBigIntegerField(default=0)
    problems = models.JSONField(default=list, blank=True, help_text="[{file, row, column, message}], capped.")
    total_cost = amount_field()
    currency = currency_field()

    class Meta:
        ordering = ["-started_at"]
        indexes = [models.Index(fields=["source", "billing_period", "-started_at"])]

    def __str__(self) -> str:
        return f"{self.get_source_display()} {self.billing_period:%Y-%m} ({self.status})"


def _owner(to: str) -> models.ForeignKey[Any]:
    """A line item's owner key: SET_NULL by Django, no database constraint (see CostLineItem)."""
    return models.ForeignKey(
        to, null=True, blank=True, on_delete=models.SET_NULL, related_name="+", db_index=False, db_constraint=False
    )


class CostLineItem(models.Model):
    """One line of spend. Ranges are scanned by `usage_start` (a BRIN index on PostgreSQL: line items arrive in
    time order, so the index stays a few pages for hundreds of millions of rows).

    Its foreign keys have no database constraint (Django still applies SET_NULL when an owner is deleted): a
    deferred constraint checks every line at commit, 2.4M lookups and 12 of 41 s of a 1M-line import. The rollups
    rebuilt in the same transaction keep theirs, so every owner an import writes is still checked, once per
    `CostDaily` row instead of once per line."""

    source = models.CharField(max_length=16, choices=CostSource.choices)
    line_id = models.CharField(max_length=200, help_text="The source's own id (CUR identity_line_item_id + interval).")
    cost_import = models.ForeignKey(
        CostImport, null=True, blank=True, on_delete=models.SET_NULL, related_name="+", db_constraint=False
    )
    billing_period = models.DateField()
    usage_start = models.DateTimeField()
    usage_end = models.DateTimeField()
    payer_account = models.CharField(max_length=20, blank=True)
    usage_account = models.CharField(max_length=20, blank=True)
    product_code = models.CharField(max_length=100, blank=True, help_text="The service: AmazonEC2, AmazonS3, ...")
    usage_type = models.CharField(max_length=200, blank=True)
    operation = models.CharField(max_length=200, blank=True)
    line_item_type = models.CharField(max_length=40, blank=True, help_text="Usage, Tax, Credit, Fee, ...")
    usage_amount = models.DecimalField(max_digits=28, decimal_places=10, default=Decimal(0))
    pricing_unit = models.CharField(max_length=40, blank=True)
    unblended_cost = amount_field()
    net_cost = amount_field(help_text="Net unblended cost (after discounts); equals unblended where none apply.")
    currency = currency_field()
    resource_id = models.CharField(max_length=500, blank=True)
    tags = models.JSONField(default=dict, blank=True, help_text="Resource tags as the source gave them.")
    instance_type = models.CharField(max_length=32, blank=True)
    # The owner keys are indexed only where set (Meta.indexes): a deleted owner's SET_NULL finds its lines the same
    # way, and the many lines without one (untagged, no cluster) cost the import no index entry.
    team = _owner("accounts.Team")
    workspace = _owner("runs.Workspace")
    cluster = _owner("clusters.Cluster")
    template = _owner("catalog.Template")
    user = _owner(settings.AUTH_USER_MODEL)
    shared_rule = models.ForeignKey(
        "costs.SharedCostRule",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        db_index=False,
        db_constraint=False,
        help_text="Set when a shared-cost rule claims this line: its money is split across teams, not shown as is.",
    )

    class Meta:
        constraints = [models.UniqueConstraint(fields=["source", "line_id"], name="unique_cost_line_per_source")]
        indexes = [
            models.Index(fields=["source", "billing_period"]),
            *(
                models.Index(
                    fields=[name], condition=models.Q(**{f"{name}__isnull": False}), name=f"costs_line_{name}_set"
                )
                for name in ("team", "workspace", "cluster", "template", "user", "shared_rule")
            ),
        ]
        # The BRIN index on usage_start is PostgreSQL-only: migration 0001 adds it there with RunSQL.

    def __str__(self) -> str:
        return f"{self.source}:{self.line_id}"


class CostDaily(models.Model):
    """One day of one source's spend for one combination of dimensions. Rebuilt per day, never per request."""

    day = models.DateField()
    source = models.CharField(max_length=16, choices=CostSource.choices)
    team = models.ForeignKey("accounts.Team", null=True, blank=True, on_delete=models.CASCADE, related_name="+")
    workspace = models.ForeignKey("runs.Workspace", null=True, blank=True, on_delete=models.CASCADE, related_name="+")
    cluster = models.ForeignKey("clusters.Cluster", null=True, blank=True, on_delete=models.CASCADE, related_name="+")
    template = models.ForeignKey("catalog.Template", null=True, blank=True, on_delete=models.CASCADE, related_name="+")
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.CASCADE, related_name="+"
    )
    instance_type = models.CharField(max_length=32, blank=True)
    product_code = models.CharField(max_length=100, blank=True)
    shared_rule = models.ForeignKey(
        "costs.SharedCostRule", null=True, blank=True, on_delete=models.CASCADE, related_name="+"
    )
    currency = currency_field()
    unblended_cost = amount_field()
    net_cost = amount_field()
    line_count = models.PositiveIntegerField(default=0)

    class Meta:
        indexes = [
            models.Index(fields=["source", "day"]),
            models.Index(fields=["team", "day"]),
            models.Index(fields=["workspace"]),
            models.Index(fields=["cluster"]),
        ]

    def __str__(self) -> str:
        return f"{self.day} {self.source} {self.net_cost} {self.currency}"


class OwnerRollup(models.Model):
    """What the owner rollups share: a source's spend per team, workspace, user and currency."""

    source = models.CharField(max_length=16, choices=CostSource.choices)
    team = models.ForeignKey("accounts.Team", null=True, blank=True, on_delete=models.CASCADE, related_name="+")
    workspace = models.ForeignKey(
        "runs.Workspace", null=True, blank=True, on_delete=models.CASCADE, related_name="+", db_index=False
    )
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.CASCADE, related_name="+", db_index=False
    )
    currency = currency_field()

    class Meta:
        abstract = True


class CostOwnerDaily(OwnerRollup):
    """`CostDaily` without its service, instance type, cluster and template: one day of one source's own spend
    (no shared-cost rule claimed it) per team, workspace, user and currency: a fifth of `CostDaily`'s rows (one
    per owner, not per owner and service). `CostOwnerMonthly` is folded from it; pages read that. Rebuilt with
    `CostDaily`."""

    day = models.DateField()
    unblended_cost = amount_field()
    net_cost = amount_field()
    line_count = models.PositiveIntegerField(default=0)

    class Meta:
        indexes = [
            models.Index(fields=["source", "day"]),
            models.Index(fields=["workspace"], condition=models.Q(workspace__isnull=False), name="costs_owner_ws_set"),
            models.Index(fields=["user"], condition=models.Q(user__isnull=False), name="costs_owner_user_set"),
        ]

    def __str__(self) -> str:
        return f"{self.day} {self.source} team {self.team_id} {self.net_cost} {self.currency}"


class CostOwnerMonthly(OwnerRollup):
    """One month of `CostOwnerDaily` per team, workspace, user and currency, its days in one row: `daily[n]` is
    the net spend of day n + 1 (a decimal string), null on a day with no `CostOwnerDaily` row. The explorer and
    the budgets read a platform admin's month as ~400 rows instead of 12,000 day rows (summing and shaping those
    in Python was most of its time), and slice any date range out of the series. Rebuilt with `CostDaily`.
    JSON, not an array column, so SQLite installations keep working."""

    month = models.DateField(help_text="The first day of the month.")
    net_cost = amount_field(help_text="The month's total: the sum of `daily`.")
    daily = models.JSONField(default=list)

    class Meta:
        indexes = [
            models.Index(fields=["source", "month"]),
            models.Index(fields=["workspace"], condition=models.Q(workspace__isnull=False), name="costs_month_ws_set"),
            models.Index(fields=["user"], condition=models.Q(user__isnull=False), name="costs_month_user_set"),
        ]

    def __str__(self) -> str:
        return f"{self.month:%Y-%m} {self.source} team {self.team_id} {self.net_cost} {self.currency}"


class SplitMethod(models.TextChoices):
    EVEN = "even", "Evenly across the teams"
    PROPORTIONAL = "proportional", "In proportion to each team's own spend that day"


class SharedCostRule(BaseModel):
    """A platform admin's rule that claims shared or unallocated spend (a support plan, NAT gateways, a shared
    bucket) and splits it across teams. A line is claimed by the first active rule (lowest `priority`) whose
    every non-empty matcher matches it."""

    name = models.CharField(max_length=100, unique=True)
    priority = models.PositiveSmallIntegerField(default=100)
    active = models.BooleanField(default=True)
    product_code = models.CharField(max_length=100, blank=True, help_text="Match this service exactly.")
    usage_type_contains = models.CharField(max_length=100, blank=True, help_text="e.g. NatGateway.")
    resource_id = models.CharField(max_length=500, blank=True, help_text="Match this resource exactly.")
    unallocated_only = models.BooleanField(default=True, help_text="Claim only lines no team tag resolved.")
    method = models.CharField(max_length=16, choices=SplitMethod.choices, default=SplitMethod.PROPORTIONAL)
    teams = models.ManyToManyField("accounts.Team", blank=True, related_name="+", help_text="Empty: every team.")
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")

    class Meta:
        ordering = ["priority", "name"]

    def __str__(self) -> str:
        return self.name


class CostAllocation(models.Model):
    """One team's share of one shared-cost rule's pool on one day: shown as its own line ("Shared: NAT")."""

    day = models.DateField()
    source = models.CharField(max_length=16, choices=CostSource.choices)
    rule = models.ForeignKey(SharedCostRule, on_delete=models.CASCADE, related_name="allocations")
    team = models.ForeignKey("accounts.Team", on_delete=models.CASCADE, related_name="+")
    currency = currency_field()
    net_cost = amount_field()
    unblended_cost = amount_field()

    class Meta:
        indexes = [models.Index(fields=["source", "day"]), models.Index(fields=["team", "day"])]

    def __str__(self) -> str:
        return f"{self.day} {self.rule} -> {self.team}: {self.net_cost}"


class Guardrail(models.TextChoices):
    WARN = "warn", "Warn"
    APPROVE = "approve", "Require a manager's approval"
    BLOCK = "block", "Block the launch"


def default_thresholds() -> list[int]:
    return [50, 80, 100]


class Budget(BaseModel):
    """A monthly spending limit for a team, optionally narrowed to one template or one user. Paved evaluates it
    itself (AWS Budgets neither computes spend nor notifies in moto, and only e-mails in AWS)."""

    team = models.ForeignKey("accounts.Team", on_delete=models.CASCADE, related_name="budgets")
    template = models.ForeignKey("catalog.Template", null=True, blank=True, on_delete=models.CASCADE, related_name="+")
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.CASCADE, related_name="+"
    )
    name = models.CharField(max_length=100)
    monthly_amount = amount_field()
    currency = currency_field()
    thresholds = models.JSONField(
        default=default_thresholds, help_text="Percentages of the amount, e.g. [50, 80, 100]."
    )
    guardrail = models.CharField(max_length=16, choices=Guardrail.choices, default=Guardrail.WARN)
    notify_emails = models.TextField(blank=True, help_text="One address per line; the team's managers if empty.")
    webhook_url = models.URLField(blank=True)
    webhook_secret = models.CharField(max_length=128, blank=True, help_text="HMAC-SHA256 key for X-Paved-Signature.")
    scope_key = models.CharField(max_length=100, editable=False)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")

    class Meta:
        ordering = ["team", "name"]
        # One budget per scope (team, template or none, user or none): NULLs compare unequal in a plain unique
        # constraint, so `scope_key` spells the scope out ("team:3/template:-/user:7").
        constraints = [models.UniqueConstraint(fields=["scope_key"], name="unique_budget_scope")]

    def __str__(self) -> str:
        return f"{self.team.slug}/{self.name}"

    def save(self, *args: object, **kwargs: object) -> None:
        self.scope_key = f"team:{self.team_id}/template:{self.template_id or '-'}/user:{self.user_id or '-'}"
        super().save(*args, **kwargs)  # type: ignore[arg-type]


class AlertKind(models.TextChoices):
    ACTUAL = "actual", "Actual spend"
    FORECAST = "forecast", "Forecast spend"
    ANOMALY = "anomaly", "Spend anomaly"


class CostAlert(models.Model):
    """A threshold a budget crossed (once per budget, month, threshold and kind) or a daily spend anomaly; the
    portal shows the open ones to the team, and e-mail and webhook deliveries are recorded here."""

    team = models.ForeignKey("accounts.Team", on_delete=models.CASCADE, related_name="cost_alerts")
    budget = models.ForeignKey(Budget, null=True, blank=True, on_delete=models.CASCADE, related_name="alerts")
    kind = models.CharField(max_length=16, choices=AlertKind.choices)
    period = models.DateField(help_text="The month (budgets) or the day (anomalies).")
    threshold = models.PositiveSmallIntegerField(default=0, help_text="Percent of the budget; 0 for anomalies.")
    spend = amount_field()
    reference = amount_field(help_text="The budget amount, or the anomaly's expected spend.")
    currency = currency_field()
    message = models.CharField(max_length=500)
    created_at = models.DateTimeField()
    emailed_to = models.JSONField(default=list, blank=True)
    webhook_status = models.CharField(max_length=100, blank=True, help_text="HTTP status or the delivery error.")
    dismissed_at = models.DateTimeField(null=True, blank=True)
    dedupe_key = models.CharField(
        max_length=120, unique=True, help_text="team/budget/kind/period/threshold: each alert fires once."
    )

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return self.message
