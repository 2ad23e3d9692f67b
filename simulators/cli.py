"""`spc simulate`: run a simulated line, print its Modbus map, or drive a running one.

    spc simulate --config LINE.yaml [--opcua-port P] [--modbus-port Q] [--control-port C]
                 [--seed S] [--rate HZ] [--speed X] [--scenario FILE ...] [--modbus-rtu DEV]
    spc simulate --config LINE.yaml --print-map
    spc simulate inject --control-url URL --variable NAME --kind shift [--magnitude K] ...
    spc simulate clear  --control-url URL [--id N]
    spc simulate state  --control-url URL
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import signal
import sys
import urllib.error
import urllib.request
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

from simulators.config import (
    ConfigError,
    DisturbanceKind,
    LineConfig,
    load_line_config,
    load_scenario,
)
from simulators.opcua_security import POLICIES

DEFAULT_CONFIG = Path(__file__).parent / "examples" / "machining_line.yaml"
CLIENT_COMMANDS = ("inject", "clear", "state")
log = logging.getLogger("simulators")


def _run_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="spc simulate",
        description="Run a simulated line serving its process over OPC UA and Modbus. "
        f"Other forms: 'spc simulate {{{','.join(CLIENT_COMMANDS)}}} --help'.",
    )
    p.add_argument("--config", type=Path, default=DEFAULT_CONFIG,
                   help="line YAML (default: the shipped machining line)")
    p.add_argument("--host", default="127.0.0.1", help="address to serve on (default 127.0.0.1)")
    p.add_argument("--opcua-port", type=int, default=4840, help="OPC UA port (default 4840)")
    p.add_argument("--modbus-port", type=int, default=5020, help="Modbus TCP port (default 5020)")
    p.add_argument("--control-port", type=int, default=8765,
                   help="HTTP control port (default 8765)")
    p.add_argument("--no-opcua", action="store_true", help="do not serve OPC UA")
    p.add_argument("--no-modbus-tcp", action="store_true", help="do not serve Modbus TCP")
    p.add_argument("--modbus-rtu", metavar="DEVICE",
                   help="also serve Modbus RTU on this serial port (e.g. /dev/ttyUSB0)")
    p.add_argument("--rtu-baudrate", type=int, default=19200)
    p.add_argument("--rtu-parity", choices=["N", "E", "O"], default="N")
    p.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    p.add_argument("--rate", type=float, help="sample rate in Hz for every variable (overrides "
                   "the file)")
    p.add_argument("--speed", type=float,
                   help="virtual clock: process seconds per real second (e.g. 60)")
    p.add_argument("--start", type=_instant, metavar="ISO8601",
                   help="virtual clock: timestamp of process time 0 (default: now), "
                   "e.g. 2026-01-01T00:00:00Z")
    p.add_argument("--scenario", type=Path, action="append", default=[],
                   help="YAML file with a 'disturbances' list to schedule (repeatable)")
    p.add_argument("--opcua-security", default="None",
                   help="comma-separated policies: None, Basic256Sha256_Sign, "
                   "Basic256Sha256_SignAndEncrypt (default None)")
    p.add_argument("--cert-dir", type=Path, default=Path(".spc/simulator-pki"),
                   help="where the server certificate is created on first start")
    p.add_argument("--user", action="append", default=[], metavar="NAME:PASSWORD",
                   help="require OPC UA login with these credentials (repeatable)")
    p.add_argument("--print-map", action="store_true",
                   help="print the Modbus register map of the line and exit")
    p.add_argument("--log-level", default="WARNING", type=str.upper,
                   choices=["DEBUG", "INFO", "WARNING", "ERROR"])
    return p


def _client_parser(command: str) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog=f"spc simulate {command}")
    p.add_argument("--control-url", default="http://127.0.0.1:8765",
                   help="the running simulator's control URL")
    if command == "clear":
        p.add_argument("--id", type=int, help="remove only this disturbance (default: all)")
    if command == "inject":
        p.add_argument("--kind", required=True, choices=[k.value for k in DisturbanceKind])
        p.add_argument("--machine")
        p.add_argument("--variable")
        p.add_argument("--magnitude", type=float)
        p.add_argument("--period", type=float)
        p.add_argument("--probability", type=float)
        p.add_argument("--after-samples", type=int)
        p.add_argument("--after-seconds", type=float)
        p.add_argument("--for-samples", type=int)
        p.add_argument("--for-seconds", type=float)
    return p


def _client(command: str, argv: list[str]) -> int:
    args = _client_parser(command).parse_args(argv)
    url = args.control_url.rstrip("/")
    if command == "inject":
        body = {k: v for k, v in vars(args).items() if k != "control_url" and v is not None}
        req = urllib.request.Request(
            f"{url}/disturbances", data=json.dumps(body).encode(), method="POST",
            headers={"Content-Type": "application/json"},
        )
    elif command == "clear":
        one = "" if args.id is None else f"/{args.id}"
        req = urllib.request.Request(f"{url}/disturbances{one}", method="DELETE")
    else:
        req = urllib.request.Request(f"{url}/state")
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            print(resp.read().decode())
            return 0
    except urllib.error.HTTPError as exc:
        print(f"spc simulate {command}: {exc.code}: {exc.read().decode()}", file=sys.stderr)
        return 1
    except urllib.error.URLError as exc:
        print(f"spc simulate {command}: cannot reach {url}: {exc.reason}", file=sys.stderr)
        return 1


def _instant(text: str) -> datetime:
    try:
        value = datetime.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not an ISO 8601 timestamp like 2026-01-01T00:00:00Z"
        ) from None
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def _users(values: list[str]) -> dict[str, str]:
    users = {}
    for value in values:
        name, sep, password = value.partition(":")
        if not sep or not name:
            raise ConfigError(f"--user {value!r}: expected NAME:PASSWORD")
        users[name] = password
    return users


async def serve(args: argparse.Namespace, config: LineConfig) -> None:
    from simulators.runner import Simulator, SimulatorOptions

    options = SimulatorOptions(
        host=args.host,
        opcua_port=None if args.no_opcua else args.opcua_port,
        modbus_port=None if args.no_modbus_tcp else args.modbus_port,
        control_port=args.control_port,
        modbus_rtu=args.modbus_rtu,
        rtu_baudrate=args.rtu_baudrate,
        rtu_parity=args.rtu_parity,
        seed=args.seed,
        rate_hz=args.rate,
        speed=args.speed,
        start=args.start,
        opcua_policies=[p.strip() for p in args.opcua_security.split(",") if p.strip()],
        cert_dir=args.cert_dir,
        users=_users(args.user),
    )
    simulator = Simulator(config, options)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(sig, stop.set)
    await simulator.start()
    print(f"simulator ready: {json.dumps(simulator.endpoints())}", flush=True)
    try:
        await simulator.run(stop)
    finally:
        await simulator.stop()


def main(argv: Sequence[str] | None = None) -> int:
    args_list = list(sys.argv[1:] if argv is None else argv)
    if args_list and args_list[0] in CLIENT_COMMANDS:
        return _client(args_list[0], args_list[1:])
    args = _run_parser().parse_args(args_list)
    logging.basicConfig(level=args.log_level,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    for name in ("asyncua", "pymodbus"):
        logging.getLogger(name).setLevel(max(logging.WARNING, logging.root.level))
    try:
        config = load_line_config(args.config)
        extra = [s for path in args.scenario for s in load_scenario(path, config)]
        if extra:
            config = config.model_copy(update={"disturbances": [*config.disturbances, *extra]})
        if args.rate is not None and not 0 < args.rate <= 1000:
            raise ConfigError(f"--rate {args.rate}: must be in (0, 1000] Hz")
        if args.speed is not None and not args.speed > 0:
            raise ConfigError(f"--speed {args.speed}: must be > 0")
        if args.start is not None and args.speed is None:
            raise ConfigError("--start applies to the virtual clock: give --speed too")
        policies = [p.strip() for p in args.opcua_security.split(",") if p.strip()]
        unknown = [p for p in policies if p not in POLICIES]
        if unknown or not policies:
            raise ConfigError(
                f"--opcua-security {args.opcua_security!r}: unknown policy {unknown or policies}; "
                f"choose from {', '.join(POLICIES)}"
            )
        _users(args.user)  # refuse a malformed --user before serving
        if args.print_map:
            from simulators.modbus_map import format_map

            print(format_map(config))
            return 0
        asyncio.run(serve(args, config))
    except ConfigError as exc:
        print(f"spc simulate: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:
        print(f"spc simulate: cannot serve: {exc}", file=sys.stderr)
        return 1
    return 0
