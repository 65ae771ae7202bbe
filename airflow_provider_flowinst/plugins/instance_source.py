"""Where the "Remote graph" tab finds a task instance's remote run: XCom once it has one, else the platform.

A sensor or operator that succeeded left the instance dict in XCom (``return_value``). One still waiting,
or one that failed, has not: its run is read live through the task's connection, with the instance id
from XCom ``flow_instance_id`` (TriggerFlowOperator) or the task's rendered ``instance_id``. Live reads
are kept a few seconds, so a page refreshed by many viewers costs the platform one call.
"""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from airflow_provider_flowinst.diagnosis import connection_secrets, redact

XCOM_INSTANCE_ID_KEY = "flow_instance_id"  # operators.trigger.XCOM_INSTANCE_ID_KEY, without importing the SDK
LIVE_CACHE_SECONDS = 10.0
_cache: dict[tuple[str, str], tuple[float, dict[str, Any]]] = {}
_cache_lock = threading.Lock()


@dataclass(frozen=True)
class TaskRun:
    """What the page shows: the instance dict (or None), where it came from, and a note if it is missing."""

    instance: dict[str, Any] | None
    source: str  # "xcom", "live" or "none"
    task_state: str | None
    note: str | None = None
    #: The connection a live read went through (None for XCom).
    conn_id: str | None = None


class TaskInstanceMissing(LookupError):
    pass


def _decoded(value: Any) -> Any:
    # The task SDK stores XCom as JSON, which the column already decodes; older rows may hold the text.
    if isinstance(value, (str, bytes)):
        try:
            return json.loads(value)
        except ValueError:
            return value
    return value


def _is_instance_dict(value: Any) -> bool:
    return isinstance(value, dict) and "platform" in value and "instance_id" in value and "state" in value


def load_task_run(session: Session, dag_id: str, run_id: str, task_id: str, map_index: int) -> TaskRun:
    from airflow.models.renderedtifields import RenderedTaskInstanceFields
    from airflow.models.taskinstance import TaskInstance
    from airflow.models.xcom import XComModel

    ti = session.scalars(
        select(TaskInstance).where(
            TaskInstance.dag_id == dag_id,
            TaskInstance.run_id == run_id,
            TaskInstance.task_id == task_id,
            TaskInstance.map_index == map_index,
        )
    ).first()
    if ti is None:
        raise TaskInstanceMissing(f"no task instance {dag_id}.{task_id} in run {run_id} (map index {map_index})")
    state = None if ti.state is None else str(getattr(ti.state, "value", ti.state))
    xcoms = {
        key: _decoded(value)
        for key, value in session.execute(
            select(XComModel.key, XComModel.value).where(
                XComModel.dag_id == dag_id,
                XComModel.run_id == run_id,
                XComModel.task_id == task_id,
                XComModel.map_index == map_index,
                XComModel.key.in_(("return_value", XCOM_INSTANCE_ID_KEY)),
            )
        ).all()
    }
    returned = xcoms.get("return_value")
    if _is_instance_dict(returned):
        return TaskRun(instance=returned, source="xcom", task_state=state)
    rendered_row = session.scalars(
        select(RenderedTaskInstanceFields.rendered_fields).where(
            RenderedTaskInstanceFields.dag_id == dag_id,
            RenderedTaskInstanceFields.run_id == run_id,
            RenderedTaskInstanceFields.task_id == task_id,
            RenderedTaskInstanceFields.map_index == map_index,
        )
    ).first()
    rendered = rendered_row if isinstance(rendered_row, dict) else {}
    instance_id = xcoms.get(XCOM_INSTANCE_ID_KEY) or rendered.get("instance_id")
    conn_id = rendered.get("conn_id")
    if not instance_id or not conn_id:
        return TaskRun(
            instance=None,
            source="none",
            task_state=state,
            note="This task has not named a remote run yet (no instance id in XCom or in its rendered fields).",
        )
    return read_live(str(conn_id), str(instance_id), state)


def read_live(conn_id: str, instance_id: str, task_state: str | None) -> TaskRun:
    """The instance read through ``conn_id`` now (or a few seconds ago); errors shown without secrets."""
    key = (conn_id, instance_id)
    with _cache_lock:
        cached = _cache.get(key)
    if cached is not None and time.monotonic() - cached[0] < LIVE_CACHE_SECONDS:
        return TaskRun(instance=cached[1], source="live", task_state=task_state, conn_id=conn_id)
    hook = None
    try:
        from airflow.models.connection import Connection

        from airflow_provider_flowinst.hooks import hook_for_connection

        connection = Connection.get_connection_from_secrets(conn_id)
        hook = hook_for_connection(connection)
        instance = hook.get_instance(instance_id, include_graph=True).to_dict()
    except Exception as exc:
        secrets = connection_secrets(hook) if hook is not None else ()
        return TaskRun(
            instance=None,
            source="none",
            task_state=task_state,
            note=f"Could not read remote run {instance_id} live: {redact(str(exc), secrets)}",
        )
    finally:
        if hook is not None:
            hook.close()
    with _cache_lock:
        _cache[key] = (time.monotonic(), instance)
    return TaskRun(instance=instance, source="live", task_state=task_state, conn_id=conn_id)


def forget_live(conn_id: str, instance_id: str) -> None:
    """Drop a kept live read (the run just changed: the next page shows it as it is now)."""
    with _cache_lock:
        _cache.pop((conn_id, instance_id), None)
