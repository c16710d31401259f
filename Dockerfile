# Opsroom as a container: the same install steps as `make` (a venv, pip upgraded, the project
# installed into it), without the dev extras; runs as an unprivileged user.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    VIRTUAL_ENV=/app/.venv \
    PATH=/app/.venv/bin:$PATH

RUN useradd --create-home --uid 10001 --shell /usr/sbin/nologin opsroom \
    && mkdir -p /app /data \
    && chown opsroom:opsroom /app /data

WORKDIR /app
COPY --chown=opsroom:opsroom pyproject.toml README.md ./
COPY --chown=opsroom:opsroom bot ./bot
COPY --chown=opsroom:opsroom adapters ./adapters
COPY --chown=opsroom:opsroom storage ./storage

USER opsroom
RUN python -m venv /app/.venv \
    && /app/.venv/bin/python -m pip install --quiet --upgrade pip \
    && /app/.venv/bin/python -m pip install --quiet .

# SQLite in a volume unless DATABASE_URL names PostgreSQL (several replicas need PostgreSQL).
ENV DATABASE_URL=sqlite:////data/opsroom.db \
    OPSROOM_HTTP_HOST=0.0.0.0 \
    OPSROOM_HTTP_PORT=8080
VOLUME ["/data"]
EXPOSE 8080
HEALTHCHECK --interval=10s --timeout=3s --start-period=20s \
    CMD python -c "import urllib.request,sys; sys.exit(urllib.request.urlopen('http://127.0.0.1:8080/healthz').status != 200)"
ENTRYPOINT ["opsroom"]
CMD ["run"]
