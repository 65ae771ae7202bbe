"""What many tests share: running a DAG with ``dag.test()`` and reading what its tasks left behind, quick-retry
connections, driving a platform operation by hand with canned answers, and bounded waits on a condition (a
test never sleeps a fixed time to let something happen: it waits until it has happened, or fails)."""

from __future__ import annotations

import asyncio
import datetime as dt
import inspect
import itertools
import json
import time
from collections.abc import Callable, Generator
from dataclasses import dataclass
from typing import Any, TypeVar

from airflow.models.xcom import XComModel
from airflow.utils.session import create_session
from sqlalchemy import select

from airflow_provider_flowinst.hooks.base import FlowPlatformHook
from airflow_provider_flowinst.models import FlowInstance, FlowState
from airflow_provider_flowinst.protocol import HttpRequest, HttpResponse, Sleep, Together

T = TypeVar("T")
H = TypeVar("H", bound=FlowPlatformHook[Any])
#: The keys of the dict a wait pushes to XCom (API.md fixes them), whatever the platform.
XCOM_KEYS = frozenset(
    {
        "platform",
        "instance_id",
        "flow_id",
        "name",
        "state",
        "raw_state",
        "started_at",
        "ended_at",
        "url",
        "graph",
        "details",
    }
)
#: How often a bounded wait looks again.
POLL_SECONDS = 0.05

_dates = itertools.count()


def unique_logical_date() -> dt.datetime:
    """A logical date no other test run uses, so each run waits on its own remote instance."""
    return dt.datetime(2030, 1, 1, tzinfo=dt.timezone.utc) + dt.timedelta(hours=next(_dates))


@dataclass
class DagRunResult:
    state: str
    task_states: dict[str, str | None]
    xcoms: dict[tuple[str, str], Any]
    logical_date: dt.datetime
    #: How many tries each task had (a retry adds one).
    try_numbers: dict[str, int] | None = None
    #: Seconds each task's last try took, from its start (kept across a deferral) to its end.
    durations: dict[str, float | None] | None = None

    def xcom(self, task_id: str, key: str = "return_value") -> Any:
        return self.xcoms.get((task_id, key))


def run_dag(dag: Any, logical_date: dt.datetime | None = None, **kwargs: Any) -> DagRunResult:
    """``dag.test()`` and the resulting states and XComs (values decoded as Airflow stores them)."""
    logical_date = logical_date or unique_logical_date()
    dag_run = dag.test(logical_date=logical_date, **kwargs)
    with create_session() as session:
        task_instances = dag_run.get_task_instances(session=session)
        task_states = {
            ti.task_id: (None if ti.state is None else str(ti.state.value if hasattr(ti.state, "value") else ti.state))
            for ti in task_instances
        }
        try_numbers = {ti.task_id: ti.try_number for ti in task_instances}
        durations = {ti.task_id: ti.duration for ti in task_instances}
        rows = session.scalars(
            select(XComModel).where(XComModel.dag_id == dag.dag_id, XComModel.run_id == dag_run.run_id)
        ).all()
        # The task SDK stores values as JSON, which SQLAlchemy has already decoded; decoding again would
        # turn a string such as "700004" into a number.
        xcoms = {(row.task_id, row.key): row.value for row in rows}
        state = str(dag_run.state.value if hasattr(dag_run.state, "value") else dag_run.state)
    return DagRunResult(state, task_states, xcoms, logical_date, try_numbers, durations)


def succeeded_wait(result: DagRunResult, started_by: str, platform: str) -> dict[str, Any]:
    """The dict a successful ``wait`` task pushed, checked for what every platform's has: the keys API.md
    fixes, the instance the ``started_by`` task started, state success, UTC start and end times in order."""
    assert result.state == "success", result.task_states
    instance: dict[str, Any] = result.xcom("wait")
    assert set(instance) == XCOM_KEYS
    assert instance["instance_id"] == result.xcom(started_by)
    assert (instance["platform"], instance["state"]) == (platform, "success")
    assert instance["started_at"].endswith("+00:00") and instance["ended_at"] >= instance["started_at"]
    return instance


#: The fields of a connection (as against its extras).
CONNECTION_FIELDS = ("host", "login", "password", "schema", "port")


def emulator_hook(hook_class: type[H], emulator: Any, **changes: Any) -> H:
    """A ``hook_class`` hook on its platform's default emulator connection, retrying quickly (2 retries).
    ``changes`` replace the connection's fields (``login``, ``password``: None leaves it out) or set extras
    (None drops one)."""
    from airflow.sdk import Connection

    from airflow_provider_flowinst.testing.connections import emulator_connection_specs

    conn_id = hook_class.default_conn_name
    spec = emulator_connection_specs(emulator.url)[conn_id]
    fields = {name: spec.get(name) for name in CONNECTION_FIELDS} | {
        name: value for name, value in changes.items() if name in CONNECTION_FIELDS
    }
    extra = {**spec.get("extra", {}), "retry_max_wait": 0.2, "max_retries": 2}
    extra |= {name: value for name, value in changes.items() if name not in CONNECTION_FIELDS}
    hook = hook_class(conn_id)
    hook.use_connection(
        Connection(
            conn_id=conn_id,
            conn_type=spec["conn_type"],
            extra=json.dumps({name: value for name, value in extra.items() if value is not None}),
            **fields,
        )
    )
    return hook


def quick_retry_connection(monkeypatch: Any, url: str, base: str = "enos_batch_default", **overrides: Any) -> str:
    """A copy of an emulator connection that retries fast (tests of retry behaviour stay quick).

    ``base`` is any platform's default connection id; ``overrides`` replace extras (e.g. ``retry_max_wait``).
    """
    from airflow_provider_flowinst.testing.connections import emulator_connection_specs

    spec = emulator_connection_specs(url)[base]
    extra = {**spec.get("extra", {}), "max_retries": 2, "retry_max_wait": 0.05, "read_timeout": 1, **overrides}
    conn_id = f"{base}_quick_retry"
    monkeypatch.setenv(f"AIRFLOW_CONN_{conn_id.upper()}", json.dumps({**spec, "extra": extra}))
    return conn_id


def drive(operation: Any, *responses: Any) -> tuple[list[Any], Any]:
    """Drive a platform operation by hand: what it yielded (requests, sleeps; for a ``Together``, its parts'
    requests, its parts driven one after another) and what it returned."""
    steps: list[Any] = []
    given = iter(responses)

    def run(current: Any) -> Any:
        try:
            step = next(current)
        except StopIteration as done:
            return done.value
        while True:
            if isinstance(step, Together):
                reply = [run(part) for part in step.operations]
            else:
                steps.append(step)
                reply = next(given, given)
                if reply is given:
                    raise AssertionError(f"the operation wanted more than {len(responses)} responses")
            try:
                step = current.send(reply)
            except StopIteration as done:
                return done.value

    return steps, run(operation)


def drive_to_end(operation: Generator[Any, Any, Any], answers: list[HttpResponse], limit: int = 200) -> Any:
    """Run an operation as the sync transport does, answering its requests in turn (the last answer repeats),
    its pauses at once and the operations it asks for ``Together`` one after another; what it returned."""
    steps = iter(range(limit))

    def drive(current: Generator[Any, Any, Any]) -> Any:
        try:
            step = next(current)
        except StopIteration as done:
            return done.value
        while True:
            reply: Any = None
            failure: Exception | None = None
            # A pause takes its turn in ``answers`` as a request does (a Together's parts take theirs).
            index = -1 if isinstance(step, Together) else next(steps, None)
            if index is None:
                raise AssertionError("the operation never ended")
            if isinstance(step, Together):
                try:
                    reply = [drive(part) for part in step.operations]
                except AssertionError:
                    raise
                except Exception as exc:  # into the operation, where ``yield from`` would have raised it
                    failure = exc
            elif not isinstance(step, Sleep):
                assert isinstance(step, HttpRequest)
                reply = answers[min(index, len(answers) - 1)]
            try:  # send(None) is next()
                step = current.send(reply) if failure is None else current.throw(failure)
            except StopIteration as done:
                return done.value

    return drive(operation)


def answer(payload: Any, status: int = 200, **headers: str) -> HttpResponse:
    """A platform's answer: ``payload`` as JSON (bytes are sent as they are), with ``headers``."""
    if isinstance(payload, bytes):
        return HttpResponse(status, dict(headers), payload)
    return HttpResponse(status, {"content-type": "application/json", **headers}, json.dumps(payload).encode())


def camel_case(name: str) -> str:
    """``task_inst_id`` -> ``taskInstId``: EnOS answers spell their keys either way."""
    head, *rest = name.split("_")
    return head + "".join(part.title() for part in rest)


def camel_cased(value: Any) -> Any:
    """``value`` with every dict key in it camelCased."""
    if isinstance(value, dict):
        return {camel_case(key): camel_cased(item) for key, item in value.items()}
    if isinstance(value, list):
        return [camel_cased(item) for item in value]
    return value


# -- bounded waits ---------------------------------------------------------------------------------------


async def read_instance(conn_id: str, instance_id: str, path: str) -> FlowInstance:
    """The instance by either of a hook's paths: ``"sync"`` (``get_instance``, requests) or ``"async"``
    (``aget_instance``, aiohttp; its shared HTTP session is closed after)."""
    from airflow_provider_flowinst.hooks import aget_hook, get_hook
    from airflow_provider_flowinst.transport import close_shared_session

    if path == "sync":
        return get_hook(conn_id).get_instance(instance_id)
    try:
        return await (await aget_hook(conn_id)).aget_instance(instance_id)
    finally:
        await close_shared_session()


def wait_for(check: Callable[[], T], timeout: float = 15.0, what: str = "the condition") -> T:
    """``check()`` again until it returns something true, which is returned; fails after ``timeout`` s."""
    deadline = time.monotonic() + timeout
    while not (value := check()):
        assert time.monotonic() < deadline, f"gave up after {timeout} s waiting for {what}"
        time.sleep(POLL_SECONDS)
    return value


async def eventually(check: Callable[[], Any], timeout: float = 20.0, what: str = "the condition") -> Any:
    """``wait_for`` in an event loop: ``check`` may return an awaitable (awaited); the loop keeps running."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if inspect.isawaitable(value):
            value = await value
        if value:
            return value
        assert time.monotonic() < deadline, f"gave up after {timeout} s waiting for {what}"
        await asyncio.sleep(POLL_SECONDS)


def instance_reaching(
    hook: Any, instance_id: str, *states: FlowState, include_graph: bool = True, timeout: float = 15.0
) -> FlowInstance:
    """The instance, read through ``hook`` until it is in one of ``states`` (any end state if none given)."""

    def reached() -> FlowInstance | None:
        instance: FlowInstance = hook.get_instance(instance_id, include_graph=include_graph)
        return instance if (instance.state in states if states else instance.state.is_terminal) else None

    wanted = ", ".join(state.value for state in states) or "an end state"
    return wait_for(reached, timeout, f"{instance_id} to reach {wanted}")


# -- a socket server scripted per test -------------------------------------------------------------------

#: What a scripted server does with the n-th request (counted over all connections) on its connection's
#: m-th request: the bytes to answer, or None to close the connection without an answer.
Script = Callable[[int, int, bytes], bytes | None]


def scripted_answer(body: bytes = b'{"ok": true}', *, status: str = "200 OK", headers: str = "") -> bytes:
    return f"HTTP/1.1 {status}\r\nContent-Length: {len(body)}\r\n{headers}\r\n".encode() + body


class ScriptedServer:
    """A socket server that reads each request's head and body and answers as its script says: the ways a
    platform's proxy or load balancer may answer (``tests/test_http1.py``)."""

    def __init__(self, script: Script, *, delay: float = 0.0, close_after: bool = False) -> None:
        self.script = script
        self.delay = delay
        self.close_after = close_after
        self.requests: list[bytes] = []
        self.events: list[str] = []  # "request n" as each arrives, "answer n" as each is sent
        self.connections = 0
        self.open = 0
        self.most_open = 0
        self.closed_by_client = 0
        self.server: asyncio.Server | None = None
        self.url = ""

    async def __aenter__(self) -> ScriptedServer:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.url = f"http://127.0.0.1:{self.server.sockets[0].getsockname()[1]}"
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self.server is not None
        self.server.close()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        self.open += 1
        self.most_open = max(self.most_open, self.open)
        on_this_connection = 0
        try:
            while head := await reader.readuntil(b"\r\n\r\n"):
                length = next(
                    (
                        int(line.split(b":")[1])
                        for line in head.split(b"\r\n")
                        if line.lower().startswith(b"content-length")
                    ),
                    0,
                )
                request = head + await reader.readexactly(length)
                self.requests.append(request)
                on_this_connection += 1
                self.events.append(f"request {len(self.requests)}")
                number = len(self.requests)
                if self.delay:
                    await asyncio.sleep(self.delay)
                reply = self.script(number, on_this_connection, request)
                if reply is None:
                    break
                writer.write(reply)
                self.events.append(f"answer {number}")
                await writer.drain()
                if self.close_after:
                    break
        except asyncio.IncompleteReadError as exc:
            if not exc.partial:
                self.closed_by_client += 1
        finally:
            self.open -= 1
            writer.close()
