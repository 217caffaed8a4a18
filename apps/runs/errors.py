from apps.core.errors import ApplicationError, Conflict, NotFound, PermissionDenied, ValidationFailed


class IllegalTransition(Conflict):
    code = "illegal_run_transition"


class RunNotFound(NotFound):
    code = "run_not_found"


class NotAnApprover(PermissionDenied):
    code = "not_an_approver"


class ApprovalNotPending(Conflict):
    code = "approval_not_pending"


class ApprovalNotRequired(ApprovalNotPending):
    """The run's plan never needed approval, so there is no request to approve or reject."""

    code = "approval_not_required"


class ConfirmationMismatch(ValidationFailed):
    code = "confirmation_mismatch"


class WorkspaceNameTaken(Conflict):
    code = "workspace_name_taken"
    field = "name"


class WorkspaceBusy(Conflict):
    code = "workspace_busy"


class NothingToRetry(ApplicationError):
    code = "nothing_to_retry"
    status = 409
    title = "This run cannot be retried"


class InvalidExtension(ValidationFailed):
    code = "invalid_extension"


class WorkspaceHasResources(Conflict):
    code = "workspace_has_resources"


class NothingChanged(ValidationFailed):
    """A change of variables that changes none: no run is queued for it."""

    code = "parameters_unchanged"
