"""Paved settings: every value comes from the environment, with defaults that make `make run` work.

Production runs with DEBUG=0, which makes SECRET_KEY mandatory and turns on the secure-cookie, HSTS and
SSL-redirect defaults that `manage.py check --deploy` looks for (see README, "Configuration").
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import dj_database_url
import django_stubs_ext
from celery.schedules import crontab
from django.core.exceptions import ImproperlyConfigured

# Lets runtime code subscript Django generics (admin.ModelAdmin[Team]) the way the type stubs expect.
django_stubs_ext.monkeypatch()

BASE_DIR = Path(__file__).resolve().parent.parent


def env_str(name: str, default: str = "") -> str:
    return os.environ.get(name, default)


def env_bool(name: str, default: bool) -> bool:
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    if raw.lower() in {"1", "true", "yes", "on"}:
        return True
    if raw.lower() in {"0", "false", "no", "off"}:
        return False
    raise ImproperlyConfigured(f"{name} must be a boolean (1/0, true/false), got {raw!r}")


def env_int(name: str, default: int) -> int:
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    try:
        return int(raw)
    except ValueError as exc:
        raise ImproperlyConfigured(f"{name} must be an integer, got {raw!r}") from exc


def env_list(name: str, default: str) -> list[str]:
    return [item.strip() for item in env_str(name, default).split(",") if item.strip()]


DEBUG = env_bool("DEBUG", False)

DATA_DIR = Path(env_str("PAVED_DATA_DIR", str(BASE_DIR / "var"))).resolve()
DATA_DIR.mkdir(parents=True, exist_ok=True)

SECRET_KEY = env_str("SECRET_KEY")
if not SECRET_KEY:
    if not DEBUG:
        raise ImproperlyConfigured(
            "SECRET_KEY is not set. With DEBUG=0 Paved refuses to start without it: "
            "set SECRET_KEY to a long random value (python -c 'import secrets; print(secrets.token_urlsafe(50))'), "
            "or set DEBUG=1 for local development."
        )
    SECRET_KEY = "paved-insecure-development-key-do-not-use-in-production-0123456789"

ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", "127.0.0.1,localhost,[::1]")
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS", "")

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "rest_framework",
    "django_filters",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "django_htmx",
    "csp",
    "apps.core",
    "apps.accounts",
    "apps.audit",
    "apps.ops",
    "apps.catalog",
    "apps.runs",
    "apps.costs",
    "apps.clusters",
    "apps.registry",
    "apps.deployments",
    "apps.training",
    "apps.tracking",
    "apps.dashboards",
    "apps.feedback",
]

MIDDLEWARE = [
    "apps.ops.metrics.PrometheusMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "csp.middleware.CSPMiddleware",
    "portal.middleware.BodySizeLimitMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "apps.accounts.middleware.MembershipMemoMiddleware",
    "apps.accounts.middleware.SsoSignOutCspMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
]

ROOT_URLCONF = "portal.urls"
WSGI_APPLICATION = "portal.wsgi.application"
ASGI_APPLICATION = "portal.asgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "apps.accounts.context_processors.teams",
                "portal.navigation.navigation",
                "apps.costs.context_processors.cost_alerts",
                "apps.runs.context_processors.change_freeze",
            ],
        },
    },
]

# --- Database: SQLite under the data dir unless DATABASE_URL says otherwise -------------------------------
DATABASE_URL = env_str("DATABASE_URL", f"sqlite:///{DATA_DIR / 'paved.sqlite3'}")
# With persistent connections (DB_CONN_MAX_AGE > 0), each request first checks the connection it reuses: after a
# database restart a stale one is replaced instead of failing that request with a 500.
DATABASES = {
    "default": dj_database_url.parse(
        DATABASE_URL,
        conn_max_age=env_int("DB_CONN_MAX_AGE", 0),
        conn_health_checks=env_bool("DB_CONN_HEALTH_CHECKS", True),
    )
}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # WAL + immediate transactions let the web process, the worker and beat share one file without
    # "database is locked" errors under the light load of a laptop demo.
    DATABASES["default"]["OPTIONS"] = {
        "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
        "transaction_mode": "IMMEDIATE",
        "timeout": 20,
    }
USING_POSTGRES = DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql"
if USING_POSTGRES:  # an unreachable server fails a request (and /readyz) in seconds instead of hanging it
    DATABASES["default"].setdefault("OPTIONS", {}).setdefault("connect_timeout", env_int("DB_CONNECT_TIMEOUT", 5))

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
]
LOGIN_URL = "accounts:login"
LOGIN_REDIRECT_URL = "home"
LOGOUT_REDIRECT_URL = "accounts:login"

# --- Single sign-on (OpenID Connect, docs/sso.md): off unless OIDC_CLIENT_ID is set ------------------------------
# Local accounts always work beside it. The OIDC_OP_* and OIDC_RP_* names are mozilla-django-oidc's; an empty
# endpoint is read from the issuer's discovery document (apps/accounts/oidc.py), so OIDC_ISSUER alone is enough.
OIDC_ISSUER = env_str("OIDC_ISSUER").rstrip("/")
OIDC_OP_AUTHORIZATION_ENDPOINT = env_str("OIDC_AUTHORIZATION_ENDPOINT")
OIDC_OP_TOKEN_ENDPOINT = env_str("OIDC_TOKEN_ENDPOINT")
OIDC_OP_USER_ENDPOINT = env_str("OIDC_USERINFO_ENDPOINT")
OIDC_OP_JWKS_ENDPOINT = env_str("OIDC_JWKS_URI")
# RP-initiated logout; empty: the discovery document's end_session_endpoint, if the provider has one.
OIDC_OP_END_SESSION_ENDPOINT = env_str("OIDC_END_SESSION_ENDPOINT")
OIDC_RP_CLIENT_ID = env_str("OIDC_CLIENT_ID")
OIDC_RP_CLIENT_SECRET = env_str("OIDC_CLIENT_SECRET")
OIDC_RP_SIGN_ALGO = env_str("OIDC_SIGN_ALGO", "RS256")
OIDC_RP_SCOPES = env_str("OIDC_SCOPES", "openid email profile")
OIDC_PROVIDER_NAME = env_str("OIDC_PROVIDER_NAME", "single sign-on")
# Groups `<prefix>:<team-slug>:<role>` in this claim are the user's memberships; this one group is platform admin.
OIDC_GROUPS_CLAIM = env_str("OIDC_GROUPS_CLAIM", "groups")
OIDC_GROUP_PREFIX = env_str("OIDC_GROUP_PREFIX", "paved")
OIDC_PLATFORM_ADMIN_GROUP = env_str("OIDC_PLATFORM_ADMIN_GROUP", "paved:platform:admin")
OIDC_USE_PKCE = env_bool("OIDC_USE_PKCE", True)
OIDC_TIMEOUT = env_int("OIDC_TIMEOUT_SECONDS", 10)
OIDC_STORE_ID_TOKEN = True  # the id_token_hint of the provider's end-session request
OIDC_AUTHENTICATION_CALLBACK_URL = "accounts:oidc-callback"
OIDC_CALLBACK_CLASS = "apps.accounts.oidc.CallbackView"
OIDC_AUTHENTICATE_CLASS = "apps.accounts.oidc.AuthenticateView"
if OIDC_RP_CLIENT_ID and not OIDC_ISSUER:
    _missing = [
        env
        for env, value in [
            ("OIDC_AUTHORIZATION_ENDPOINT", OIDC_OP_AUTHORIZATION_ENDPOINT),
            ("OIDC_TOKEN_ENDPOINT", OIDC_OP_TOKEN_ENDPOINT),
            ("OIDC_USERINFO_ENDPOINT", OIDC_OP_USER_ENDPOINT),
            ("OIDC_JWKS_URI", OIDC_OP_JWKS_ENDPOINT),
        ]
        if not value
    ]
    if _missing:
        raise ImproperlyConfigured(
            f"OIDC_CLIENT_ID is set: set OIDC_ISSUER (endpoints are discovered) or {', '.join(_missing)}."
        )
AUTHENTICATION_BACKENDS = [
    "django.contrib.auth.backends.ModelBackend",
    # Answers only the provider's callback, and only while SSO is configured.
    "apps.accounts.oidc.Backend",
]

LANGUAGE_CODE = "en-us"
TIME_ZONE = env_str("TIME_ZONE", "UTC")
USE_I18N = True
USE_TZ = True

STATIC_URL = "/static/"
STATICFILES_DIRS = [BASE_DIR / "static"]
STATIC_ROOT = Path(env_str("STATIC_ROOT", str(DATA_DIR / "staticfiles")))
STATIC_ROOT.mkdir(parents=True, exist_ok=True)  # WhiteNoise warns on every start when it is missing
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedStaticFilesStorage"},
}
WHITENOISE_USE_FINDERS = env_bool("WHITENOISE_USE_FINDERS", True)

# --- Security: strict by default when DEBUG is off ------------------------------------------------------
SECURE_SSL_REDIRECT = env_bool("SECURE_SSL_REDIRECT", not DEBUG)
SECURE_HSTS_SECONDS = env_int("SECURE_HSTS_SECONDS", 0 if DEBUG else 31_536_000)
SECURE_HSTS_INCLUDE_SUBDOMAINS = env_bool("SECURE_HSTS_INCLUDE_SUBDOMAINS", not DEBUG)
SECURE_HSTS_PRELOAD = env_bool("SECURE_HSTS_PRELOAD", not DEBUG)
SESSION_COOKIE_SECURE = env_bool("SESSION_COOKIE_SECURE", not DEBUG)
CSRF_COOKIE_SECURE = env_bool("CSRF_COOKIE_SECURE", not DEBUG)
if env_bool("SECURE_PROXY_SSL_HEADER", False):
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
# Health and metrics endpoints are probed over plain HTTP from inside the cluster.
SECURE_REDIRECT_EXEMPT = [r"^healthz$", r"^readyz$", r"^metrics$"]
X_FRAME_OPTIONS = "DENY"
SESSION_COOKIE_HTTPONLY = True
# Our own origin only, and no inline script, eval or inline style (README, "Content-Security-Policy").
CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": ["'self'"],
        "script-src": ["'self'"],
        "style-src": ["'self'"],
        "img-src": ["'self'", "data:"],
        "connect-src": ["'self'"],
        "font-src": ["'self'"],
        "object-src": ["'none'"],
        "base-uri": ["'self'"],
        "form-action": ["'self'"],
        "frame-ancestors": ["'none'"],
    }
}
# Request bodies: a declared body over the limit is refused with 413 before it is read (portal.middleware).
DATA_UPLOAD_MAX_MEMORY_SIZE = env_int("MAX_REQUEST_BODY_BYTES", 2_621_440)
MAX_UPLOAD_BYTES = env_int("MAX_UPLOAD_BYTES", 50 * 1024 * 1024)
API_MAX_JSON_DEPTH = env_int("API_MAX_JSON_DEPTH", 64)

# --- Celery: Redis when REDIS_URL is set, otherwise a server-less SQLite broker ----------------------------
REDIS_URL = env_str("REDIS_URL")
CELERY_BROKER_URL = env_str("CELERY_BROKER_URL", REDIS_URL or f"sqla+sqlite:///{DATA_DIR / 'celery-broker.sqlite3'}")

# --- Cache: shared (Redis) when there is one, so API throttles hold across gunicorn workers ------------------
CACHE_URL = env_str("CACHE_URL", REDIS_URL)
if CACHE_URL.startswith(("redis://", "rediss://")):
    CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": CACHE_URL,
            "KEY_PREFIX": "paved",
        }
    }
elif CACHE_URL in ("", "locmem://"):
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}
else:
    raise ImproperlyConfigured(f"CACHE_URL must be redis://..., rediss://... or locmem://, got {CACHE_URL!r}")
CELERY_TASK_ALWAYS_EAGER = False
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_IGNORE_RESULT = True
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_BEAT_SCHEDULE_FILENAME = str(DATA_DIR / "celerybeat-schedule")
CELERY_WORKER_CONCURRENCY = env_int("CELERY_WORKER_CONCURRENCY", 2)
BROKER_POLLING_INTERVAL = float(env_str("BROKER_POLLING_INTERVAL", "0.1"))
WORKER_HEARTBEAT_SECONDS = env_int("WORKER_HEARTBEAT_SECONDS", 30)
DRIFT_CHECK_SECONDS = env_int("DRIFT_CHECK_SECONDS", 6 * 3600)
TTL_WARNING_HOURS = env_int("TTL_WARNING_HOURS", 2)
# The AWS bill: a CUR 2.0 data export, `s3://bucket/prefix/export-name` or a local folder; empty: none imported.
COST_CUR_LOCATION = env_str("COST_CUR_LOCATION")
COST_CUR_IMPORT_SECONDS = env_int("COST_CUR_IMPORT_SECONDS", 3600)
CELERY_BEAT_SCHEDULE = {
    "record-worker-heartbeat": {
        "task": "apps.ops.tasks.record_worker_heartbeat",
        "schedule": float(WORKER_HEARTBEAT_SECONDS),
    },
    "sweep-runs": {"task": "apps.runs.tasks.sweep_runs", "schedule": 30.0},
    "expire-approvals": {"task": "apps.runs.tasks.expire_approvals", "schedule": 300.0},
    "destroy-expired-workspaces": {"task": "apps.runs.tasks.destroy_expired_workspaces", "schedule": 60.0},
    "warn-expiring-workspaces": {"task": "apps.runs.tasks.warn_expiring_workspaces", "schedule": 300.0},
    "stop-idle-clusters": {"task": "apps.clusters.tasks.stop_idle_clusters", "schedule": 60.0},
    "reconcile-clusters": {"task": "apps.clusters.tasks.reconcile_clusters", "schedule": 300.0},
    "rollup-telemetry": {"task": "apps.clusters.tasks.rollup_telemetry", "schedule": 300.0},
    "enforce-cluster-max-hours": {"task": "apps.clusters.tasks.enforce_cluster_max_hours", "schedule": 60.0},
    "check-drift": {"task": "apps.runs.tasks.check_drift", "schedule": float(DRIFT_CHECK_SECONDS)},
    # Costs: budgets hourly (thresholds on actual and forecast spend), spend anomalies once a day after midnight UTC.
    "evaluate-budgets": {"task": "apps.costs.tasks.evaluate_budgets", "schedule": 3600.0},
    "detect-cost-anomalies": {"task": "apps.costs.tasks.detect_anomalies", "schedule": crontab(minute=30, hour=1)},
    "import-cur-exports": {"task": "apps.costs.tasks.import_cur_exports", "schedule": float(COST_CUR_IMPORT_SECONDS)},
}
# Budget alert webhooks: a slow receiver must not hold the hourly evaluation.
COST_WEBHOOK_TIMEOUT_SECONDS = float(env_str("COST_WEBHOOK_TIMEOUT_SECONDS", "5"))
# Spend anomalies (apps/costs/services/anomalies.py): weeks of same-weekday history, and the floors below which
# a spike is not worth a message.
COST_ANOMALY_WEEKS = env_int("COST_ANOMALY_WEEKS", 8)
COST_ANOMALY_MIN_AMOUNT = env_str("COST_ANOMALY_MIN_AMOUNT", "20")
COST_ANOMALY_MIN_RATIO = env_str("COST_ANOMALY_MIN_RATIO", "1.5")
READINESS_TIMEOUT_SECONDS = float(env_str("READINESS_TIMEOUT_SECONDS", "2"))
# Model deployments: a worker holds a rollout for at most this long per piece of work (a killed worker's rollout
# is picked up once it runs out), and the beat looks for due or orphaned rollouts this often.
DEPLOYMENT_LEASE_SECONDS = env_int("DEPLOYMENT_LEASE_SECONDS", 120)
DEPLOYMENT_RESUME_SECONDS = env_int("DEPLOYMENT_RESUME_SECONDS", 15)
# The local deployment target (apps/deployments/targets/local.py): MLServer from the serving venv (`make serving`),
# Debian's haproxy, their files under SERVING_ROOT; a model server that is not ready in time fails the step.
SERVING_ROOT = Path(env_str("SERVING_ROOT", str(BASE_DIR / "var" / "serving")))
SERVING_PYTHON = env_str("SERVING_PYTHON", str(BASE_DIR / ".venv-serving" / "bin" / "python"))
HAPROXY_BIN = env_str("HAPROXY_BIN", "haproxy")
SERVING_START_TIMEOUT_SECONDS = float(env_str("SERVING_START_TIMEOUT_SECONDS", "60"))
SERVING_LOG_TAIL_BYTES = env_int("SERVING_LOG_TAIL_BYTES", 8 * 1024 * 1024)
# A request log using more disk than this keeps only its last SERVING_LOG_TAIL_BYTES (the supervisor, every 30 s).
SERVING_LOG_MAX_BYTES = env_int("SERVING_LOG_MAX_BYTES", 64 * 1024 * 1024)
CELERY_BEAT_SCHEDULE["supervise-model-servers"] = {
    "task": "apps.deployments.tasks.supervise_model_servers",
    "schedule": 30.0,
}
CELERY_BEAT_SCHEDULE["evaluate-experiments"] = {
    "task": "apps.deployments.tasks.evaluate_experiments",
    "schedule": float(DEPLOYMENT_RESUME_SECONDS),
}
# Endpoint traffic (requests, 5xx, slow answers) is rolled up from each target's counters this often: the SLO,
# error budget and cost-per-inference KPIs read the rows.
ENDPOINT_TRAFFIC_SECONDS = env_int("ENDPOINT_TRAFFIC_SECONDS", 300)
CELERY_BEAT_SCHEDULE["record-endpoint-traffic"] = {
    "task": "apps.deployments.tasks.record_endpoint_traffic",
    "schedule": float(ENDPOINT_TRAFFIC_SECONDS),
}
CELERY_BEAT_SCHEDULE["resume-deployments"] = {
    "task": "apps.deployments.tasks.resume_deployments",
    "schedule": float(DEPLOYMENT_RESUME_SECONDS),
}
# Training jobs (apps/training/): images must match one of these fnmatch patterns (comma-separated; set by the
# platform admins), and the beat places queued jobs and times out overdue ones this often.
TRAINING_ALLOWED_IMAGES = env_list(
    "TRAINING_ALLOWED_IMAGES", "docker.io/library/*,ghcr.io/*,public.ecr.aws/*,*.dkr.ecr.*.amazonaws.com/*"
)
TRAINING_SCHEDULE_SECONDS = env_int("TRAINING_SCHEDULE_SECONDS", 15)
CELERY_BEAT_SCHEDULE["schedule-training-jobs"] = {
    "task": "apps.training.tasks.schedule_training_jobs",
    "schedule": float(TRAINING_SCHEDULE_SECONDS),
}
CELERY_BEAT_SCHEDULE["expire-training-jobs"] = {"task": "apps.training.tasks.expire_training_jobs", "schedule": 60.0}
# A running job whose agent posted nothing (its log batches are the heartbeat, about one a second) for this long
# is lost, and retried within its policy.
TRAINING_LOST_AFTER_SECONDS = env_int("TRAINING_LOST_AFTER_SECONDS", 90)
# A job placed on its cluster whose agents have not all claimed it by then (no agent runs there, or a node of a
# multi-node job never came) is lost the same way, instead of holding the cluster for ever.
TRAINING_CLAIM_TIMEOUT_SECONDS = env_int("TRAINING_CLAIM_TIMEOUT_SECONDS", 600)
CELERY_BEAT_SCHEDULE["lose-silent-training-jobs"] = {
    "task": "apps.training.tasks.lose_silent_training_jobs",
    "schedule": 30.0,
}
# Clusters made for a job are terminated when it ends; this pass catches any whose termination was never sent.
CELERY_BEAT_SCHEDULE["release-job-clusters"] = {
    "task": "apps.training.tasks.release_leftover_job_clusters",
    "schedule": 60.0,
}
# Job definitions' cron schedules (minute granularity) are checked as often as the queue.
CELERY_BEAT_SCHEDULE["fire-training-schedules"] = {
    "task": "apps.training.tasks.fire_training_schedules",
    "schedule": float(TRAINING_SCHEDULE_SECONDS),
}

# Dashboards (apps/dashboards/): KPI snapshots over the standard windows are recomputed this often by the beat;
# KPI_TARGETS overrides a KPI's default target, e.g. {"training_queue_p95": {"green": 45, "amber": 60}} (JSON).
# The KPI snapshot and history tables' unique constraints treat "no team" (the platform) as one value
# (nulls_distinct=False); SQLite cannot enforce that (a history row written twice there is harmless: reads keep one).
SILENCED_SYSTEM_CHECKS = ["models.W047"]
KPI_REFRESH_SECONDS = env_int("KPI_REFRESH_SECONDS", 600)
KPI_TARGETS: dict[str, dict[str, Any]] = json.loads(os.environ.get("KPI_TARGETS", "{}") or "{}")
# Documentation freshness (apps/feedback/kpis.py): a template page edited within this many days is fresh.
DOCS_FRESHNESS_DAYS = env_int("DOCS_FRESHNESS_DAYS", 180)
# The 7- and 30-day windows every KPI_REFRESH_SECONDS; the 90- and 365-day ones, which move slowly and cost the
# most to recompute, every KPI_LONG_REFRESH_SECONDS.
KPI_LONG_REFRESH_SECONDS = env_int("KPI_LONG_REFRESH_SECONDS", 6 * 3600)
CELERY_BEAT_SCHEDULE["refresh-kpi-snapshots"] = {
    "task": "apps.dashboards.tasks.refresh_kpi_snapshots",
    "schedule": float(KPI_REFRESH_SECONDS),
    "args": [[7, 30]],
}
CELERY_BEAT_SCHEDULE["refresh-long-kpi-snapshots"] = {
    "task": "apps.dashboards.tasks.refresh_kpi_snapshots",
    "schedule": float(KPI_LONG_REFRESH_SECONDS),
    "args": [[90, 365]],
}

# --- REST API ----------------------------------------------------------------------------------------------
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "apps.accounts.authentication.BearerTokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_FILTER_BACKENDS": [
        # Strict query parameters (a bad value is a 400 `invalid_query`), see apps/core/query.py.
        "apps.core.query.StrictFilterBackend",
        "apps.core.query.StrictSearchFilter",
        "apps.core.query.StrictOrderingFilter",
    ],
    "DEFAULT_PAGINATION_CLASS": "apps.core.query.BoundedPagination",
    "TEST_REQUEST_DEFAULT_FORMAT": "json",
    "PAGE_SIZE": env_int("API_PAGE_SIZE", 50),
    "DEFAULT_SCHEMA_CLASS": "apps.core.openapi.ProblemAutoSchema",
    "EXCEPTION_HANDLER": "apps.core.exceptions.problem_details_handler",
    # The API speaks JSON only (bodies are held to the schema's types: apps/core/strict_json.py), depth-bounded
    # (apps/core/parsers.py); the module-archive upload declares its own multipart parser.
    "DEFAULT_PARSER_CLASSES": ["apps.core.parsers.BoundedJSONParser"],
    # Client addresses for throttles: REMOTE_ADDR, or the n-th X-Forwarded-For hop behind n trusted proxies.
    "NUM_PROXIES": env_int("NUM_PROXIES", 0),
    "UNAUTHENTICATED_USER": "django.contrib.auth.models.AnonymousUser",
}
SPECTACULAR_SETTINGS = {
    "TITLE": "Paved API",
    "DESCRIPTION": (
        "Self-service platform API for ML teams. Authenticate with a personal token: "
        "`Authorization: Bearer <token>`. Errors are RFC 7807 problem details with a stable `code`."
    ),
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "COMPONENT_SPLIT_REQUEST": True,
    "SCHEMA_PATH_PREFIX": r"/api/v1",
    "ENUM_NAME_OVERRIDES": {
        "TemplateKindEnum": "apps.catalog.models.TemplateKind",
        "RunKindEnum": "apps.runs.models.RunKind",
        "RunStateEnum": "apps.runs.models.RunState",
        "WorkspaceStatusEnum": "apps.runs.models.WorkspaceStatus",
        "LifecycleEnum": "apps.catalog.models.Lifecycle",
        "ApprovalPolicyEnum": "apps.catalog.models.ApprovalPolicy",
        "DeploymentStateEnum": "apps.deployments.models.DeploymentState",
        "ExperimentStateEnum": "apps.deployments.models.ExperimentState",
        # Two `framework` fields (a model's flavour, a training job's framework): each named, so neither gets a hash.
        "FrameworkEnum": "apps.registry.models.Framework",
        "TrainingFrameworkEnum": "apps.training.models.Framework",
        "TrainingJobStateEnum": "apps.training.models.JobState",
    },
}

# --- Logging: text for humans, JSON lines for log shippers (LOG_FORMAT=json) -----------------------------
LOG_LEVEL = env_str("LOG_LEVEL", "INFO").upper()
LOG_FORMAT = env_str("LOG_FORMAT", "text")
if LOG_FORMAT not in {"text", "json"}:
    raise ImproperlyConfigured(f"LOG_FORMAT must be 'text' or 'json', got {LOG_FORMAT!r}")
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {
        "text": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"},
        "json": {"()": "apps.ops.logging.JsonFormatter"},
    },
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": LOG_FORMAT}},
    "root": {"handlers": ["console"], "level": LOG_LEVEL},
    "loggers": {"django.db.backends": {"level": "WARNING"}},
}

# --- E-mail (TTL warnings, approvals): printed to the console unless an SMTP server is configured --------
EMAIL_BACKEND = env_str("EMAIL_BACKEND", "django.core.mail.backends.console.EmailBackend")
EMAIL_HOST = env_str("EMAIL_HOST", "localhost")
EMAIL_PORT = env_int("EMAIL_PORT", 25)
DEFAULT_FROM_EMAIL = env_str("DEFAULT_FROM_EMAIL", "paved@localhost")

# --- Paved ------------------------------------------------------------------------------------------------
API_TOKEN_PREFIX = "pvd_"
TERRAFORM_BIN = env_str("TERRAFORM_BIN")
# Terraform's own variable: a CLI configuration, typically `provider_installation { filesystem_mirror { ... } }`
# so that modules needing providers can be installed with no registry. Runs and the provider check use it.
TERRAFORM_CLI_CONFIG_FILE = env_str("TF_CLI_CONFIG_FILE")
# `sync_templates` (and a launch of a version never checked) runs `terraform init` once per provider set to see
# whether this installation can install it; the verdict is reused for this long, or until the CLI config changes.
PROVIDER_CHECK_TIMEOUT_SECONDS = env_int("PROVIDER_CHECK_TIMEOUT_SECONDS", 30)
PROVIDER_CHECK_TTL_SECONDS = env_int("PROVIDER_CHECK_TTL_SECONDS", 3600)
RUNS_DIR = DATA_DIR / "runs"
TERRAFORM_STATE_DIR = DATA_DIR / "state"
PLAN_TIMEOUT_SECONDS = env_int("PLAN_TIMEOUT_SECONDS", 900)
APPLY_TIMEOUT_SECONDS = env_int("APPLY_TIMEOUT_SECONDS", 3600)
APPROVAL_EXPIRY_HOURS = env_int("APPROVAL_EXPIRY_HOURS", 72)
RUN_HEARTBEAT_STALE_SECONDS = env_int("RUN_HEARTBEAT_STALE_SECONDS", 120)
# How long a worker waits for an unreachable database (a restart) before giving the run up to the sweeper.
RUN_DB_OUTAGE_WAIT_SECONDS = env_int("RUN_DB_OUTAGE_WAIT_SECONDS", 60)

# --- GPU clusters ----------------------------------------------------------------------------------------------
AWS_REGION = env_str("AWS_REGION", "us-east-1")
# Empty: real AWS with the environment's credentials. `make run` points it at a local moto server ("sandbox cloud").
AWS_ENDPOINT_URL = env_str("AWS_ENDPOINT_URL")
DEFAULT_GPU_QUOTA = env_int("DEFAULT_GPU_QUOTA", 16)
DEFAULT_MAX_CLUSTER_HOURS = env_int("DEFAULT_MAX_CLUSTER_HOURS", 72)
IDLE_THRESHOLD_PCT = float(env_str("IDLE_THRESHOLD_PCT", "5"))
IDLE_WINDOW_MINUTES = env_int("IDLE_WINDOW_MINUTES", 30)
MAX_IDLE_WINDOW_MINUTES = env_int("MAX_IDLE_WINDOW_MINUTES", 120)
MAX_SNOOZE_MINUTES = env_int("MAX_SNOOZE_MINUTES", 60)
# Between the idle warning and the stop (0: the idle check after the warning stops the cluster).
IDLE_STOP_GRACE_MINUTES = env_int("IDLE_STOP_GRACE_MINUTES", 10)
# The portal's address as GPU nodes reach it: written into their user data so the agent can register and report.
PAVED_NODE_PORTAL_URL = env_str("PAVED_NODE_PORTAL_URL", "http://127.0.0.1:8000")
# Raw GPU samples older than this are folded into 5-minute rollups and deleted; rollups are kept for the second.
TELEMETRY_RAW_RETENTION_HOURS = env_int("TELEMETRY_RAW_RETENTION_HOURS", 24)
TELEMETRY_ROLLUP_RETENTION_DAYS = env_int("TELEMETRY_ROLLUP_RETENTION_DAYS", 90)
# 5-minute rollups older than this many days are folded into hourly ones.
TELEMETRY_FINE_ROLLUP_DAYS = env_int("TELEMETRY_FINE_ROLLUP_DAYS", 7)
DEMO_PASSWORD = env_str("DEMO_PASSWORD", "paved-demo")

# --- Deployments on SageMaker -----------------------------------------------------------------------------
# A step that creates or updates a SageMaker endpoint waits this long for InService (real endpoints take minutes);
# past it the step fails as retryable and the engine repeats it. The endpoint is polled every SAGEMAKER_POLL_SECONDS.
SAGEMAKER_WAIT_SECONDS = env_int("SAGEMAKER_WAIT_SECONDS", 1800)
SAGEMAKER_POLL_SECONDS = env_int("SAGEMAKER_POLL_SECONDS", 15)

# --- Costs: metering and Cost Explorer reconciliation ---------------------------------------------------------
# A stopped cluster's EBS volumes keep billing: metering assumes this many GB of gp3 per node at this price
# (us-east-1 gp3, USD per GB-month; a month is 730 hours), so showback works with no AWS bill at all.
METERING_EBS_GB_PER_NODE = env_int("METERING_EBS_GB_PER_NODE", 200)
METERING_EBS_PRICE_PER_GB_MONTH = env_str("METERING_EBS_PRICE_PER_GB_MONTH", "0.08")
# The hourly metering pass catches up at most this far back after an outage (a longer gap: `meter_costs --since`).
METERING_MAX_CATCHUP_HOURS = env_int("METERING_MAX_CATCHUP_HOURS", 48)
# Cost Explorer reconciliation calls AWS (USD 0.01 per request): off unless enabled; it re-reads this many days.
COST_EXPLORER_ENABLED = env_bool("COST_EXPLORER_ENABLED", False)
COST_EXPLORER_DAYS = env_int("COST_EXPLORER_DAYS", 35)
# The second grouping of the Cost Explorer query besides the `paved:team` tag: a tag key or the SERVICE dimension.
COST_EXPLORER_SECOND_GROUP = env_str("COST_EXPLORER_SECOND_GROUP", "SERVICE")
# Waste: GPUs that averaged under this over 7 days get a right-sizing recommendation.
RIGHTSIZING_UTILIZATION_PCT = float(env_str("RIGHTSIZING_UTILIZATION_PCT", "30"))
# Each pass re-meters the hour in progress, so a short interval makes a new launch's cost show within minutes.
METERING_SECONDS = env_int("METERING_SECONDS", 600)
CELERY_BEAT_SCHEDULE["meter-costs"] = {"task": "apps.costs.tasks.meter_costs", "schedule": float(METERING_SECONDS)}
CELERY_BEAT_SCHEDULE["reconcile-cost-explorer"] = {
    "task": "apps.costs.tasks.reconcile_cost_explorer",
    "schedule": 86400.0,
}
# A shared-cost rule change rebuilds up to this many days in the request; more go to the worker.
SHARED_RULE_SYNC_DAYS = env_int("SHARED_RULE_SYNC_DAYS", 62)
