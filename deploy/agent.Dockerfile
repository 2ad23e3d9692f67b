# syntax=docker/dockerfile:1
# The shopfloor-spc edge agent: `spc agent`, with the [edge] extra only (asyncua, pymodbus,
# httpx, pyyaml, pydantic); no server stack. Build from the repository root:
#
#   docker build -f deploy/agent.Dockerfile -t shopfloor-spc/agent:0.1.0 .
#   docker run -d --name spc-agent-line1 --restart unless-stopped \
#       -v /etc/spc-agent/line1.yaml:/etc/spc-agent/agent.yaml:ro \
#       -v spc-agent-line1:/var/lib/spc-agent \
#       -e SPC_AGENT_KEY=... shopfloor-spc/agent:0.1.0
#
# Put `buffer.path` under /var/lib/spc-agent/ (the volume) so buffered samples survive the
# container. For Modbus RTU add `--device /dev/ttyUSB0 --group-add dialout`.
#
# Multi-arch (Raspberry Pi 4/5 run linux/arm64): python:3.11-slim exists for arm64, and the
# agent's dependencies are pure Python or have aarch64 wheels (pydantic-core, cryptography for
# asyncua; numpy/scipy come with the base package and have aarch64 wheels too). Build on a PC for
# the Pi with buildx and QEMU:
#
#   docker buildx build --platform linux/arm64 -f deploy/agent.Dockerfile \
#       -t registry.example.com/shopfloor-spc/agent:0.1.0 --push .
#
# 32-bit Raspberry Pi OS (armv7) has no wheels for several of these: use the 64-bit OS.
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
    PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
RUN groupadd --system --gid 10002 spc-agent \
    && useradd --system --uid 10002 --gid spc-agent --home-dir /var/lib/spc-agent \
       --no-create-home --shell /usr/sbin/nologin spc-agent \
    && install -d -o spc-agent -g spc-agent -m 0750 /var/lib/spc-agent \
    && install -d -m 0755 /etc/spc-agent
COPY --from=build /wheels /wheels
RUN pip install "$(ls /wheels/shopfloor_spc-*.whl)[edge]" && rm -rf /wheels
USER spc-agent:spc-agent
WORKDIR /var/lib/spc-agent
VOLUME ["/var/lib/spc-agent"]
# The agent checks its config before it starts: exit status 2 means an invalid config file.
ENTRYPOINT ["spc", "agent"]
CMD ["--config", "/etc/spc-agent/agent.yaml"]
