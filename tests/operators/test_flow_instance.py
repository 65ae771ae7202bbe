"""FlowInstanceStatusOperator in a real dag.test() run, and the "Remote instance" link it records."""

from __future__ import annotations

from tests.dags import sensor_dags
from tests.helpers import run_dag


def test_status_operator_returns_the_dict_and_fails_on_chosen_states(emulator):
    result = run_dag(sensor_dags.status_dag)

    instance = result.xcom("status")
    assert instance["platform"] == "enos_batch"
    assert instance["instance_id"] == f"2809-{result.logical_date:%Y%m%d%H%M%S}"
    # One look, no waiting: the new instance has only just been created.
    assert instance["state"] == "queued"
    assert instance["graph"]["edges"]
    assert result.task_states == {"status": "success", "status_failing": "failed"}


def test_the_console_link_is_recorded_for_the_remote_instance_button(emulator):
    result = run_dag(sensor_dags.status_dag)

    assert result.xcom("status", "flow_instance_url") == (
        f"{emulator.url}/console/batch/instances/2809-{result.logical_date:%Y%m%d%H%M%S}"
    )
