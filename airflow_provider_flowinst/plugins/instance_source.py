"""Where the "Remote graph" tab finds a task instance's remote run: XCom once it has one, else the platform.

A sensor or operator that succeeded left the instance dict in XCom (``return_value``). One still waiting,
or one that failed, has not: its run is read live through the task's connection, with the instance id
from XCom ``flow_instance_id`` (TriggerFlowOperator) or the task's rendered ``instance_id``.

``locate_task_run`` reads the metadata database (blocking: the route runs it on a worker thread);
``read_live`` reads the platform on the event loop within the tab's own budget, one read per run at a time
and kept a few seconds (see ``live_reads``), so a page refreshed by many viewers costs the platform one call.
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from airflow_provider_flowinst.models import XCOM_INSTANCE_ID_KEY
from airflow_provider_flowinst.plugins.live_reads import LIVE_READS, LiveReadFailed, LiveReads


@dataclass(frozen=True)
class TaskRun:
    """What the page shows: the instance dict (or None), where it came from, and a note if it is missing."""

    instance: dict[str, Any] | None
    source: str  # "xcom", "live" or "none"
    task_state: str | None
    note: str | None = None
    #: The connection a live read went through (None for XCom).
    conn_id: str | None = None


@dataclass(frozen=True)
class LiveTarget:
    """A run to read live: through which connection, which instance, and the task's state meanwhile."""

    conn_id: str
    instance_id: str
    task_state: str | None


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


def locate_task_run(session: Session, dag_id: str, run_id: str, task_id: str, map_index: int) -> TaskRun | LiveTarget:
    """The run from XCom, or which run to read live, or why there is none; ``TaskInstanceMissing`` if no TI."""
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
    return LiveTarget(conn_id=str(conn_id), instance_id=str(instance_id), task_state=state)


async def read_live(target: LiveTarget, reads: LiveReads = LIVE_READS) -> TaskRun:
    """The instance read now (or a few seconds ago); a failure is a plain note (details in the log)."""
    try:
        instance = await reads.read(target.conn_id, target.instance_id)
    except LiveReadFailed:
        return TaskRun(
            instance=None,
            source="none",
            task_state=target.task_state,
            note=f"The platform could not be read just now (remote run {target.instance_id}); "
            "the api-server's log says why. This page tries again when reloaded.",
        )
    return TaskRun(instance=instance, source="live", task_state=target.task_state, conn_id=target.conn_id)


def load_task_run(session: Session, dag_id: str, run_id: str, task_id: str, map_index: int) -> TaskRun:
    """``locate_task_run``, then ``read_live`` if the run must be read live: for scripts outside any event
    loop (``make demo`` draws its runs with it); the routes await the two steps themselves."""
    found = locate_task_run(session, dag_id, run_id, task_id, map_index)
    return asyncio.run(read_live(found)) if isinstance(found, LiveTarget) else found


def forget_live(conn_id: str, instance_id: str, reads: LiveReads = LIVE_READS) -> None:
    """Drop a kept live read (the run just changed: the next page shows it as it is now)."""
    reads.forget(conn_id, instance_id)
