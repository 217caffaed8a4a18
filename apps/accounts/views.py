"""Login, logout, team switching and personal tokens. Thin: every write goes through accounts.services."""

from __future__ import annotations

from typing import Any

from django.contrib import messages
from django.contrib.auth import views as auth_views
from django.contrib.auth.decorators import login_required
from django.contrib.auth.forms import AuthenticationForm
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import redirect, render
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.http import require_POST

from apps.accounts import oidc, selectors, services
from apps.accounts.forms import ApiTokenForm
from apps.accounts.selectors import authenticated
from apps.core.errors import ApplicationError, Throttled


class LoginView(auth_views.LoginView):
    template_name = "accounts/login.html"
    redirect_authenticated_user = True

    def get_context_data(self, **kwargs: Any) -> dict[str, Any]:
        return {**super().get_context_data(**kwargs), "sso_provider": oidc.provider_name()}

    def post(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        username = request.POST.get("username", "")
        try:
            services.ensure_login_allowed(request=request, username=username)
        except Throttled as exc:
            # An unbound form: binding it would check the password, which a lockout must not do.
            form = AuthenticationForm(request, initial={"username": username})
            context = self.get_context_data(form=form, lockout=exc.message)
            response = self.render_to_response(context, status=429)
            response["Retry-After"] = str(exc.retry_after)
            return response
        return super().post(request, *args, **kwargs)

    def form_valid(self, form: AuthenticationForm) -> HttpResponse:
        services.log_in(request=self.request, user=authenticated(form.get_user()))
        return HttpResponseRedirect(self.get_success_url())

    def form_invalid(self, form: AuthenticationForm) -> HttpResponse:
        services.record_failed_login(request=self.request, username=self.request.POST.get("username", ""))
        return self.render_to_response(self.get_context_data(form=form), status=422)


@require_POST
def logout_view(request: HttpRequest) -> HttpResponse:
    """Ends the Paved session; a session opened through the provider goes on to end the provider's too."""
    provider_sign_out = oidc.end_session_url(request)  # read before the session (and its id token) is gone
    services.log_out(request=request)
    messages.info(request, "You are signed out.")
    return redirect(provider_sign_out or "accounts:login")


@require_POST
@login_required
def switch_team_view(request: HttpRequest) -> HttpResponse:
    try:
        team = services.switch_team(request=request, slug=request.POST.get("team", ""))
    except ApplicationError as exc:
        messages.error(request, exc.message)
    else:
        messages.success(request, f"Now working in team {team.name}.")
    target = request.POST.get("next") or "/"
    if not url_has_allowed_host_and_scheme(target, allowed_hosts={request.get_host()}):
        target = "/"
    return redirect(target)


@login_required
def tokens_view(request: HttpRequest) -> HttpResponse:
    form = ApiTokenForm(request.POST or None)
    created_secret = None
    status = 200
    if request.method == "POST":
        if form.is_valid():
            try:
                token, created_secret = services.create_api_token(
                    actor=authenticated(request.user), request=request, **form.cleaned_data
                )
            except ApplicationError as exc:
                form.add_error(None, exc.message)
                status = exc.status if isinstance(exc, Throttled) else 422
            else:
                messages.success(request, f"Token '{token.name}' created. Copy it now: it is shown only once.")
                form = ApiTokenForm()
        else:
            status = 422
    context = {"form": form, "tokens": selectors.tokens_for(request.user), "created_secret": created_secret}
    return render(request, "accounts/tokens.html", context, status=status)


@require_POST
@login_required
def revoke_token_view(request: HttpRequest, token_id: int) -> HttpResponse:
    try:
        token = services.revoke_api_token(actor=authenticated(request.user), token_id=token_id, request=request)
    except ApplicationError as exc:
        messages.error(request, exc.message)
    else:
        messages.success(request, f"Token '{token.name}' revoked.")
    return redirect("accounts:tokens")


@login_required
def profile_view(request: HttpRequest) -> HttpResponse:
    context = {
        "memberships": selectors.memberships_for(request.user),
        "sso_identity": selectors.sso_identity_for(request.user),
        "sso_provider": oidc.provider_name(),
    }
    return render(request, "accounts/profile.html", context)
