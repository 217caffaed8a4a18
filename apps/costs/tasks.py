"""Celery tasks of the costs app: each calls one service (imports, metering, reconciliation, budget and waste
checks); beat schedules them in portal/settings.py."""

import logging

from django.conf import settings

from apps.core.tasks import task
from apps.costs.sources.cur import import_cur

logger = logging.getLogger(__name__)


# --- CUR import ---------------------------------------------------------------------------------------------
@task(acks_late=True)
def import_cur_exports(location: str = "") -> list[int]:
    """Beat: import new CUR deliveries from `location` (default COST_CUR_LOCATION); returns the import pks."""
    location = location or settings.COST_CUR_LOCATION
    if not location:
        logger.info("COST_CUR_LOCATION is empty: no AWS bill to import")
        return []
    return [run.pk for run in import_cur(location=location)]
