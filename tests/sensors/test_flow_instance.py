"""FlowInstanceSensor in real dag.test() runs against the emulator: the same meaning in every mode."""

from __future__ import annotations

import pytest

from tests.dags import sensor_dags
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
def test_failure_state_fails_the_task(emulator, mode):
    result = run_dag(dag_for(mode, "failure"))

    assert result.task_states["wait"] == "failed"
    assert result.xcom("wait") is None


@pytest.mark.parametrize("mode", MODES)
def test_failure_under_soft_fail_skips(emulator, mode):
    result = run_dag(dag_for(mode, "soft_fail"))

    assert result.task_states["wait"] == "skipped"


@pytest.mark.parametrize("mode", MODES)
def test_missing_instance_fails_fast_with_fail_if_missing(emulator, mode):
    result = run_dag(dag_for(mode, "missing_fails"))

    assert result.task_states["wait"] == "failed"


@pytest.mark.parametrize("mode", MODES)
def test_missing_instance_is_waited_for_until_it_appears(emulator, mode):
    logical_date = unique_logical_date()
    instance_id = f"2515-{logical_date:%Y%m%d%H%M%S}"
    emulator.create_enos_batch_instance("2515", instance_id, appear_after=5.0)

    result = run_dag(dag_for(mode, "missing_appears"), logical_date)

    assert result.task_states["wait"] == "success"
    assert result.xcom("wait")["instance_id"] == instance_id


@pytest.mark.parametrize("mode", MODES)
def test_timeout_fails_the_task(emulator, mode):
    result = run_dag(dag_for(mode, "timeout"))

    assert result.task_states["wait"] == "failed"


@pytest.mark.parametrize("mode", MODES)
def test_timeout_under_soft_fail_skips(emulator, mode):
    result = run_dag(dag_for(mode, "timeout_soft_fail"))

    assert result.task_states["wait"] == "skipped"


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
