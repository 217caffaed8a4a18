# syntax=docker/dockerfile:1
#
# Paved portal image. One image runs every process role; the command picks the role:
#   web     gunicorn portal.wsgi:application ...   (the default CMD below)
#   worker  celery -A portal worker --loglevel=INFO
#   beat    celery -A portal beat --loglevel=INFO --schedule /data/celerybeat-schedule
#   migrate python manage.py migrate --noinput
# See docker-compose.yml for a complete stack (Postgres, Redis, web, worker, beat).
#
# Build: docker build -t paved .
# Run:   docker run -e SECRET_KEY=... -p 8000:8000 paved
# The container runs with DEBUG off by default (settings default), so SECRET_KEY must be set at run time.

# --- Stage 1: install the project and its dependencies into a self-contained virtualenv -------------------
FROM python:3.11-slim AS builder

ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

RUN python -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH

WORKDIR /src
COPY pyproject.toml README.md ./
COPY portal/ portal/
COPY apps/ apps/
RUN pip install .

# --- Stage 2: runtime image ---------------------------------------------------------------------------------
FROM python:3.11-slim

# PYTHONPATH=/app makes every entry point (manage.py, gunicorn, celery) import portal/ and apps/ from the
# source tree in /app, next to templates/, static/ and infra/ (settings derive BASE_DIR from settings.py),
# rather than the copy that `pip install .` put in site-packages.
# STATIC_ROOT lives in the image, not under /data: /data is a volume in compose, and a volume populated on
# first start would keep serving stale static files after an image rebuild.
ENV PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PAVED_DATA_DIR=/data \
    STATIC_ROOT=/app/staticfiles \
    PYTHONPATH=/app \
    PATH=/opt/venv/bin:$PATH

RUN groupadd --system --gid 10001 paved \
    && useradd --system --uid 10001 --gid paved --create-home --home-dir /home/paved \
        --shell /usr/sbin/nologin paved \
    && mkdir -p /data \
    && chown paved:paved /data

COPY --from=builder /opt/venv /opt/venv

WORKDIR /app
# Application code stays root-owned (read-only for the runtime user); only /data is writable.
COPY pyproject.toml README.md manage.py ./
COPY portal/ portal/
COPY apps/ apps/
COPY templates/ templates/
COPY static/ static/
COPY infra/ infra/

# Settings refuse to start with DEBUG=0 and no SECRET_KEY; DEBUG=1 applies to this build step only and is
# not baked into the image's environment.
RUN DEBUG=1 python manage.py collectstatic --noinput

USER paved

EXPOSE 8000

# Liveness only (/healthz does not touch the database). The probe uses Host 127.0.0.1, so keep 127.0.0.1 in
# ALLOWED_HOSTS (the default) or the probe gets a 400. /healthz is exempt from SECURE_SSL_REDIRECT.
HEALTHCHECK --interval=30s --timeout=5s --start-period=20s --retries=3 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/healthz', timeout=4)"]

CMD ["gunicorn", "portal.wsgi:application", "--bind", "0.0.0.0:8000", "--workers", "3", "--access-logfile", "-"]
