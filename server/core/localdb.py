"""A private PostgreSQL cluster on a port of its own, for the demo and the test suite.

The cluster is created with `initdb` in a directory the project owns and started with
`pg_ctl`, preloading TimescaleDB when its library is installed. PostgreSQL refuses to run as root,
so when we are root the server binaries run as the `postgres` user that Debian's package creates.
"""

from __future__ import annotations

import os
import pwd
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

PG_ROOT = Path("/usr/lib/postgresql")
PREFERRED_MAJOR = 15


class LocalDatabaseError(RuntimeError):
    """The private cluster could not be created or started; the message says why and what to do."""


def installed_majors() -> list[int]:
    """PostgreSQL majors with server binaries under /usr/lib/postgresql (Debian's layout)."""
    if not PG_ROOT.is_dir():
        return []
    return sorted(int(d.name) for d in PG_ROOT.iterdir()
                  if d.name.isdigit() and (d / "bin" / "postgres").exists())


def choose_major() -> int:
    """The major to run: SPC_PG_MAJOR if set; else one with TimescaleDB installed (15 first:
    bookworm builds it from source for 15, trixie packages it for 17); else 15 or the newest."""
    if os.environ.get("SPC_PG_MAJOR"):
        return int(os.environ["SPC_PG_MAJOR"])
    majors = installed_majors()
    with_ts = [m for m in majors if (PG_ROOT / str(m) / "lib" / "timescaledb.so").exists()]
    for candidates in (with_ts, majors):
        if PREFERRED_MAJOR in candidates:
            return PREFERRED_MAJOR
        if candidates:
            return candidates[-1]
    return PREFERRED_MAJOR


def bin_dir(major: int | None = None) -> Path:
    return PG_ROOT / str(major or choose_major()) / "bin"


def timescaledb_installed(major: int | None = None) -> bool:
    return (PG_ROOT / str(major or choose_major()) / "lib" / "timescaledb.so").exists()


@dataclass
class LocalCluster:
    """One PostgreSQL cluster in `base_dir`, listening on 127.0.0.1:`port` with trust auth."""

    base_dir: Path
    port: int
    timescaledb: bool = True
    major: int = 0  # 0: choose_major()
    durable: bool = True  # False: fsync and synchronous commit off (tests only)

    def __post_init__(self) -> None:
        if not self.major:
            self.major = choose_major()

    @property
    def bin(self) -> Path:
        return bin_dir(self.major)

    @property
    def data_dir(self) -> Path:
        return self.base_dir / "data"

    @property
    def log_file(self) -> Path:
        return self.base_dir / "postgres.log"

    def dsn(self, database: str = "postgres") -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{database}"

    def _run(self, args: list[str], check: bool = True) -> subprocess.CompletedProcess[str]:
        cmd = [str(a) for a in args]
        if os.geteuid() == 0:
            cmd = ["runuser", "-u", "postgres", "--", *cmd]
        proc = subprocess.run(cmd, capture_output=True, text=True)
        if check and proc.returncode != 0:
            raise LocalDatabaseError(
                f"{' '.join(cmd)} failed ({proc.returncode}): {proc.stderr.strip() or proc.stdout}"
            )
        return proc

    def _prepare_dir(self) -> None:
        self.base_dir.mkdir(parents=True, exist_ok=True)
        if os.geteuid() != 0:
            return
        try:
            pg = pwd.getpwnam("postgres")
        except KeyError as exc:
            raise LocalDatabaseError(
                "running as root needs the 'postgres' user: install PostgreSQL 15 "
                "(scripts/setup-system.sh does)"
            ) from exc
        os.chown(self.base_dir, pg.pw_uid, pg.pw_gid)
        # The postgres user must be able to reach its directory through every parent.
        probe = self._run(["test", "-w", str(self.base_dir)], check=False)
        if probe.returncode != 0:
            raise LocalDatabaseError(
                f"the postgres user cannot reach {self.base_dir}: a parent directory is not "
                "traversable (chmod o+x on it, or choose another directory)"
            )

    def initialize(self) -> None:
        if (self.data_dir / "PG_VERSION").exists():
            return
        if not (self.bin / "initdb").exists():
            raise LocalDatabaseError(
                f"PostgreSQL {self.major} server binaries not found in {self.bin}: "
                "run scripts/setup-system.sh"
            )
        self._prepare_dir()
        self._run([self.bin / "initdb", "-D", self.data_dir, "-A", "trust", "-U", "postgres",
                   "-E", "UTF8", "--no-sync"])

    def is_running(self) -> bool:
        if not (self.data_dir / "PG_VERSION").exists():
            return False
        status = self._run([self.bin / "pg_ctl", "-D", self.data_dir, "status"], check=False)
        return status.returncode == 0

    def start(self) -> None:
        self.initialize()
        if self.is_running():
            return
        options = [
            f"-p {self.port}",
            "-c listen_addresses=127.0.0.1",
            f"-k {self.base_dir}",
            "-c max_connections=200",
        ]
        if not self.durable:
            # A throwaway test cluster: speed over surviving a crash. Never for the demo: an
            # acknowledged sample must survive a crash of the database.
            options += ["-c fsync=off", "-c synchronous_commit=off", "-c full_page_writes=off"]
        if self.timescaledb and timescaledb_installed(self.major):
            options += [
                "-c shared_preload_libraries=timescaledb",
                "-c timescaledb.telemetry_level=off",
            ]
        proc = self._run(
            [self.bin / "pg_ctl", "-D", self.data_dir, "-l", self.log_file, "-w", "-t", "60",
             "-o", " ".join(options), "start"],
            check=False,
        )
        if proc.returncode != 0:
            tail = ""
            if self.log_file.exists():
                tail = "\n".join(self.log_file.read_text(errors="replace").splitlines()[-15:])
            raise LocalDatabaseError(f"PostgreSQL did not start on port {self.port}:\n{tail}")

    def stop(self, mode: str = "fast") -> None:
        if self.is_running():
            self._run(
                [self.bin / "pg_ctl", "-D", self.data_dir, "-m", mode, "-w", "stop"], check=False
            )

    def kill(self) -> None:
        """Stop the postmaster with SIGKILL, as a crash would (for fault tests)."""
        pid_file = self.data_dir / "postmaster.pid"
        if pid_file.exists():
            pid = int(pid_file.read_text().splitlines()[0])
            try:
                os.kill(pid, 9)
            except ProcessLookupError:
                return
            for _ in range(100):
                try:
                    os.kill(pid, 0)
                except ProcessLookupError:
                    return
                time.sleep(0.05)

    def create_database(self, name: str) -> str:
        psql = str(self.bin / "psql") if (self.bin / "psql").exists() else "psql"
        proc = subprocess.run(
            [psql, "-h", "127.0.0.1", "-p", str(self.port), "-U", "postgres", "-d", "postgres",
             "-v", "ON_ERROR_STOP=1", "-qc", f'CREATE DATABASE "{name}"'],
            capture_output=True, text=True,
        )
        if proc.returncode != 0 and "already exists" not in proc.stderr:
            raise LocalDatabaseError(f"could not create database {name!r}: {proc.stderr.strip()}")
        return self.dsn(name)
