"""Waits that start in the triggerer, straight from the scheduler (``start_from_trigger``), never in a worker.

Only Airflow 3.3+ can: its scheduler defers such a task itself and its triggerer renders the task's templated
fields (``instance_id`` is usually a template) on the trigger before it runs. Airflow 3.1 and 3.2 ship the
scheduler's trigger start disabled (commented out in ``DagRun.schedule_tis``: "we haven't figured out how to
render start_from_trigger in the scheduler", apache/airflow#66307, re-enabled for 3.3 by #55068) and their
triggerer renders no templates, so the flag is refused there rather than silently run in a worker.
"""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING, Any

from airflow_provider_flowinst.waits import EVENT_DELIVERY_SECONDS

if TYPE_CHECKING:
    from airflow.triggers.base import StartTriggerArgs

#: The first release whose scheduler starts a task in the triggerer and whose triggerer renders its templates.
FIRST_RELEASE = (3, 3)
#: One attempt of a poll at the transport's default timeouts (connect 10 s + read 60 s): the scheduler sets
#: Airflow's deferral timeout before any connection is read.
DEFAULT_ATTEMPT_SECONDS = 70.0


def airflow_release() -> tuple[str, tuple[int, int]]:
    from airflow import __version__

    major, minor = (int(part) for part in str(__version__).split(".")[:2])
    return str(__version__), (major, minor)


def refuse_unless_supported(task_id: str) -> None:
    """A clear ValueError, naming the release, where Airflow cannot start this wait in the triggerer."""
    version, release = airflow_release()
    if release < FIRST_RELEASE:
        raise ValueError(
            f"{task_id}: start_from_trigger needs Airflow 3.3 or later; this is Airflow {version}, whose scheduler "
            "never starts a task in the triggerer (apache/airflow#66307) and whose triggerer does not render "
            "templated fields such as instance_id. Use deferrable=True: the wait then starts with one look in "
            "a worker and goes on in the triggerer."
        )


def start_trigger_args(
    trigger_kwargs: dict[str, Any], timeout: float, execution_timeout: dt.timedelta | None
) -> StartTriggerArgs:
    """What the scheduler starts: the trigger (ending the task itself on success), counting down the sooner of
    ``timeout`` and ``execution_timeout`` from its start, and Airflow's deferral timeout just past that."""
    from airflow.triggers.base import StartTriggerArgs

    seconds, limit = float(timeout), "timeout"
    if execution_timeout is not None and execution_timeout.total_seconds() < seconds:
        seconds, limit = execution_timeout.total_seconds(), "execution_timeout"
    kwargs = {
        **trigger_kwargs,
        "end_time": None,
        "timeout_seconds": seconds,
        "end_time_limit": limit,
        "end_from_trigger": True,
    }
    return StartTriggerArgs(
        trigger_cls="airflow_provider_flowinst.triggers.flow_instance.FlowInstanceTrigger",
        trigger_kwargs=kwargs,
        next_method="execute_complete",
        next_kwargs=None,
        timeout=dt.timedelta(seconds=seconds + DEFAULT_ATTEMPT_SECONDS + EVENT_DELIVERY_SECONDS),
    )
