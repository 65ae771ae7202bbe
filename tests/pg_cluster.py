"""A throwaway PostgreSQL cluster for the full-stack test: its own directory, a free loopback port, gone after.

``PostgresCluster(root).start()`` runs ``initdb`` and ``pg_ctl start`` from Debian's server binaries
(``scripts/ensure_postgres.sh`` finds them, installing the ``postgresql`` package if they are missing),
creates the ``airflow`` database and offers its SQLAlchemy URL; ``stop()`` stops the server and removes the
directory. initdb refuses to run as root, so as root both run as the ``postgres`` user (created by the
package) through ``runuser``, in a directory under /tmp that user owns.

The cluster listens on 127.0.0.1 only and trusts every local connection (a test database, never a
production setting); fsync is off, since nothing in it has to survive a crash of the machine.
"""

from __future__ import annotations

import atexit
import os
import pwd
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg2

from airflow_provider_flowinst.testing.emulator.server import free_port

ENSURE_POSTGRES = Path(__file__).resolve().parent.parent / "scripts" / "ensure_postgres.sh"
DATABASE = "airflow"
USER = "airflow"


class PostgresUnavailable(RuntimeError):
    """PostgreSQL is not installed and could not be installed here."""


def server_bin_dir() -> Path:
    """The newest /usr/lib/postgresql/<major>/bin, installed by scripts/ensure_postgres.sh if need be."""
    try:
        found = subprocess.run(["sh", str(ENSURE_POSTGRES)], capture_output=True, text=True, timeout=900, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise PostgresUnavailable(f"PostgreSQL could not be installed: {ENSURE_POSTGRES} did not run: {exc}") from exc
    if found.returncode != 0:
        raise PostgresUnavailable(
            f"PostgreSQL is not installed and could not be installed ({ENSURE_POSTGRES} exited "
            f"{found.returncode}):\n{found.stderr[-3000:]}"
        )
    return Path(found.stdout.strip().splitlines()[-1])


@dataclass
class PostgresCluster:
    """One cluster in a fresh directory; ``url`` once started."""

    bin_dir: Path
    port: int = field(default_factory=lambda: free_port("127.0.0.1"))
    timings: dict[str, float] = field(default_factory=dict)

    def __post_init__(self) -> None:
        # Not under pytest's tmp directory: its parents are private to root, and the server runs as postgres.
        self.root = Path(tempfile.mkdtemp(prefix="flowinst-pg-"))
        self.data = self.root / "data"
        self.log_path = self.root / "server.log"
        self._owner = pwd.getpwnam("postgres") if os.geteuid() == 0 else None
        if self._owner is not None:
            os.chown(self.root, self._owner.pw_uid, self._owner.pw_gid)
        self.started = False

    @property
    def url(self) -> str:
        """For Airflow's ``[database] sql_alchemy_conn`` (psycopg2; Airflow derives its asyncpg twin)."""
        return f"postgresql+psycopg2://{USER}@127.0.0.1:{self.port}/{DATABASE}"

    def _run(self, *args: str, timeout: float = 120) -> None:
        command = [str(self.bin_dir / args[0]), *args[1:]]
        if self._owner is not None:
            command = ["runuser", "-u", "postgres", "--", *command]
        done = subprocess.run(command, capture_output=True, text=True, timeout=timeout, check=False, cwd=self.root)
        if done.returncode != 0:
            raise RuntimeError(f"{' '.join(command)} exited {done.returncode}:\n{done.stdout}\n{done.stderr}")

    def start(self) -> PostgresCluster:
        atexit.register(self.stop)  # a backstop, should the test process end without running the fixture's finally
        began = time.monotonic()
        self._run("initdb", "-D", str(self.data), "-U", USER, "--auth=trust", "-E", "UTF8", "--no-instructions")
        self.timings["initdb"] = time.monotonic() - began
        options = " ".join(
            (
                f"-p {self.port}",
                "-c listen_addresses=127.0.0.1",
                f"-c unix_socket_directories={self.root}",
                "-c fsync=off -c synchronous_commit=off -c full_page_writes=off",
                "-c max_connections=200",
            )
        )
        began = time.monotonic()
        self._run("pg_ctl", "start", "-D", str(self.data), "-l", str(self.log_path), "-w", "-t", "60", "-o", options)
        self.started = True
        db = self.connect("postgres")
        try:
            db.autocommit = True  # CREATE DATABASE cannot run in a transaction
            with db.cursor() as cursor:
                cursor.execute(f"CREATE DATABASE {DATABASE}")
        finally:
            db.close()
        self.timings["server start"] = time.monotonic() - began
        return self

    def connect(self, database: str = DATABASE) -> Any:
        return psycopg2.connect(host="127.0.0.1", port=self.port, user=USER, dbname=database, connect_timeout=10)

    def stop(self) -> None:
        """Stop the server (fast: open connections are ended) and remove its directory; safe to call twice."""
        atexit.unregister(self.stop)
        try:
            if self.started:
                self._run("pg_ctl", "stop", "-D", str(self.data), "-m", "fast", "-w", "-t", "60")
                self.started = False
        finally:
            shutil.rmtree(self.root, ignore_errors=True)

    def log_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"
