"""``make demo``: run the example DAGs with ``airflow dags test`` against the bundled emulator.

Each DAG runs in a fresh, temporary AIRFLOW_HOME (SQLite). The emulator serves every platform on a free
loopback port; the connections point at it through ``AIRFLOW_CONN_*`` variables. What the provider logs
(each wait, each status) and what the report tasks print (each instance's graph) is shown; the full log
of every run is kept under ``.demo/``.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from airflow_provider_flowinst.testing.connections import emulator_connections
from airflow_provider_flowinst.testing.emulator.process import EmulatorProcess

#: (dag_id, logical date) in the order they run.
DEMO_DAGS = [
    ("example_enos_batch_wait", "2024-03-01"),
    ("example_cross_platform_wait", "2024-03-02"),
    ("example_start_remote_runs", "2024-03-03"),
]
#: Emulated seconds are wall seconds: the remote runs below take a few seconds each.
TIME_SCALE = "1"
SHOWN = re.compile(r"airflow_provider_flowinst|DagRun Finished|\[DAG TEST\] end task|Task failed|ERROR|Traceback")
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
        for dag_id, logical_date in DEMO_DAGS:
            print(f"\n=== {dag_id} ({logical_date}) ===", flush=True)
            started = time.monotonic()
            conf = json.dumps(fresh_runs(emulator)) if dag_id == "example_cross_platform_wait" else "{}"
            code = _run(
                [sys.executable, "-m", "airflow", "dags", "test", dag_id, logical_date, "--conf", conf],
                env,
                work / f"{dag_id}.log",
                show=True,
            )
            verdict = "succeeded" if code == 0 else f"FAILED (exit {code}; see .demo/{dag_id}.log)"
            print(f"=== {dag_id} {verdict} in {time.monotonic() - started:.1f} s ===", flush=True)
            failures += code != 0
    return 1 if failures else 0


def fresh_runs(emulator: EmulatorProcess) -> dict[str, str]:
    """New remote runs on three platforms, started now, so the waits below have something to wait for."""
    return {
        "bpm_process_instance_id": emulator.create_enos_bpm_instance("purchaseApproval", seconds_per_task=6),
        "lsf_flow_instance_id": emulator.create_lsf_pm_instance("jsmith:flow1", running_seconds=16),
        "dataworks_workflow_instance_id": emulator.create_dataworks_instance(1001, running_seconds=14),
    }


def _run(command: list[str], env: dict[str, str], log_path: Path, *, show: bool = False) -> int:
    with open(log_path, "w") as log:
        process = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        assert process.stdout is not None
        for line in process.stdout:
            log.write(line)
            if show and (not TIMESTAMP.match(line) or SHOWN.search(line)) and not NOISE.search(line):
                print(_tidy(line), end="", flush=True)
        return process.wait()


def _tidy(line: str) -> str:
    """Keep a log line's time and message; drop the logger's bracketed trailer."""
    match = re.match(r"^(\S+) \[\s*(\w+)\s*\] (.*?)\s+\[[\w.]+\](?: \w+=.*)?$", line.rstrip("\n"))
    if match is None:
        return line
    stamp, level, message = match.groups()
    return f"{stamp[11:19]} {level:<7} {message}\n"


if __name__ == "__main__":
    sys.exit(main())
