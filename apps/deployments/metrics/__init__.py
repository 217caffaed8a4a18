"""What a variant is doing: one `MetricsProvider` interface (metrics/base.py) and its implementations, HAProxy's
Prometheus exporter for the local target and CloudWatch for SageMaker."""
