"""``make demo``: run the example DAGs with ``airflow dags test`` against the bundled emulator.

Each DAG runs in a fresh, temporary AIRFLOW_HOME (SQLite). The emulator serves every platform on a free
loopback port; the connections point at it through ``AIRFLOW_CONN_*`` variables. What the provider logs
(each wait, each status) and what the report tasks print (each instance's graph) is shown; the full log
of every run is kept under ``.demo/``, and each waited-on run's graph is drawn as an SVG under
``.demo/graphs/`` (the picture the "Remote graph" tab shows). The fourth run waits on two remote runs that
fail: its log shows the failed remote tasks and the last lines of their logs. The last one repairs a failed
DataWorks run in place: its graph before (the failed task) and after (the same run, that task rerun to
success).

The runs mostly wait on their remote runs (a few emulated seconds each), so they run side by side, each in
an AIRFLOW_HOME of its own (a copy of one migrated database: SQLite lets one writer at a time); what each shows
is printed when it ends, in the order above.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from airflow_provider_flowinst.testing.connections import emulator_connections
from airflow_provider_flowinst.testing.emulator.process import EmulatorProcess

#: (dag_id, logical date) in the order they run.
DEMO_DAGS = [
    ("example_enos_batch_wait", "2024-03-01"),
    ("example_cross_platform_wait", "2024-03-02"),
    ("example_start_remote_runs", "2024-03-03"),
    ("example_cross_platform_wait", "2024-03-04"),
]
#: The last run, meant to fail: EnOS flow 3257 and DataWorks workflow 1002 end in failure in the emulator.
FAILING = ("example_cross_platform_wait", "2024-03-04")
#: The repair: a failed DataWorks run (workflow 1002 fails at its last task; its rerun succeeds) is repaired.
REPAIR = ("example_repair_failed_run", "2024-03-05")
#: Emulated seconds are wall seconds: the remote runs below take a few seconds each.
TIME_SCALE = "1"
SHOWN = re.compile(
    r"airflow_provider_flowinst|Last lines of the log|DagRun Finished|\[DAG TEST\] end task|Task failed|ERROR|Traceback"
)
NOISE = re.compile(r"graphviz")  # `airflow dags test` suggests graphviz for a picture the demo does not draw
TIMESTAMP = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}")


def main() -> int:
    work = ROOT / ".demo"
    shutil.rmtree(work, ignore_errors=True)
    (work / "airflow-home").mkdir(parents=True)
    failures = 0
    with EmulatorProcess(log_path=work / "emulator.log", extra_args=("--time-scale", TIME_SCALE)) as emulator:
        env = {
            **os.environ,
            "AIRFLOW_HOME": str(work / "airflow-home"),
            "AIRFLOW__CORE__DAGS_FOLDER": str(ROOT / "example_dags"),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            **emulator_connections(emulator.url),
        }
        print(f"emulator: {emulator.url}", flush=True)
        _run([sys.executable, "-m", "airflow", "db", "migrate"], env, work / "db-migrate.log")
        with ThreadPoolExecutor(max_workers=len(DEMO_DAGS) + 1) as pool:
            started = time.monotonic()
            dag_runs: list[Future[tuple[int, str]]] = []
            for number, (dag_id, logical_date) in enumerate(DEMO_DAGS):
                failing = (dag_id, logical_date) == FAILING
                runs = fresh_runs(emulator, failing=failing) if dag_id == "example_cross_platform_wait" else {}
                command = ["airflow", "dags", "test", dag_id, logical_date, "--conf", json.dumps(runs)]
                run_env = own_home(env, work, f"run-{number}")
                log_path = work / f"{dag_id}-{logical_date}.log"
                dag_runs.append(pool.submit(_run, [sys.executable, "-m", *command], run_env, log_path, show=True))
            repaired = pool.submit(repair, emulator, own_home(env, work, "repair"), work)
            for (dag_id, logical_date), dag_run in zip(DEMO_DAGS, dag_runs, strict=True):
                code, shown = dag_run.result()
                print(f"\n=== {dag_id} ({logical_date}) ===\n{shown}", end="", flush=True)
                failing = (dag_id, logical_date) == FAILING
                if failing:
                    verdict = "failed, as meant (see above)" if code != 0 else "SUCCEEDED, but was meant to fail"
                else:
                    verdict = (
                        "succeeded" if code == 0 else f"FAILED (exit {code}; see .demo/{dag_id}-{logical_date}.log)"
                    )
                print(
                    f"=== {dag_id} {verdict} ({time.monotonic() - started:.1f} s after the runs began) ===", flush=True
                )
                failures += (code == 0) if failing else (code != 0)
            # Every run's graphs drawn by one process at the end: each Airflow process costs seconds to start.
            print("\n=== the remote runs' graphs ===", flush=True)
            drawn = [f"{dag_id}@{logical_date}@{number}" for number, (dag_id, logical_date) in enumerate(DEMO_DAGS)]
            graphs = [sys.executable, __file__, "--graphs", str(work / "graphs"), *drawn]
            code, shown = _run(graphs, env, work / "graphs.log", show=True, everything=True)
            print(shown, end="", flush=True)
            failures += code != 0
            code, shown = repaired.result()
            print(shown, end="", flush=True)
            failures += code
    return 1 if failures else 0


def own_home(env: dict[str, str], work: Path, name: str) -> dict[str, str]:
    """``env`` with an AIRFLOW_HOME of its own under ``work``, its database a copy of the migrated one."""
    home = work / name
    home.mkdir()
    shutil.copy2(Path(env["AIRFLOW_HOME"]) / "airflow.db", home / "airflow.db")
    return {**env, "AIRFLOW_HOME": str(home), "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{home / 'airflow.db'}"}


def repair(emulator: EmulatorProcess, env: dict[str, str], work: Path) -> tuple[int, str]:
    """A DataWorks run that failed, its graph, the repair DAG run on it, and its graph after: the same run.
    Returns 1 if any step failed, and what it shows."""
    dag_id, logical_date = REPAIR
    started = time.monotonic()
    failed = emulator.create_dataworks_instance(1002, running_seconds=6)
    show = [sys.executable, __file__, "--show-run", "dataworks_default", failed, str(work / "graphs")]
    code, before = _run([*show, "before"], env, work / "repair-before.log", show=True)
    shown = f"\n=== {dag_id} ({logical_date}) ===\n{before}"
    if code == 0:
        dag_test = [sys.executable, "-m", "airflow", "dags", "test", dag_id, logical_date]
        conf = json.dumps({"instance_id": failed})
        code, run = _run([*dag_test, "--conf", conf], env, work / f"{dag_id}.log", show=True)
        shown += run
    if code == 0:
        code, after = _run([*show, "after"], env, work / "repair-after.log", show=True)
        shown += after
    verdict = "succeeded" if code == 0 else f"FAILED (exit {code}; see .demo/)"
    return int(code != 0), shown + f"=== {dag_id} {verdict} in {time.monotonic() - started:.1f} s ===\n"


def show_run(conn_id: str, instance_id: str, out_dir: Path, moment: str) -> int:
    """The run once it has ended (at most a minute from now), as text and as an SVG (inside the demo's env)."""
    from airflow_provider_flowinst.graph_svg import render_svg
    from airflow_provider_flowinst.hooks import get_hook
    from airflow_provider_flowinst.reporting import render_instance

    hook = get_hook(conn_id)
    deadline = time.monotonic() + 60
    while not (instance := hook.get_instance(instance_id)).state.is_terminal and time.monotonic() < deadline:
        time.sleep(1)
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / f"repair-{instance_id}-{moment}.svg"
    path.write_text(render_svg(instance.to_dict()))
    shown = path.relative_to(ROOT) if path.is_relative_to(ROOT) else path
    print(f"{moment} the repair:\n{render_instance(instance.to_dict())}\ngraph: {shown}")
    return 0 if instance.state.is_terminal else 1


def fresh_runs(emulator: EmulatorProcess, *, failing: bool = False) -> dict[str, str]:
    """New remote runs on three platforms, started now, so the waits below have something to wait for;
    with ``failing``, the EnOS flow and the DataWorks workflow are ones that fail."""
    runs = {
        "bpm_process_instance_id": emulator.create_enos_bpm_instance("purchaseApproval", seconds_per_task=6),
        "lsf_flow_instance_id": emulator.create_lsf_pm_instance("jsmith:flow1", running_seconds=16),
        "dataworks_workflow_instance_id": emulator.create_dataworks_instance(
            1002 if failing else 1001, running_seconds=14
        ),
    }
    return {**runs, "enos_flow_id": "3257"} if failing else runs


def write_graphs(out_dir: Path, runs: list[str]) -> int:
    """Each remote run the tasks of each DAG run (``dag_id@logical_date@number``: the one in ``.demo/run-<number>``)
    waited on, drawn as the "Remote graph" tab draws it (with the emulator still up for runs that failed and
    left no XCom)."""
    from sqlalchemy import create_engine
    from sqlalchemy.orm import Session

    for run in runs:
        dag_id, logical_date, number = run.split("@")
        engine = create_engine(f"sqlite:///{out_dir.parent / f'run-{number}' / 'airflow.db'}")
        try:
            with Session(engine) as session:
                _write_graphs(session, dag_id, logical_date, out_dir)
        finally:
            engine.dispose()
    return 0


def _write_graphs(session: Any, dag_id: str, logical_date: str, out_dir: Path) -> None:
    import datetime as dt

    from airflow.models.dagrun import DagRun
    from airflow.models.taskinstance import TaskInstance
    from sqlalchemy import select

    from airflow_provider_flowinst.graph_svg import render_svg
    from airflow_provider_flowinst.plugins.instance_source import load_task_run

    out_dir.mkdir(parents=True, exist_ok=True)
    drawn: set[tuple[str, str]] = set()
    moment = dt.datetime.fromisoformat(logical_date).replace(tzinfo=dt.timezone.utc)
    run_id = session.scalars(select(DagRun.run_id).where(DagRun.dag_id == dag_id, DagRun.logical_date == moment)).one()
    tis = session.scalars(
        select(TaskInstance).where(TaskInstance.dag_id == dag_id, TaskInstance.run_id == run_id)
    ).all()
    # In the order they ran: a run both waited on and reported is drawn once, under the wait's name.
    for ti in sorted(tis, key=lambda ti: (ti.start_date is None, ti.start_date, ti.task_id)):
        run = load_task_run(session, dag_id, run_id, ti.task_id, ti.map_index)
        if run.instance is None or (run.instance["platform"], run.instance["instance_id"]) in drawn:
            continue
        drawn.add((run.instance["platform"], run.instance["instance_id"]))
        path = out_dir / f"{dag_id}-{logical_date}-{ti.task_id}.svg"
        path.write_text(render_svg(run.instance))
        shown = path.relative_to(ROOT) if path.is_relative_to(ROOT) else path
        print(
            f"graph: {shown} ({run.instance['platform']} {run.instance['instance_id']}: "
            f"{run.instance['state']}, from {run.source})"
        )


def _run(
    command: list[str], env: dict[str, str], log_path: Path, *, show: bool = False, everything: bool = False
) -> tuple[int, str]:
    """Run ``command`` with its whole output in ``log_path``; its exit code and the lines worth showing."""
    shown = []
    with open(log_path, "w") as log:
        process = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        assert process.stdout is not None
        for line in process.stdout:
            log.write(line)
            if everything and line.startswith("graph: "):
                shown.append(line)
            elif everything:
                continue
            elif show and (not TIMESTAMP.match(line) or SHOWN.search(line)) and not NOISE.search(line):
                shown.append(_tidy(line))
        return process.wait(), "".join(shown)


def _tidy(line: str) -> str:
    """Keep a log line's time and message; drop the logger's bracketed trailer."""
    # A message of several lines carries the trailer on its last line, and its first has none.
    match = re.match(r"^(\S+) \[\s*(\w+)\s*\] (.*?)(?:\s+\[[\w.]+\](?: \w+=.*)?)?$", line.rstrip("\n"))
    if match is None:
        return re.sub(r"\s+\[airflow\.[\w.]+\](?: \w+=\S+)*$", "", line.rstrip("\n")) + "\n"
    stamp, level, message = match.groups()
    return f"{stamp[11:19]} {level:<7} {message}\n"


if __name__ == "__main__":
    if sys.argv[1:2] == ["--graphs"]:
        sys.exit(write_graphs(Path(sys.argv[2]), sys.argv[3:]))
    if sys.argv[1:2] == ["--show-run"]:
        sys.exit(show_run(sys.argv[2], sys.argv[3], Path(sys.argv[4]), sys.argv[5]))
    sys.exit(main())
