"""Remembering the remote run a task started, so that a retried task reattaches instead of starting another.

What is kept is the task's start *attempt* (flow, time, marker: see ``protocol.StartAttempt``), written
before the start call, and the run's id once the platform has named it. A try that crashes between the
two leaves the attempt behind, and the next try finds the run it made instead of starting a second one.

On Airflow 3.3+ this lives in the task's ``task_state_store`` (the store Airflow's own durable execution,
``ResumableJobMixin``, uses: it survives retries, and XComs do not, since each new try clears them). On
older 3.x, where there is no such store, it is kept in an Airflow Variable named after the task instance,
deleted again once the task has succeeded.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from typing import Any

from airflow_provider_flowinst.protocol import StartAttempt

log = logging.getLogger(__name__)

#: The task_state_store key; renaming it would make in-flight retries forget their runs.
STATE_KEY = "flowinst_instance_id"


@dataclass(frozen=True)
class RememberedStart:
    """What an earlier try left: its attempt (if it got that far) and the run's id (if the platform named it)."""

    attempt: StartAttempt | None
    instance_id: str | None


class RunMemory:
    """The remote run a task instance started, across its tries."""

    def __init__(self, context: Any) -> None:
        self._store = context.get("task_state_store")
        ti = context["ti"]
        map_index = getattr(ti, "map_index", -1)
        self._variable_key = f"flowinst__{ti.dag_id}__{ti.run_id}__{ti.task_id}__{map_index}"

    def recall(self) -> str | None:
        """The run's id, if an earlier try learnt it."""
        return self.recall_start().instance_id

    def recall_start(self) -> RememberedStart:
        return _decode(self._read())

    def remember_attempt(self, attempt: StartAttempt) -> None:
        """Before the start call: the attempt alone, so a crash mid-start can still be reconciled."""
        self._write(json.dumps({"attempt": attempt.to_dict()}))

    def remember(self, instance_id: str, attempt: StartAttempt | None = None) -> None:
        self._write(json.dumps({"attempt": None if attempt is None else attempt.to_dict(), "instance_id": instance_id}))

    def forget(self) -> None:
        """After success: the Variable fallback cleans up after itself (the state store expires on its own)."""
        if self._store is not None:
            return
        from airflow.sdk import Variable

        try:
            Variable.delete(self._variable_key)
        except Exception:  # a missing variable is fine; never fail a finished task over its bookkeeping
            log.debug("No variable %s to delete", self._variable_key)

    def _read(self) -> Any:
        if self._store is not None:
            return self._store.get(STATE_KEY)
        from airflow.sdk import Variable

        return Variable.get(self._variable_key, default=None)

    def _write(self, value: str) -> None:
        if self._store is not None:
            self._store.set(STATE_KEY, value)
            return
        from airflow.sdk import Variable

        Variable.set(self._variable_key, value, description="airflow-provider-flowinst: a task's remote run")


def _decode(value: Any) -> RememberedStart:
    """The stored value: JSON with the attempt and the id, or (written by 0.1.0) the bare id."""
    if value in (None, ""):
        return RememberedStart(None, None)
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError:
            return RememberedStart(None, value)
    if not isinstance(value, dict):
        return RememberedStart(None, str(value))
    attempt = value.get("attempt")
    instance_id = value.get("instance_id")
    return RememberedStart(
        StartAttempt.from_dict(attempt) if isinstance(attempt, dict) else None,
        None if instance_id in (None, "") else str(instance_id),
    )
