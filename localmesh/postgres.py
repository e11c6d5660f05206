"""A local PostgreSQL cluster under the data dir, one database per service (CROSSDOCK_DB=postgres).

initdb runs once; later runs reuse the cluster and its data. PostgreSQL refuses to run as root,
so as root the cluster belongs to the `postgres` system user. It listens on loopback only, with
trust authentication, and no unix socket (nothing but the mesh uses it).
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import signal
import subprocess
from collections.abc import Iterable
from pathlib import Path

import psycopg

from localmesh.procs import Child, RunAs, dying_with_parent, spawn

PG_BIN_ENV = "CROSSDOCK_PG_BIN"
SUPERUSER = "postgres"


def find_pg_bindir() -> Path:
    """$CROSSDOCK_PG_BIN, the newest /usr/lib/postgresql/*/bin, then PATH."""
    candidates = [os.environ[PG_BIN_ENV]] if os.environ.get(PG_BIN_ENV) else []
    candidates += sorted(glob.glob("/usr/lib/postgresql/*/bin"), reverse=True)
    on_path = shutil.which("initdb")
    if on_path:
        candidates.append(str(Path(on_path).parent))
    for candidate in candidates:
        if (Path(candidate) / "initdb").is_file() and (Path(candidate) / "postgres").is_file():
            return Path(candidate)
    raise RuntimeError(
        "PostgreSQL server binaries not found: run `make system-deps` or set $CROSSDOCK_PG_BIN"
    )


def run_as_for_root() -> RunAs | None:
    """As root: the `postgres` system user; otherwise None (run as ourselves)."""
    if os.geteuid() != 0:
        return None
    try:
        entry = pwd.getpwnam("postgres")
    except KeyError:
        raise RuntimeError("running as root needs a `postgres` system user") from None
    return RunAs(entry.pw_uid, entry.pw_gid)


class LocalPostgres:
    def __init__(self, base: Path, *, host: str, port: int, max_connections: int = 200) -> None:
        self.base = base
        self.datadir = base / "data"
        self.host = host
        self.port = port
        self.max_connections = max_connections
        self.bindir = find_pg_bindir()
        self.run_as = run_as_for_root()

    def _own(self, path: Path) -> None:
        path.mkdir(parents=True, exist_ok=True)
        if self.run_as is not None:
            os.chown(path, self.run_as.uid, self.run_as.gid)

    def initdb(self) -> bool:
        """Create the cluster unless it exists; True when created."""
        if (self.datadir / "PG_VERSION").exists():
            return False
        self._own(self.base)
        command = [str(self.bindir / "initdb"), "-D", str(self.datadir), "-U", SUPERUSER]
        command += ["-A", "trust", "-E", "UTF8"]
        done = subprocess.run(
            dying_with_parent(command, self.run_as),
            capture_output=True,
            text=True,
            cwd=self.base,
        )
        if done.returncode != 0:
            hint = (
                " (as root the cluster runs as `postgres`, which must be able to reach "
                f"{self.base}: every parent directory needs o+x)"
                if self.run_as
                else ""
            )
            raise RuntimeError(f"initdb failed{hint}:\n{done.stdout}{done.stderr}")
        return True

    def spawn(self, log_path: Path, cwd: Path) -> Child:
        command = [str(self.bindir / "postgres"), "-D", str(self.datadir), "-p", str(self.port)]
        command += ["-c", f"listen_addresses={self.host}", "-c", "unix_socket_directories="]
        command += ["-c", f"max_connections={self.max_connections}"]
        # SIGINT is PostgreSQL's "fast" shutdown: no waiting for idle clients.
        return spawn(
            "postgres",
            command,
            env={"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "LC_ALL": "C.UTF-8"},
            log_path=log_path,
            cwd=self.base,
            run_as=self.run_as,
            stop_signal=signal.SIGINT,
        )

    def dsn(self, dbname: str) -> str:
        return f"host={self.host} port={self.port} user={SUPERUSER} dbname={dbname}"

    def accepting(self) -> bool:
        try:
            with psycopg.connect(self.dsn("postgres"), connect_timeout=1):
                return True
        except psycopg.OperationalError:
            return False

    def ensure_databases(self, names: Iterable[str]) -> None:
        with psycopg.connect(self.dsn("postgres"), autocommit=True) as conn:
            existing = {row[0] for row in conn.execute("SELECT datname FROM pg_database")}
            for name in names:
                if name not in existing:
                    conn.execute(f'CREATE DATABASE "{name}"')

    def url(self, dbname: str) -> str:
        return f"postgresql+psycopg://{SUPERUSER}@{self.host}:{self.port}/{dbname}"
