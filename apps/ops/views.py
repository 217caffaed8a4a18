from __future__ import annotations

from django.http import HttpRequest, JsonResponse

from apps.ops.selectors import live_workers
from apps.ops.services import check_readiness


def healthz(request: HttpRequest) -> JsonResponse:
    """Liveness: the process answers. Deliberately checks nothing else, so a database outage never restarts pods."""
    return JsonResponse({"status": "ok"})


def readyz(request: HttpRequest) -> JsonResponse:
    """Readiness: database and broker reachable; 503 names the one that failed."""
    readiness = check_readiness()
    body = {
        "status": "ok" if readiness.ok else "unavailable",
        "checks": readiness.checks,
        "workers": list(live_workers().values_list("hostname", flat=True))
        if readiness.checks["database"] == "ok"
        else [],
    }
    return JsonResponse(body, status=200 if readiness.ok else 503)
