from apps.core.errors import ApplicationError, Conflict, NotFound, PermissionDenied, ValidationFailed
from apps.runs.errors import WorkspaceNameTaken as WorkspaceNameTaken  # a launch's, raised by create_workspace


class TemplateNotFound(NotFound):
    code = "template_not_found"


class VersionNotFound(NotFound):
    code = "version_not_found"


class VersionNotLaunchable(ApplicationError):
    code = "version_not_launchable"
    status = 400
    title = "This version cannot be launched"


class TemplateNotVisible(PermissionDenied):
    code = "template_not_visible"


class CurationDenied(PermissionDenied):
    code = "curation_denied"


class InvalidWorkspaceName(ValidationFailed):
    code = "invalid_workspace_name"
    field = "name"


class InvalidTtl(ValidationFailed):
    code = "invalid_ttl"
    field = "ttl_hours"


class InvalidLaunch(ValidationFailed):
    """More than one part of a launch is wrong (its name, its TTL, its parameters): every error at once, keyed
    `name`, `ttl_hours` and `parameters.<key>` like the request body."""

    code = "invalid_launch"


class InvalidTemplate(ValidationFailed):
    code = "invalid_template"


class LifecycleError(Conflict):
    code = "invalid_lifecycle_transition"


class VersionValidationFailed(ValidationFailed):
    code = "version_validation_failed"


class ModuleArchiveRejected(ValidationFailed):
    code = "module_archive_rejected"


class InvalidYaml(ValidationFailed):
    """Not YAML at all (bad syntax, control characters); importers usually re-raise it with their own code."""

    code = "invalid_yaml"


class YamlTooComplex(ValidationFailed):
    code = "yaml_too_complex"


class YamlTooLarge(ApplicationError):
    code = "yaml_too_large"
    status = 413
    title = "Document too large"


class ProvidersUnavailable(Conflict):
    """The version's Terraform providers cannot be installed here (no registry, no mirror): a run would fail at
    `terraform init`, so it is never queued."""

    code = "providers_unavailable"
