"""The production topology: Airflow on PostgreSQL with two triggerers, one of which is killed mid-wait.

The scheduler (LocalExecutor), api-server, dag-processor and two triggerers share a PostgreSQL database
started for this module (tests/pg_cluster.py: Debian's server binaries, installed by
scripts/ensure_postgres.sh if missing; a temporary directory and a free loopback port, removed afterwards).
200 deferrable FlowInstanceSensor waits (50 per platform), four deferrable TriggerFlowOperator starts and the
AssetWatcher of ``example_remote_run_asset`` are all held by the first triggerer; the second joins; then the
first one's process group is killed with SIGKILL. It shows that

- the second triggerer takes every trigger over once the first one's heartbeat is older than
  ``[triggerer] triggerer_health_check_threshold`` (set to 10 s here, 30 s by default), and how long that took;
- each wait then ends exactly once, fired by the second triggerer, with its own instance's dict in XCom, on its
  first try;
- no TriggerFlowOperator started its remote run twice (the emulator's own list of runs per flow);
- the watcher fires once per new successful run: one seen before the kill, one that ended while no triggerer
  watched, one after the takeover, and none twice.

The remote runs last an emulated hour (the starts' ten); once the takeover is shown, the emulator's clock is
moved eleven hours on, so that they all end under the second triggerer. The figures are printed, written to
``failover.json`` beside the process logs, and recorded in docs/full_stack.md. If PostgreSQL cannot be
installed, the test fails saying so; it is never skipped.
"""

from __future__ import annotations

import json
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from airflow_provider_flowinst.testing.connections import emulator_connections
from airflow_provider_flowinst.testing.emulator.process import EmulatorProcess
from tests.airflow_stack import AirflowStack
from tests.full_stack_dags.failover_dags import STARTS
from tests.pg_cluster import PostgresCluster, PostgresUnavailable, server_bin_dir

pytestmark = pytest.mark.full_stack

ROOT = Path(__file__).resolve().parent.parent
DAG_FILES = [
    ROOT / "tests" / "full_stack_dags" / "failover_dags.py",
    ROOT / "example_dags" / "example_remote_run_asset.py",
]
WAITS_DAG, STARTS_DAG, ASSET_DAG = "failover_waits", "failover_starts", "example_remote_run_asset"
WATCHED_FLOW, EARLIER_RUN = "5108", "5108-20240101000000"
WAITS_PER_PLATFORM = 50
#: Emulated seconds the waited-on runs take; the clock jump that ends them and the starts' 10-hour runs.
RUN_SECONDS = 3600
CLOCK_JUMP = 11 * 3600
HEALTH_CHECK_THRESHOLD = 10
SETTINGS = {
    # Takeover in seconds rather than half a minute: a triggerer heartbeats every second, and one silent for
    # 10 s is taken for dead.
    "AIRFLOW__TRIGGERER__JOB_HEARTBEAT_SEC": "1",
    "AIRFLOW__TRIGGERER__TRIGGERER_HEALTH_CHECK_THRESHOLD": str(HEALTH_CHECK_THRESHOLD),
    "AIRFLOW__CORE__PARALLELISM": "8",
}
START_TIMEOUT = 180.0
STEP_TIMEOUT = 120.0
#: The 200 waits go through a worker each (first look, then defer; later resumed) on a shared 2-core machine.
DEFER_TIMEOUT = 600.0
#: From the SIGKILL to the survivor running every trigger (~15 s; the health check threshold is 10 s of it).
TAKEOVER_TIMEOUT = 240.0


@pytest.fixture(scope="module")
def postgres() -> Iterator[PostgresCluster]:
    try:
        bin_dir = server_bin_dir()
    except PostgresUnavailable as exc:
        pytest.fail(f"this test needs PostgreSQL: {exc}", pytrace=False)
    cluster = PostgresCluster(bin_dir)
    try:
        yield cluster.start()
    finally:
        cluster.stop()


@pytest.fixture(scope="module")
def emulator_process(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmulatorProcess]:
    log_path = tmp_path_factory.mktemp("failover-emulator") / "emulator.log"
    with EmulatorProcess(log_path=log_path) as emulator:
        yield emulator


@pytest.fixture(scope="module")
def stack(
    tmp_path_factory: pytest.TempPathFactory, postgres: PostgresCluster, emulator_process: EmulatorProcess
) -> Iterator[AirflowStack]:
    emulator_process.create_enos_batch_instance(WATCHED_FLOW, EARLIER_RUN, queued_seconds=0, running_seconds=0)
    stack = AirflowStack(
        root=tmp_path_factory.mktemp("failover"),
        dag_files=DAG_FILES,
        connections=emulator_connections(emulator_process.url),
        other_logs={"emulator": emulator_process.log_path} if emulator_process.log_path else {},
        settings=SETTINGS,
        database_url=postgres.url,
    )
    stack.other_logs["postgres"] = postgres.log_path
    stack.timings.update({f"postgres {key}": value for key, value in postgres.timings.items()})
    with stack.running({WAITS_DAG, STARTS_DAG, ASSET_DAG}, timeout=START_TIMEOUT):
        yield stack


def test_the_second_triggerer_takes_over_every_wait_start_and_watcher(
    stack: AirflowStack, emulator_process: EmulatorProcess
):
    began = time.monotonic()
    figures: dict[str, Any] = {}

    # -- 200 waits, 4 starts and a watcher, all held by the only triggerer --------------------------------
    waits = make_remote_runs(emulator_process)
    waits_run = stack.trigger_dag(WAITS_DAG, {"waits": waits})
    starts_run = stack.trigger_dag(STARTS_DAG, {})
    before_kill = new_watched_run(emulator_process, 1)
    deferred = stack.wait_for(
        lambda: held_triggers(stack, waits_run, starts_run, len(waits)), DEFER_TIMEOUT, "every wait and start deferred"
    )
    figures["seconds to defer 200 waits and 4 starts"] = round(time.monotonic() - began, 1)
    stack.wait_for(lambda: watcher_holder(stack), STEP_TIMEOUT, "the watcher's trigger to be assigned")
    stack.wait_for(lambda: asset_event_ids(stack) == [before_kill], STEP_TIMEOUT, "the asset event of the first run")
    first = single_triggerer(stack)
    assert set(deferred.values()) == {first}, Counter(deferred.values())
    assert watcher_holder(stack) == first

    # -- a second triggerer joins; it takes nothing from a live one ----------------------------------------
    stack.start_component("triggerer-b", ["triggerer", "--skip-serve-logs"])
    second = stack.wait_for(lambda: other_live_triggerer(stack, first), START_TIMEOUT, "the second triggerer's job")
    heartbeat = last_heartbeat(stack, second)
    stack.wait_for(lambda: last_heartbeat(stack, second) > heartbeat, STEP_TIMEOUT, "a heartbeat of the second")
    assert holders(stack, waits_run, starts_run, len(waits)) == {first}

    # -- SIGKILL to the one holding them, found from the trigger table --------------------------------------
    holder = Counter(deferred.values()).most_common(1)[0][0]
    victim = {first: "triggerer", second: "triggerer-b"}[holder]
    killed_at = time.monotonic()
    stack.kill_component(victim)
    survivor = second if holder == first else first
    # This run ends while nobody watches the flow: the survivor must still fire it, once.
    while_dead = new_watched_run(emulator_process, 2)

    stack.wait_for(
        lambda: holders(stack, waits_run, starts_run, len(waits)) == {survivor} and watcher_holder(stack) == survivor,
        TAKEOVER_TIMEOUT,
        "the second triggerer to take every trigger over",
    )
    figures["seconds from SIGKILL to every trigger reassigned"] = round(time.monotonic() - killed_at, 1)
    stack.wait_for(
        lambda: all_started_by(stack, waits_run, starts_run, len(waits), survivor),
        TAKEOVER_TIMEOUT,
        "every reassigned trigger to start in the second triggerer",
    )
    figures["seconds from SIGKILL to every trigger running again"] = round(time.monotonic() - killed_at, 1)
    stack.wait_for(
        lambda: asset_event_ids(stack) == sorted([before_kill, while_dead]),
        TAKEOVER_TIMEOUT,
        "the asset event of the run that ended while no triggerer watched",
    )
    figures["seconds from SIGKILL to the missed asset event"] = round(time.monotonic() - killed_at, 1)
    after_takeover = new_watched_run(emulator_process, 3)
    stack.wait_for(
        lambda: asset_event_ids(stack) == sorted([before_kill, while_dead, after_takeover]),
        TAKEOVER_TIMEOUT,
        "the asset event of a run after the takeover",
    )

    # -- the remote runs end; every wait and start ends once, in the survivor -------------------------------
    emulator_process.advance_clock(CLOCK_JUMP)
    finished_at = time.monotonic()
    states = stack.wait_for(
        lambda: all_done(stack, waits_run, starts_run, len(waits)), DEFER_TIMEOUT, "every wait and start to end"
    )
    figures["seconds from the runs' end to all 204 tasks done"] = round(time.monotonic() - finished_at, 1)
    assert states == {"success"}, states
    print(f"\nfailover figures so far: {json.dumps(figures)}")

    figures |= check_each_wait_ended_once_with_its_own_instance(stack, waits_run, waits, first, survivor)
    figures |= check_no_remote_run_started_twice(stack, emulator_process, starts_run)
    figures |= check_each_watched_run_fired_once(stack, [before_kill, while_dead, after_takeover])
    figures["test seconds (after start-up)"] = round(time.monotonic() - began, 1)
    print("\nfailover figures: " + json.dumps(figures, indent=2))
    (stack.root / "failover.json").write_text(json.dumps(figures, indent=2))
    assert figures["waits ended once with their own instance's dict"] == len(waits), figures
    assert figures["remote runs started twice"] == 0, figures
    assert figures["asset events fired twice"] == 0, figures


# -- remote runs --------------------------------------------------------------------------------------------


def make_remote_runs(emulator: EmulatorProcess) -> list[dict[str, str]]:
    """50 runs on each platform, each an emulated hour long: ``[{"conn_id", "instance_id"}, ...]``."""
    waits = []
    for n in range(WAITS_PER_PLATFORM):
        waits += [
            {
                "conn_id": "enos_batch_default",
                "instance_id": emulator.create_enos_batch_instance(
                    "5101", f"5101-20300101{n // 60:02d}{n % 60:02d}00", queued_seconds=0, running_seconds=RUN_SECONDS
                ),
            },
            {
                "conn_id": "enos_bpm_default",
                # purchaseApproval has three user tasks.
                "instance_id": emulator.create_enos_bpm_instance("purchaseApproval", seconds_per_task=RUN_SECONDS / 3),
            },
            {
                "conn_id": "lsf_pm_default",
                "instance_id": emulator.create_lsf_pm_instance("jsmith:flow1", running_seconds=RUN_SECONDS),
            },
            {
                "conn_id": "dataworks_default",
                "instance_id": emulator.create_dataworks_instance(1001, queued_seconds=0, running_seconds=RUN_SECONDS),
            },
        ]
    assert len({w["instance_id"] for w in waits}) == len(waits)
    return waits


def new_watched_run(emulator: EmulatorProcess, number: int) -> str:
    """A new run of the watched flow that succeeds a second after it is made."""
    return emulator.create_enos_batch_instance(
        WATCHED_FLOW, f"5108-2030010100000{number}", queued_seconds=0, running_seconds=1
    )


def remote_runs(emulator: EmulatorProcess, platform: str, key: str, value: str) -> list[str]:
    """Ids of the runs the emulator holds on ``platform`` whose record has ``key == value``."""
    records: dict[str, dict[str, Any]] = emulator.control("GET", f"/_emulator/{platform}/instances")
    return sorted(iid for iid, record in records.items() if str(record.get(key)) == value)


# -- what the metadata database says ------------------------------------------------------------------------


def held_triggers(stack: AirflowStack, waits_run: str, starts_run: str, waits: int) -> dict[str, int] | None:
    """Task -> the triggerer job holding its trigger, once all waits and starts are deferred and assigned."""
    rows = stack.query(
        "SELECT ti.task_id, ti.map_index, t.triggerer_id FROM task_instance ti JOIN trigger t ON ti.trigger_id = t.id"
        " WHERE ti.state = 'deferred' AND ((ti.dag_id = ? AND ti.run_id = ?) OR (ti.dag_id = ? AND ti.run_id = ?))",
        WAITS_DAG,
        waits_run,
        STARTS_DAG,
        starts_run,
    )
    held = {f"{task}[{index}]": holder for task, index, holder in rows}
    complete = len(held) == waits + len(STARTS) and None not in held.values()
    return held if complete else None


def holders(stack: AirflowStack, waits_run: str, starts_run: str, waits: int) -> set[int | None]:
    """The triggerer jobs holding the waits and starts ({None} until every one is deferred and assigned)."""
    held = held_triggers(stack, waits_run, starts_run, waits)
    return set(held.values()) if held else {None}


def watcher_holder(stack: AirflowStack) -> int | None:
    rows = stack.query(
        "SELECT t.triggerer_id FROM asset_watcher w JOIN trigger t ON w.trigger_id = t.id WHERE w.name = ?",
        "enos_flow_5108_watcher",
    )
    return rows[0][0] if rows else None


def live_triggerers(stack: AirflowStack) -> list[int]:
    rows = stack.query("SELECT id FROM job WHERE job_type = 'TriggererJob' AND state = 'running' ORDER BY id")
    return [row[0] for row in rows]


def single_triggerer(stack: AirflowStack) -> int:
    triggerers = live_triggerers(stack)
    assert len(triggerers) == 1, triggerers
    return triggerers[0]


def other_live_triggerer(stack: AirflowStack, first: int) -> int | None:
    others = [job for job in live_triggerers(stack) if job != first]
    return others[0] if others else None


def last_heartbeat(stack: AirflowStack, job_id: int) -> Any:
    return stack.query("SELECT latest_heartbeat FROM job WHERE id = ?", job_id)[0][0]


def all_started_by(stack: AirflowStack, waits_run: str, starts_run: str, waits: int, job_id: int) -> bool:
    """Whether the triggerer ``job_id`` has started the trigger of every wait and start (its trigger log says so)."""
    tasks = [(WAITS_DAG, waits_run, "wait", index) for index in range(waits)]
    tasks += [(STARTS_DAG, starts_run, task_id, -1) for task_id in STARTS]
    return all("starting" in trigger_logs(stack, *task).get(job_id, "") for task in tasks)


def trigger_logs(stack: AirflowStack, dag_id: str, run_id: str, task_id: str, map_index: int) -> dict[int, str]:
    """Triggerer job id -> what it logged for the task's first try (a mapped task's logs are in a folder per index)."""
    folder = stack.home / "logs" / f"dag_id={dag_id}" / f"run_id={run_id}" / f"task_id={task_id}"
    if map_index >= 0:
        folder /= f"map_index={map_index}"
    return {
        int(path.name.rsplit(".", 2)[-2]): path.read_text(errors="replace")
        for path in folder.glob("attempt=1.log.trigger.*.log")
    }


def all_done(stack: AirflowStack, waits_run: str, starts_run: str, waits: int) -> set[str] | None:
    rows = stack.query(
        "SELECT state FROM task_instance WHERE (dag_id = ? AND run_id = ? AND task_id = 'wait') OR (dag_id = ? AND"
        " run_id = ?)",
        WAITS_DAG,
        waits_run,
        STARTS_DAG,
        starts_run,
    )
    states = {row[0] for row in rows}
    finished = len(rows) == waits + len(STARTS) and states <= {"success", "failed", "upstream_failed", "skipped"}
    return states if finished else None


def return_values(stack: AirflowStack, dag_id: str, run_id: str) -> dict[tuple[str, int], Any]:
    rows = stack.query(
        "SELECT task_id, map_index, value FROM xcom WHERE dag_id = ? AND run_id = ? AND key = 'return_value'",
        dag_id,
        run_id,
    )
    return {(task, index): json.loads(value) if isinstance(value, str) else value for task, index, value in rows}


def asset_event_ids(stack: AirflowStack) -> list[str]:
    """The instance ids of every asset event so far, sorted (a duplicate would show twice)."""
    return sorted(event["extra"]["payload"]["instance_id"] for event in asset_events(stack))


def asset_events(stack: AirflowStack) -> list[dict[str, Any]]:
    """Every asset event's ``extra``, as ``{"extra": ...}``, read from the database.

    Not through ``GET /assets/events``: Airflow 3.3.2 answers it 500 while a DAG run an event created is still
    queued (no start date yet; apache/airflow#71360, fixed after 3.3.2), and this test reads while they are."""
    rows = stack.query("SELECT extra FROM asset_event ORDER BY id")
    return [{"extra": json.loads(extra) if isinstance(extra, str) else extra} for (extra,) in rows]


# -- the checks: each returns the figures it counted, and fails on anything but the expected ------------


def check_each_wait_ended_once_with_its_own_instance(
    stack: AirflowStack, waits_run: str, waits: list[dict[str, str]], first: int, survivor: int
) -> dict[str, int]:
    platform_of = {"enos_batch_default": "enos_batch", "enos_bpm_default": "enos_bpm"}
    platform_of |= {"lsf_pm_default": "lsf_pm", "dataworks_default": "dataworks"}
    results = return_values(stack, WAITS_DAG, waits_run)
    tries = dict(
        stack.query(
            "SELECT map_index, try_number FROM task_instance WHERE dag_id = ? AND run_id = ? AND task_id = ?",
            WAITS_DAG,
            waits_run,
            "wait",
        )
    )
    task_logs = stack.home / "logs" / f"dag_id={WAITS_DAG}" / f"run_id={waits_run}" / "task_id=wait"
    problems, good, twice = [], 0, 0
    for index, wait in enumerate(waits):
        found = []
        result = results.get(("wait", index)) or {}
        got = (result.get("platform"), result.get("instance_id"), result.get("state"))
        if got != (platform_of[wait["conn_id"]], wait["instance_id"], "success"):
            found.append(f"XCom {got}")
        if tries.get(index) != 1:
            found.append(f"try {tries.get(index)}")
        # The worker's task log: deferred once, resumed once with the instance's end. (The trigger's own log
        # is no witness of the firing: the triggerer may close it before its last line is written.)
        text = (task_logs / f"map_index={index}" / "attempt=1.log").read_text(errors="replace")
        ends = (text.count("Pausing task as DEFERRED"), text.count(f"{wait['instance_id']} reached success"))
        if ends != (1, 1):
            found.append(f"deferred {ends[0]} times, resumed with its success {ends[1]} times")
        twice += ends[1] > 1 or ends[0] > 1
        # Both triggerers ran its trigger: the first until it was killed, the second to the end.
        logs = trigger_logs(stack, WAITS_DAG, waits_run, "wait", index)
        started = sorted(job for job, log in logs.items() if "starting" in log)
        if started != sorted([first, survivor]):
            found.append(f"its trigger was started by triggerer jobs {started}")
        problems += [f"wait[{index}] on {wait['instance_id']}: {problem}" for problem in found]
        good += not found
    history = stack.query(
        "SELECT count(*) FROM task_instance_history WHERE dag_id = ? AND run_id = ?", *(WAITS_DAG, waits_run)
    )
    assert history == [(0,)], f"tasks were run again: {history}"
    assert problems == [], "\n".join(problems[:20])
    return {"waits ended once with their own instance's dict": good, "waits ended twice": twice}


def check_no_remote_run_started_twice(
    stack: AirflowStack, emulator: EmulatorProcess, starts_run: str
) -> dict[str, int]:
    results = return_values(stack, STARTS_DAG, starts_run)
    started = {task_id: stack.xcom(STARTS_DAG, starts_run, task_id, key="flow_instance_id") for task_id in STARTS}
    for task_id in STARTS:
        # It ended on the run it started, not on another one.
        assert results[(task_id, -1)]["instance_id"] == started[task_id], (task_id, results[(task_id, -1)])
        assert results[(task_id, -1)]["state"] == "success"
    # The emulator's own word: the runs each flow has.
    runs = {
        "5300": remote_runs(emulator, "enos_batch", "flowId", "5300"),
        "5301": remote_runs(emulator, "enos_batch", "flowId", "5301"),
        "jsmith:long_flow": remote_runs(emulator, "lsf_pm", "name", "long_flow"),
        "jsmith:long_flow_b": remote_runs(emulator, "lsf_pm", "name", "long_flow_b"),
    }
    expected = {flow: sorted(started[t] for t, (_, f) in STARTS.items() if f == flow) for flow in runs}
    assert runs == expected
    return {
        "remote runs started": sum(len(ids) for ids in runs.values()),
        "remote runs started twice": sum(len(runs[flow]) - len(expected[flow]) for flow in runs),
    }


def check_each_watched_run_fired_once(stack: AirflowStack, runs: list[str]) -> dict[str, int]:
    fired = asset_event_ids(stack)
    assert all(event["extra"]["from_trigger"] is True for event in asset_events(stack))
    dag_runs = stack.wait_for(
        lambda: (
            [r for r in stack.dag_runs(ASSET_DAG) if r["state"] == "success"] == stack.dag_runs(ASSET_DAG)
            and stack.dag_runs(ASSET_DAG)
        ),
        STEP_TIMEOUT,
        "the asset DAG runs to end",
    )
    processed = [iid for run in dag_runs for iid in stack.xcom(ASSET_DAG, run["dag_run_id"], "process_new_run")]
    assert fired == sorted(runs), fired
    assert sorted(processed) == sorted(runs), processed
    return {"asset events": len(fired), "asset events fired twice": len(fired) - len(set(fired))}
