"""KPI snapshots: each KPI's value per team (and platform-wide) over the standard windows, refreshed by the beat
(`services.refresh_snapshots`), so the overview, the drill-downs and /metrics read a few rows instead of
recomputing over a year of records per request. A custom date range is computed live."""

from __future__ import annotations

from django.db import models


class KpiSnapshot(models.Model):
    key = models.CharField(max_length=64)
    team = models.ForeignKey(
        "accounts.Team", on_delete=models.CASCADE, null=True, blank=True, related_name="+",
        help_text="None: the whole platform.",
    )  # fmt: skip
    window_days = models.PositiveSmallIntegerField()
    period_start = models.DateTimeField()
    period_end = models.DateTimeField()
    value = models.FloatField(null=True, blank=True)
    previous_value = models.FloatField(null=True, blank=True, help_text="The same KPI over the window before.")
    sample = models.PositiveBigIntegerField(default=0)  # a year of inferences passes 2**31
    no_data = models.CharField(max_length=300, blank=True)
    series = models.JSONField(
        default=list, blank=True, help_text="Sparkline: the window's value on 7 earlier days and today."
    )
    breakdown = models.JSONField(
        default=dict, blank=True, help_text="The value by the KPI's split (template, instance type, endpoint)."
    )
    computed_at = models.DateTimeField()

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["key", "team", "window_days"], name="unique_kpi_snapshot", nulls_distinct=False
            )
        ]
        indexes = [models.Index(fields=["window_days", "team"], name="kpi_snapshot_window_team")]

    def __str__(self) -> str:
        return f"{self.key} over {self.window_days} d ({self.team_id or 'platform'})"


class KpiHistory(models.Model):
    """A KPI's value over the window that ended on `day` (for the whole day, UTC), kept so a refresh reads the
    trend (the previous window) and the sparkline (the window's value on earlier days) instead of recomputing
    them: a pass computes the current windows, and only days it has never seen."""

    key = models.CharField(max_length=64)
    team = models.ForeignKey("accounts.Team", on_delete=models.CASCADE, null=True, blank=True, related_name="+")
    window_days = models.PositiveSmallIntegerField()
    day = models.DateField(help_text="The window's last day.")
    value = models.FloatField(null=True, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["key", "team", "window_days", "day"], name="unique_kpi_history", nulls_distinct=False
            )
        ]
        indexes = [models.Index(fields=["window_days", "day"], name="kpi_history_window_day")]

    def __str__(self) -> str:
        return f"{self.key} over {self.window_days} d to {self.day} ({self.team_id or 'platform'})"


class KpiDay(models.Model):
    """One UTC day's partials of a `DailyKpi`, under its `kept_key` (a P50 and a P95 share theirs): `parts` is
    [[team id or null, split value, partial], ...]. The row exists once the day was computed (an empty list:
    nothing happened that day), so a refresh computes the days it has never seen and the few recent ones that
    can still change, and merges the rest."""

    key = models.CharField(max_length=64)
    day = models.DateField()
    parts = models.JSONField(default=list, blank=True)
    computed_at = models.DateTimeField()

    class Meta:
        constraints = [models.UniqueConstraint(fields=["key", "day"], name="unique_kpi_day")]

    def __str__(self) -> str:
        return f"{self.key} on {self.day}"
