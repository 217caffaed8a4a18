"""Errors of the audit app, each with a stable `code` (clients switch on it)."""

from __future__ import annotations

from apps.core.errors import PermissionDenied, ValidationFailed


class EvidenceExportDenied(PermissionDenied):
    """Exporting a team's audit evidence is for its managers and admins and for platform admins."""

    code = "audit_export_denied"


class InvalidEvidencePeriod(ValidationFailed):
    """The period of an evidence export: start before end, at most MAX_EVIDENCE_DAYS, not past now."""

    code = "invalid_evidence_period"
