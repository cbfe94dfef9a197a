# syntax=docker/dockerfile:1

# Cellar notebook store: container image.
#
# Two stages: the builder installs the package and its runtime dependencies into a
# self-contained virtualenv; the runtime stage copies that virtualenv plus only what the
# service and its migrations need at run time. No embedded-PostgreSQL or test extras are
# installed: in a container the database is always external (DATABASE_URL).

######## builder ########
FROM python:3.11-slim AS builder

ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1 \
    PYTHONDONTWRITEBYTECODE=1

RUN python -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH

WORKDIR /build
# README.md is referenced by pyproject.toml ([project] readme), so the build needs it.
COPY pyproject.toml README.md ./
COPY app/ ./app/
RUN pip install --no-cache-dir .

######## runtime ########
FROM python:3.11-slim AS runtime

ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1

# Fixed uid/gid so volume permissions and orchestrator policies are predictable.
RUN groupadd --system --gid 10001 cellar \
    && useradd --system --uid 10001 --gid cellar --home-dir /srv \
        --no-create-home --shell /usr/sbin/nologin cellar

COPY --from=builder /opt/venv /opt/venv

WORKDIR /srv
# Files stay root-owned (read-only for the service user). piccolo_conf.py and
# piccolo_migrations/ are needed for `piccolo migrations forwards all` run from /srv.
COPY app/ ./app/
COPY piccolo_migrations/ ./piccolo_migrations/
COPY piccolo_conf.py ./

USER cellar:cellar

EXPOSE 8000

# python:3.11-slim has no curl; use the standard library. urlopen raises on non-2xx.
HEALTHCHECK --interval=30s --timeout=5s --start-period=20s --retries=3 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/health', timeout=4)"]

# DATABASE_URL, APP_SECRET_KEY and ENCRYPTION_KEY come from the environment.
CMD ["cellar", "serve", "--host", "0.0.0.0", "--port", "8000"]
