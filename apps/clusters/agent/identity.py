"""Which EC2 instance this agent runs on, from the instance metadata service (IMDSv2, standard library only)."""

from __future__ import annotations

import os
import urllib.error
import urllib.request

IMDS_URL = "http://169.254.169.254"
IMDS_ENV = "PAVED_IMDS_URL"  # another address for the metadata service (tests, non-EC2 clouds that mimic it)


def ec2_instance_id(timeout: float = 2.0) -> str:
    """The instance id, e.g. ``i-0abc...``. Raises OSError when no metadata service answers (not on EC2)."""
    base = os.environ.get(IMDS_ENV, IMDS_URL).rstrip("/")
    token_request = urllib.request.Request(  # noqa: S310 - a fixed http URL or the operator's override
        f"{base}/latest/api/token", method="PUT", headers={"X-aws-ec2-metadata-token-ttl-seconds": "60"}
    )
    try:
        with urllib.request.urlopen(token_request, timeout=timeout) as response:  # noqa: S310
            token = response.read().decode().strip()
        id_request = urllib.request.Request(  # noqa: S310
            f"{base}/latest/meta-data/instance-id", headers={"X-aws-ec2-metadata-token": token}
        )
        with urllib.request.urlopen(id_request, timeout=timeout) as response:  # noqa: S310
            instance_id = response.read().decode().strip()
    except (urllib.error.URLError, OSError) as exc:
        raise OSError(f"no EC2 instance metadata at {base} ({exc}); pass --node-id") from exc
    if not instance_id.startswith("i-"):
        raise OSError(f"the metadata service at {base} gave {instance_id!r}, not an instance id; pass --node-id")
    return str(instance_id)
