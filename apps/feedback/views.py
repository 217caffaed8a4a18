"""The survey card's two posts. With htmx the card swaps itself (a thank-you, or the card again with the
error); without JavaScript the form posts plainly and comes back to the page it was on. Never a modal, never a
page of its own."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.http import require_POST

from apps.accounts.selectors import authenticated
from apps.core.errors import ApplicationError
from apps.core.htmx import htmx_partial
from apps.feedback import selectors, services
from apps.feedback.models import SurveyPrompt

CARD = "feedback/partials/prompt_card.html"


def _own_prompt(request: HttpRequest, prompt_id: int) -> SurveyPrompt:
    prompt = selectors.prompts_for(request.user).filter(pk=prompt_id).first()
    if prompt is None:
        raise Http404("No such survey prompt.")
    return prompt


def _back(request: HttpRequest) -> HttpResponse:
    target = request.POST.get("next", "")
    if not url_has_allowed_host_and_scheme(target, allowed_hosts={request.get_host()}):
        target = "/"
    return redirect(target)


def _score(request: HttpRequest) -> int | str:
    raw = request.POST.get("score", "")
    return int(raw) if raw.isdigit() else raw


@login_required
@require_POST
def answer_view(request: HttpRequest, prompt_id: int) -> HttpResponse:
    prompt = _own_prompt(request, prompt_id)
    try:
        services.answer_survey(actor=authenticated(request.user), prompt=prompt, score=_score(request),
                               comment=request.POST.get("comment", ""), request=request)  # fmt: skip
    except ApplicationError as exc:
        if htmx_partial(request):  # 200, so htmx swaps the card with its error in
            context = {"prompt": prompt, "error": exc.message, "comment": request.POST.get("comment", "")}
            return render(request, CARD, {**context, "next": request.POST.get("next", "")})
        messages.error(request, exc.message)
        return _back(request)
    if htmx_partial(request):
        return render(request, CARD, {"prompt": prompt, "done": "answered"})
    messages.success(request, "Thanks for your answer.")
    return _back(request)


@login_required
@require_POST
def dismiss_view(request: HttpRequest, prompt_id: int) -> HttpResponse:
    prompt = _own_prompt(request, prompt_id)
    try:
        services.dismiss_survey(actor=authenticated(request.user), prompt=prompt, request=request)
    except ApplicationError as exc:
        if not htmx_partial(request):
            messages.error(request, exc.message)
    if htmx_partial(request):
        return HttpResponse("")  # the card goes away
    return _back(request)
