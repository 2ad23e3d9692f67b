"""The `spc` console command: one entry point, one subcommand per part of the system.

Subcommands are dispatched lazily so that an edge-only install (no fastapi, no scipy) can run
`spc agent` without importing the server stack.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Sequence

# name -> (module with `main(argv) -> int`, one-line help)
COMMANDS: dict[str, tuple[str, str]] = {
    "simulate": ("simulators.cli", "run a simulated line serving OPC UA and Modbus"),
    "agent": ("edge_agent.cli", "run the edge agent, or check its config"),
    "server": ("server.cli", "run the SPC server"),
    "db": ("server.cli", "database tasks (migrate)"),
    "keys": ("server.cli", "create and list API keys"),
    "demo": ("spc_cli.demo", "start the whole system on a simulated line"),
    "analyze": ("spc_cli.analyze", "control limits, rule violations and capability for a CSV file"),
}

USAGE = "usage: spc <command> [options]\n\ncommands:\n" + "\n".join(
    f"  {name:<10} {help_}" for name, (_, help_) in COMMANDS.items()
) + "\n\nRun 'spc <command> --help' for a command's options."


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if not args or args[0] in ("-h", "--help", "help"):
        print(USAGE)
        return 0
    name, rest = args[0], args[1:]
    if name not in COMMANDS:
        print(f"spc: unknown command {name!r}\n\n{USAGE}", file=sys.stderr)
        return 2
    module_name, _ = COMMANDS[name]
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        print(
            f"spc {name}: needs the module {exc.name!r}, which is not installed. "
            f"Install the matching extra, e.g. pip install 'shopfloor-spc[server]'.",
            file=sys.stderr,
        )
        return 2
    # server.cli serves several top-level commands; it receives the command name first.
    if module_name == "server.cli":
        return int(module.main([name, *rest]) or 0)
    return int(module.main(rest) or 0)


if __name__ == "__main__":
    raise SystemExit(main())
