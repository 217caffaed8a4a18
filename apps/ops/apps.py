from django.apps import AppConfig


class OpsConfig(AppConfig):
    """Operations: liveness/readiness probes, Prometheus metrics, JSON logging and worker heartbeats."""

    name = "apps.ops"
    label = "ops"
