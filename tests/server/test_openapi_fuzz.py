"""Schemathesis against the server's own OpenAPI schema: every operation, generated valid and
invalid requests, with an admin key and with a forged one. No 5xx, no response outside the
documented schema, no undocumented status code, no schema-violating request accepted.

The `positive_data_acceptance` check is left out on purpose: business rules beyond the schema
(start before end, a good sample needs a value, no empty PATCH) rightly refuse some
schema-valid requests with a 4xx. A longer run: `make fuzz`.
"""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

import pytest

from server.core.localdb import LocalCluster
from tests.fixtures.server import start_live_server

SCHEMATHESIS = Path(os.environ.get("VIRTUAL_ENV", ".venv")) / "bin" / "schemathesis"
EXAMPLES = int(os.environ.get("SPC_FUZZ_EXAMPLES", "15"))


def run_schemathesis(url: str, key: str, tmp: Path) -> tuple[int, str]:
    exe = SCHEMATHESIS if SCHEMATHESIS.exists() else Path(".venv/bin/schemathesis")
    proc = subprocess.run(
        [str(exe), "run", f"{url}/openapi.json", "-H", f"Authorization: Bearer {key}",
         "--checks", "all", "--exclude-checks", "positive_data_acceptance",
         "-n", str(EXAMPLES), "--seed", "1", "--max-failures", "50",
         "--report", "junit", "--report-dir", str(tmp)],
        capture_output=True, text=True, timeout=600,
    )
    return proc.returncode, proc.stdout + proc.stderr


@pytest.mark.slow
@pytest.mark.parametrize("key_kind", ["admin", "forged"])
def test_every_operation_conforms_to_its_schema(
    pg_cluster: LocalCluster, tmp_path: Path, key_kind: str
) -> None:
    server = start_live_server(pg_cluster, tmp_path)
    try:
        key = server.admin_key if key_kind == "admin" else "spc_00000000_forged"
        code, output = run_schemathesis(server.url, key, tmp_path)
    finally:
        server.stop()
    cases = re.search(r"(\d+) generated", output)
    print(f"schemathesis ({key_kind} key): {cases.group(0) if cases else '?'} cases")
    assert code == 0, output[-8000:]
    assert cases and int(cases.group(1)) >= 100, output[-2000:]
