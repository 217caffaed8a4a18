from apps.core.errors import ApplicationError, NotFound, PermissionDenied, ValidationFailed


class NotAMember(PermissionDenied):
    """Acting in (or on something of) a team the caller does not belong to: one status and code everywhere."""

    code = "not_a_member"


class NotAPlatformAdmin(PermissionDenied):
    code = "not_a_platform_admin"


class TokenNotFound(NotFound):
    code = "token_not_found"


class TokenAlreadyRevoked(ApplicationError):
    code = "token_already_revoked"
    status = 409
    title = "Token already revoked"


class InvalidTokenName(ValidationFailed):
    code = "invalid_token_name"


class InvalidCredentials(ApplicationError):
    """A username and password that do not sign in (the same answer for an unknown user and a wrong password)."""

    code = "invalid_credentials"
    status = 401
    title = "Invalid credentials"


class SsoSignInRefused(PermissionDenied):
    """A single sign-on that cannot be honoured: claims Paved cannot read (no subject, no or a malformed groups
    claim), a deactivated account, or a provider answer that did not verify. Nothing is written but the audit."""

    code = "sso_sign_in_refused"
    title = "Single sign-on refused"
