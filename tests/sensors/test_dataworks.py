"""DataWorksWorkflowInstanceSensor in real dag.test() runs against the emulator, poke and deferrable."""

from __future__ import annotations

import pytest

from tests.dags import dataworks_dags
from tests.helpers import XCOM_KEYS, run_dag


@pytest.mark.parametrize("mode", ["poke", "reschedule", "deferrable"])
def test_a_successful_workflow_instance_returns_its_dict_with_the_graph(emulator, mode):
    result = run_dag(getattr(dataworks_dags, f"dataworks_{mode}_succeeds"))

    assert result.state == "success"
    instance = result.xcom("wait")
    assert set(instance) == XCOM_KEYS
    assert instance["instance_id"] == result.xcom("create")
    assert (instance["platform"], instance["state"], instance["raw_state"]) == ("dataworks", "success", "Success")
    assert instance["flow_id"] == "1001"
    assert instance["name"].startswith("manual__")  # the run id the DAG named the instance after
    assert instance["started_at"].endswith("+00:00") and instance["ended_at"] >= instance["started_at"]
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
