"""The readable tree the demo and the example DAGs print."""

from __future__ import annotations

from airflow_provider_flowinst.reporting import render_instance, render_report

INSTANCE = {
    "platform": "dataworks",
    "instance_id": "7",
    "name": "daily",
    "state": "success",
    "raw_state": "Success",
    "started_at": "2024-01-01T00:00:00+00:00",
    "ended_at": "2024-01-01T00:01:30+00:00",
    "graph": {
        "nodes": [
            {"id": "a", "name": "extract", "kind": "task", "state": "success", "raw_state": "Success"},
            {"id": "b", "name": "clean", "kind": "task", "state": "success", "raw_state": "Success"},
            {"id": "c", "name": "check", "kind": "task", "state": "success", "raw_state": "Success"},
            {"id": "d", "name": "load", "kind": "task", "state": "running", "raw_state": "Running"},
        ],
        "edges": [
            {"source": "a", "target": "b"},
            {"source": "a", "target": "c"},
            {"source": "b", "target": "d"},
            {"source": "c", "target": "d"},
        ],
    },
}


def test_a_diamond_is_drawn_once_with_shared_nodes_marked():
    assert render_instance(INSTANCE).splitlines() == [
        "dataworks 7 (daily): success [Success]",
        "  started 2024-01-01T00:00:00+00:00, ended 2024-01-01T00:01:30+00:00 (90 s)",
        "  └─ [task] extract: success [Success]",
        "    └─ [task] clean: success [Success]",
        "      └─ [task] load: running [Running]",
        "    └─ [task] check: success [Success]",
        "      └─ [task] load: running [Running] (see above)",
    ]


def test_no_graph_and_no_times():
    text = render_instance({**INSTANCE, "graph": None, "ended_at": None})
    assert text.splitlines()[1:] == ["  started 2024-01-01T00:00:00+00:00, ended -", "  (no graph)"]


def test_report_has_a_summary_line_per_instance():
    lines = render_report(
        [INSTANCE, {**INSTANCE, "platform": "lsf_pm", "instance_id": "101", "graph": None}]
    ).splitlines()
    assert lines[0] == "2 remote runs"
    assert lines[2].split() == ["dataworks", "7", "success", "90", "s"]
    assert lines[3].split() == ["lsf_pm", "101", "success", "90", "s"]
