"""Tracking errors in MLflow's own shape (`error_code` names from MLflow's protos, its HTTP statuses), because the
`mlflow` client reads them: a missing run must look to it exactly as MLflow's RESOURCE_DOES_NOT_EXIST."""

from __future__ import annotations


class TrackingError(Exception):
    error_code = "INTERNAL_ERROR"
    status = 500

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class InvalidParameterValue(TrackingError):
    error_code = "INVALID_PARAMETER_VALUE"
    status = 400


class ResourceDoesNotExist(TrackingError):
    error_code = "RESOURCE_DOES_NOT_EXIST"
    status = 404


class ResourceAlreadyExists(TrackingError):
    error_code = "RESOURCE_ALREADY_EXISTS"
    status = 400


class PermissionDenied(TrackingError):
    error_code = "PERMISSION_DENIED"
    status = 403
