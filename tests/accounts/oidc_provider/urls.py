from django.contrib.auth import views as auth_views
from django.urls import include, path

urlpatterns = [
    path("login/", auth_views.LoginView.as_view(), name="login"),
    # At the root, so that the issuer is the server's origin and discovery is <issuer>/.well-known/...
    path("", include("oauth2_provider.urls", namespace="oauth2_provider")),
]
