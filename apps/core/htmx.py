"""htmx helpers: one view serves the full page, or only its partial when htmx asks for it (NetBox pattern)."""

from django.http import HttpRequest


def htmx_partial(request: HttpRequest) -> bool:
    """True for htmx requests that target part of the page (not boosted full-page navigation)."""
    htmx = getattr(request, "htmx", None)
    return bool(htmx) and not getattr(htmx, "boosted", False)
