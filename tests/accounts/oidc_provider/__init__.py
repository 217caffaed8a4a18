"""A real OpenID Connect provider for the SSO tests: django-oauth-toolkit in a Django project of its own, run as a
subprocess on 127.0.0.1 (see `serve.py` and tests/accounts/sso_fixtures.py). Its people, passwords and groups come
from a JSON file the test writes and may rewrite between sign-ins."""
