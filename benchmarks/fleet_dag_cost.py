"""What each trigger of a ``start_from_trigger`` task costs Airflow 3.3, by the size of its DAG.

The triggerer hands each such trigger the whole serialized DAG (``RunTrigger.dag_data``) and builds the
trigger's task from it (``TriggerRunner.create_runtime_ti``: ``DagSerialization.from_dict``), which the
trigger then holds for as long as it runs. This deserializes DAGs of ``make bench-fleet``'s tasks (its
``FleetWait``) of several sizes the same way and prints the time and the memory each copy costs.

    .venv/bin/python benchmarks/fleet_dag_cost.py
"""

from __future__ import annotations

import datetime as dt
import gc
import importlib.util
import json
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path
from typing import Any

from airflow.sdk import DAG
from airflow.serialization.serialized_objects import DagSerialization

FLEET_DAG = Path(__file__).resolve().parent / "fleet_dags" / "fleet_dag.py"
COPIES = 5


def fleet_wait_class() -> Any:
    """``FleetWait`` from the benchmark's DAG file (loaded beside an empty list of waits)."""
    folder = Path(tempfile.mkdtemp())
    (folder / "fleet_waits.json").write_text(json.dumps({"waits": [], "poke_interval": 10, "per_dag": 1}))
    (folder / "fleet_dag.py").write_text(FLEET_DAG.read_text())
    spec = importlib.util.spec_from_file_location("fleet_dag", folder / "fleet_dag.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["fleet_dag"] = module  # as the dag-processor imports it
    spec.loader.exec_module(module)
    return module.FleetWait


def main() -> None:
    fleet_wait = fleet_wait_class()
    for tasks in (20, 200, 500, 2000):
        start = dt.datetime(2024, 1, 1, tzinfo=dt.timezone.utc)
        with DAG(dag_id=f"cost_{tasks}", schedule=None, start_date=start) as dag:
            for index in range(tasks):
                fleet_wait(task_id=f"wait_{index:05d}", conn_id="c", instance_id=f"5101-{index:014d}", poke_interval=10)
        data = DagSerialization.to_dict(dag)
        DagSerialization.from_dict(data).get_task("wait_00000")  # the first one imports what it needs
        began = time.perf_counter()
        for _ in range(COPIES):
            DagSerialization.from_dict(data).get_task("wait_00000")
        took = (time.perf_counter() - began) / COPIES
        gc.collect()
        tracemalloc.start()
        held = [DagSerialization.from_dict(data).get_task("wait_00000") for _ in range(COPIES)]
        gc.collect()
        size, _ = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        print(
            f"DAG of {tasks} tasks ({len(json.dumps(data)) // 1024} KB serialized): each trigger takes "
            f"{took * 1000:.0f} ms to build its task and holds {size / len(held) / 1024:.0f} KB"
        )


if __name__ == "__main__":
    main()
