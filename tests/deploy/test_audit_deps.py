"""scripts/audit_deps.py against a PyPI-shaped JSON index on loopback; constraints.txt itself."""

from __future__ import annotations

import json
import re
import threading
import tomllib
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from scripts.audit_deps import AuditInputError, main, read_pins
from tests.fixtures.net import free_port

ROOT = Path(__file__).resolve().parents[2]
VULN = {"id": "PYSEC-2099-1", "aliases": ["CVE-2099-1"], "fixed_in": ["2.0"], "withdrawn": None}

# path -> JSON document; anything else is a 404, as on PyPI
PAGES: dict[str, dict] = {
    "/pypi/clean/1.0/json": {"info": {"version": "1.0"}, "vulnerabilities": []},
    "/pypi/bad/1.0/json": {"info": {"version": "1.0"}, "vulnerabilities": [VULN]},
    "/pypi/gone/1.0/json": {"info": {"version": "1.0"},
                            "vulnerabilities": [dict(VULN, withdrawn="2099-01-01")]},
    # a proxy that serves only project JSON: latest release ...
    "/pypi/latest/json": {"info": {"version": "3.0"}, "vulnerabilities": []},
    "/pypi/latestbad/json": {"info": {"version": "3.0"}, "vulnerabilities": [VULN]},
    # ... and an older pin, which it cannot speak for
    "/pypi/older/json": {"info": {"version": "9.9"}, "vulnerabilities": []},
}


class Index(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        page = PAGES.get(self.path)
        body = json.dumps(page).encode() if page else b"{}"
        self.send_response(200 if page else 404)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture(scope="module")
def index() -> Iterator[str]:
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Index)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}/pypi"
    httpd.shutdown()
    httpd.server_close()


def run(tmp_path: Path, index: str, pins: str, *extra: str) -> int:
    path = tmp_path / "constraints.txt"
    path.write_text(pins)
    return main(["--constraints", str(path), "--index", index, *extra])


def test_clean_pins_pass(tmp_path: Path, index: str, capsys: pytest.CaptureFixture) -> None:
    assert run(tmp_path, index, "# header\nclean==1.0\nlatest==3.0  # inline\ngone==1.0\n") == 0
    assert "3 pins: 3 audited clean, 0 with known vulnerabilities, 0 not audited" in \
        capsys.readouterr().out


@pytest.mark.parametrize("pin", ["bad==1.0", "latestbad==3.0"])
def test_a_known_vulnerability_fails(tmp_path: Path, index: str, pin: str,
                                     capsys: pytest.CaptureFixture) -> None:
    assert run(tmp_path, index, f"clean==1.0\n{pin}\n") == 1
    out = capsys.readouterr().out
    assert f"VULNERABLE {pin}: PYSEC-2099-1 (CVE-2099-1) fixed in 2.0" in out


def test_a_pin_the_index_cannot_speak_for_is_not_called_clean(
    tmp_path: Path, index: str, capsys: pytest.CaptureFixture
) -> None:
    pins = "older==1.0\nmissing==1.0\n"
    assert run(tmp_path, index, pins) == 0
    out = capsys.readouterr().out
    assert "NOT AUDITED older==1.0: index serves no release JSON; latest is 9.9" in out
    assert "NOT AUDITED missing==1.0: not on the index" in out
    assert "0 audited clean" in out
    assert run(tmp_path, index, pins, "--strict") == 2


def test_an_unreachable_index_audits_nothing(tmp_path: Path,
                                             capsys: pytest.CaptureFixture) -> None:
    dead = f"http://127.0.0.1:{free_port()}/pypi"
    assert run(tmp_path, dead, "clean==1.0\n", "--strict") == 2
    out = capsys.readouterr().out
    assert "NOT AUDITED clean==1.0: index unreachable" in out


@pytest.mark.parametrize(("text", "message"), [
    ("clean==1.0\nnumpy>=1.26\n", ":2: 'numpy>=1.26' is not an exact pin"),
    ("-e .\n", ":1: '-e .' is not an exact pin"),
    ("# nothing\n\n", "no `name==version` pins"),
])
def test_bad_constraints_are_named(tmp_path: Path, text: str, message: str,
                                   capsys: pytest.CaptureFixture) -> None:
    assert run(tmp_path, "http://127.0.0.1:9/pypi", text) == 2
    err = capsys.readouterr().err
    assert message in err and "constraints.txt" in err


def test_a_missing_constraints_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(AuditInputError, match=r"nope\.txt: cannot read the constraints file"):
        read_pins(tmp_path / "nope.txt")


def norm(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def test_constraints_pin_every_declared_dependency() -> None:
    """`make lock` was run after pyproject.toml changed: every dependency has an exact pin."""
    pinned = {norm(n) for n, _ in read_pins(ROOT / "constraints.txt")}
    extras = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"][
        "optional-dependencies"]
    declared = {norm(re.split(r"[\[<>=!~; ]", req, maxsplit=1)[0])
                for reqs in extras.values() for req in reqs}
    declared.discard("shopfloor-spc")
    assert declared - pinned == set(), "run `make lock` to pin these"
