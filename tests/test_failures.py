"""Failures no retry can change fail the task at once, its retries unspent (dag.test() against the emulator)."""

from __future__ import annotations

import pytest

from airflow_provider_flowinst.errors import (
    AmbiguousStart,
    FlowInstanceNotFound,
    FlowPlatformError,
    RunOutcomeUnknown,
    refused_for_good,
)
from airflow_provider_flowinst.failures import PermanentFailure, failing_fast
from tests.dags import failure_dags
from tests.helpers import run_dag

PLATFORMS = ["enos_batch", "lsf_pm", "dataworks", "enos_bpm"]


def fault(kind: str, platform: str, count: int, path: str) -> dict:
    return {"kind": kind, "platform": platform, "count": count, "path_contains": path}


@pytest.mark.parametrize(
    ("dag_name", "task", "faults", "run_started"),
    [
        *[(f"fails_fast_{platform}_unknown_flow", "run", None, False) for platform in PLATFORMS],
        # The platform refuses a look at the run the task started.
        ("fails_fast_refused_look", "run", fault("403", "lsf_pm", 1, "/flow/instances"), True),
        # The submit is refused as if the token had run out, and again with the token of a fresh logon.
        (
            "fails_fast_credentials_refused",
            "run",
            fault("expired_token", "lsf_pm", 2, "/flow/definitions/submit"),
            False,
        ),
        # A deferrable sensor's look is refused.
        ("fails_fast_sensor_refused", "wait", fault("403", "enos_batch", 1, "flowInstances?action=get"), False),
    ],
    ids=lambda value: value if isinstance(value, str) and value.startswith("fails_fast") else "",
)
def test_a_failure_no_retry_can_change_fails_the_task_without_spending_retries(
    emulator, dag_name, task, faults, run_started
):
    if faults:
        emulator.inject_fault(**faults)

    result = run_dag(getattr(failure_dags, dag_name))

    assert result.task_states[task] == "failed"
    assert result.try_numbers == {task: 1}
    if not run_started:
        assert result.xcom(task, "flow_instance_id") is None


def test_a_passing_fault_still_spends_a_retry(emulator, monkeypatch):
    from tests.dags import trigger_dags
    from tests.helpers import quick_retry_connection

    quick_retry_connection(monkeypatch, emulator.url, max_retries=0)
    emulator.inject_fault("503", platform="enos_batch", count=1, path_contains="flowInstances")

    result = run_dag(trigger_dags.trigger_retried)

    assert result.state == "success"
    assert result.try_numbers == {"run": 2}


@pytest.mark.parametrize(
    ("mode", "outcome"), [({"soft_fail": False}, PermanentFailure), ({"soft_fail": True}, "AirflowSkipException")]
)
def test_a_permanent_error_event_fails_the_sensor_at_once_or_skips_it(mode, outcome):
    from airflow_provider_flowinst.sensors.flow_instance import FlowInstanceSensor

    sensor = FlowInstanceSensor(task_id="wait", conn_id="c", instance_id="i", deferrable=True, **mode)
    event = {"status": "error", "instance": None, "message": "EnOS: refused (HTTP 403)", "permanent": True}

    with pytest.raises(Exception) as raised:
        sensor.execute_complete({}, event)

    if outcome is PermanentFailure:
        assert isinstance(raised.value, PermanentFailure)
        assert "EnOS: refused (HTTP 403)" in str(raised.value)
    else:
        assert type(raised.value).__name__ == outcome


# -- which failures are permanent -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "permanent"),
    [
        *[(400, True), (401, True), (403, True), (404, True), (408, False), (409, True), (413, True)],
        *[(429, False), (500, False), (503, False), (200, False), (None, False)],
    ],
)
def test_a_client_error_other_than_408_and_429_is_permanent(status, permanent):
    assert refused_for_good("lsf_pm", status, None, retryable=False) is permanent
    assert FlowPlatformError("lsf_pm", "Submit Flow", "refused", http_status=status).permanent is permanent


def test_the_platforms_own_invalid_parameter_codes_are_permanent():
    assert FlowPlatformError("enos_batch", "List Flow Instances", "Invalid parameter", code=62102).permanent
    assert FlowPlatformError("enos_bpm", "Start Process Instance", "Invalid parameter", code="33400").permanent
    assert not FlowPlatformError("enos_bpm", "Terminate", "internal error", code="33500").permanent
    # A throttled call, whatever its status, may pass.
    assert not FlowPlatformError("dataworks", "GetWorkflow", "Throttling", http_status=400, retryable=True).permanent


def test_some_kinds_of_error_decide_for_themselves():
    assert AmbiguousStart("lsf_pm", "Submit Flow", "two runs could be this one's").permanent
    # An instance may yet appear; a start whose outcome is unknown is looked for by the next try.
    assert not FlowInstanceNotFound("lsf_pm", "Get", "no instance", http_status=404).permanent
    assert not RunOutcomeUnknown("enos_batch", "Trigger Flow", "lost answer", code=62102, http_status=200).permanent
    # A caller who knows better says so (an LSF logon refused while another session is live may pass).
    assert not FlowPlatformError("lsf_pm", "Logon", "already logged on", http_status=409, permanent=False).permanent


def test_permanence_and_retry_after_survive_pickling():
    import pickle

    error = FlowPlatformError("dataworks", "GetWorkflow", "slow down", http_status=429, retryable=True, retry_after=7.5)
    copy = pickle.loads(pickle.dumps(error))
    assert (copy.permanent, copy.retry_after) == (False, 7.5)
    assert pickle.loads(pickle.dumps(AmbiguousStart("lsf_pm", "Submit Flow", "two runs"))).permanent


def test_failing_fast_turns_only_permanent_errors_into_an_airflow_fail_exception():
    from airflow_provider_flowinst._compat import AirflowFailException

    refused = FlowPlatformError("lsf_pm", "Submit Flow", "Bad request", http_status=400)
    with pytest.raises(PermanentFailure) as raised, failing_fast():
        raise refused
    assert isinstance(raised.value, AirflowFailException)
    assert raised.value.__cause__ is refused
    assert str(raised.value).startswith("LSF Process Manager: Submit Flow failed: Bad request (HTTP 400)")

    passing = FlowPlatformError("lsf_pm", "Get", "unavailable", http_status=503, retryable=True)
    with pytest.raises(FlowPlatformError) as unchanged, failing_fast():
        raise passing
    assert unchanged.value is passing
