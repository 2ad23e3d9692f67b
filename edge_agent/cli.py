"""`spc agent`: run the edge agent, or check a config file the way a commissioning engineer would.

    spc agent --config FILE            run until SIGINT/SIGTERM
    spc agent check-config FILE        validate, connect to every source once, print a tag table
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import sys
from collections.abc import Sequence

from edge_agent.config import AgentConfig, ConfigError, load_config
from edge_agent.sources import Sample, create_source
from edge_agent.sources.base import SourceError

log = logging.getLogger("edge_agent")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="spc agent",
        description="Edge agent: polls OPC UA and Modbus sources, buffers every sample on disk "
        "and uploads batches to the SPC server.",
        epilog="Subcommand: 'spc agent check-config FILE' validates FILE, connects to every "
        "source once and prints each tag's value, quality and unit.")
    parser.add_argument("--config", "-c", metavar="FILE", help="agent YAML configuration")
    parser.add_argument("--log-level", default="INFO",
                        choices=["DEBUG", "INFO", "WARNING", "ERROR"])
    return parser


def _check_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="spc agent check-config",
        description="Validate an agent config, connect to each source once and print a table "
        "of every tag with its current value, quality and unit. Exit 0 when every source "
        "answered, 1 when one did not, 2 when the file is invalid.")
    parser.add_argument("file", metavar="FILE")
    parser.add_argument("--timeout", type=float, default=10.0,
                        help="seconds to wait for each source (default 10)")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if args and args[0] == "check-config":
        check_args = _check_parser().parse_args(args[1:])
        return check_config(check_args.file, check_args.timeout)
    parsed = _parser().parse_args(args)
    if not parsed.config:
        _parser().print_usage(sys.stderr)
        print("spc agent: error: --config FILE is required (or use 'check-config FILE')",
              file=sys.stderr)
        return 2
    logging.basicConfig(level=parsed.log_level,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    # asyncua logs every reconnect attempt, with tracebacks; our runner reports state itself.
    logging.getLogger("asyncua").setLevel(logging.CRITICAL)
    logging.getLogger("pymodbus").setLevel(logging.CRITICAL)
    logging.getLogger("httpx").setLevel(logging.WARNING)  # one line per request is too much
    try:
        config = load_config(parsed.config)
    except ConfigError as exc:
        print(exc, file=sys.stderr)
        return 2
    return asyncio.run(_run(config))


async def _run(config: AgentConfig) -> int:
    from edge_agent.agent import Agent, AgentFailed

    # Sources run in threads; a thread waiting for I/O (a Modbus reply, the uploader) must get
    # the interpreter back quickly while another decodes a large OPC UA response. The default
    # 5 ms switch interval makes every such hand-over wait up to 5 ms.
    sys.setswitchinterval(0.0005)
    _tune_malloc()

    try:
        agent = Agent(config)
    except OSError as exc:
        print(f"spc agent: cannot open buffer {config.buffer.path}: {exc}", file=sys.stderr)
        return 1
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, agent.stop.set)
    try:
        await agent.run()
    except AgentFailed as exc:  # logged; a non-zero exit makes systemd restart the agent
        print(f"spc agent: stopped after an internal failure: {exc}", file=sys.stderr)
        return 1
    return 0


def _tune_malloc() -> None:
    """Keep the agent's memory small on glibc (before any thread starts). glibc gives each
    thread that allocates an arena of its own, up to 8 per core, and keeps what is freed in it;
    the source threads, the worker threads and SQLite each took one. Two arenas, and large
    blocks (a batch's JSON and its gzip, ~1 MB) always from mmap so that they go back to the
    system when freed (glibc otherwise raises that threshold as it goes): ~5 MB less RSS under
    the benchmark (benchmarks/README.md). Elsewhere (musl, macOS) nothing is done."""
    if not sys.platform.startswith("linux"):
        return
    import ctypes

    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):
        return
    m_arena_max, m_mmap_threshold = -8, -3
    mallopt(m_arena_max, 2)
    mallopt(m_mmap_threshold, 256 * 1024)


def check_config(path: str, timeout: float = 10.0) -> int:
    try:
        config = load_config(path)
    except ConfigError as exc:
        print(exc, file=sys.stderr)
        return 2
    print(f"{path}: valid; agent {config.agent.name}, {len(config.sources)} source(s), "
          f"server {config.server.url}")
    for source in config.sources:
        security = getattr(source, "security", None)
        if security is not None and not security.secured:
            # stderr: the table on stdout stays machine-readable
            print(f"warning: {source.name}: OPC UA without security (allow_insecure): values and "
                  "credentials travel in clear and the server is not authenticated; "
                  "use this only on an isolated cell network", file=sys.stderr)
    logging.basicConfig(level=logging.ERROR)
    logging.getLogger("asyncua").setLevel(logging.CRITICAL)
    logging.getLogger("pymodbus").setLevel(logging.CRITICAL)
    return asyncio.run(_check_sources(config, timeout))


async def _check_sources(config: AgentConfig, timeout: float) -> int:
    rows: list[tuple[str, ...]] = []
    failures = 0
    for source_config in config.sources:
        source = create_source(source_config)
        samples: dict[str, Sample] = {}
        error = None
        try:
            await asyncio.wait_for(source.connect(), timeout)
            for sample in await asyncio.wait_for(source.read(), timeout):
                samples.setdefault(sample.characteristic, sample)
        except (SourceError, TimeoutError) as exc:
            error = str(exc) or "timed out"
        finally:
            await source.close()
        if error:
            failures += 1
        for address, characteristic, unit in source.tag_rows():
            sample = samples.get(characteristic)
            if error:
                value, quality = "-", f"ERROR: {error}"
            elif sample is None:
                value, quality = "-", "(no value yet)"
            else:
                value = "null" if sample.value is None else f"{sample.value:.6g}"
                quality = sample.quality
            rows.append((source.name, address, characteristic, value, quality, unit))
    header = ("SOURCE", "TAG", "CHARACTERISTIC", "VALUE", "QUALITY", "UNIT")
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    for row in [header, *rows]:
        print("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip())
    return 1 if failures else 0


if __name__ == "__main__":
    raise SystemExit(main())
