"""Remembering the remote run a task started, so that a retried task reattaches instead of starting another.

On Airflow 3.3+ the id is kept in the task's ``task_state_store`` (the store Airflow's own durable execution,
``ResumableJobMixin``, uses: it survives retries, and XComs do not, since each new try clears them). On
older 3.x, where there is no such store, it is kept in an Airflow Variable named after the task instance,
deleted again once the task has succeeded.
"""

from __future__ import annotations

import logging
from typing import Any

log = logging.getLogger(__name__)

#: The task_state_store key; renaming it would make in-flight retries forget their runs.
STATE_KEY = "flowinst_instance_id"


class RunMemory:
    """The remote instance id a task instance started, across its tries."""

    def __init__(self, context: Any) -> None:
        self._store = context.get("task_state_store")
        ti = context["ti"]
        map_index = getattr(ti, "map_index", -1)
        self._variable_key = f"flowinst__{ti.dag_id}__{ti.run_id}__{ti.task_id}__{map_index}"

    def recall(self) -> str | None:
        if self._store is not None:
            value = self._store.get(STATE_KEY)
        else:
            from airflow.sdk import Variable

            value = Variable.get(self._variable_key, default=None)
        return None if value in (None, "") else str(value)

    def remember(self, instance_id: str) -> None:
        if self._store is not None:
            self._store.set(STATE_KEY, instance_id)
            return
        from airflow.sdk import Variable

        Variable.set(self._variable_key, instance_id, description="airflow-provider-flowinst: a task's remote run")

    def forget(self) -> None:
        """After success: the Variable fallback cleans up after itself (the state store expires on its own)."""
        if self._store is not None:
            return
        from airflow.sdk import Variable

        try:
            Variable.delete(self._variable_key)
        except Exception:  # a missing variable is fine; never fail a finished task over its bookkeeping
            log.debug("No variable %s to delete", self._variable_key)
