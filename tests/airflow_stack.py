"""Real Airflow processes on a temporary AIRFLOW_HOME, for the full-stack test.

``AirflowStack`` migrates a fresh database (a SQLite file, or the empty PostgreSQL one at ``database_url``) and
runs ``airflow api-server``, ``airflow scheduler`` (LocalExecutor), ``airflow dag-processor`` and ``airflow
triggerer`` as separate processes, each in a process group of its own with its output in a log file.
``stop()`` ends every group (SIGTERM, then SIGKILL) and is safe to call twice; every wait is bounded and fails
with the tail of each process's log.

Airflow 3.3 runs all of this on SQLite with the LocalExecutor (what ``airflow standalone`` does). The
LocalExecutor's workers run tasks through the Execution API, which ``airflow api-server`` serves (the
triggerer and the dag-processor use an in-process one). Nothing here imports Airflow: the test process has
its own Airflow configuration (tests/conftest.py), so the stack is read through its REST API and its
database (the SQLite file read-only, or a read-only PostgreSQL session).
"""

from __future__ import annotations

import atexit
import json
import os
import secrets
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import closing, contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import psycopg2
import requests
from cryptography.fernet import Fernet

from airflow_provider_flowinst.testing.emulator.server import free_port

T = TypeVar("T")

SIMPLE_AUTH_MANAGER = "airflow.api_fastapi.auth.managers.simple.simple_auth_manager.SimpleAuthManager"
#: Seconds a component gets to stop on SIGTERM before its whole process group is killed.
STOP_GRACE_SECONDS = 3.0
POLL_SECONDS = 0.25
KILL_SETTLE_SECONDS = 10.0
#: How long a write to the SQLite database waits for another writer's lock (see ``AirflowStack.sqlite_url``).
SQLITE_BUSY_TIMEOUT_SECONDS = 60.0


@dataclass
class Component:
    """One Airflow command, run in its own process group."""

    name: str
    args: list[str]
    log_path: Path
    process: subprocess.Popen[bytes] | None = None

    def tail(self, lines: int = 30) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return "(no log)"
        return "\n".join(text.splitlines()[-lines:])


@dataclass
class AirflowStack:
    """An Airflow installation in ``root`` whose DAGs folder holds exactly ``dag_files``."""

    root: Path
    dag_files: list[Path]
    connections: dict[str, str]
    settings: dict[str, str] = field(default_factory=dict)
    #: Other logs worth showing when a wait fails (e.g. the emulator's), by name.
    other_logs: dict[str, Path] = field(default_factory=dict)
    components: dict[str, Component] = field(default_factory=dict)
    timings: dict[str, float] = field(default_factory=dict)
    #: A SQLAlchemy URL of an empty PostgreSQL database; None: a new SQLite file in the home.
    database_url: str | None = None

    def __post_init__(self) -> None:
        self.home = self.root / "airflow-home"
        self.dags_folder = self.root / "dags"
        self.logs = self.root / "process-logs"
        for folder in (self.home, self.dags_folder, self.logs):
            folder.mkdir(parents=True, exist_ok=True)
        for path in self.dag_files:
            (self.dags_folder / path.name).write_bytes(path.read_bytes())
        self.api_port = free_port("127.0.0.1")
        self.api_url = f"http://127.0.0.1:{self.api_port}"
        self.db_path = self.home / "airflow.db"
        self.http = requests.Session()
        self._env = self.env()  # once: a restarted component must share the keys of the others

    # -- configuration ---------------------------------------------------------------------------------

    def env(self) -> dict[str, str]:
        """The environment of every component: this test process's, minus its own Airflow settings."""
        env = {key: value for key, value in os.environ.items() if not key.lstrip("_").startswith("AIRFLOW")}
        env.update(
            {
                "AIRFLOW_HOME": str(self.home),
                "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": self.database_url or self.sqlite_url(),
                "AIRFLOW__CORE__DAGS_FOLDER": str(self.dags_folder),
                "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
                "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
                "AIRFLOW__CORE__PARALLELISM": "4",
                "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "False",
                # Workers report to the api-server started here (the default is localhost:8080).
                "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"{self.api_url}/execution/",
                # Every process must share these: trigger kwargs are encrypted, task tokens are signed.
                "AIRFLOW__CORE__FERNET_KEY": Fernet.generate_key().decode(),
                "AIRFLOW__API_AUTH__JWT_SECRET": secrets.token_urlsafe(64),
                # The REST API needs no login: every caller is an admin.
                "AIRFLOW__CORE__AUTH_MANAGER": SIMPLE_AUTH_MANAGER,
                "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS": "True",
                "AIRFLOW__API__HOST": "127.0.0.1",
                "AIRFLOW__API__PORT": str(self.api_port),
                "AIRFLOW__API__WORKERS": "1",
                "PYTHONUNBUFFERED": "1",
                **self.connections,
                **self.settings,
            }
        )
        return env

    def sqlite_url(self) -> str:
        """The SQLite file in the home. SQLite lets one writer at a time; every component writes (the api-server
        with a thread per request), and on a loaded machine one of them can hold the lock past sqlite3's
        default 5 s busy timeout, failing another's write with "database is locked" (a REST call answered 500
        "Database error"). Writers wait their turn for up to a minute instead."""
        return f"sqlite:///{self.db_path}?timeout={SQLITE_BUSY_TIMEOUT_SECONDS:g}"

    # -- processes -------------------------------------------------------------------------------------

    def start(self, timeout: float = 120.0) -> AirflowStack:
        """Migrate the database, start every component, and wait until the REST API answers."""
        atexit.register(self.stop)  # a backstop, should the test process end without running the fixture's finally
        began = time.monotonic()
        migrate = subprocess.run(
            [sys.executable, "-m", "airflow", "db", "migrate"],
            env=self._env,
            capture_output=True,
            timeout=timeout,
            check=False,
        )
        if migrate.returncode != 0:
            output = (migrate.stdout + migrate.stderr).decode(errors="replace")
            raise RuntimeError(f"airflow db migrate failed ({migrate.returncode}):\n{output[-4000:]}")
        self.timings["db migrate"] = time.monotonic() - began
        for name, args in (
            ("api-server", ["api-server", "--host", "127.0.0.1", "--port", str(self.api_port), "--workers", "1"]),
            ("scheduler", ["scheduler", "--skip-serve-logs"]),
            ("dag-processor", ["dag-processor"]),
            ("triggerer", ["triggerer", "--skip-serve-logs"]),
        ):
            self.start_component(name, args)
        began = time.monotonic()
        self.wait_for(self._api_answers, timeout, "the api-server to answer")
        self.timings["api-server up"] = time.monotonic() - began
        began = time.monotonic()
        # The api-server builds its Execution API (Cadwyn's versioned routes) on the first request to it, which
        # takes seconds of CPU; asked for here, it is not the first task's start that waits for it. (The admin
        # token the simple auth manager adds to every request makes it log a harmless "JWT reissue" warning.)
        self.http.get(f"{self.api_url}/execution/health", timeout=60)
        self.timings["execution api warm"] = time.monotonic() - began
        return self

    @contextmanager
    def running(self, dag_ids: set[str], timeout: float = 120.0) -> Iterator[AirflowStack]:
        """Started, and the REST API lists ``dag_ids``. On leaving, whatever happened, every process group is
        ended (asserted from /proc) and the timings are written to ``timings.json``."""
        try:
            self.start(timeout=timeout)
            self.wait_for(
                lambda: dag_ids <= {dag["dag_id"] for dag in self.api("GET", "/dags")["dags"]},
                timeout,
                "the dag-processor to parse the DAGs",
            )
            yield self
        finally:
            leftover = self.stop()
            (self.root / "timings.json").write_text(json.dumps(self.timings, indent=2))
            assert leftover == [], f"processes still running after stop(): {leftover}"

    def start_component(self, name: str, args: list[str] | None = None) -> Component:
        """Start ``airflow <args>``; without ``args``, start a stopped component again as it was."""
        component = self.components.get(name)
        if component is None:
            if args is None:
                raise ValueError(f"no component {name!r} to start again")
            component = Component(name, args, self.logs / f"{name}.log")
        elif component.process is not None:
            raise RuntimeError(f"airflow {name} is already running")
        log_path = component.log_path
        args = component.args
        with open(log_path, "ab") as log:
            component.process = subprocess.Popen(
                [sys.executable, "-m", "airflow", *args],
                env=self._env,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,  # a process group of its own: stop() ends its workers too
            )
        self.components[name] = component
        return component

    def stop_component(self, name: str, grace: float = STOP_GRACE_SECONDS) -> float:
        """Stop one component as a service manager does; returns the seconds it took."""
        component = self.components[name]
        began = time.monotonic()
        if component.process is not None:
            _stop_group(component.process, grace)
            component.process = None
        self.timings[f"stop {name}"] = took = time.monotonic() - began
        return took

    def kill_component(self, name: str) -> None:
        """SIGKILL to the component's whole process group at once, as when its machine is lost: nothing cleans up."""
        component = self.components[name]
        if component.process is not None:
            _kill_group(component.process)
            component.process = None

    def stop(self) -> list[int]:
        """End every component's process group; returns the pids still alive afterwards (none)."""
        atexit.unregister(self.stop)
        began = time.monotonic()
        self.http.close()  # an open keep-alive connection holds up the api-server's shutdown
        running = {c.name: c.process for c in self.components.values() if c.process is not None}
        for process in running.values():
            process.terminate()  # the leader stops its own children (workers, trigger runner) first
        waiting = dict(running)
        while waiting and time.monotonic() < began + STOP_GRACE_SECONDS:
            for name, process in list(waiting.items()):
                _reap(process)
                if not _group_members(process.pid):
                    self.timings[f"stop {name}"] = time.monotonic() - began
                    del waiting[name]
            time.sleep(0.05)
        for process in running.values():
            _kill_group(process)
        self.timings["stop"] = time.monotonic() - began
        return [pid for process in running.values() for pid in _group_members(process.pid)]

    # -- waiting ---------------------------------------------------------------------------------------

    def wait_for(self, probe: Callable[[], T | None], timeout: float, what: str) -> T:
        """The first truthy result of ``probe``; fails at once if a component died, or after ``timeout``."""
        deadline = time.monotonic() + timeout
        last_error: Exception | None = None
        while True:
            self.check_alive()
            try:
                result = probe()
            except (requests.RequestException, sqlite3.Error, psycopg2.Error) as exc:  # not up yet, or the DB is busy
                result, last_error = None, exc
            if result:
                return result
            if time.monotonic() >= deadline:
                error = f" (last error: {last_error})" if last_error else ""
                raise AssertionError(f"timed out after {timeout:g} s waiting for {what}{error}\n{self.tails()}")
            time.sleep(POLL_SECONDS)

    def check_alive(self) -> None:
        for component in self.components.values():
            if component.process is not None and component.process.poll() is not None:
                raise AssertionError(
                    f"airflow {component.name} exited with code {component.process.returncode}\n{self.tails()}"
                )

    def log_lines(self, name: str, *fragments: str) -> list[str]:
        """The lines of a component's log that contain every one of ``fragments``."""
        text = self.components[name].log_path.read_text(errors="replace")
        return [line for line in text.splitlines() if all(fragment in line for fragment in fragments)]

    def tails(self, lines: int = 30) -> str:
        logs = [Component(name, [], path) for name, path in self.other_logs.items()]
        return "\n".join(
            f"----- last {lines} lines of {c.name} ({c.log_path}) -----\n{c.tail(lines)}"
            for c in [*self.components.values(), *logs]
        )

    # -- reading and acting ----------------------------------------------------------------------------

    def _api_answers(self) -> bool:
        return self.http.get(f"{self.api_url}/api/v2/version", timeout=5).ok

    def api(self, method: str, path: str, payload: Any = None, *, ok: tuple[int, ...] = (200,)) -> Any:
        """A call of the public REST API (``/api/v2`` + ``path``); a status outside ``ok`` fails the test."""
        response = self.http.request(method, f"{self.api_url}/api/v2{path}", json=payload, timeout=30)
        if response.status_code not in ok:
            raise AssertionError(f"{method} {path} answered {response.status_code}: {response.text[:2000]}")
        return response.json() if response.content else None

    def query(self, sql: str, *params: Any) -> list[tuple[Any, ...]]:
        """Rows from the metadata database, read-only (Airflow keeps writing to it meanwhile).

        ``sql`` marks its parameters with ``?`` on either database."""
        if self.database_url is None:
            with closing(sqlite3.connect(f"file:{self.db_path}?mode=ro", uri=True, timeout=10)) as db:
                return db.execute(sql, params).fetchall()
        dsn = "postgresql://" + self.database_url.split("://", 1)[1]  # without SQLAlchemy's "+driver"
        with closing(psycopg2.connect(dsn, connect_timeout=10)) as pg:
            pg.set_session(readonly=True, autocommit=True)
            with pg.cursor() as cursor:
                cursor.execute(sql.replace("%", "%%").replace("?", "%s"), params)
                return cursor.fetchall()

    def trigger_dag(self, dag_id: str, conf: dict[str, Any]) -> str:
        run = self.api("POST", f"/dags/{dag_id}/dagRuns", {"logical_date": None, "conf": conf})
        return str(run["dag_run_id"])

    def task_instance(self, dag_id: str, run_id: str, task_id: str) -> dict[str, Any]:
        result: dict[str, Any] = self.api("GET", f"/dags/{dag_id}/dagRuns/{run_id}/taskInstances/{task_id}")
        return result

    def wait_for_task_state(self, dag_id: str, run_id: str, task_id: str, state: str, timeout: float) -> None:
        seen: list[str | None] = []

        def reached() -> bool:
            current = self.task_instance(dag_id, run_id, task_id)["state"]
            if not seen or seen[-1] != current:
                seen.append(current)
            return bool(current == state)

        self.wait_for(reached, timeout, f"{dag_id}.{task_id} ({run_id}) to be {state}; states seen: {seen}")

    def wait_for_settled_deferral(self, dag_id: str, run_id: str, task_id: str, timeout: float) -> None:
        """Until the task is deferred and the scheduler has seen the worker that deferred it exit.

        Only then may the remote run end. Airflow 3.3 fails a task that resumes before the scheduler has
        handled that worker's exit: the stale "success" of the deferring try meets the resumed try running
        and is taken for a task changed from outside (apache/airflow#71580, #72716). The supervisor can take
        5 s to exit after a defer, so a remote run that ends within seconds of it loses the race on a loaded
        machine; a real one rarely does."""
        self.wait_for_task_state(dag_id, run_id, task_id, "deferred", timeout)
        self.wait_for(
            lambda: self.log_lines("scheduler", "TaskInstance Finished:", f"run_id={run_id},", "state=deferred"),
            timeout,
            f"the scheduler to see the worker that deferred {dag_id}.{task_id} ({run_id}) exit",
        )

    def xcom(self, dag_id: str, run_id: str, task_id: str, key: str = "return_value") -> Any:
        entry = self.api("GET", f"/dags/{dag_id}/dagRuns/{run_id}/taskInstances/{task_id}/xcomEntries/{key}")
        return entry["value"]

    def dag_runs(self, dag_id: str) -> list[dict[str, Any]]:
        runs: list[dict[str, Any]] = self.api("GET", f"/dags/{dag_id}/dagRuns?order_by=run_after&limit=100")["dag_runs"]
        return runs

    def trigger_logs(self, dag_id: str, run_id: str, task_id: str, try_number: int = 1) -> dict[int, str]:
        """triggerer job id -> the log its triggerer wrote for this task try (``...log.trigger.<job id>.log``)."""
        folder = self.home / "logs" / f"dag_id={dag_id}" / f"run_id={run_id}" / f"task_id={task_id}"
        return {
            int(path.name.rsplit(".", 2)[-2]): _messages(path)
            for path in folder.glob(f"attempt={try_number}.log.trigger.*.log")
        }

    def task_log(self, dag_id: str, run_id: str, task_id: str, try_number: int = 1) -> str:
        """The log the worker wrote for this task try ('' while there is none)."""
        folder = self.home / "logs" / f"dag_id={dag_id}" / f"run_id={run_id}" / f"task_id={task_id}"
        path = folder / f"attempt={try_number}.log"
        return _messages(path) if path.exists() else ""


def _messages(path: Path) -> str:
    """Each JSON line of a task or trigger log as ``event key=value ...``, without the task's own context."""
    lines = []
    for line in path.read_text(errors="replace").splitlines():
        try:
            record = json.loads(line)
        except ValueError:
            lines.append(line)
            continue
        fields = " ".join(f"{key}={value}" for key, value in record.items() if key not in _LOG_CONTEXT)
        lines.append(f"{record.get('event', '')} {fields}".rstrip())
    return "\n".join(lines)


_LOG_CONTEXT = {
    *("event", "timestamp", "level", "logger", "filename", "lineno", "dag_id", "run_id", "task_id"),
    *("map_index", "try_number", "ti_id", "trigger_id"),
}


# -- process groups ------------------------------------------------------------------------------------


def _signal_group(pgid: int, sig: signal.Signals) -> None:
    with suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, sig)


def _group_members(pgid: int) -> list[int]:
    """Live (not zombie) processes of a process group, from /proc."""
    return [pid for pid, group, state in _processes() if group == pgid and state != "Z"]


def _processes() -> Iterator[tuple[int, int, str]]:
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        # pid (comm) state ppid pgrp ...; comm may hold spaces and parentheses.
        fields = stat[stat.rindex(")") + 2 :].split()
        yield int(entry.name), int(fields[2]), fields[0]


def _stop_group(process: subprocess.Popen[bytes], grace: float) -> None:
    """SIGTERM to the group's leader, as a service manager does; SIGKILL to the whole group after ``grace``."""
    process.terminate()
    deadline = time.monotonic() + grace
    while _group_members(process.pid) and time.monotonic() < deadline:
        _reap(process)
        time.sleep(0.05)
    _kill_group(process)


def _kill_group(process: subprocess.Popen[bytes]) -> None:
    """SIGKILL to the whole group, then wait until the kernel has ended its members: a signal is delivered
    asynchronously, and on a loaded machine a member can still be running just after ``killpg`` returns."""
    _signal_group(process.pid, signal.SIGKILL)
    _reap(process, wait=True)
    deadline = time.monotonic() + KILL_SETTLE_SECONDS
    while _group_members(process.pid) and time.monotonic() < deadline:
        time.sleep(0.05)


def _reap(process: subprocess.Popen[bytes], *, wait: bool = False) -> None:
    with suppress(subprocess.TimeoutExpired):
        process.wait(timeout=5 if wait else 0)
