"""Which part of a graph is drawn: all of a small one; of a large one, what needs attention first."""

from __future__ import annotations

from airflow_provider_flowinst.graph_reduce import MAX_DRAWN_NODES, graph_view
from airflow_provider_flowinst.models import FlowState


def graph(states: list[str], edges: list[tuple[int, int]]) -> dict:
    return {
        "nodes": [{"id": f"n{i}", "state": state} for i, state in enumerate(states)],
        "edges": [{"source": f"n{s}", "target": f"n{t}"} for s, t in edges],
    }


def test_a_small_graph_is_drawn_whole():
    view = graph_view(graph(["success", "failed", "running"], [(0, 1), (1, 2)]))

    assert [node["id"] for node in view.nodes] == ["n0", "n1", "n2"]
    assert view.edges == [("n0", "n1"), ("n1", "n2")]
    assert not view.reduced
    assert view.summary() == ""


def test_a_large_graph_keeps_failed_and_running_nodes_with_their_neighbours_and_counts_the_rest():
    states = ["success"] * 1000
    states[500], states[700] = "failed", "running"
    chain = [(i, i + 1) for i in range(999)]

    view = graph_view(graph(states, chain), max_nodes=10)

    drawn = [node["id"] for node in view.nodes]
    assert drawn[:2] == ["n500", "n700"]  # failed first, then running
    assert set(drawn[2:6]) == {"n499", "n501", "n699", "n701"}  # then their neighbours
    assert drawn[6:] == ["n0", "n1", "n2", "n3"]  # then the others, in order
    assert len(drawn) == 10
    assert view.hidden_by_state == {FlowState.SUCCESS: 990}
    assert ("n499", "n500") in view.edges and ("n500", "n501") in view.edges
    assert view.summary() == (
        "Drawn: 10 of 1,000 nodes (failed, running and suspended ones and their neighbours first); "
        "not drawn: 990 success; 992 of 999 edges not drawn."
    )


def test_nodes_and_edges_are_capped_whatever_the_graph():
    states = ["failed"] * (MAX_DRAWN_NODES * 3)
    star = [(0, i) for i in range(1, len(states))]

    view = graph_view(graph(states, star), max_edges=50)

    assert len(view.nodes) == MAX_DRAWN_NODES
    assert len(view.edges) == 50


def test_malformed_graphs_give_an_empty_or_partial_drawing():
    assert graph_view(None).nodes == []
    assert graph_view({"nodes": "x", "edges": 3}).nodes == []
    view = graph_view({"nodes": [1, {"name": "no id"}, {"id": 7}, {"id": 7}], "edges": [{"source": 7}, None]})
    assert [node["id"] for node in view.nodes] == [7]
    assert view.edges == []
