"""Repairing a failed remote run in place: each hook's ``rerun_failed_nodes`` against the emulator, and the
rule that a rerun whose answer is lost is looked for, never sent again blindly."""

from __future__ import annotations

import asyncio

import pytest

from airflow_provider_flowinst.errors import FlowPlatformError, RerunNotSupported, RunOutcomeUnknown
from airflow_provider_flowinst.hooks.dataworks import DataWorksHook
from airflow_provider_flowinst.hooks.enos_batch import EnOSBatchHook
from airflow_provider_flowinst.hooks.enos_bpm import EnOSBPMHook
from airflow_provider_flowinst.hooks.lsf import LSFProcessManagerHook
from airflow_provider_flowinst.models import FlowState
from airflow_provider_flowinst.protocol import HttpRequest, HttpResponse
from airflow_provider_flowinst.reruns import RerunPlan, look_after_unclear_rerun
from tests.helpers import drive, instance_reaching

#: A run that fails fast: 0.5 emulated s queued, 2 s running (0.25 wall s at the tests' time scale).
QUICK = {"queued_seconds": 0.5, "running_seconds": 2.0}


def task_run_numbers(hook: DataWorksHook, instance_id: str) -> dict[str, tuple[str, int]]:
    record = hook.get_workflow_instance(instance_id)
    tasks = hook.list_task_instances(workflow_instance_id=instance_id, bizdate=record["BizDate"])
    return {str(task["Id"]): (task["Status"], task["RunNumber"]) for task in tasks}


def dataworks_reruns(emulator, instance_id: str) -> list[list[str]]:
    """The ids of each RerunTaskInstances call for task instances of ``instance_id``."""
    calls = emulator.control("GET", "/_emulator/dataworks/reruns")
    return [call["ids"] for call in calls if any(i.startswith(instance_id) for i in call["ids"])]


# -- DataWorks: RerunTaskInstances of the failed task instances ----------------------------------------


def test_dataworks_reruns_exactly_the_failed_task_instance_and_the_run_succeeds(emulator):
    hook = DataWorksHook()
    instance_id = emulator.create_dataworks_instance(1001, outcome="Failure", **QUICK)
    failed = instance_reaching(hook, instance_id, FlowState.FAILED)
    failed_nodes = [node.id for node in failed.graph.nodes if node.state is FlowState.FAILED]
    assert len(failed_nodes) == 1

    rerun = hook.rerun_failed_nodes(instance_id)

    assert rerun == failed_nodes
    assert dataworks_reruns(emulator, instance_id) == [failed_nodes]
    assert hook.get_instance(instance_id).state is FlowState.RUNNING  # the same run, running again
    done = instance_reaching(hook, instance_id, FlowState.SUCCESS, FlowState.FAILED)
    assert done.state is FlowState.SUCCESS and done.instance_id == instance_id
    runs = task_run_numbers(hook, instance_id)
    assert runs[failed_nodes[0]] == ("Success", 2)
    assert {number for node, (_, number) in runs.items() if node != failed_nodes[0]} == {1}
    # Each run keeps its own log: the first one failed, the rerun finished.
    assert "Current task status: ERROR" in hook.get_task_instance_log(failed_nodes[0], run_number=1)
    assert "Current task status: FINISH" in hook.get_task_instance_log(failed_nodes[0], run_number=2)
    assert hook.get_task_instance_log(failed_nodes[0]) == hook.get_task_instance_log(failed_nodes[0], run_number=2)


def test_dataworks_rerun_that_fails_again_leaves_the_run_failed_with_a_second_run(emulator):
    hook = DataWorksHook()
    instance_id = emulator.create_dataworks_instance(1002, rerun_outcome="Failure", **QUICK)
    instance_reaching(hook, instance_id, FlowState.FAILED)

    [node] = asyncio.run(hook.arerun_failed_nodes(instance_id))

    assert instance_reaching(hook, instance_id, FlowState.RUNNING, FlowState.FAILED).instance_id == instance_id
    assert instance_reaching(hook, instance_id, FlowState.FAILED).state is FlowState.FAILED
    assert task_run_numbers(hook, instance_id)[node] == ("Failure", 2)


@pytest.mark.parametrize("outcome", ["running", "Success"])
def test_dataworks_never_touches_a_run_that_is_running_or_succeeded(emulator, outcome):
    hook = DataWorksHook()
    if outcome == "running":
        instance_id = emulator.create_dataworks_instance(1003)
        instance_reaching(hook, instance_id, FlowState.RUNNING)
    else:
        instance_id = emulator.create_dataworks_instance(1001, **QUICK)
        instance_reaching(hook, instance_id, FlowState.SUCCESS)

    with pytest.raises(RerunNotSupported) as refused:
        hook.rerun_failed_nodes(instance_id)

    assert f"instance {instance_id} is" in str(refused.value)
    assert "DataWorks" in str(refused.value)
    assert dataworks_reruns(emulator, instance_id) == []


def test_dataworks_rerun_whose_answer_is_lost_is_looked_for_and_not_sent_again(emulator):
    hook = DataWorksHook()
    instance_id = emulator.create_dataworks_instance(1002, **QUICK)
    instance_reaching(hook, instance_id, FlowState.FAILED)
    emulator.inject_fault("act_then_503", platform="dataworks", call_contains="RerunTaskInstances")

    rerun = hook.rerun_failed_nodes(instance_id)

    assert dataworks_reruns(emulator, instance_id) == [rerun]  # one call: the look saw it had taken
    assert instance_reaching(hook, instance_id, FlowState.SUCCESS).instance_id == instance_id


def test_dataworks_rerun_refused_for_a_task_instance_names_the_platforms_message(emulator):
    hook = DataWorksHook()
    instance_id = emulator.create_dataworks_instance(1003)
    instance_reaching(hook, instance_id, FlowState.RUNNING)
    running_task = f"{instance_id}01"  # its first task instance

    with pytest.raises(FlowPlatformError) as refused:
        hook.rerun_task_instances([running_task])

    assert "RerunTaskInstances failed: not rerun" in str(refused.value)
    assert "The workflow instance is still running." in str(refused.value)


# -- LSF Process Manager: flow/instances/rerun ---------------------------------------------------------


def lsf_reruns(emulator, instance_id: str) -> list[str]:
    calls = emulator.control("GET", "/_emulator/lsf_pm/operations")
    return [call["ids"] for call in calls if call["action"] == "rerun" and call["ids"] == instance_id]


def test_lsf_reruns_an_exited_flow_instance_in_place(emulator):
    hook = LSFProcessManagerHook()
    try:
        instance_id = emulator.create_lsf_pm_instance("jsmith:flow_exit", running_seconds=2.0)
        instance_reaching(hook, instance_id, FlowState.FAILED)

        assert hook.rerun_failed_nodes(instance_id) == []  # no call shows LSF's jobs: no node is named

        assert lsf_reruns(emulator, instance_id) == [instance_id]
        assert hook.get_instance(instance_id).state is FlowState.RUNNING
        assert instance_reaching(hook, instance_id, FlowState.SUCCESS).raw_state == "Done"
    finally:
        hook.close()


def test_lsf_rerun_whose_answer_is_lost_is_looked_for_and_not_sent_again(emulator):
    hook = LSFProcessManagerHook()
    try:
        instance_id = emulator.create_lsf_pm_instance("jsmith:flow_exit", running_seconds=2.0)
        instance_reaching(hook, instance_id, FlowState.FAILED)
        emulator.inject_fault("act_then_reset", platform="lsf_pm", call_contains="/flow/instances/rerun")

        assert hook.rerun_failed_nodes(instance_id) == []

        assert lsf_reruns(emulator, instance_id) == [instance_id]  # one call: the look saw the run going again
        assert instance_reaching(hook, instance_id, FlowState.SUCCESS).instance_id == instance_id
    finally:
        hook.close()


def test_lsf_never_touches_a_running_flow_instance(emulator):
    hook = LSFProcessManagerHook()
    try:
        instance_id = emulator.create_lsf_pm_instance("jsmith:long_flow")
        with pytest.raises(RerunNotSupported, match="is running"):
            asyncio.run(hook.arerun_failed_nodes(instance_id))
        assert lsf_reruns(emulator, instance_id) == []
    finally:
        hook.close()


# -- EnOS Batch and EnOS BPM: no rerun in place --------------------------------------------------------


@pytest.mark.parametrize(("hook_class", "title"), [(EnOSBatchHook, "EnOS Batch"), (EnOSBPMHook, "EnOS BPM")])
def test_enos_platforms_say_plainly_that_they_cannot_rerun(emulator, hook_class, title):
    hook = hook_class()
    assert hook_class.can_rerun_failed_nodes is False

    with pytest.raises(RerunNotSupported) as refused:
        hook.rerun_failed_nodes("any-run")
    with pytest.raises(RerunNotSupported):
        asyncio.run(hook.arerun_failed_nodes("any-run"))

    assert title in str(refused.value) and "start a new run instead" in str(refused.value)
    assert emulator.stats()["requests"] == {}  # nothing was asked of the platform


def test_only_dataworks_and_lsf_can_rerun():
    assert DataWorksHook.can_rerun_failed_nodes and LSFProcessManagerHook.can_rerun_failed_nodes


# -- a lost answer, when the rerun did not take --------------------------------------------------------


UNCLEAR = RunOutcomeUnknown("dataworks", "RerunTaskInstances", "HTTP 503: gone")
PLAN = RerunPlan("700001", node_ids=("70000101",), targets=("70000101",), before={"70000101": 1})


class LooksAtTheRun:
    """A client whose run shows the rerun only from look ``shows_from`` on (None: never)."""

    platform = "dataworks"

    def __init__(self, shows_from: int | None) -> None:
        self.shows_from = shows_from
        self.looks = 0

    def rerun_took_effect(self, plan):
        self.looks += 1
        assert plan is PLAN
        yield HttpRequest("GET", "https://dw/", "ListTaskInstances")
        return self.shows_from is not None and self.looks >= self.shows_from


def test_a_lost_rerun_answer_is_taken_as_done_once_the_run_shows_it():
    client = LooksAtTheRun(shows_from=2)
    ok = HttpResponse(200, {}, b"")

    steps, nodes = drive(look_after_unclear_rerun(client, PLAN, UNCLEAR, delays=(0.0, 1.0, 2.0)), ok, None, ok)

    assert nodes == ["70000101"]
    assert [type(step).__name__ for step in steps] == ["HttpRequest", "Sleep", "HttpRequest"]


def test_a_lost_rerun_answer_that_the_run_never_shows_fails_without_sending_it_again():
    client = LooksAtTheRun(shows_from=None)
    operation = look_after_unclear_rerun(client, PLAN, UNCLEAR, delays=(0.0, 1.0))
    steps = [next(operation), operation.send(HttpResponse(200, {}, b""))]

    with pytest.raises(RunOutcomeUnknown) as caught:
        operation.send(None)
        operation.send(HttpResponse(200, {}, b""))

    assert [step.call for step in steps if isinstance(step, HttpRequest)] == ["ListTaskInstances"]  # looks only
    assert client.looks == 2
    assert "showed no sign of the rerun after 2 looks, so it is not sent again" in str(caught.value)
