"""TriggerFlowOperator in real dag.test() runs: start a remote run on each platform and wait for its end."""

from __future__ import annotations

import pytest

from airflow_provider_flowinst.hooks import get_hook
from airflow_provider_flowinst.models import FlowState
from airflow_provider_flowinst.transport import close_shared_session
from tests.dags import dataworks_dags, trigger_dags
from tests.helpers import DagRunResult, quick_retry_connection, run_dag

PLATFORMS = ["enos_batch", "lsf_pm", "dataworks", "enos_bpm"]
MODES = ["poke", "deferrable"]
CONN = {
    "enos_batch": "enos_batch_default",
    "lsf_pm": "lsf_pm_default",
    "dataworks": "dataworks_default",
    "enos_bpm": "enos_bpm_default",
}


def dag(platform: str, mode: str, scenario: str):
    return getattr(trigger_dags, f"trigger_{platform}_{mode}_{scenario}")


def remote_state(platform: str, instance_id: str) -> FlowState:
    return get_hook(CONN[platform]).get_instance(instance_id, include_graph=False).state


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("platform", PLATFORMS)
def test_the_run_is_started_and_its_final_dict_returned(emulator, platform, mode):
    result = run_dag(dag(platform, mode, "success"))

    assert result.state == "success"
    instance = result.xcom("run")
    assert instance["platform"] == platform
    assert instance["state"] == "success"
    assert instance["instance_id"] == result.xcom("run", "flow_instance_id")


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("platform", PLATFORMS)
@pytest.mark.parametrize("scenario", ["failure", "timeout"])  # the run fails; it runs past the task's timeout
def test_a_run_that_fails_or_outlasts_the_timeout_fails_the_task_and_is_over(emulator, platform, mode, scenario):
    result = run_dag(dag(platform, mode, scenario))

    assert result.task_states["run"] == "failed"
    # A run past the timeout is stopped: cancelled (DataWorks has no cancelled state: a stopped one ends failed).
    assert remote_state(platform, result.xcom("run", "flow_instance_id")) in (FlowState.FAILED, FlowState.CANCELLED)


@pytest.mark.parametrize("platform", PLATFORMS)
def test_an_unknown_flow_fails_at_start_without_a_run(emulator, platform):
    result = run_dag(dag(platform, "poke", "unknown"))

    assert result.task_states["run"] == "failed"
    assert result.xcom("run", "flow_instance_id") is None


@pytest.mark.parametrize("platform", PLATFORMS)
def test_without_waiting_the_dict_is_returned_at_the_start(emulator, platform):
    result = run_dag(dag(platform, "deferrable", "no_wait"))
    get_hook(CONN[platform]).stop_run(result.xcom("run", "flow_instance_id"))

    assert result.state == "success"
    assert result.xcom("run")["state"] in ("queued", "running")


def test_a_killed_task_stops_its_run(emulator):
    result = run_dag(trigger_dags.trigger_killed)

    assert result.task_states["run"] == "failed"
    assert remote_state("lsf_pm", result.xcom("run", "flow_instance_id")) == FlowState.CANCELLED


def test_a_deferred_run_past_the_trys_execution_timeout_is_stopped_and_the_try_retried(emulator):
    result = run_dag(trigger_dags.trigger_deferred_execution_timeout)

    assert result.task_states["run"] == "failed"
    assert result.try_numbers == {"run": 2}
    requests = emulator.stats()["requests"]
    # Each try started a run (the first try's run was stopped, so the retry did not reattach) and stopped it.
    assert requests["lsf_pm POST /platform/ws/flow/definitions/submit"] == 2
    assert requests["lsf_pm POST /platform/ws/flow/instances/kill"] == 2
    assert remote_state("lsf_pm", result.xcom("run", "flow_instance_id")) == FlowState.CANCELLED
    # The last try ended 4 s after it began (a loaded machine adds some), long before the timeout of 300 s.
    assert result.durations["run"] < 150


def test_a_killed_task_leaves_its_run_going_when_asked_to(emulator):
    result = run_dag(trigger_dags.trigger_killed_keep_running)

    assert result.task_states["run"] == "failed"
    assert remote_state("lsf_pm", result.xcom("run", "flow_instance_id")) == FlowState.RUNNING


def retried_after_the_run_started(emulator, monkeypatch, dag) -> DagRunResult:
    """``dag`` run, its first look at the run meeting a passing fault: the try fails after the run was started,
    and the retry must carry on with that run. It succeeds, with one start in all."""
    quick_retry_connection(monkeypatch, emulator.url, max_retries=0)
    emulator.inject_fault("503", platform="enos_batch", count=1, path_contains="flowInstances")

    result = run_dag(dag)

    assert result.state == "success"
    assert emulator.stats()["requests"]["enos_batch POST /batch-processing-service/v2.1/flows"] == 1
    return result


def test_a_retried_task_reattaches_to_its_run_instead_of_starting_another(emulator, monkeypatch):
    result = retried_after_the_run_started(emulator, monkeypatch, trigger_dags.trigger_retried)

    assert result.xcom("run")["instance_id"].startswith("5105-")


async def test_the_trigger_stops_the_run_when_its_deferred_task_is_killed(emulator):
    from airflow_provider_flowinst.triggers.flow_instance import FlowInstanceTrigger

    hook = get_hook("enos_bpm_default")
    instance_id = hook.start_run(trigger_dags.BPM["long"])
    try:
        await FlowInstanceTrigger(conn_id="enos_bpm_default", instance_id=instance_id, cancel_on_kill=True).on_kill()
    finally:
        await close_shared_session()

    assert remote_state("enos_bpm", instance_id) == FlowState.CANCELLED


async def test_a_sensors_trigger_never_stops_what_it_watches(emulator):
    from airflow_provider_flowinst.triggers.flow_instance import FlowInstanceTrigger

    instance_id = get_hook("enos_bpm_default").start_run(trigger_dags.BPM["long"])
    await FlowInstanceTrigger(conn_id="enos_bpm_default", instance_id=instance_id).on_kill()

    assert remote_state("enos_bpm", instance_id) == FlowState.RUNNING


def test_before_airflow_33_the_run_id_survives_a_retry_in_a_variable(emulator, monkeypatch):
    from airflow.models import Variable
    from airflow.utils.session import create_session
    from sqlalchemy import select

    retried_after_the_run_started(emulator, monkeypatch, trigger_dags.trigger_retried_before_33)

    # Once the task has succeeded its bookkeeping is gone.
    with create_session() as session:
        keys = session.scalars(select(Variable.key).where(Variable.key.like("flowinst__trigger_retried_before_33%")))
        assert list(keys) == []


def test_a_try_that_died_mid_start_is_followed_by_one_that_finds_its_run(emulator):
    # The first try stored its attempt, started the run and died before it could store the run's id.
    result = run_dag(trigger_dags.trigger_crash_mid_start)

    assert result.state == "success"
    assert emulator.stats()["requests"]["lsf_pm POST /platform/ws/flow/definitions/submit"] == 1
    assert result.xcom("run")["state"] == "success"


@pytest.mark.parametrize(("faults", "outcome"), [(2, "success"), (3, "failed")])
def test_looks_at_the_run_may_fail_in_a_row_up_to_max_consecutive_failures(emulator, monkeypatch, faults, outcome):
    quick_retry_connection(monkeypatch, emulator.url, max_retries=0)
    emulator.inject_fault("503", platform="enos_batch", count=faults, path_contains="flowInstances?action=get")

    result = run_dag(trigger_dags.trigger_tolerates_failed_looks)

    assert result.task_states["run"] == outcome


def test_max_consecutive_failures_reaches_the_operators_trigger(emulator):
    from airflow.sdk.exceptions import TaskDeferred

    from airflow_provider_flowinst.operators.trigger import TriggerFlowOperator

    operator = TriggerFlowOperator(
        task_id="run", conn_id="lsf_pm_default", flow="jsmith:long_flow", deferrable=True, max_consecutive_failures=4
    )
    context = {"ti": TaskInstanceStub(), "task_state_store": StateStore()}

    with pytest.raises(TaskDeferred) as deferred:
        operator.execute(context)

    assert deferred.value.trigger.serialize()[1]["max_consecutive_failures"] == 4
    get_hook("lsf_pm_default").stop_run(operator.instance_id)


class StateStore(dict):
    def set(self, key, value):
        self[key] = value


class TaskInstanceStub:
    dag_id, run_id, task_id, map_index = "d", "r", "run", -1

    def xcom_push(self, key, value):
        pass


def test_a_scheduled_dataworks_workflow_is_started_as_a_one_day_backfill(emulator):
    result = run_dag(dataworks_dags.dataworks_start_scheduled)

    assert result.state == "success"
    instance = result.xcom("run")
    assert (instance["flow_id"], instance["state"]) == ("1004", "success")
    assert instance["details"]["Type"] == "SupplementData"  # ManualWorkflow is refused for a scheduled workflow
    assert instance["details"]["WorkflowParameters"] == "region=east"


# -- repairing the failed run on retry (rerun_failed_on_retry) -------------------------------------------


def remote_reruns(emulator, platform: str) -> list:
    if platform == "dataworks":
        return [call["ids"] for call in emulator.control("GET", "/_emulator/dataworks/reruns")]
    operations = emulator.control("GET", "/_emulator/lsf_pm/operations")
    return [call["ids"] for call in operations if call["action"] == "rerun"]


def starts(emulator, platform: str) -> int:
    if platform == "dataworks":
        return emulator.control("GET", "/_emulator/dataworks/actions").get("CreateWorkflowInstances", 0)
    return emulator.stats()["requests"].get("lsf_pm POST /platform/ws/flow/definitions/submit", 0)


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("platform", ["dataworks", "lsf_pm"])
def test_a_retry_reruns_the_failed_nodes_of_the_same_run_and_waits_for_it(emulator, platform, mode):
    reruns_before, starts_before = len(remote_reruns(emulator, platform)), starts(emulator, platform)

    result = run_dag(getattr(trigger_dags, f"trigger_{platform}_{mode}_rerun_on_retry"))

    assert result.state == "success"
    instance = result.xcom("run")
    assert instance["state"] == "success"
    assert instance["instance_id"] == result.xcom("run", "flow_instance_id")  # the run the first try started
    assert starts(emulator, platform) - starts_before == 1  # nothing resubmitted
    [rerun] = remote_reruns(emulator, platform)[reruns_before:]
    if platform == "dataworks":  # exactly the task instance that failed, now on its second run
        [node] = [node for node in instance["graph"]["nodes"] if node["name"] == "compute"]
        assert rerun == [node["id"]]
        assert get_hook("dataworks_default").get_task_instance_log(node["id"], run_number=2)
    else:
        assert rerun == instance["instance_id"]


@pytest.mark.parametrize("mode", MODES)
def test_a_retry_on_a_platform_that_cannot_rerun_starts_a_new_run_and_says_why(emulator, capsys, mode):
    requests_before = dict(emulator.stats()["requests"])

    result = run_dag(getattr(trigger_dags, f"trigger_enos_bpm_{mode}_rerun_on_retry"))

    assert result.task_states["run"] == "failed"  # expenseClaim is terminated every time
    started = {
        key: count - requests_before.get(key, 0)
        for key, count in emulator.stats()["requests"].items()
        if "process-instances" in key and key.startswith("enos_bpm POST")
    }
    assert sum(started.values()) == 2, started  # a new run per try, never a rerun
    task_log = capsys.readouterr().out  # dag.test() prints the task's log
    assert "cannot be repaired in place" in task_log
    assert "EnOS BPM offers no call that reruns the failed nodes of a run in place" in task_log
