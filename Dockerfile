# syntax=docker/dockerfile:1
# One image runs every crossdock service; the Kubernetes manifests choose the command
# (`python -m services.<name>.main`, `python -m gateway.main`, `python -m services.kit.cli`).
ARG PYTHON_IMAGE=python:3.11-slim-bookworm

# ---- build: a venv with crossdock's dependencies and the generated contracts ------------------
FROM ${PYTHON_IMAGE} AS build
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1
RUN python -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH
WORKDIR /src
COPY gen/python gen/python
COPY pyproject.toml README.md ./
COPY services services
COPY gateway gateway
# Not editable: the runtime stage gets the venv and the sources, never the build tools.
RUN pip install ./gen/python . \
    && python -m compileall -q services gateway

# ---- runtime: the venv and the sources, run as an unprivileged user ----------------------------
FROM ${PYTHON_IMAGE} AS runtime
RUN groupadd --system --gid 10001 crossdock \
    && useradd --system --uid 10001 --gid 10001 --no-create-home \
       --home-dir /nonexistent --shell /usr/sbin/nologin crossdock
COPY --from=build /opt/venv /opt/venv
# The source tree comes first on the path: it carries the Alembic migrations and data files
# next to the code, where services.kit.migrations looks for them.
COPY --from=build /src/services /app/services
COPY --from=build /src/gateway /app/gateway
# HOME=/tmp: tools that cache under ~ (buf, used by the schema registry) write to the one
# writable path when the root filesystem is read-only.
ENV PATH=/opt/venv/bin:$PATH \
    HOME=/tmp \
    PYTHONPATH=/app \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1
WORKDIR /app
# Numeric, so Kubernetes' runAsNonRoot can verify it without reading /etc/passwd.
USER 10001:10001
EXPOSE 50051 8080 9464
CMD ["python", "-m", "services.kit.cli", "--help"]
