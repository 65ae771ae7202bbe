"""The example DAGs: they load without errors, and each runs green against the emulator."""

from __future__ import annotations

import importlib.util
from pathlib import Path

try:  # Airflow 3.2+
    from airflow.dag_processing.dagbag import DagBag
except ImportError:  # Airflow 3.1
    from airflow.models.dagbag import DagBag

from tests.helpers import instance_reaching, run_dag

EXAMPLES = Path(__file__).resolve().parent.parent / "example_dags"


def load_example(name: str):
    spec = importlib.util.spec_from_file_location(f"example_{name}", EXAMPLES / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.dag


def test_every_example_dag_loads_without_import_errors():
    bag = DagBag(dag_folder=str(EXAMPLES))

    assert bag.import_errors == {}
    assert set(bag.dag_ids) == {
        "example_enos_batch_wait",
        "example_cross_platform_wait",
        "example_start_remote_runs",
        "example_remote_run_asset",
        "example_repair_failed_run",
    }


def test_enos_wait_example_waits_reports_and_shows_the_graph(emulator, capsys):
    result = run_dag(load_example("example_enos_batch_wait"))

    assert result.state == "success"
    assert result.xcom("wait_for_enos_flow")["state"] == "success"
    assert result.xcom("report_status")["state"] == "success"
    assert result.xcom("show_graph") == "success"
    assert [flow["flowId"] for flow in result.xcom("find_flows")] == ["2809"]
    assert "└─ [task] tass: success [SUCCESS]" in capsys.readouterr().out


def test_cross_platform_example_reports_all_four_platforms(emulator, capsys):
    result = run_dag(load_example("example_cross_platform_wait"))

    assert result.state == "success"
    assert result.xcom("report") == ["success", "success", "success", "success"]
    platforms = {
        result.xcom(task)["platform"] for task in ("wait_enos_batch", "wait_enos_bpm", "wait_lsf", "wait_dataworks")
    }
    assert platforms == {"enos_batch", "enos_bpm", "lsf_pm", "dataworks"}
    report = capsys.readouterr().out
    assert "4 remote runs" in report
    assert "lsf_pm 102 (flow1): success [Done]" in report
    assert "└─ [task] extract_orders: success [Success]" in report


def test_start_remote_runs_example_starts_and_waits_for_both(emulator):
    result = run_dag(load_example("example_start_remote_runs"))

    assert result.state == "success"
    dataworks, lsf = result.xcom("run_dataworks_workflow"), result.xcom("run_lsf_flow")
    assert (dataworks["platform"], dataworks["state"]) == ("dataworks", "success")
    assert (lsf["platform"], lsf["state"]) == ("lsf_pm", "success")
    assert result.xcom("both_finished") == [dataworks["instance_id"], lsf["instance_id"]]


def test_repair_example_reruns_the_failed_nodes_and_starts_nothing_more(emulator, capsys):
    from airflow_provider_flowinst.hooks import get_hook
    from airflow_provider_flowinst.models import FlowState

    failed = emulator.create_dataworks_instance(1002, queued_seconds=0.5, running_seconds=2.0)
    hook = get_hook("dataworks_default")
    instance_reaching(hook, failed, FlowState.FAILED, include_graph=False)
    creates = emulator.control("GET", "/_emulator/dataworks/actions").get("CreateWorkflowInstances", 0)

    result = run_dag(load_example("example_repair_failed_run"), run_conf={"instance_id": failed})

    assert result.state == "success"
    assert result.xcom("repair_failed_run")["instance_id"] == failed
    assert result.xcom("repaired")[0] == failed
    started = result.xcom("start_and_repair_on_retry")["instance_id"]
    assert result.xcom("repaired")[1] == started
    assert emulator.control("GET", "/_emulator/dataworks/actions")["CreateWorkflowInstances"] == creates + 1
    assert "dataworks instance" in capsys.readouterr().out
