"""A core task of the agent that dies stops the agent with an error (so `spc agent` exits 1 and
systemd restarts it), instead of leaving it running headless."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from edge_agent import agent as agent_module
from edge_agent import cli
from edge_agent.agent import Agent, AgentFailed
from edge_agent.buffer import MemoryBuffer
from edge_agent.config import AgentConfig, parse_config
from edge_agent.runner import SourceRunner
from tests.fixtures.net import free_port


def config(tmp_path: Path) -> AgentConfig:
    return parse_config({
        "agent": {"name": "edge-test"},
        "server": {"url": f"http://127.0.0.1:{free_port()}", "api_key": "k", "timeout_s": 1},
        "buffer": {"path": str(tmp_path / "buf.sqlite"), "max_samples": 1000},
        "upload": {"batch_size": 10, "interval_s": 0.1, "backoff_initial_s": 0.05,
                   "backoff_max_s": 0.2},
        "heartbeat": {"interval_s": 0.2},
        "sources": [{"kind": "modbus", "name": "m", "host": "127.0.0.1", "port": free_port(),
                     "interval_s": 0.1, "tags": [{"characteristic": "x", "address": 0}]}],
    }, env={})


async def test_a_dead_uploader_stops_the_agent(tmp_path: Path) -> None:
    agent = Agent(config(tmp_path), buffer=MemoryBuffer(1000))

    async def dies(stop: asyncio.Event) -> None:
        await asyncio.sleep(0.1)
        raise RuntimeError("boom")

    agent.uploader.run = dies  # type: ignore[method-assign]
    with pytest.raises(AgentFailed, match="uploader failed: RuntimeError: boom"):
        await asyncio.wait_for(agent.run(), 30)
    assert agent.stop.is_set()
    assert all(t.status.state == "stopped" for t in agent.threads)


async def test_a_source_runner_that_ends_stops_the_agent(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(agent_module, "SOURCE_CHECK_S", 0.05)

    async def ends(self: SourceRunner, stop: asyncio.Event) -> None:
        self.status.state = "stopped"

    monkeypatch.setattr(SourceRunner, "run", ends)
    agent = Agent(config(tmp_path), buffer=MemoryBuffer(1000))
    with pytest.raises(AgentFailed, match="the runner of source m ended"):
        await asyncio.wait_for(agent.run(), 30)


async def test_a_stopped_agent_is_not_a_failure(tmp_path: Path) -> None:
    agent = Agent(config(tmp_path), buffer=MemoryBuffer(1000))
    asyncio.get_running_loop().call_later(0.3, agent.stop.set)
    await asyncio.wait_for(agent.run(), 30)
    assert agent.failed is None


async def test_spc_agent_exits_1_when_the_agent_failed(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    async def fails(self: Agent) -> None:
        raise AgentFailed("task uploader failed: RuntimeError: boom")

    monkeypatch.setattr(Agent, "run", fails)
    assert await cli._run(config(tmp_path)) == 1
    assert "internal failure" in capsys.readouterr().err
