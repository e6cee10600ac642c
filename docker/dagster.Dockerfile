# syntax=docker/dockerfile:1
# The Dagster webserver and daemon (one image, the service chosen at run time):
#   docker run twin/dagster webserver     UI and GraphQL on 3000 (health: /server_info)
#   docker run twin/dagster daemon        schedules, sensors, the run queue
# They load no platform code: the workspace (docker/workspace.yaml) reaches the code-location container over gRPC
# at DAGSTER_CODE_LOCATION_HOST:DAGSTER_CODE_LOCATION_PORT. The instance (docker/dagster*.yaml) keeps runs,
# events and schedules in Postgres (DAGSTER_PG_*); DAGSTER_RUN_LAUNCHER picks default, docker or k8s.
# From the repository root:  docker build -f docker/dagster.Dockerfile -t twin/dagster .

# ---- builder ----
FROM python:3.11.14-slim-bookworm AS builder
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1 PYTHONDONTWRITEBYTECODE=1
RUN python -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH
WORKDIR /src
COPY constraints.txt ./
# The versions are the lock's (constraints.txt); the launchers' libraries are here so that any of the three
# instance files loads.
RUN pip install "pip==25.3" \
 && pip install -c constraints.txt "dagster==1.13.27" "dagster-webserver==1.13.27" "dagster-postgres==0.29.27" \
    "dagster-docker==0.29.27" "dagster-k8s==0.29.27"

# ---- runtime ----
FROM python:3.11.14-slim-bookworm
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PATH=/opt/venv/bin:$PATH DO_NOT_TRACK=1 \
    DAGSTER_HOME=/opt/dagster/home DAGSTER_CONFIG_DIR=/opt/dagster/config \
    DAGSTER_WORKSPACE=/opt/dagster/workspace.yaml DAGSTER_WEBSERVER_PORT=3000 \
    DAGSTER_CODE_LOCATION_HOST=code-location DAGSTER_CODE_LOCATION_PORT=4000 DAGSTER_RUN_LAUNCHER=default
RUN groupadd --gid 1000 twin \
 && useradd --uid 1000 --gid 1000 --create-home --home-dir /home/twin --shell /usr/sbin/nologin twin \
 && mkdir -p /opt/dagster/home /var/lib/twin \
 && chown 1000:1000 /opt/dagster/home /var/lib/twin
COPY --from=builder /opt/venv /opt/venv
COPY docker/dagster.yaml docker/dagster-docker.yaml docker/dagster-k8s.yaml /opt/dagster/config/
COPY docker/workspace.yaml /opt/dagster/workspace.yaml
COPY docker/dagster_entrypoint.py /opt/dagster/entrypoint.py
COPY docker/healthcheck.py /opt/twin/healthcheck.py
USER 1000:1000
WORKDIR /home/twin
EXPOSE 3000
HEALTHCHECK --interval=30s --timeout=30s --start-period=60s --retries=3 \
  CMD ["python", "/opt/twin/healthcheck.py", "dagster"]
ENTRYPOINT ["python", "/opt/dagster/entrypoint.py"]
CMD ["webserver"]
