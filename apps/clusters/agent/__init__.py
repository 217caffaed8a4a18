"""The Paved GPU telemetry agent.

It runs on GPU nodes, outside the portal, with only the standard library and nvidia-ml-py: it must never import
Django. It reads NVML every few seconds, buffers while the portal is unreachable and posts batches to
``POST /api/v1/clusters/telemetry``.
"""
