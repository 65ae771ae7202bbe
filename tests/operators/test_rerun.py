"""RerunFailedNodesOperator in real dag.test() runs: repair a failed run in place, then wait for it."""

from __future__ import annotations

import pytest

from airflow_provider_flowinst.hooks import get_hook
from airflow_provider_flowinst.models import FlowState
from airflow_provider_flowinst.operators.rerun import XCOM_RERUN_NODES_KEY
from tests.dags import rerun_dags
from tests.helpers import instance_reaching, run_dag

QUICK = {"queued_seconds": 0.5, "running_seconds": 2.0}


def failed_run(conn_id: str, instance_id: str):
    return instance_reaching(get_hook(conn_id), instance_id, FlowState.FAILED)


def dataworks_reruns(emulator, instance_id: str) -> list[list[str]]:
    calls = emulator.control("GET", "/_emulator/dataworks/reruns")
    return [call["ids"] for call in calls if any(i.startswith(instance_id) for i in call["ids"])]


@pytest.mark.parametrize("mode", ["poke", "deferrable"])
def test_a_failed_dataworks_run_is_repaired_and_waited_for(emulator, mode):
    instance_id = emulator.create_dataworks_instance(1001, outcome="Failure", **QUICK)
    before = failed_run("dataworks_default", instance_id)
    failed_nodes = [node.id for node in before.graph.nodes if node.state is FlowState.FAILED]

    result = run_dag(getattr(rerun_dags, f"rerun_dataworks_{mode}"), run_conf={"instance_id": instance_id})

    assert result.state == "success"
    after = result.xcom("repair")
    assert (after["instance_id"], after["state"]) == (instance_id, "success")
    assert result.xcom("repair", XCOM_RERUN_NODES_KEY) == failed_nodes
    assert dataworks_reruns(emulator, instance_id) == [failed_nodes]  # exactly those, once
    assert {node["state"] for node in after["graph"]["nodes"]} == {"success"}


def test_without_waiting_the_repaired_run_is_returned_running(emulator):
    # The rerun goes on for an hour: the task returns while it runs, however loaded the machine.
    instance_id = emulator.create_dataworks_instance(1002, rerun_seconds=3600, **QUICK)
    failed_run("dataworks_default", instance_id)

    result = run_dag(rerun_dags.rerun_dataworks_no_wait, run_conf={"instance_id": instance_id})

    assert result.state == "success"
    assert result.xcom("repair")["state"] in ("queued", "running")


def test_a_failed_lsf_flow_instance_is_rerun_and_waited_for(emulator):
    instance_id = emulator.create_lsf_pm_instance("jsmith:flow_exit", running_seconds=2.0)
    failed_run("lsf_pm_default", instance_id)

    result = run_dag(rerun_dags.rerun_lsf_pm_poke, run_conf={"instance_id": instance_id})

    assert result.state == "success"
    assert (result.xcom("repair")["instance_id"], result.xcom("repair")["raw_state"]) == (instance_id, "Done")
    assert result.xcom("repair", XCOM_RERUN_NODES_KEY) == []  # LSF shows no jobs: none is named


def test_a_run_that_fails_again_fails_the_task_with_its_diagnosis(emulator, capsys):
    instance_id = emulator.create_dataworks_instance(1002, rerun_outcome="Failure", **QUICK)
    failed_run("dataworks_default", instance_id)

    result = run_dag(rerun_dags.rerun_dataworks_poke, run_conf={"instance_id": instance_id})

    assert result.task_states["repair"] == "failed"
    assert len(dataworks_reruns(emulator, instance_id)) == 1
    assert f"dataworks instance {instance_id} ended in state failed" in capsys.readouterr().out


def test_a_running_run_is_never_touched(emulator, capsys):
    instance_id = emulator.create_dataworks_instance(1003)

    result = run_dag(rerun_dags.rerun_dataworks_poke, run_conf={"instance_id": instance_id})

    assert result.task_states["repair"] == "failed"
    assert dataworks_reruns(emulator, instance_id) == []
    assert "only a run that ended failed or cancelled has failed nodes to rerun" in capsys.readouterr().out
    get_hook("dataworks_default").stop_run(instance_id)


def test_enos_batch_cannot_repair_in_place(emulator, capsys):
    result = run_dag(rerun_dags.rerun_enos_batch, run_conf={"instance_id": "5201-20300101000000"})

    assert result.task_states["repair"] == "failed"
    assert "EnOS Batch Processing offers no call that reruns the failed nodes of a run in place" in (
        capsys.readouterr().out
    )


class LaggingPlatform:
    """A platform that shows a rerun only at its third look (the emulator shows one at once)."""

    def __init__(self) -> None:
        self.looks = 0

    def get_instance(self, instance_id, include_graph=True):
        from airflow_provider_flowinst.models import FlowInstance

        self.looks += 1
        state = FlowState.FAILED if self.looks < 3 else FlowState.RUNNING
        return FlowInstance("dataworks", instance_id, None, None, state=state, raw_state=state.value)


def test_the_wait_after_a_rerun_begins_only_once_the_platform_shows_it(monkeypatch):
    from airflow_provider_flowinst.operators import trigger

    monkeypatch.setattr(trigger, "RERUN_SETTLE_PAUSES", (0.0, 0.0, 0.0, 0.0))
    operator = rerun_dags.rerun_dataworks_poke.get_task("repair")
    platform = LaggingPlatform()

    seen = operator._rerun_seen(platform, "700001")

    assert (seen.state, platform.looks) == (FlowState.RUNNING, 3)
