"""A private PostgreSQL cluster on a port of its own, for the demo and the test suite.

The cluster is created with `initdb` in a directory the project owns and started with
`pg_ctl`, preloading TimescaleDB when its library is installed. PostgreSQL refuses to run as root,
so when we are root the server binaries run as the `postgres` user that Debian's package creates.
"""

from __future__ import annotations

import os
import pwd
import shutil
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

PG_MAJOR = 15
PG_BIN = Path(f"/usr/lib/postgresql/{PG_MAJOR}/bin")


class LocalDatabaseError(RuntimeError):
    """The private cluster could not be created or started; the message says why and what to do."""


def timescaledb_installed() -> bool:
    libdir = _pkglibdir()
    return libdir is not None and (libdir / "timescaledb.so").exists()


def _pkglibdir() -> Path | None:
    pg_config = shutil.which("pg_config") or str(PG_BIN / "pg_config")
    try:
        out = subprocess.run([pg_config, "--pkglibdir"], capture_output=True, text=True, check=True)
    except (OSError, subprocess.CalledProcessError):
        candidate = Path(f"/usr/lib/postgresql/{PG_MAJOR}/lib")
        return candidate if candidate.exists() else None
    return Path(out.stdout.strip())


@dataclass
class LocalCluster:
    """One PostgreSQL cluster in `base_dir`, listening on 127.0.0.1:`port` with trust auth."""

    base_dir: Path
    port: int
    timescaledb: bool = True

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
        if not (PG_BIN / "initdb").exists():
            raise LocalDatabaseError(
                f"PostgreSQL {PG_MAJOR} server binaries not found in {PG_BIN}: "
                "run scripts/setup-system.sh"
            )
        self._prepare_dir()
        self._run([PG_BIN / "initdb", "-D", self.data_dir, "-A", "trust", "-U", "postgres",
                   "-E", "UTF8", "--no-sync"])

    def is_running(self) -> bool:
        if not (self.data_dir / "PG_VERSION").exists():
            return False
        status = self._run([PG_BIN / "pg_ctl", "-D", self.data_dir, "status"], check=False)
        return status.returncode == 0

    def start(self) -> None:
        self.initialize()
        if self.is_running():
            return
        options = [
            f"-p {self.port}",
            "-c listen_addresses=127.0.0.1",
            f"-k {self.base_dir}",
            # A throwaway cluster: durability across an OS crash is not needed, speed is.
            "-c fsync=off",
            "-c synchronous_commit=off",
            "-c full_page_writes=off",
            "-c max_connections=200",
        ]
        if self.timescaledb and timescaledb_installed():
            options += [
                "-c shared_preload_libraries=timescaledb",
                "-c timescaledb.telemetry_level=off",
            ]
        proc = self._run(
            [PG_BIN / "pg_ctl", "-D", self.data_dir, "-l", self.log_file, "-w", "-t", "60",
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
                [PG_BIN / "pg_ctl", "-D", self.data_dir, "-m", mode, "-w", "stop"], check=False
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
        psql = shutil.which("psql") or str(PG_BIN / "psql")
        proc = subprocess.run(
            [psql, "-h", "127.0.0.1", "-p", str(self.port), "-U", "postgres", "-d", "postgres",
             "-v", "ON_ERROR_STOP=1", "-qc", f'CREATE DATABASE "{name}"'],
            capture_output=True, text=True,
        )
        if proc.returncode != 0 and "already exists" not in proc.stderr:
            raise LocalDatabaseError(f"could not create database {name!r}: {proc.stderr.strip()}")
        return self.dsn(name)
