"""``make bench-fleet``: N deferred waits in the production topology, one triggerer killed midway.

PostgreSQL (tests/pg_cluster.py), the scheduler, the dag-processor, the api-server and two triggerers
(tests/airflow_stack.py, as the PostgreSQL full-stack test runs them), and the emulator in its own process.
``--waits`` tasks in DAGs of ``--per-dag`` tasks (one run each), each waiting on an EnOS Batch instance of
its own through one connection, polled every ``--poke-interval`` seconds. The instances all run until ``--hold``
seconds after they were made (time for every wait to be held by a triggerer), then end one after the other,
spread evenly over ``--spread`` intervals. Once a third of them have ended, the triggerer holding the most waits
is killed with SIGKILL (``--no-kill`` to keep both); the other one must take its waits over.

Each wait is started from the triggerer and ended there (``fleet_dags/fleet_trigger.py`` says why): what is
measured is the triggerers, the scheduler and the database, not worker start-up. Printed, and written as
JSON with ``--json``:

- remote run end -> task success, p50 / p99 / max (goal: within poke_interval + 5 s), and the same for the
  waits that the killed triggerer held (their takeover included);
- platform requests per interval, both triggerers together: while every wait runs, and while runs end;
  against 1.2 x the fewest pages each triggerer needs + the runs that ended. EnOS Batch's search cannot
  filter by id: a triggerer's search returns every running instance of the flow in its waits' trigger-time
  window, so the fewest pages it needs are those that hold them (``page_cap`` rows a page), not its own
  waits' share (printed beside);
- each triggerer's CPU per wait and interval, and RSS per wait held (its whole process group, from /proc);
- the scheduler's loop time (its own "Ran scheduling loop" figure, p50 / p99 / max);
- the failover: every task success once, on try 1, with its own instance in XCom; none lost, none twice.

    .venv/bin/python benchmarks/fleet.py --waits 200
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import math
import os
import re
import shutil
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT))

import _common  # noqa: E402

from airflow_provider_flowinst.testing.connections import emulator_connections  # noqa: E402
from airflow_provider_flowinst.testing.emulator.process import EmulatorProcess  # noqa: E402
from tests.airflow_stack import AirflowStack, Component, _group_members  # noqa: E402
from tests.pg_cluster import PostgresCluster, server_bin_dir  # noqa: E402

CONN_ID = "enos_batch_default"
FLOW = "5101"
#: Rows the emulator's search answers at most per page (as a platform may cap them): pages = ceil(waits / this).
PAGE_CAP = 20
HEALTH_CHECK_THRESHOLD = 10
LOOP_LINE = re.compile(r"Ran scheduling loop in ([0-9.]+) ms")
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
PAGE_BYTES = os.sysconf("SC_PAGE_SIZE")


class FleetStack(AirflowStack):
    """The test stack, with the scheduler logging its loop time (DEBUG) and a second triggerer."""

    def start_component(self, name: str, args: list[str] | None = None) -> Component:
        if name != "scheduler":
            return super().start_component(name, args)
        shared = self._env
        self._env = {**shared, "AIRFLOW__LOGGING__LOGGING_LEVEL": "DEBUG"}
        try:
            return super().start_component(name, args)
        finally:
            self._env = shared


def group_usage(stack: AirflowStack, name: str) -> tuple[float, int]:
    """CPU seconds (user + system, children reaped included) and RSS bytes of a component's process group."""
    process = stack.components[name].process
    if process is None:
        return 0.0, 0
    cpu, rss = 0.0, 0
    for pid in _group_members(process.pid):
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            cpu += sum(int(value) for value in fields[11:15]) / CLOCK_TICKS  # utime stime cutime cstime
            rss += int(Path(f"/proc/{pid}/statm").read_text().split()[1]) * PAGE_BYTES
        except (OSError, IndexError, ValueError):
            continue  # it ended meanwhile
    return cpu, rss


def platform_requests(emulator: EmulatorProcess) -> int:
    return sum(requests_by_call(emulator).values())


def requests_by_call(emulator: EmulatorProcess) -> Counter[str]:
    """The emulator's count of EnOS Batch requests so far, by call (token requests included)."""
    counts = emulator.control("GET", "/_emulator/stats")["requests"]
    return Counter({call: count for call, count in counts.items() if call.split(" ", 1)[0] == "enos_batch"})


#: The fleet's task instances (its DAGs are fleet_000, fleet_001, ...).
FLEET_TIS = "ti.dag_id LIKE 'fleet%'"


def held(stack: AirflowStack) -> dict[int | None, int]:
    """Triggerer job id -> deferred fleet waits whose trigger it holds (None: not assigned yet)."""
    rows = stack.query(
        "SELECT t.triggerer_id, count(*) FROM task_instance ti JOIN trigger t ON ti.trigger_id = t.id "
        f"WHERE {FLEET_TIS} AND ti.state = 'deferred' GROUP BY t.triggerer_id"
    )
    return {job: count for job, count in rows}


def states(stack: AirflowStack) -> dict[str | None, int]:
    """The fleet's task instances by state."""
    return dict(stack.query(f"SELECT ti.state, count(*) FROM task_instance ti WHERE {FLEET_TIS} GROUP BY ti.state"))


def all_held(stack: AirflowStack, waits: int) -> dict[int | None, int] | None:
    """``held`` once every wait is held by a triggerer or has already ended, else None."""
    holding = held(stack)
    by_state = states(stack)
    if None in holding or sum(holding.values()) + by_state.get("success", 0) + by_state.get("failed", 0) != waits:
        return None
    return holding


def not_finished(stack: AirflowStack, waits: int) -> str:
    """What has not finished, for a failure message: counts by state and holder, and the first few tasks."""
    by_state = states(stack)
    missing = waits - sum(by_state.values())
    rows = stack.query(
        "SELECT ti.dag_id, ti.task_id, ti.state, t.triggerer_id FROM task_instance ti LEFT JOIN trigger t "
        f"ON ti.trigger_id = t.id WHERE {FLEET_TIS} AND (ti.state IS NULL OR ti.state NOT IN ('success', 'failed')) "
        "ORDER BY ti.task_id"
    )
    holders = Counter(f"triggerer job {job}" if job is not None else "no triggerer" for *_, job in rows)
    first = ", ".join(f"{dag}.{task} ({state}, triggerer {job})" for dag, task, state, job in rows[:10])
    return (
        f"{len(rows)} of {waits} waits not ended ({dict(holders)}); by state {by_state}"
        + (f"; {missing} task instances not made yet" if missing else "")
        + (f"; first: {first}" if first else "")
        + f"; running triggerer jobs {running_triggerers(stack)}"
    )


def wait_or_explain(stack: AirflowStack, probe: Any, timeout: float, what: str, waits: int) -> Any:
    """``stack.wait_for``, whose failure names what had not finished (which waits, in which state, where)."""
    try:
        return stack.wait_for(probe, timeout, what)
    except AssertionError as exc:
        summary = not_finished(stack, waits)
        raise AssertionError(f"fleet: {what} did not happen within {timeout:.0f} s: {summary}\n{exc}") from None


def running_triggerers(stack: AirflowStack) -> list[int]:
    """Job ids of the running triggerers, oldest first (the first one started is the component "triggerer")."""
    return [job for (job,) in stack.query("SELECT id FROM job WHERE job_type = 'TriggererJob' AND state = 'running'")]


def both_triggerers(stack: AirflowStack) -> list[int] | None:
    jobs = running_triggerers(stack)
    return jobs if len(jobs) == 2 else None


def percentiles(values: list[float]) -> dict[str, float]:
    if not values:
        return {}
    ordered = sorted(values)
    pick = lambda q: ordered[min(len(ordered) - 1, math.ceil(q * len(ordered)) - 1)]  # noqa: E731
    return {"p50": round(pick(0.5), 2), "p99": round(pick(0.99), 2), "max": round(ordered[-1], 2), "n": len(ordered)}


def run(args: argparse.Namespace) -> dict[str, Any]:
    figures: dict[str, Any] = {"waits": args.waits, "poke_interval": args.poke_interval, "spread": args.spread}
    root = Path(tempfile.mkdtemp(prefix="flowinst-fleet-"))
    print(f"fleet: {args.waits} waits, poke_interval {args.poke_interval} s; work files in {root}", flush=True)
    cluster = PostgresCluster(server_bin_dir())
    cluster.start()
    try:
        with EmulatorProcess(log_path=root / "emulator.log") as emulator:
            emulator.control("POST", "/_emulator/enos_batch/settings", {"page_cap": PAGE_CAP})
            return measure(args, root, cluster, emulator, figures)
    finally:
        cluster.stop()
        if not args.keep:
            shutil.rmtree(root, ignore_errors=True)


def measure(
    args: argparse.Namespace, root: Path, cluster: PostgresCluster, emulator: EmulatorProcess, figures: dict[str, Any]
) -> dict[str, Any]:
    interval = args.poke_interval
    stack = FleetStack(
        root=root,
        dag_files=[HERE / "fleet_dags" / "fleet_dag.py"],
        connections=emulator_connections(emulator.url),
        settings={
            "AIRFLOW__TRIGGERER__JOB_HEARTBEAT_SEC": "1",
            "AIRFLOW__TRIGGERER__TRIGGERER_HEALTH_CHECK_THRESHOLD": str(HEALTH_CHECK_THRESHOLD),
            # Either triggerer may have to hold every wait once the other is gone.
            "AIRFLOW__TRIGGERER__CAPACITY": str(args.waits + 10),
            "AIRFLOW__CORE__MAX_ACTIVE_TASKS_PER_DAG": str(args.waits + 10),
            # The trigger module (fleet_trigger) is imported by the triggerers.
            "PYTHONPATH": os.pathsep.join(filter(None, [str(HERE / "fleet_dags"), os.environ.get("PYTHONPATH")])),
        },
        other_logs={"emulator": root / "emulator.log", "postgres": cluster.log_path},
        database_url=cluster.url,
    )
    # The waits: ids carry their trigger time (so a triggerer can batch them); the instances are made once the
    # stack is up, each ending at its own time.
    base = dt.datetime(2030, 1, 1)
    waits = [
        {"conn_id": CONN_ID, "instance_id": f"{FLOW}-{(base + dt.timedelta(seconds=index)).strftime('%Y%m%d%H%M%S')}"}
        for index in range(args.waits)
    ]
    spec = {"waits": waits, "poke_interval": interval, "per_dag": args.per_dag}
    stack.dags_folder.joinpath("fleet_waits.json").write_text(json.dumps(spec))
    dag_ids = [f"fleet_{number:03d}" for number in range(math.ceil(args.waits / args.per_dag))]
    figures["dags"] = len(dag_ids)

    # Time allowed for each stage grows with the waits (a loaded 2-core machine starts ~10 waits a second).
    parsing = 300 + args.waits * 0.1
    with stack.running({dag_ids[0]}, timeout=parsing):
        # The REST API lists 50 DAGs a page: count them in the database.
        parsed = "SELECT count(DISTINCT dag_id) FROM serialized_dag WHERE dag_id LIKE 'fleet%'"
        stack.wait_for(lambda: stack.query(parsed)[0][0] == len(dag_ids), parsing, f"all {len(dag_ids)} DAGs parsed")
        stack.start_component("triggerer-b", ["triggerer", "--skip-serve-logs"])
        live_jobs = stack.wait_for(lambda: both_triggerers(stack), 120, "both triggerers' jobs")
        idle = {name: group_usage(stack, name) for name in ("triggerer", "triggerer-b")}
        made_at = time.time()
        ends: dict[str, float] = {}
        for index, wait in enumerate(waits):
            running = args.hold + args.spread * interval * index / args.waits
            emulator.create_enos_batch_instance(FLOW, wait["instance_id"], queued_seconds=0, running_seconds=running)
            ends[wait["instance_id"]] = time.time() + running  # the emulator's clock is the wall clock (scale 1)
        figures["seconds to make the instances"] = round(time.time() - made_at, 1)
        began = time.time()
        run_ids = {dag_id: stack.trigger_dag(dag_id, {}) for dag_id in dag_ids}
        allowed = args.hold + 300 + args.waits * 0.5
        holding = wait_or_explain(stack, lambda: all_held(stack, args.waits), allowed, "every wait held", args.waits)
        figures["seconds until every wait was held"] = round(time.time() - began, 1)
        figures["waits held per triggerer"] = sorted(holding.values())
        first_end = min(ends.values())
        if time.time() + 2 * interval > first_end:
            print("warning: the runs start ending before a steady window: raise --hold", flush=True)

        # -- steady: every wait running and held; up to three intervals --------------------------------------------
        # One interval for every trigger's first reads (each new wait reads at once), then on a tick boundary.
        time.sleep(interval + interval - time.time() % interval)
        calls_start = requests_by_call(emulator)
        usage_start = {name: group_usage(stack, name) for name in ("triggerer", "triggerer-b")}
        windows = max(1, min(3, int((first_end - time.time()) // interval) - 1))
        time.sleep(windows * interval)
        calls = requests_by_call(emulator)
        calls.subtract(calls_start)
        steady_requests = sum(calls.values()) / windows
        figures["requests per interval by call, all running"] = {
            call: round(count / windows, 1) for call, count in calls.items() if count
        }
        usage_end = {name: group_usage(stack, name) for name in ("triggerer", "triggerer-b")}
        # Each triggerer's search pages through every running instance of the flow (its waits span them all).
        pages = len(holding) * math.ceil(args.waits / PAGE_CAP)
        figures["requests per interval, all running"] = round(steady_requests, 1)
        figures["fewest pages per interval (both triggerers)"] = pages
        figures["pages of each triggerer's own waits (were the search to filter by id)"] = sum(
            math.ceil(count / PAGE_CAP) for count in holding.values()
        )
        figures["goal: requests per interval, all running"] = round(1.2 * pages, 1)
        per_wait = {}
        for name in usage_end:
            cpu = usage_end[name][0] - usage_start[name][0]
            rss = usage_end[name][1] - idle[name][1]
            share = args.waits / 2  # each holds about half; the exact split is printed beside
            per_wait[name] = {
                "cpu_ms_per_wait_per_interval": round(cpu * 1000 / (windows * share), 3),
                "rss_kb_per_wait": round(rss / 1024 / share, 1),
                "rss_mb": round(usage_end[name][1] / 2**20, 1),
                "cpu_share_of_a_core": round(cpu / (windows * interval), 3),
            }
        figures["triggerers"] = per_wait

        # -- ending: kill the bigger holder once a third of the runs have ended -------------------------
        order = sorted(ends.values())
        kill_at = order[len(order) // 3]
        ending_start, requests_ending = time.time(), platform_requests(emulator)
        killed_job = None
        killed_waits: set[str] = set()
        if not args.no_kill:
            time.sleep(max(0.0, kill_at - time.time()))
            jobs = {job: count for job, count in held(stack).items() if job is not None}
            if not jobs:
                raise RuntimeError("every wait had ended before the kill: raise --hold or --spread")
            killed_job = max(jobs, key=lambda job: jobs[job])
            killed_waits = {
                task
                for (task,) in stack.query(
                    "SELECT ti.task_id FROM task_instance ti JOIN trigger t ON ti.trigger_id = t.id "
                    f"WHERE {FLEET_TIS} AND ti.state = 'deferred' AND t.triggerer_id = ?",
                    killed_job,
                )
            }
            victim = "triggerer" if killed_job == min(live_jobs) else "triggerer-b"
            stack.kill_component(victim)
            figures["killed"] = {"component": victim, "job": killed_job, "waits it held": len(killed_waits)}
            print(f"killed {victim} (job {killed_job}) holding {len(killed_waits)} waits", flush=True)

        def finished() -> bool:
            by_state = states(stack)
            return sum(by_state.values()) == args.waits and set(by_state) <= {"success", "failed"}

        # A takeover restarts every wait the killed triggerer held: allow for that on a loaded machine.
        allowed = max(0.0, order[-1] - time.time()) + 300 + args.waits * 0.5
        wait_or_explain(stack, finished, allowed, "every wait ending", args.waits)
        ending_seconds = max(order[-1], time.time()) - ending_start
        figures["requests per interval, runs ending"] = round(
            (platform_requests(emulator) - requests_ending) / (ending_seconds / interval), 1
        )
        ended_per_interval = args.waits / (ending_seconds / interval)
        figures["goal: requests per interval, runs ending"] = round(1.2 * pages + ended_per_interval, 1)

        # -- the outcome, from the database ----------------------------------------------------------------
        rows = stack.query(
            "SELECT ti.dag_id, ti.run_id, ti.task_id, ti.state, ti.try_number, ti.end_date, x.value "
            "FROM task_instance ti LEFT JOIN xcom x ON x.dag_id = ti.dag_id AND x.run_id = ti.run_id "
            f"AND x.task_id = ti.task_id AND x.key = 'return_value' WHERE {FLEET_TIS}"
        )
        history = stack.query("SELECT count(*) FROM task_instance_history ti WHERE " + FLEET_TIS)[0][0]
        latencies, takeover, problems = [], [], []
        for dag_id, run_id, task_id, state, try_number, end_date, value in rows:
            if run_ids.get(dag_id) != run_id:
                problems.append(f"{dag_id}.{task_id}: a run not started here ({run_id})")
                continue
            index = int(task_id.rsplit("_", 1)[1])
            instance_id = waits[index]["instance_id"]
            result = json.loads(value) if isinstance(value, str) else value
            if isinstance(result, str):  # XCom values are stored JSON-encoded
                result = json.loads(result)
            got = (state, try_number, (result or {}).get("instance_id"), (result or {}).get("state"))
            if got != ("success", 1, instance_id, "success"):
                problems.append(f"{task_id}: {got}")
                continue
            latency = end_date.timestamp() - ends[instance_id]
            (takeover if task_id in killed_waits else latencies).append(latency)
        figures["remote end -> task success, s (waits not moved)"] = percentiles(latencies)
        figures["remote end -> task success, s (waits taken over)"] = percentiles(takeover)
        figures["goal: seconds"] = interval + 5
        if len(rows) != args.waits:
            problems.append(f"{len(rows)} task instances for {args.waits} waits")
        figures["tasks ended once, on try 1, with their own instance"] = len(latencies) + len(takeover)
        figures["lost or wrong"] = problems[:20]
        figures["tasks run again (task_instance_history rows)"] = history
        loops = [float(m.group(1)) for m in LOOP_LINE.finditer(stack.components["scheduler"].log_path.read_text())]
        figures["scheduler loop ms"] = percentiles(loops[len(loops) // 10 :])  # the start-up loops left out
    return figures


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--waits", type=int, default=2000)
    parser.add_argument("--poke-interval", type=float, default=10.0)
    parser.add_argument("--per-dag", type=int, default=20, help="waits (tasks) per DAG")
    parser.add_argument("--spread", type=float, default=3.0, help="intervals over which the runs end")
    parser.add_argument("--hold", type=float, help="seconds each run lasts at least (default: 60 + waits / 4)")
    parser.add_argument("--no-kill", action="store_true", help="keep both triggerers")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    parser.add_argument("--keep", action="store_true", help="keep the work files (logs, AIRFLOW_HOME)")
    args = parser.parse_args()
    if args.hold is None:
        args.hold = 60 + args.waits / 4
    began = time.monotonic()
    figures = run(args)
    figures["seconds in all"] = round(time.monotonic() - began)
    figures["machine"] = _common.machine()
    print(json.dumps(figures, indent=2, default=str))
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2, default=str))
    ok = not figures["lost or wrong"] and figures["tasks run again (task_instance_history rows)"] == 0
    _common.report("fleet", **{k: v for k, v in figures.items() if k != "machine"})
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
