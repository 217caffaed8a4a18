from apps.core.errors import Conflict, NotFound, PermissionDenied, ValidationFailed


class IllegalClusterTransition(Conflict):
    code = "illegal_cluster_transition"


class TelemetryRejected(ValidationFailed):
    code = "telemetry_rejected"


class WrongNode(PermissionDenied):
    code = "wrong_node"


class ClusterNameTaken(Conflict):
    code = "cluster_name_taken"
    field = "name"


class InvalidClusterName(ValidationFailed):
    code = "invalid_cluster_name"
    field = "name"


class UnknownClusterInstanceType(ValidationFailed):
    code = "unknown_instance_type"
    field = "instance_type"


class RegionNotOfferedForType(ValidationFailed):
    code = "region_not_offered"
    field = "region"


class InvalidPurchaseOption(ValidationFailed):
    code = "invalid_purchase_option"
    field = "purchase_option"


class InvalidNodeCount(ValidationFailed):
    code = "invalid_node_count"
    field = "node_count"


class InvalidMaxHours(ValidationFailed):
    code = "invalid_max_hours"
    field = "max_hours"


class TerminationNotConfirmed(ValidationFailed):
    code = "confirmation_mismatch"
    field = "confirm"


class QuotaExceeded(Conflict):
    code = "quota_exceeded"
    title = "GPU quota exceeded"


class InstanceTypeLimitExceeded(QuotaExceeded):
    code = "instance_type_limit_exceeded"
    title = "Instance type limit exceeded"


class InvalidQuota(ValidationFailed):
    code = "invalid_quota"


class SnoozeUsed(Conflict):
    code = "snooze_already_used"


class InvalidSnooze(ValidationFailed):
    code = "invalid_snooze"


class SnoozeForbidden(PermissionDenied):
    code = "snooze_forbidden"


class AutostopOverrideForbidden(PermissionDenied):
    code = "autostop_override_forbidden"


class InvalidAutostopOverride(ValidationFailed):
    code = "invalid_autostop_override"


class NodeNotRecordedYet(Conflict):
    """The instance booted before the worker recorded the launch; the agent retries."""

    code = "node_not_recorded_yet"


class UnknownClusterNode(NotFound):
    code = "unknown_node"


class NodeAlreadyRegistered(Conflict):
    code = "node_already_registered"


class ClusterNotRegistrable(Conflict):
    code = "cluster_not_registrable"


class ClusterNotExtendable(Conflict):
    code = "cluster_not_extendable"


class NotClusterOwner(PermissionDenied):
    code = "not_the_owner"


class InvalidIdleWindow(ValidationFailed):
    code = "invalid_idle_window"
