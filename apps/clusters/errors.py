from apps.core.errors import Conflict, PermissionDenied, ValidationFailed


class IllegalClusterTransition(Conflict):
    code = "illegal_cluster_transition"


class TelemetryRejected(ValidationFailed):
    code = "telemetry_rejected"


class WrongNode(PermissionDenied):
    code = "wrong_node"
