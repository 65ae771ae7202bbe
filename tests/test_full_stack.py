"""The provider in a real Airflow: scheduler, dag-processor, triggerer and api-server processes.

``dag.test()`` runs a DAG inside the test process, triggers included. These tests start the real
components on a temporary AIRFLOW_HOME (SQLite, LocalExecutor; see tests/airflow_stack.py and
docs/full_stack.md) against an emulator process, and show that

(a) a deferrable wait is handed to the triggerer process and completes there, and the worker reports the
    remote run to OpenLineage (file transport) as a child job of the task;
(b) the AssetWatcher of ``example_remote_run_asset`` schedules exactly one DAG run per new successful run
    of EnOS flow 5108, none for runs that had succeeded before it started, none twice;
(c) marking a deferred TriggerFlowOperator task failed (as a user does, through the REST API) stops the
    remote run it started, through the trigger's ``on_kill`` in the triggerer;
(d) the watcher's cursor survives a triggerer restart: a run that ended while no triggerer ran schedules the
    DAG once, and the runs seen before are not fired again;
(e) a deferred TriggerFlowOperator's try ends at its start + execution_timeout (Airflow does not enforce it while
    deferred): the triggerer ends the wait, the remote run is stopped and the try fails as timed out, retried;
(f) a FlowInstanceSensor(start_from_trigger=True) reaches success with no worker process ever started for it.

All processes are stopped when the module ends, also when a test fails.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from airflow_provider_flowinst.testing.connections import emulator_connections
from airflow_provider_flowinst.testing.emulator.process import EmulatorProcess
from tests.airflow_stack import AirflowStack
from tests.lineage_schemas import problems

pytestmark = pytest.mark.full_stack

ROOT = Path(__file__).resolve().parent.parent
DAG_FILES = [
    ROOT / "tests" / "full_stack_dags" / "full_stack_dags.py",
    ROOT / "example_dags" / "example_remote_run_asset.py",
]
WAIT_DAG = "full_stack_deferrable_wait"
KILL_DAG = "full_stack_start_and_kill"
EXECUTION_TIMEOUT_DAG = "full_stack_execution_timeout"
TRIGGER_START_DAG = "full_stack_start_from_trigger"
ASSET_DAG = "example_remote_run_asset"
#: The flow example_remote_run_asset watches, and a run of it that succeeded before Airflow started.
WATCHED_FLOW = "5108"
EARLIER_RUN = "5108-20240101000000"
#: Emulated seconds pass ten times faster: an on-demand EnOS run ends 0.6 s after it starts.
TIME_SCALE = "0.1"
#: Upper bounds for single steps; a healthy run needs a fraction of each.
START_TIMEOUT = 120.0
STEP_TIMEOUT = 60.0


@pytest.fixture(scope="module")
def emulator_process(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmulatorProcess]:
    log_path = tmp_path_factory.mktemp("full-stack-emulator") / "emulator.log"
    with EmulatorProcess(log_path=log_path, extra_args=("--time-scale", TIME_SCALE)) as emulator:
        yield emulator


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory, emulator_process: EmulatorProcess) -> Iterator[AirflowStack]:
    """Airflow's four components with the test DAGs; every process group is ended afterwards, whatever happens."""
    emulator_process.create_enos_batch_instance(WATCHED_FLOW, instance_id=EARLIER_RUN)
    stack = AirflowStack(
        root=tmp_path_factory.mktemp("full-stack"),
        dag_files=DAG_FILES,
        connections=emulator_connections(emulator_process.url),
        other_logs={"emulator": emulator_process.log_path} if emulator_process.log_path else {},
        # Re-parse every few seconds (default 30), so that (b) sees the DAG file parsed again. OpenLineage
        # writes every event of the deployment to a file (a), as Airflow's OpenLineage provider is set up.
        settings={
            "AIRFLOW__DAG_PROCESSOR__MIN_FILE_PROCESS_INTERVAL": "5",
            "AIRFLOW__OPENLINEAGE__NAMESPACE": "full-stack",
            "AIRFLOW__OPENLINEAGE__TRANSPORT": json.dumps(
                {"type": "file", "log_file_path": str(lineage_file(tmp_path_factory)), "append": True}
            ),
        },
    )
    # The earlier run must have succeeded before the watcher first looks, to be part of its baseline.
    stack.wait_for(lambda: remote_state(emulator_process, EARLIER_RUN) == "SUCCESS", 10, "the earlier run")
    dag_ids = {WAIT_DAG, KILL_DAG, ASSET_DAG, EXECUTION_TIMEOUT_DAG, TRIGGER_START_DAG}
    with stack.running(dag_ids, timeout=START_TIMEOUT):
        yield stack


def lineage_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.getbasetemp() / "full-stack-openlineage.jsonl"


def lineage_events(path: Path, job_name: str | None) -> list[dict[str, Any]]:
    """The OpenLineage events the deployment wrote so far (of one job, unless None)."""
    lines = path.read_text().splitlines() if path.exists() else []
    events = [json.loads(line) for line in lines if line.strip()]
    return [event for event in events if job_name is None or event["job"]["name"] == job_name]


def remote_state(emulator: EmulatorProcess, instance_id: str) -> str | None:
    """The emulator's own word for an EnOS instance's state (e.g. RUNNING, SUCCESS, CANCEL)."""
    record = emulator.control("GET", "/_emulator/enos_batch/instances").get(instance_id)
    return None if record is None else str(record["statusDesc"])


def trigger_log(stack: AirflowStack, dag_id: str, run_id: str, task_id: str, text: str) -> tuple[int, str] | None:
    """(triggerer job id, log) of the trigger that ran for the task, once its log contains ``text``."""
    for job_id, log in stack.trigger_logs(dag_id, run_id, task_id).items():
        if text in log:
            return job_id, log
    return None


def assert_written_by_a_triggerer(stack: AirflowStack, job_id: int) -> None:
    """Airflow names a trigger's log after the job of the triggerer that ran it."""
    assert stack.query("SELECT job_type FROM job WHERE id = ?", job_id) == [("TriggererJob",)]


def test_a_deferrable_wait_completes_in_the_triggerer(
    stack: AirflowStack, emulator_process: EmulatorProcess, tmp_path_factory: pytest.TempPathFactory
):
    # The instance does not exist yet, so the worker's first look cannot end the wait: only the triggerer can.
    instance_id = "5101-20300101000000"
    run_id = stack.trigger_dag(WAIT_DAG, {"instance_id": instance_id})
    stack.wait_for_settled_deferral(WAIT_DAG, run_id, "wait", STEP_TIMEOUT)
    stack.wait_for(
        lambda: trigger_log(stack, WAIT_DAG, run_id, "wait", "starting"), STEP_TIMEOUT, "the trigger to start"
    )

    emulator_process.create_enos_batch_instance("5101", instance_id=instance_id)

    stack.wait_for_task_state(WAIT_DAG, run_id, "wait", "success", STEP_TIMEOUT)
    job_id, log = stack.wait_for(
        lambda: trigger_log(stack, WAIT_DAG, run_id, "wait", "Trigger fired event"), STEP_TIMEOUT, "the trigger's log"
    )
    assert_written_by_a_triggerer(stack, job_id)
    assert "'status': 'success'" in log and instance_id in log
    assert stack.task_instance(WAIT_DAG, run_id, "wait")["try_number"] == 1
    result = stack.xcom(WAIT_DAG, run_id, "wait")
    assert (result["instance_id"], result["state"], result["platform"]) == (instance_id, "success", "enos_batch")

    # The worker that ran execute_complete reported the remote run: flow 5101's run, below this task's run.
    events = lineage_file(tmp_path_factory)
    ended = stack.wait_for(
        lambda: [e for e in lineage_events(events, "5101") if e["eventType"] == "COMPLETE"] or None,
        STEP_TIMEOUT,
        "the remote run's OpenLineage COMPLETE event",
    )
    task_runs = {e["run"]["runId"] for e in lineage_events(events, f"{WAIT_DAG}.wait")}
    parent = ended[-1]["run"]["facets"]["parent"]
    assert (parent["job"]["name"], parent["run"]["runId"] in task_runs) == (f"{WAIT_DAG}.wait", True)
    assert ended[-1]["run"]["facets"]["flowinst_run"]["instanceId"] == instance_id
    nodes = [
        e for e in lineage_events(events, None) if e["job"]["name"].startswith("5101.") and e["eventType"] == "COMPLETE"
    ]
    assert len(nodes) == ended[-1]["run"]["facets"]["flowinst_run"]["nodeCount"] == 2  # flow 5101: prepare, publish
    assert {e["run"]["facets"]["parent"]["run"]["runId"] for e in nodes} == {ended[-1]["run"]["runId"]}
    assert [p for e in ended + nodes for p in problems(e, all_facets_pinned=True)] == []


def test_b_the_asset_watcher_runs_its_dag_once_per_new_remote_run(
    stack: AirflowStack, emulator_process: EmulatorProcess
):
    baseline = stack.wait_for(lambda: watcher_cursor(stack), STEP_TIMEOUT, "the watcher to take its baseline")
    assert baseline == [EARLIER_RUN]
    assert stack.dag_runs(ASSET_DAG) == []
    trigger_id, parsed_at = watcher_trigger(stack), last_parsed(stack, ASSET_DAG)

    new_runs = []
    for number in (1, 2):
        # One after the other: asset events that arrive before the scheduler creates a run share that run.
        new_runs.append(emulator_process.create_enos_batch_instance(WATCHED_FLOW, f"5108-2030010100000{number}"))
        stack.wait_for(lambda n=number: len(stack.dag_runs(ASSET_DAG)) >= n, STEP_TIMEOUT, f"asset DAG run {number}")
    runs = stack.wait_for(lambda: finished_runs(stack, ASSET_DAG, 2), STEP_TIMEOUT, "both asset DAG runs to succeed")

    assert len(runs) == 2, runs
    assert [run["run_type"] for run in runs] == ["asset_triggered", "asset_triggered"]
    # Each run's task read its own remote run out of the asset event's extra.
    assert [stack.xcom(ASSET_DAG, run["dag_run_id"], "process_new_run") for run in runs] == [[r] for r in new_runs]

    # Later polls see the same runs again and fire nothing.
    wait_for_polls(stack, emulator_process, 2)
    assert len(stack.dag_runs(ASSET_DAG)) == 2
    events = stack.api("GET", "/assets/events?limit=100")["asset_events"]
    assert sorted(event["extra"]["payload"]["instance_id"] for event in events) == new_runs
    assert all(event["extra"]["from_trigger"] is True for event in events)
    assert watcher_cursor(stack) == [*reversed(new_runs), EARLIER_RUN]
    # Parsing the DAG file again keeps the watcher's trigger (its serialised kwargs are deterministic).
    stack.wait_for(lambda: last_parsed(stack, ASSET_DAG) > parsed_at, STEP_TIMEOUT, "the DAG file to be parsed again")
    assert watcher_trigger(stack) == trigger_id


def test_c_killing_a_deferred_trigger_flow_task_stops_its_remote_run(
    stack: AirflowStack, emulator_process: EmulatorProcess
):
    run_id = stack.trigger_dag(KILL_DAG, {"flow": "5300"})  # EnOS 53xx runs for hours
    stack.wait_for_task_state(KILL_DAG, run_id, "run", "deferred", STEP_TIMEOUT)
    stack.wait_for(lambda: trigger_log(stack, KILL_DAG, run_id, "run", "starting"), STEP_TIMEOUT, "the trigger")
    instance_id = stack.xcom(KILL_DAG, run_id, "run", key="flow_instance_id")
    assert remote_state(emulator_process, instance_id) == "RUNNING"

    # What "Mark as failed" in the UI does.
    stack.api("PATCH", f"/dags/{KILL_DAG}/dagRuns/{run_id}/taskInstances/run", {"new_state": "failed"})

    stack.wait_for(
        lambda: remote_state(emulator_process, instance_id) == "CANCEL", STEP_TIMEOUT, f"{instance_id} to be cancelled"
    )
    job_id, log = stack.wait_for(
        lambda: trigger_log(stack, KILL_DAG, run_id, "run", f"stopping enos_batch instance {instance_id}"),
        STEP_TIMEOUT,
        "the trigger's log to tell of on_kill",
    )
    assert_written_by_a_triggerer(stack, job_id)
    assert "Trigger cancelled by user action, invoking on_kill" in log
    assert stack.task_instance(KILL_DAG, run_id, "run")["state"] == "failed"


def test_d_after_a_triggerer_restart_the_watcher_neither_refires_nor_misses(
    stack: AirflowStack, emulator_process: EmulatorProcess
):
    """The watcher's cursor lives in the asset's state store, so a new triggerer picks up where the old one was."""
    stack.wait_for(lambda: watcher_cursor(stack), STEP_TIMEOUT, "the watcher to take its baseline")
    earlier = len(stack.dag_runs(ASSET_DAG))
    # SIGTERM, as a service manager restarting it would; Airflow's triggerer can take up to ~10 s to let its
    # trigger runner go (it waits that long before escalating), and only a clean exit frees its triggers at once.
    stack.timings["triggerer restart: stop"] = stack.stop_component("triggerer", grace=20)
    # This run ends while no triggerer is running: the next one must still see it as new.
    missed = emulator_process.create_enos_batch_instance(WATCHED_FLOW, "5108-20300101000009")
    stack.wait_for(lambda: remote_state(emulator_process, missed) == "SUCCESS", STEP_TIMEOUT, f"{missed} to succeed")
    assert len(stack.dag_runs(ASSET_DAG)) == earlier

    stack.start_component("triggerer")
    began = time.monotonic()

    runs = stack.wait_for(
        lambda: finished_runs(stack, ASSET_DAG, earlier + 1), STEP_TIMEOUT, "the asset DAG run of the missed run"
    )
    stack.timings["triggerer restart: start to DAG run done"] = time.monotonic() - began
    assert len(runs) == earlier + 1, runs
    assert stack.xcom(ASSET_DAG, runs[-1]["dag_run_id"], "process_new_run") == [missed]
    wait_for_polls(stack, emulator_process, 2)
    assert len(stack.dag_runs(ASSET_DAG)) == earlier + 1


def test_e_a_deferred_try_ends_at_its_execution_timeout_and_its_remote_run_is_stopped(
    stack: AirflowStack, emulator_process: EmulatorProcess
):
    before = lsf_requests(emulator_process)
    run_id = stack.trigger_dag(EXECUTION_TIMEOUT_DAG, {})

    # Two tries of 20 s each (the operator's own timeout is 600 s).
    stack.wait_for_task_state(EXECUTION_TIMEOUT_DAG, run_id, "run", "failed", 4 * STEP_TIMEOUT)

    task = stack.task_instance(EXECUTION_TIMEOUT_DAG, run_id, "run")
    assert task["try_number"] == 2  # a timed-out try is retried
    assert task["duration"] < 120
    for try_number in (1, 2):
        log = stack.task_log(EXECUTION_TIMEOUT_DAG, run_id, "run", try_number)
        assert "AirflowTaskTimeout" in log and "execution_timeout (0:00:20) passed" in log, log[-2000:]
        _job_id, trigger = stack.wait_for(
            lambda n=try_number: trigger_log_of_try(stack, EXECUTION_TIMEOUT_DAG, run_id, n, "Trigger fired event"),
            STEP_TIMEOUT,
            f"the trigger's log of try {try_number}",
        )
        assert "'limit': 'execution_timeout'" in trigger
    # Each try started a run and stopped it: the emulator counted two submits and two kills.
    after = lsf_requests(emulator_process)
    assert after["submit"] - before["submit"] == 2
    assert after["kill"] - before["kill"] == 2
    last_run = stack.xcom(EXECUTION_TIMEOUT_DAG, run_id, "run", key="flow_instance_id")
    assert lsf_state(emulator_process, last_run) == "Killed"


def test_f_a_wait_started_from_the_trigger_takes_no_worker(stack: AirflowStack, emulator_process: EmulatorProcess):
    instance_id = "5101-20300101000002"  # does not exist yet: the wait must poll in the triggerer
    run_id = stack.trigger_dag(TRIGGER_START_DAG, {"instance_id": instance_id})
    # The scheduler defers the task itself; the triggerer renders instance_id and starts polling.
    stack.wait_for_task_state(TRIGGER_START_DAG, run_id, "wait", "deferred", STEP_TIMEOUT)
    stack.wait_for(
        lambda: trigger_log(stack, TRIGGER_START_DAG, run_id, "wait", "does not exist yet"),
        STEP_TIMEOUT,
        "the trigger to poll the rendered instance id",
    )

    emulator_process.create_enos_batch_instance("5101", instance_id=instance_id)

    stack.wait_for_task_state(TRIGGER_START_DAG, run_id, "wait", "success", STEP_TIMEOUT)
    # The same XCom a worker pushes (a dict, not JSON text): what downstream tasks pull.
    result = stack.xcom(TRIGGER_START_DAG, run_id, "wait")
    assert (result["instance_id"], result["state"], result["platform"]) == (instance_id, "success", "enos_batch")
    job_id, _log = stack.wait_for(
        lambda: trigger_log(stack, TRIGGER_START_DAG, run_id, "wait", "reached success"),
        STEP_TIMEOUT,
        "the trigger log",
    )
    assert_written_by_a_triggerer(stack, job_id)
    # No worker ever ran the try: none wrote its log, none claimed it (a worker's start sets hostname and pid).
    task = stack.task_instance(TRIGGER_START_DAG, run_id, "wait")
    assert (task["try_number"], task["hostname"] or None, task["pid"]) == (1, None, None)
    assert stack.task_log(TRIGGER_START_DAG, run_id, "wait", 1) == ""
    assert not (
        stack.home / "logs" / f"dag_id={TRIGGER_START_DAG}" / f"run_id={run_id}" / "task_id=wait" / "attempt=1.log"
    ).exists()


def trigger_log_of_try(
    stack: AirflowStack, dag_id: str, run_id: str, try_number: int, text: str
) -> tuple[int, str] | None:
    for job_id, log in stack.trigger_logs(dag_id, run_id, "run", try_number).items():
        if text in log:
            return job_id, log
    return None


def lsf_requests(emulator: EmulatorProcess) -> dict[str, int]:
    """How many flows the emulator's LSF Process Manager has submitted and killed so far."""
    counts: dict[str, int] = emulator.stats()["requests"]
    return {
        "submit": counts.get("lsf_pm POST /platform/ws/flow/definitions/submit", 0),
        "kill": counts.get("lsf_pm POST /platform/ws/flow/instances/kill", 0),
    }


def lsf_state(emulator: EmulatorProcess, instance_id: str) -> str | None:
    """The emulator's own word for an LSF instance's state (e.g. Running, Killed)."""
    record = emulator.control("GET", "/_emulator/lsf_pm/instances").get(str(instance_id))
    return None if record is None else str(record["state"])


def watcher_cursor(stack: AirflowStack) -> list[str] | None:
    """The instance ids the watcher of flow 5108 has seen, as it keeps them in the asset's state store."""
    rows = stack.query("SELECT value FROM asset_state_store WHERE key LIKE ?", f"flowinst_seen:%:{WATCHED_FLOW}:%")
    return json_list(rows[0][0]) if rows else None


def watcher_trigger(stack: AirflowStack) -> int:
    """The id of the trigger that runs the example's AssetWatcher."""
    rows = stack.query("SELECT trigger_id FROM asset_watcher WHERE name = ?", "enos_flow_5108_watcher")
    assert len(rows) == 1, rows
    return int(rows[0][0])


def last_parsed(stack: AirflowStack, dag_id: str) -> str:
    """When the dag-processor last parsed the DAG's file (an ISO-like text that sorts in time order)."""
    return str(stack.query("SELECT last_parsed_time FROM dag WHERE dag_id = ?", dag_id)[0][0])


def finished_runs(stack: AirflowStack, dag_id: str, count: int) -> list[dict[str, Any]] | None:
    """The DAG's runs, oldest first, once there are at least ``count`` of them and all have succeeded."""
    runs = stack.dag_runs(dag_id)
    done = len(runs) >= count and all(run["state"] == "success" for run in runs)
    return runs if done else None


def wait_for_polls(stack: AirflowStack, emulator: EmulatorProcess, polls: int) -> None:
    """Until the watcher has listed the flow's instances ``polls`` more times (nothing else calls EnOS then)."""
    before = enos_requests(emulator)
    stack.wait_for(lambda: enos_requests(emulator) >= before + polls, STEP_TIMEOUT, f"{polls} more polls of the flow")


def enos_requests(emulator: EmulatorProcess) -> int:
    """Calls of EnOS Batch Processing the emulator has answered so far."""
    counts: dict[str, int] = emulator.stats()["requests"]
    return sum(count for key, count in counts.items() if key.startswith("enos_batch "))


def json_list(text: Any) -> list[str]:
    value = json.loads(text) if isinstance(text, str) else text
    return [str(item) for item in value]
