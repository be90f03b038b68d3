# A GPU machine's worker: CUDA's base image, Python, and only the GPU worker's code (and the wire contract
# it shares with the control plane) and packages — no
# Django, no settings, no database driver (it holds no database credentials, and needs none).
# Build from the repository root: docker build -f docker/gpu-worker.Dockerfile .
FROM nvidia/cuda:12.4.1-base-ubuntu22.04 AS build
ENV DEBIAN_FRONTEND=noninteractive PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1
RUN apt-get update && apt-get install -y --no-install-recommends python3.11 python3.11-venv \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY pyproject.toml docker/gpu-worker-packages.txt docker/pins.py ./
# The packages gpu-worker-packages.txt names, at the versions pyproject.toml pins (one list of pins).
RUN python3.11 -m venv /opt/venv \
    && python3.11 pins.py pyproject.toml gpu-worker-packages.txt > requirements.txt \
    && /opt/venv/bin/pip install -r requirements.txt

FROM nvidia/cuda:12.4.1-base-ubuntu22.04
ENV DEBIAN_FRONTEND=noninteractive PYTHONUNBUFFERED=1 PATH=/opt/venv/bin:$PATH \
    NVIDIA_VISIBLE_DEVICES=all NVIDIA_DRIVER_CAPABILITIES=compute,utility \
    WORKER_CREDENTIALS_DIR=/var/lib/gpu_worker WORKER_METRICS_PORT=9400
RUN apt-get update && apt-get install -y --no-install-recommends python3.11 \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --system --uid 10001 --home-dir /app worker \
    && mkdir -p /var/lib/gpu_worker && chown worker /var/lib/gpu_worker
COPY --from=build /opt/venv /opt/venv
COPY gpu_worker /app/gpu_worker
COPY wire /app/wire
WORKDIR /app
USER worker
# Alive: its metrics port (on the container's loopback only) answers.
HEALTHCHECK --interval=15s --timeout=5s --start-period=30s --retries=3 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:9400/metrics', timeout=4)"]
CMD ["python", "-m", "gpu_worker"]
