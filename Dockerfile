# One recipe, two images, both from the slim Python base:
#   CPU (code location, daily runs, scoring):  docker build -t consumer-assets .
#   GPU (training runs):                       docker build -t consumer-assets-gpu --build-arg TORCH_INDEX=https://pypi.org/simple .
# PyPI's Linux wheel of torch 2.13 carries its CUDA libraries (nvidia-* wheels, CUDA 13), so the GPU image needs no
# CUDA base image, only the NVIDIA driver on the node; `make check-gpu-image` resolves it in CI. Deploy the GPU image
# with CONSUMER_ASSETS_TRAINING_DEVICE=cuda, so that a training run that lands without a GPU fails and says why.
ARG BASE_IMAGE=python:3.11-slim-bookworm
FROM ${BASE_IMAGE}

ARG TORCH_INDEX=https://download.pytorch.org/whl/cpu
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    DAGSTER_HOME=/opt/dagster/home

# Java for Spark in local mode; a cluster (EMR, Spark on Kubernetes, Spark Connect) needs it only on its nodes.
RUN apt-get update \
    && apt-get install -y --no-install-recommends openjdk-17-jre-headless \
    && rm -rf /var/lib/apt/lists/*

WORKDIR /opt/consumer-assets
COPY pyproject.toml README.md requirements.lock ./
COPY consumer_assets ./consumer_assets
# torch first from TORCH_INDEX; everything else at the versions of requirements.lock, with the deploy extra
# (dagster-postgres for the instance, dagster-k8s for the run launcher).
RUN pip install --no-cache-dir --index-url ${TORCH_INDEX} torch==2.13.0 \
    && pip install --no-cache-dir -c requirements.lock '.[deploy]' \
    && useradd --create-home --uid 10001 dagster \
    && mkdir -p ${DAGSTER_HOME} && chown dagster ${DAGSTER_HOME}
COPY dagster.yaml deploy/production.yaml /tmp/instance/
RUN cat /tmp/instance/dagster.yaml /tmp/instance/production.yaml > ${DAGSTER_HOME}/dagster.yaml && rm -r /tmp/instance

USER dagster
EXPOSE 4000
CMD ["dagster", "code-server", "start", "-h", "0.0.0.0", "-p", "4000", "-m", "consumer_assets.definitions"]
