from apps.core.errors import ApplicationError, NotFound, PermissionDenied, ValidationFailed


class NotATeamMember(PermissionDenied):
    code = "not_a_team_member"


class TokenNotFound(NotFound):
    code = "token_not_found"


class TokenAlreadyRevoked(ApplicationError):
    code = "token_already_revoked"
    status = 409
    title = "Token already revoked"


class InvalidTokenName(ValidationFailed):
    code = "invalid_token_name"
