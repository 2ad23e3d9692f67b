"""Known vulnerabilities of the pinned dependencies (constraints.txt), from PyPI's JSON API.

pip-audit asks PyPI for each release's own JSON (`/pypi/<name>/<version>/json`); some mirrors
and proxies serve only the project JSON (`/pypi/<name>/json`), and then pip-audit reports
"No known vulnerabilities found" while having audited nothing. This script never confuses the
two: for each pin it asks for the release's JSON, falls back to the project JSON only when the
pin *is* the latest release (PyPI's `vulnerabilities` there describe exactly that release), and
otherwise says the pin could not be audited.

Exit status: 0 all audited and clean; 1 a known vulnerability; 2 bad input, or (with --strict)
a pin that could not be audited.

    python scripts/audit_deps.py [--constraints constraints.txt] [--strict]
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

DEFAULT_INDEX = "https://pypi.org/pypi"
# A pin as `pip freeze` writes it; extras, markers and URLs have no place in a constraints file.
PIN = re.compile(r"^(?P<name>[A-Za-z0-9][A-Za-z0-9._-]*)==(?P<version>[A-Za-z0-9.+!_-]+)$")


class AuditInputError(ValueError):
    """The constraints file is not a list of `name==version` pins."""


@dataclass
class Finding:
    name: str
    version: str
    status: str  # "clean" | "vulnerable" | "unknown"
    how: str = ""
    vulnerabilities: list[dict] = field(default_factory=list)


def read_pins(path: Path) -> list[tuple[str, str]]:
    try:
        text = path.read_text()
    except OSError as exc:
        raise AuditInputError(f"{path}: cannot read the constraints file ({exc.strerror})") from exc
    pins = []
    for n, raw in enumerate(text.splitlines(), start=1):
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        m = PIN.match(line)
        if m is None:
            raise AuditInputError(
                f"{path}:{n}: {line!r} is not an exact pin; expected `name==version` "
                "(regenerate the file with `make lock`)")
        pins.append((m["name"], m["version"]))
    if not pins:
        raise AuditInputError(f"{path}: no `name==version` pins in the file")
    return pins


def _get_json(url: str, timeout: float) -> dict | None:
    """The document at `url`, or None when the index has no such page (404)."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as resp:
            return json.load(resp)
    except urllib.error.HTTPError as exc:
        if exc.code == 404:
            return None
        raise


def _live(vulns: list[dict] | None) -> list[dict]:
    return [v for v in vulns or [] if not v.get("withdrawn")]


def audit_pin(name: str, version: str, index: str, timeout: float = 20.0) -> Finding:
    try:
        release = _get_json(f"{index}/{name}/{version}/json", timeout)
        if release is not None:
            how = "release JSON"
            vulns = _live(release.get("vulnerabilities"))
        else:
            project = _get_json(f"{index}/{name}/json", timeout)
            if project is None:
                return Finding(name, version, "unknown", "not on the index")
            latest = project.get("info", {}).get("version")
            if latest != version:
                return Finding(name, version, "unknown",
                               f"index serves no release JSON; latest is {latest}")
            how = "project JSON (pin is the latest release)"
            vulns = _live(project.get("vulnerabilities"))
    except (urllib.error.URLError, TimeoutError, OSError, ValueError) as exc:
        return Finding(name, version, "unknown", f"index unreachable: {exc}")
    return Finding(name, version, "vulnerable" if vulns else "clean", how, vulns)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--constraints", type=Path, default=Path("constraints.txt"))
    parser.add_argument("--index", default=DEFAULT_INDEX,
                        help="PyPI JSON API base (default %(default)s)")
    parser.add_argument("--strict", action="store_true",
                        help="exit 2 when any pin could not be audited")
    args = parser.parse_args(argv)
    try:
        pins = read_pins(args.constraints)
    except AuditInputError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    index = args.index.rstrip("/")
    with ThreadPoolExecutor(max_workers=8) as pool:
        findings = list(pool.map(lambda p: audit_pin(p[0], p[1], index), pins))
    for f in findings:
        if f.status == "vulnerable":
            for v in f.vulnerabilities:
                fixed = ", ".join(v.get("fixed_in") or []) or "no fix listed"
                print(f"VULNERABLE {f.name}=={f.version}: {v.get('id')} "
                      f"({', '.join(v.get('aliases') or [])}) fixed in {fixed}")
        elif f.status == "unknown":
            print(f"NOT AUDITED {f.name}=={f.version}: {f.how}")
    counts = {s: sum(f.status == s for f in findings) for s in ("clean", "vulnerable", "unknown")}
    print(f"{len(findings)} pins: {counts['clean']} audited clean, "
          f"{counts['vulnerable']} with known vulnerabilities, {counts['unknown']} not audited")
    if counts["vulnerable"]:
        return 1
    if counts["unknown"] and args.strict:
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
