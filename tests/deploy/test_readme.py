"""deploy/README.md keeps up with the code: every server setting documented with its default."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from server.core.config import ENV_PREFIX, Settings

ROOT = Path(__file__).resolve().parents[2]
README = (ROOT / "deploy" / "README.md").read_text()


def reference_rows() -> dict[str, str]:
    rows = {}
    for m in re.finditer(r"^\| `(SPC_\w+)` \| ([^|]+) \| ([^|]+) \|$", README, re.M):
        rows[m.group(1)] = m.group(2).strip()
    return rows


def documented(cell: str) -> object:
    if cell in ("(none)", "(empty)"):
        return {"(none)": None, "(empty)": ""}[cell]
    return cell.strip("`")


@pytest.mark.parametrize("name", list(Settings.model_fields))
def test_every_setting_is_documented_with_its_default(name: str) -> None:
    rows = reference_rows()
    var = ENV_PREFIX + name.upper()
    assert var in rows, f"{var} is missing from deploy/README.md's configuration reference"
    default = Settings.model_fields[name].default
    cell = documented(rows[var])
    if isinstance(default, bool | int | float) and cell is not None:
        assert float(cell) == float(default), (var, cell, default)
    else:
        assert cell == default, (var, cell, default)


def test_no_setting_is_documented_that_does_not_exist() -> None:
    fields = {ENV_PREFIX + n.upper() for n in Settings.model_fields}
    assert set(reference_rows()) == fields


def test_operations_sections() -> None:
    for needle in ("timescaledb_pre_restore()", "timescaledb_post_restore()", "pg_dump",
                   "pg_restore", "spc db migrate", "advisory lock", "Modbus", "## Troubleshooting",
                   "## Upgrading", "## Configuration reference", "spc-agent@",
                   "install-agent-rpi.sh"):
        assert needle in README, needle
    main = (ROOT / "README.md").read_text()
    assert "deploy/README.md" in main
    assert main.index("## Production deployment") < main.index("## Tests")
