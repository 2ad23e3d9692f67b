# syntax=docker/dockerfile:1
# The shopfloor-spc server: `spc server` (FastAPI + uvicorn) with the operators' dashboard at /ui/.
# Build from the repository root (deploy/compose.yml does):
#
#   docker build -f deploy/server.Dockerfile -t shopfloor-spc/server:0.1.0 .
#
# Multi-arch: python:3.11-slim is published for linux/amd64 and linux/arm64, and every
# dependency (numpy, scipy, asyncpg, uvloop, httptools, pydantic-core) has manylinux wheels for
# both, so no compiler is needed on either. Build both at once with buildx:
#
#   docker buildx build --platform linux/amd64,linux/arm64 -f deploy/server.Dockerfile \
#       -t registry.example.com/shopfloor-spc/server:0.1.0 --push .
#
# For reproducible builds pin the base image by digest: --build-arg PYTHON_IMAGE=python:3.11-slim-bookworm@sha256:...
ARG PYTHON_IMAGE=python:3.11-slim-bookworm

FROM ${PYTHON_IMAGE} AS build
WORKDIR /src
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
COPY pyproject.toml README.md ./
COPY spc_core ./spc_core
COPY edge_agent ./edge_agent
COPY server ./server
COPY simulators ./simulators
COPY spc_cli ./spc_cli
RUN pip wheel --no-deps --wheel-dir /wheels .

FROM ${PYTHON_IMAGE}
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1 \
    SPC_HOST=0.0.0.0 SPC_PORT=8000 \
    SPC_DASHBOARD_DIR=/opt/spc/dashboard
RUN groupadd --system --gid 10001 spc \
    && useradd --system --uid 10001 --gid spc --home-dir /nonexistent --no-create-home \
       --shell /usr/sbin/nologin spc
COPY --from=build /wheels /wheels
RUN pip install "$(ls /wheels/shopfloor_spc-*.whl)[server]" && rm -rf /wheels
# the operators' page (plain ES modules, no build step); served at /ui/
COPY dashboards/web /opt/spc/dashboard
USER spc:spc
EXPOSE 8000
# migrations run at start, under an advisory lock (several replicas may start together)
HEALTHCHECK --interval=10s --timeout=5s --start-period=30s --retries=6 \
    CMD ["python", "-c", "import json, urllib.request as u; h = json.load(u.urlopen('http://127.0.0.1:8000/api/v1/health', timeout=4)); raise SystemExit(h['status'] != 'ok')"]
ENTRYPOINT ["spc"]
CMD ["server"]
