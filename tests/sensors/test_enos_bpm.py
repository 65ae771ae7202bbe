"""EnOSProcessInstanceSensor in real dag.test() runs against the emulator, in poke, reschedule and deferrable mode."""

from __future__ import annotations

import pytest

from airflow_provider_flowinst.sensors.enos_bpm import EnOSProcessInstanceSensor
from tests.dags import enos_bpm_dags
from tests.helpers import run_dag

MODES = ["poke", "deferrable"]
XCOM_KEYS = {
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


@pytest.mark.parametrize("mode", ["poke", "reschedule", "deferrable"])
def test_a_completed_process_instance_succeeds_with_its_dict(emulator, mode):
    result = run_dag(getattr(enos_bpm_dags, f"enos_bpm_{mode}_completes"))

    assert result.state == "success"
    instance = result.xcom("wait")
    assert set(instance) == XCOM_KEYS
    assert instance["instance_id"] == result.xcom("start")
    assert (instance["platform"], instance["state"], instance["raw_state"]) == ("enos_bpm", "success", "completed")
    assert instance["flow_id"] == enos_bpm_dags.DEFINITIONS["completes"]
    assert instance["name"].startswith("manual__")  # the run id the DAG named the instance after
    assert instance["started_at"].endswith("+00:00") and instance["ended_at"] >= instance["started_at"]
    assert instance["graph"] is None  # no current task once it has completed
    assert instance["details"]["processStatus"] == "completed"


@pytest.mark.parametrize("mode", MODES)
def test_a_terminated_process_instance_fails_the_task(emulator, mode):
    result = run_dag(getattr(enos_bpm_dags, f"enos_bpm_{mode}_terminated"))

    assert result.task_states == {"start": "success", "wait": "failed"}
    assert result.xcom("wait") is None


def test_the_sensor_names_its_arguments_after_bpm():
    sensor = EnOSProcessInstanceSensor(task_id="w", process_instance_id="p-1", enos_bpm_conn_id="my_bpm")

    assert (sensor.process_instance_id, sensor.enos_bpm_conn_id) == ("p-1", "my_bpm")
    assert (sensor.instance_id, sensor.conn_id) == ("p-1", "my_bpm")
    assert EnOSProcessInstanceSensor(task_id="d", process_instance_id="p").conn_id == "enos_bpm_default"
