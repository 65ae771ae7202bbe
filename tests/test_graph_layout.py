"""The layered layout: left to right, no overlaps, few crossings, fast enough for hundreds of nodes."""

from __future__ import annotations

import itertools
import random
import time

from airflow_provider_flowinst.graph_layout import (
    LayoutSettings,
    back_edges,
    count_crossings,
    layered_layout,
    longest_path_layers,
)


def random_dag(nodes: int, seed: int = 7) -> tuple[list[str], list[tuple[str, str]]]:
    rng = random.Random(seed)
    ids = [f"n{i}" for i in range(nodes)]
    edges = [
        (ids[rng.randint(max(0, i - 30), i - 1)], ids[i]) for i in range(1, nodes) for _ in range(rng.randint(1, 2))
    ]
    return ids, edges


def assert_no_overlaps(layout, settings: LayoutSettings) -> None:
    by_column: dict[float, list[float]] = {}
    for x, y in layout.positions.values():
        by_column.setdefault(x, []).append(y)
    for ys in by_column.values():
        ys.sort()
        assert all(b - a >= settings.node_height for a, b in itertools.pairwise(ys))


def test_a_chain_runs_left_to_right():
    layout = layered_layout(["a", "b", "c"], [("a", "b"), ("b", "c")])

    assert layout.layer_of == {"a": 0, "b": 1, "c": 2}
    xs = [layout.positions[n][0] for n in "abc"]
    assert xs == sorted(xs) and len(set(xs)) == 3
    assert layout.crossings == 0


def test_a_node_sits_right_of_its_furthest_upstream_node():
    layers = longest_path_layers(["a", "b", "c", "d"], [("a", "b"), ("b", "c"), ("a", "c"), ("c", "d")])

    assert layers == {"a": 0, "b": 1, "c": 2, "d": 3}


def test_long_edges_bend_through_each_layer_they_cross():
    layout = layered_layout(["a", "b", "c", "d"], [("a", "b"), ("b", "c"), ("c", "d"), ("a", "d")])

    points = layout.edge_points[("a", "d")]
    assert len(points) == 4  # start, two bends (layers 1 and 2), end
    assert [p[0] for p in points] == sorted(p[0] for p in points)


def test_barycentric_ordering_removes_avoidable_crossings():
    # Listed so that the naive order crosses every edge: a1->b2, a2->b1.
    nodes = ["a1", "a2", "b1", "b2", "c1", "c2"]
    edges = [("a1", "b2"), ("a2", "b1"), ("b2", "c2"), ("b1", "c1")]
    naive = count_crossings(["a1", "a2"], ["b1", "b2"], edges[:2])

    layout = layered_layout(nodes, edges)

    assert naive == 1
    assert layout.crossings == 0


def test_cycles_are_drawn_without_looping_forever():
    layout = layered_layout(["a", "b", "c"], [("a", "b"), ("b", "c"), ("c", "a")])

    assert back_edges(["a", "b", "c"], [("a", "b"), ("b", "c"), ("c", "a")]) == {("c", "a")}
    assert set(layout.edge_points) == {("a", "b"), ("b", "c"), ("c", "a")}
    start, end = layout.edge_points[("c", "a")][0], layout.edge_points[("c", "a")][-1]
    # Laid out as a -> c, drawn from c's left side back to a's right side: the arrow still points at a.
    assert start[0] == layout.positions["c"][0] - LayoutSettings().node_width / 2
    assert end[0] == layout.positions["a"][0] + LayoutSettings().node_width / 2


def test_unknown_ends_self_loops_and_repeats_are_dropped():
    layout = layered_layout(["a", "b"], [("a", "b"), ("a", "b"), ("a", "a"), ("a", "ghost")])

    assert set(layout.edge_points) == {("a", "b")}


def test_five_hundred_nodes_are_laid_out_quickly_without_overlaps():
    settings = LayoutSettings()
    ids, edges = random_dag(500)

    started = time.perf_counter()
    layout = layered_layout(ids, edges, settings)
    elapsed = time.perf_counter() - started

    assert elapsed < 10  # ~0.3 s alone; generous for a shared machine
    assert set(layout.positions) == set(ids)
    assert_no_overlaps(layout, settings)
    for source, target in edges:
        assert layout.layer_of[source] < layout.layer_of[target]


def test_ordering_does_better_than_the_input_order():
    ids, edges = random_dag(200, seed=3)
    settings = LayoutSettings(sweeps=0)

    unordered = layered_layout(ids, edges, settings)
    ordered = layered_layout(ids, edges)

    assert ordered.crossings < unordered.crossings / 2


def chain_and_fan(nodes: int) -> tuple[list[str], list[tuple[str, str]]]:
    """A chain, plus an edge from its first node to every other: each fan edge spans all layers before it."""
    ids = [f"n{i}" for i in range(nodes)]
    return ids, list(itertools.pairwise(ids)) + [(ids[0], node) for node in ids[2:]]


def test_edges_crossing_many_layers_are_drawn_straight_not_through_a_dummy_per_layer():
    settings = LayoutSettings(max_edge_span=3)
    ids, edges = chain_and_fan(8)

    layout = layered_layout(ids, edges, settings)

    assert len(layout.edge_points[("n0", "n4")]) == 5  # crosses 3 layers: bends through each
    assert len(layout.edge_points[("n0", "n7")]) == 2  # crosses 6: from end to end
    assert set(layout.edge_points) == set(edges)


def test_a_chain_with_a_fan_from_its_first_node_costs_no_quadratic_work():
    ids, edges = chain_and_fan(400)  # the most nodes a drawing holds (graph_reduce.MAX_DRAWN_NODES)

    started = time.perf_counter()
    layout = layered_layout(ids, edges)
    elapsed = time.perf_counter() - started

    assert elapsed < 5  # ~0.1 s alone; it was 80,000 dummy nodes
    assert set(layout.edge_points) == set(edges)
    bends = sum(len(points) - 2 for points in layout.edge_points.values())
    assert bends <= LayoutSettings().max_dummies


def test_dummy_nodes_never_take_a_nodes_id():
    ids = ["\x000", "a", "b", "c"]  # "\0" + a number is how dummies are named

    layout = layered_layout(ids, [("a", "b"), ("b", "c"), ("a", "c"), ("c", "\x000")])

    assert set(layout.positions) == set(ids)
    assert len(layout.edge_points[("a", "c")]) == 3
