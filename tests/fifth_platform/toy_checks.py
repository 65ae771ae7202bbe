"""What a fifth platform gets with no change to airflow_provider_flowinst: run by tests/test_fifth_platform.py
in a process that sees the toy package (and its entry point) on its path."""

from __future__ import annotations

import logging

import pytest
from toyflows.hooks.toy import ToyFlowsHook

from airflow_provider_flowinst.diagnosis import explain_failure
from airflow_provider_flowinst.graph_svg import render_svg
from airflow_provider_flowinst.hooks import get_hook
from airflow_provider_flowinst.plugins.instance_source import LiveTarget, read_live
from airflow_provider_flowinst.registry import BY_KEY
from airflow_provider_flowinst.triggers.flow_instance import FlowInstanceTrigger
from tests.dags import toy_flows_dags
from tests.helpers import run_dag
from tests.triggers.test_flow_instance import first_event


def new_run(emulator, outcome: str = "DONE", duration: float = 1.0) -> str:
    answer = emulator.control("POST", "/_emulator/toy_flows/runs", {"outcome": outcome, "duration": duration})
    return str(answer["id"])


def test_the_entry_point_registers_the_platform_and_get_hook_finds_its_hook(emulator):
    assert BY_KEY["toy_flows"].package == "toyflows"
    hook = get_hook("toy_flows_default")

    instance = hook.get_instance(new_run(emulator))

    assert isinstance(hook, ToyFlowsHook)
    assert instance.platform == "toy_flows"
    assert [node.name for node in instance.graph.nodes] == ["extract", "transform", "load"]


@pytest.mark.parametrize("mode", ["poke", "deferrable"])
def test_the_sensor_waits_for_a_run_and_returns_its_dict(emulator, mode):
    run_id = new_run(emulator)

    result = run_dag(getattr(toy_flows_dags, f"toy_flows_sensor_{mode}"), run_conf={"run_id": run_id})

    assert result.state == "success"
    assert result.xcom("wait")["instance_id"] == run_id
    assert result.xcom("wait")["state"] == "success"


async def test_the_trigger_fires_on_the_runs_end(emulator):
    run_id = new_run(emulator)

    event = await first_event(FlowInstanceTrigger(conn_id="toy_flows_default", instance_id=run_id, poke_interval=0.1))

    assert event["status"] == "success"
    assert event["instance"]["platform"] == "toy_flows"


def test_the_diagnosis_reads_the_failed_steps_log_and_the_platforms_notes(emulator, caplog):
    hook = get_hook("toy_flows_default")
    run_id = new_run(emulator, outcome="BROKEN", duration=0.0)
    instance = hook.get_instance(run_id)

    message = explain_failure(hook, instance, "the run failed", logging.getLogger("toy"))

    assert message == "the run failed; first failed node: transform (failed, platform state 'BROKEN')"
    assert "no space left on device" in caplog.text
    assert "Toy Flows says: step transform ran out of disk" in caplog.text


async def test_the_remote_graph_tab_reads_and_draws_a_live_run(emulator):
    run_id = new_run(emulator, duration=600.0)

    shown = await read_live(LiveTarget(conn_id="toy_flows_default", instance_id=run_id, task_state="deferred"))

    assert shown.source == "live"
    assert shown.instance["state"] == "running"
    assert "transform" in render_svg(shown.instance)
