"""Errors of the model registry, each with a stable `code` (clients switch on it)."""

from __future__ import annotations

from apps.core.errors import Conflict, PermissionDenied, ValidationFailed


class InvalidModelVersion(ValidationFailed):
    code = "invalid_model_version"


class ModelNameTaken(Conflict):
    code = "model_name_taken"


class VersionArchived(Conflict):
    code = "version_archived"


class ApprovalDenied(PermissionDenied):
    code = "approval_denied"


class IllegalVersionTransition(Conflict):
    code = "illegal_version_transition"
