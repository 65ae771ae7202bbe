"""FlowInstanceSensor in real dag.test() runs against the emulator: the same meaning in every mode."""

from __future__ import annotations

import datetime as dt
import time

import pytest

from airflow_provider_flowinst.sensors.dataworks import DataWorksWorkflowInstanceSensor
from airflow_provider_flowinst.sensors.enos_batch import EnOSFlowInstanceSensor
from airflow_provider_flowinst.sensors.enos_bpm import EnOSProcessInstanceSensor
from airflow_provider_flowinst.sensors.lsf import LSFFlowInstanceSensor
from tests.dags import dataworks_dags, enos_bpm_dags, lsf_dags, sensor_dags
from tests.helpers import run_dag, unique_logical_date

MODES = ["poke", "reschedule", "deferrable"]


def dag_for(mode: str, scenario: str):
    return getattr(sensor_dags, f"sensor_{mode}_{scenario}")


@pytest.mark.parametrize("mode", MODES)
def test_success_returns_the_instance_dict(emulator, mode):
    result = run_dag(dag_for(mode, "success"))

    assert result.state == "success"
    instance = result.xcom("wait")
    assert instance["platform"] == "enos_batch"
    assert instance["instance_id"] == f"2809-{result.logical_date:%Y%m%d%H%M%S}"
    assert instance["state"] == "success"
    assert instance["raw_state"] == "SUCCESS"
    assert {node["name"] for node in instance["graph"]["nodes"]} == {"tass", "aggregate", "publish", "ingest"}
    assert {"source": "t_104890", "target": "t_104891"} in instance["graph"]["edges"]


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize(
    ("scenario", "wait_state"),
    [
        ("failure", "failed"),  # the run failed
        ("soft_fail", "skipped"),  # ... under soft_fail
        ("missing_fails", "failed"),  # no such instance, and fail_if_missing: at once
        ("timeout", "failed"),  # still running at the sensor's timeout
        ("timeout_soft_fail", "skipped"),  # ... under soft_fail
    ],
)
def test_a_wait_that_cannot_succeed_fails_or_skips_the_task(emulator, mode, scenario, wait_state):
    result = run_dag(dag_for(mode, scenario))

    assert result.task_states["wait"] == wait_state
    assert result.xcom("wait") is None


@pytest.mark.parametrize("mode", MODES)
def test_missing_instance_is_waited_for_until_it_appears(emulator, mode):
    logical_date = unique_logical_date()
    instance_id = f"2515-{logical_date:%Y%m%d%H%M%S}"
    emulator.create_enos_batch_instance("2515", instance_id, appear_after=5.0)

    result = run_dag(dag_for(mode, "missing_appears"), logical_date)

    assert result.task_states["wait"] == "success"
    assert result.xcom("wait")["instance_id"] == instance_id


@pytest.mark.parametrize("mode", ["poke", "deferrable"])
def test_custom_states_decide_what_success_means(emulator, mode):
    result = run_dag(dag_for(mode, "failure_counts_as_success"))

    assert result.task_states["wait"] == "success"
    assert result.xcom("wait")["state"] == "failed"


def test_states_that_both_succeed_and_fail_are_refused():
    from airflow_provider_flowinst.sensors.flow_instance import FlowInstanceSensor

    with pytest.raises(ValueError, match="both succeed and fail"):
        FlowInstanceSensor(task_id="bad", conn_id="c", instance_id="i", success_states=["failed"])


def test_unknown_state_names_are_refused():
    from airflow_provider_flowinst.sensors.flow_instance import FlowInstanceSensor

    with pytest.raises(ValueError, match="success_states must hold states among"):
        FlowInstanceSensor(task_id="bad", conn_id="c", instance_id="i", success_states=["done"])


@pytest.mark.parametrize(("limit", "outcome"), [(3, "success"), (2, "failed")])
def test_looks_may_fail_in_a_row_up_to_max_consecutive_failures(emulator, monkeypatch, limit, outcome):
    from tests.helpers import quick_retry_connection

    quick_retry_connection(monkeypatch, emulator.url, max_retries=0)
    emulator.inject_fault("503", platform="enos_batch", count=2, path_contains="flowInstances?action=get")

    result = run_dag(getattr(sensor_dags, f"sensor_poke_failed_looks_{limit}"))

    assert result.task_states["wait"] == outcome


def trigger_kwargs_on_deferral(ti: XComSink | None = None, **sensor_kwargs) -> dict:
    """What a deferrable FlowInstanceSensor on a long run hands its trigger (its serialized kwargs)."""
    from airflow.sdk.exceptions import TaskDeferred

    from airflow_provider_flowinst.sensors.flow_instance import FlowInstanceSensor

    instance_id = "4000-20290101000000"  # flow 4000 runs for hours
    sensor = FlowInstanceSensor(
        task_id="wait", conn_id="enos_batch_default", instance_id=instance_id, deferrable=True, **sensor_kwargs
    )
    with pytest.raises(TaskDeferred) as deferred:
        sensor.execute({"ti": ti or XComSink()})
    return deferred.value.trigger.serialize()[1]


def test_max_consecutive_failures_reaches_the_trigger(emulator):
    assert trigger_kwargs_on_deferral(max_consecutive_failures=3)["max_consecutive_failures"] == 3


@pytest.mark.parametrize("bad", [0, -1, 2.5, "many", float("nan")])
def test_max_consecutive_failures_must_be_a_whole_number(bad):
    from airflow_provider_flowinst.sensors.flow_instance import FlowInstanceSensor

    with pytest.raises(ValueError, match="max_consecutive_failures must be a whole number >= 1"):
        FlowInstanceSensor(task_id="wait", conn_id="c", instance_id="i", max_consecutive_failures=bad)


def test_a_deferred_wait_ends_at_the_trys_execution_timeout_and_the_try_is_retried(emulator):
    result = run_dag(sensor_dags.sensor_deferrable_execution_timeout)

    assert result.task_states["wait"] == "failed"
    # A timed-out try: its retry ran (the sensor's own timeout would have failed it for good).
    assert result.try_numbers == {"wait": 2}
    # The last try ended 4 s after it began (a loaded machine adds some), long before the timeout of 120 s.
    assert result.durations["wait"] < 60


@pytest.mark.parametrize(
    ("execution_timeout", "limit", "ends_after_start"), [(120, "execution_timeout", 120), (3600, "timeout", 900)]
)
def test_execution_timeout_counts_from_the_trys_start(emulator, execution_timeout, limit, ends_after_start):
    # The try began 100 s ago (Airflow keeps a try's start_date across a deferral).
    ti = XComSink(start_date=dt.datetime.now(dt.timezone.utc) - dt.timedelta(seconds=100))

    kwargs = trigger_kwargs_on_deferral(ti, timeout=900, execution_timeout=dt.timedelta(seconds=execution_timeout))

    assert kwargs["end_time_limit"] == limit
    expected_end = ti.start_date.timestamp() + ends_after_start if limit == "execution_timeout" else None
    if expected_end is not None:
        assert kwargs["end_time"] == pytest.approx(expected_end)
    else:
        assert kwargs["end_time"] == pytest.approx(time.time() + ends_after_start, abs=30)


# -- each platform's own sensor: FlowInstanceSensor with the platform's names --------------------------------


@pytest.mark.parametrize(
    ("dag", "starter"),
    [
        (dataworks_dags.dataworks_poke_fails, "create"),
        (dataworks_dags.dataworks_deferrable_fails, "create"),
        (enos_bpm_dags.enos_bpm_poke_terminated, "start"),
        (enos_bpm_dags.enos_bpm_deferrable_terminated, "start"),
        (lsf_dags.lsf_poke_exit, "submit"),  # LSF: Exit
        (lsf_dags.lsf_deferrable_killed, "submit"),  # LSF: Killed
    ],
    ids=lambda value: getattr(value, "dag_id", value),
)
def test_a_platform_sensor_fails_its_task_when_the_run_fails(emulator, dag, starter):
    result = run_dag(dag)

    assert result.state == "failed"
    assert result.task_states == {starter: "success", "wait": "failed"}
    assert result.xcom("wait") is None


@pytest.mark.parametrize(
    ("sensor_class", "id_argument", "conn_argument", "default_conn_id"),
    [
        (DataWorksWorkflowInstanceSensor, "workflow_instance_id", "dataworks_conn_id", "dataworks_default"),
        (EnOSProcessInstanceSensor, "process_instance_id", "enos_bpm_conn_id", "enos_bpm_default"),
        (LSFFlowInstanceSensor, "flow_instance_id", "lsf_pm_conn_id", "lsf_pm_default"),
        (EnOSFlowInstanceSensor, "flow_inst_id", "enos_batch_conn_id", "enos_batch_default"),
    ],
    ids=lambda value: getattr(value, "__name__", None),
)
def test_a_platform_sensor_names_its_arguments_after_its_platform(
    sensor_class, id_argument, conn_argument, default_conn_id
):
    sensor = sensor_class(task_id="w", **{id_argument: "700001", conn_argument: "my_conn"})

    assert (getattr(sensor, id_argument), getattr(sensor, conn_argument)) == ("700001", "my_conn")
    assert (sensor.instance_id, sensor.conn_id) == ("700001", "my_conn")
    assert sensor_class(task_id="d", **{id_argument: "1"}).conn_id == default_conn_id
    assert "instance_id" in sensor_class.template_fields


class XComSink:
    """What the sensor asks of its task instance before it defers: somewhere to push the link (and the try's
    start, when a test gives one)."""

    def __init__(self, start_date: dt.datetime | None = None) -> None:
        self.pushed: dict[str, object] = {}
        self.start_date = start_date

    def xcom_push(self, key: str, value: object) -> None:
        self.pushed[key] = value
