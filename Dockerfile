# The Clearance API image used by compose.yaml.
FROM python:3.11-slim
RUN apt-get update && apt-get install -y --no-install-recommends build-essential libmagic1 \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /app
COPY pyproject.toml README.md ./
COPY core core
COPY acl acl
COPY index index
COPY api api
COPY clearance clearance
COPY ingest ingest
COPY retrieval retrieval
COPY samples samples
# torch first and pinned (see pyproject.toml). Point PIP_INDEX_URL / PIP_EXTRA_INDEX_URL at a
# CPU-only wheel index to keep the image small; the default index carries the CUDA build.
ARG PIP_EXTRA_INDEX_URL=""
# llama-cpp-python compiles natively but without AMX tile instructions (see the Makefile: hosts that
# do not grant AMX tile state kill the process on the first prompt).
ARG CMAKE_ARGS="-DCMAKE_C_FLAGS='-mno-amx-tile -mno-amx-int8 -mno-amx-bf16' -DCMAKE_CXX_FLAGS='-mno-amx-tile -mno-amx-int8 -mno-amx-bf16'"
RUN pip install --no-cache-dir torch==2.13.0 && pip install --no-cache-dir .
# Production mode: only the configured Entra ID issuers are trusted, and no development routes exist.
ENV HF_HUB_OFFLINE=1 CLEARANCE_MODE=production CLEARANCE_SERVER__HOST=0.0.0.0
EXPOSE 8000
CMD ["clearance", "serve"]
