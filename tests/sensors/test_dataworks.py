"""DataWorksWorkflowInstanceSensor in real dag.test() runs against the emulator, poke and deferrable."""

from __future__ import annotations

import pytest

from tests.dags import dataworks_dags
from tests.helpers import run_dag, succeeded_wait


@pytest.mark.parametrize("mode", ["poke", "reschedule", "deferrable"])
def test_a_successful_workflow_instance_returns_its_dict_with_the_graph(emulator, mode):
    result = run_dag(getattr(dataworks_dags, f"dataworks_{mode}_succeeds"))

    instance = succeeded_wait(result, started_by="create", platform="dataworks")
    assert (instance["raw_state"], instance["flow_id"]) == ("Success", "1001")
    assert instance["name"].startswith("manual__")  # the run id the DAG named the instance after
    assert instance["details"]["Type"] == "ManualWorkflow"
    nodes = {node["id"]: node for node in instance["graph"]["nodes"]}
    assert sorted(node["name"] for node in nodes.values()) == [
        "check_quality",
        "clean_orders",
        "extract_orders",
        "load_mart",
    ]
    assert {(node["kind"], node["state"], node["raw_state"]) for node in nodes.values()} == {
        ("task", "success", "Success")
    }
    edges = {(nodes[e["source"]]["name"], nodes[e["target"]]["name"]) for e in instance["graph"]["edges"]}
    assert ("extract_orders", "clean_orders") in edges and ("check_quality", "load_mart") in edges
    assert len(edges) == 4
