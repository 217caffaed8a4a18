"""Refuse oversized request bodies from their Content-Length, before anything reads them."""

from __future__ import annotations

from collections.abc import Callable

from django.conf import settings
from django.http import HttpRequest, HttpResponse

from portal.views import payload_too_large


class BodySizeLimitMiddleware:
    """413 for a declared body over the limit: DATA_UPLOAD_MAX_MEMORY_SIZE, or MAX_UPLOAD_BYTES for multipart.

    Django only checks DATA_UPLOAD_MAX_MEMORY_SIZE when something reads request.body/POST (and answers 400),
    DRF's parsers read the stream without checking it at all, and multipart files are not counted by it. A body
    that gets past this check and still trips Django's lazy RequestDataTooBig (multipart fields) is answered
    413 by portal.views.bad_request.
    """

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        try:
            declared = int(request.META.get("CONTENT_LENGTH") or 0)
        except ValueError:
            declared = 0  # Django reads a malformed Content-Length as an empty body
        multipart = request.META.get("CONTENT_TYPE", "").startswith("multipart/")
        limit = settings.MAX_UPLOAD_BYTES if multipart else settings.DATA_UPLOAD_MAX_MEMORY_SIZE
        if limit is not None and declared > limit:
            return payload_too_large(request, limit=limit)
        return self.get_response(request)
