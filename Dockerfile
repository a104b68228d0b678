# A slim CPU image that serves the code location and runs scoring; pass
# --build-arg BASE_IMAGE=nvidia/cuda:12.4.1-cudnn-runtime-ubuntu22.04 (with Python 3.11)
# and --build-arg TORCH_INDEX=https://download.pytorch.org/whl/cu124 for a training image.
ARG BASE_IMAGE=python:3.11-slim-bookworm
FROM ${BASE_IMAGE}

ARG TORCH_INDEX=https://download.pytorch.org/whl/cpu
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    DAGSTER_HOME=/opt/dagster/home

# Java for Spark in local mode; a cluster (EMR, Spark on Kubernetes) needs it only on its nodes.
RUN apt-get update \
    && apt-get install -y --no-install-recommends openjdk-17-jre-headless \
    && rm -rf /var/lib/apt/lists/*

WORKDIR /opt/consumer-assets
COPY pyproject.toml README.md ./
COPY consumer_assets ./consumer_assets
RUN pip install --no-cache-dir --index-url ${TORCH_INDEX} torch==2.13.0 \
    && pip install --no-cache-dir . \
    && useradd --create-home --uid 10001 dagster \
    && mkdir -p ${DAGSTER_HOME} && chown dagster ${DAGSTER_HOME}
COPY dagster.yaml ${DAGSTER_HOME}/dagster.yaml

USER dagster
EXPOSE 4000
CMD ["dagster", "code-server", "start", "-h", "0.0.0.0", "-p", "4000", "-m", "consumer_assets.definitions"]
