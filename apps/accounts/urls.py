from django.urls import path

from apps.accounts import oidc, views

app_name = "accounts"

urlpatterns = [
    path("login/", views.LoginView.as_view(), name="login"),
    path("logout/", views.logout_view, name="logout"),
    # Single sign-on (apps/accounts/oidc.py): 404 unless configured.
    path("oidc/authenticate/", oidc.AuthenticateView.as_view(), name="oidc-authenticate"),
    path("oidc/callback/", oidc.CallbackView.as_view(), name="oidc-callback"),
    path("profile/", views.profile_view, name="profile"),
    path("team/switch/", views.switch_team_view, name="switch-team"),
    path("tokens/", views.tokens_view, name="tokens"),
    path("tokens/<int:token_id>/revoke/", views.revoke_token_view, name="revoke-token"),
]
