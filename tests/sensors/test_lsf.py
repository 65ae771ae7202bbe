"""LSFFlowInstanceSensor in real dag.test() runs against the emulator, in poke, reschedule and deferrable mode."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from airflow_provider_flowinst.sensors.lsf import LSFFlowInstanceSensor
from airflow_provider_flowinst.transport import TOKENS
from tests.dags import lsf_dags
from tests.helpers import run_dag

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


@pytest.fixture
def lsf_sessions(emulator) -> Iterator[None]:
    """No live LSF token and no token user left over from other tests; the default (reissuing) mode after."""
    emulator.control("POST", "/_emulator/lsf_pm/tokens", {"drop": True})
    TOKENS.clear()
    yield
    emulator.control("POST", "/_emulator/lsf_pm/settings", {"single_session": False})


@pytest.mark.parametrize("mode", ["poke", "deferrable"])
def test_every_task_logs_out_so_the_next_process_can_log_on_in_single_session_mode(emulator, lsf_sessions, mode):
    emulator.control("POST", "/_emulator/lsf_pm/settings", {"single_session": True})
    dag = getattr(lsf_dags, f"lsf_{mode}_done")

    first = run_dag(dag)
    assert emulator.control("GET", "/_emulator/lsf_pm/sessions")["live"] == 0  # every task logged out
    TOKENS.clear()  # the next run's tasks are new processes: no token at hand, a logon each
    second = run_dag(dag)

    assert (first.state, second.state) == ("success", "success")
    assert emulator.control("GET", "/_emulator/lsf_pm/sessions")["live"] == 0


@pytest.mark.parametrize("mode", ["poke", "reschedule", "deferrable"])
def test_a_done_flow_instance_succeeds_with_its_dict(emulator, mode):
    result = run_dag(getattr(lsf_dags, f"lsf_{mode}_done"))

    assert result.state == "success"
    instance = result.xcom("wait")
    assert set(instance) == XCOM_KEYS
    assert instance["instance_id"] == result.xcom("submit") and instance["instance_id"].isdigit()
    assert (instance["platform"], instance["state"], instance["raw_state"]) == ("lsf_pm", "success", "Done")
    assert (instance["flow_id"], instance["name"]) == ("jsmith:flow1", "flow1")
    assert instance["started_at"].endswith("+00:00") and instance["ended_at"] >= instance["started_at"]
    assert (instance["graph"], instance["url"]) == (None, None)
    assert instance["details"]["fullName"] == f"{instance['instance_id']}:jsmith:flow1"
    assert instance["details"]["id"] == int(instance["instance_id"])
    assert "lastUpdateTime" in instance["details"]


@pytest.mark.parametrize(("dag_id", "outcome"), [("lsf_poke_exit", "Exit"), ("lsf_deferrable_killed", "Killed")])
def test_an_exited_or_killed_flow_instance_fails_the_task(emulator, dag_id, outcome):
    result = run_dag(getattr(lsf_dags, dag_id))

    assert result.state == "failed"
    assert result.task_states == {"submit": "success", "wait": "failed"}
    assert result.xcom("wait") is None


def test_the_sensor_names_its_arguments_after_lsf():
    sensor = LSFFlowInstanceSensor(task_id="w", flow_instance_id="101", lsf_pm_conn_id="my_lsf")

    assert (sensor.flow_instance_id, sensor.lsf_pm_conn_id) == ("101", "my_lsf")
    assert (sensor.instance_id, sensor.conn_id) == ("101", "my_lsf")
    assert LSFFlowInstanceSensor(task_id="d", flow_instance_id="1").conn_id == "lsf_pm_default"
    assert "instance_id" in LSFFlowInstanceSensor.template_fields
