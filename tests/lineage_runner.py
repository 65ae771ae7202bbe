"""Run lineage DAGs with dag.test() in a process of its own, with OpenLineage's file transport switched on.

Airflow's OpenLineage provider reads its configuration once per process, and every other test runs without
it: so the lineage DAGs run here, in a child process the test starts (``python -m tests.lineage_runner
EVENTS_FILE DAG_ID...``). Each line of EVENTS_FILE is one event; stdout ends with one JSON line: per DAG, its
task states and the remote instance id the run task started.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path


def main(events_file: str, dag_ids: list[str]) -> None:
    os.environ["AIRFLOW__OPENLINEAGE__TRANSPORT"] = json.dumps(
        {"type": "file", "log_file_path": events_file, "append": True}
    )
    os.environ["AIRFLOW__OPENLINEAGE__NAMESPACE"] = "flowinst-tests"
    from tests.dags import lineage_dags
    from tests.helpers import run_dag, unique_logical_date

    outcome = {}
    for dag_id in dag_ids:
        result = run_dag(getattr(lineage_dags, dag_id), unique_logical_date())
        outcome[dag_id] = {"task_states": result.task_states, "instance_id": result.xcom("run", "flow_instance_id")}
    Path(events_file + ".outcome.json").write_text(json.dumps(outcome))


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2:])
