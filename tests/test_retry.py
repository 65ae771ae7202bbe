"""FlowPlatformRetryPolicy on real tasks (Airflow 3.3+): each decision, as the task runner carries it out."""

from __future__ import annotations

import datetime as dt

import pytest

from airflow_provider_flowinst.errors import FlowPlatformError
from tests.helpers import quick_retry_connection, run_dag


def retry_policy_available() -> bool:
    try:
        import airflow.sdk.definitions.retry_policy  # noqa: F401
    except ImportError:
        return False
    return True


def first_try(dag_id: str, run_id: str, task_id: str) -> tuple[float | None, str | None]:
    """The retry delay and reason a retry policy set on the task's first try."""
    from airflow.models.taskinstancehistory import TaskInstanceHistory
    from airflow.utils.session import create_session
    from sqlalchemy import select

    with create_session() as session:
        row = session.execute(
            select(TaskInstanceHistory.retry_delay_override, TaskInstanceHistory.retry_reason).where(
                TaskInstanceHistory.dag_id == dag_id,
                TaskInstanceHistory.run_id == run_id,
                TaskInstanceHistory.task_id == task_id,
                TaskInstanceHistory.try_number == 1,
            )
        ).one()
    return row[0], row[1]


def test_each_decision_on_a_real_task(emulator, monkeypatch):
    from tests.dags import failure_dags

    quick_retry_connection(monkeypatch, emulator.url, max_retries=0)
    emulator.inject_fault("429", platform="enos_batch", count=1, path_contains="2809-20300101000000", retry_after=2)
    emulator.inject_fault("503", platform="enos_batch", count=1, path_contains="2809-20300101000001")

    result = run_dag(failure_dags.retry_policy)
    run_id = run_id_of(failure_dags.retry_policy.dag_id, result.logical_date)

    # Permanent (an unknown flow at start): failed at once, its two retries unspent.
    assert (result.task_states["start_unknown_flow"], result.try_numbers["start_unknown_flow"]) == ("failed", 1)
    # Throttled: retried after the platform's Retry-After (2 s), not the task's retry_delay (0 s).
    assert (result.task_states["read_throttled"], result.try_numbers["read_throttled"]) == ("success", 2)
    delay, reason = first_try("retry_policy", run_id, "read_throttled")
    assert delay == 2.0
    assert reason is not None and reason.startswith("the platform asked to wait 2 s")
    # A passing fault that asked no delay: the task's own retries and retry_delay.
    assert (result.task_states["read_unavailable"], result.try_numbers["read_unavailable"]) == ("success", 2)
    assert first_try("retry_policy", run_id, "read_unavailable") == (None, None)


def run_id_of(dag_id: str, logical_date: dt.datetime) -> str:
    from airflow.models.dagrun import DagRun
    from airflow.utils.session import create_session
    from sqlalchemy import select

    with create_session() as session:
        return str(
            session.scalars(
                select(DagRun.run_id).where(DagRun.dag_id == dag_id, DagRun.logical_date == logical_date)
            ).one()
        )


def test_the_delay_a_platform_asks_is_capped_and_other_errors_are_left_to_the_task():
    from airflow.sdk.definitions.retry_policy import RetryAction

    from airflow_provider_flowinst.retry import FlowPlatformRetryPolicy

    policy = FlowPlatformRetryPolicy(max_retry_delay=dt.timedelta(minutes=5))
    days = FlowPlatformError("dataworks", "GetWorkflow", "slow down", retryable=True, retry_after=86400.0)

    assert policy.evaluate(days, 1, 3).retry_delay == dt.timedelta(minutes=5)
    # Found behind a task's own wrapper, too.
    try:
        try:
            raise days
        except FlowPlatformError as error:
            raise RuntimeError("my task failed") from error
    except RuntimeError as wrapped:
        assert policy.evaluate(wrapped, 1, 3).action == RetryAction.RETRY
    assert policy.evaluate(ValueError("not a platform's"), 1, 3).action == RetryAction.DEFAULT
    assert FlowPlatformRetryPolicy.deserialize(policy.serialize()).max_retry_delay == dt.timedelta(minutes=5)


def test_the_package_imports_everywhere_and_the_policy_needs_airflow_33():
    """On 3.3+ it is a retry policy; on 3.1 and 3.2 (tests/compat_tests.txt) making one names the release."""
    from airflow_provider_flowinst.retry import FlowPlatformRetryPolicy

    if retry_policy_available():
        from airflow.sdk.definitions.retry_policy import RetryPolicy

        assert isinstance(FlowPlatformRetryPolicy(), RetryPolicy)
    else:
        with pytest.raises(RuntimeError, match=r"needs Airflow 3.3 or later .* this is Airflow 3\.[12]"):
            FlowPlatformRetryPolicy()
