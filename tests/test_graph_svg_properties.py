"""``render_svg`` over generated graphs and names: always valid XML, bounded in size and time.

Graphs are built from any text at all as ids and names (surrogates, controls, bidi overrides, very long
strings), any of the states or none, edges between known and unknown nodes, cycles, repeats and self-loops,
and the hostile shapes (a chain with a fan from its first node, one wide layer) at sizes past the drawing's
cap. ``FLOWINST_FUZZ_EXAMPLES=2000 pytest tests/test_graph_svg_properties.py`` explores further.
"""

from __future__ import annotations

import os
import time
from typing import Any

import defusedxml.ElementTree as ET
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from airflow_provider_flowinst.graph_reduce import MAX_DRAWN_EDGES, MAX_DRAWN_NODES
from airflow_provider_flowinst.graph_svg import render_svg
from airflow_provider_flowinst.models import FlowState

SVG = "{http://www.w3.org/2000/svg}"
EXAMPLES = int(os.environ.get("FLOWINST_FUZZ_EXAMPLES", "150"))
explore = settings(
    max_examples=EXAMPLES,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
#: Bounds on any drawing: its time alone (generous for a loaded 2-core machine), bytes and pixels.
SECONDS = 5.0
MAX_BYTES = 2_000_000
MAX_PIXELS = 200_000

HOSTILE = ["\ud800", "\udfff", "\x00", "\x1b", "\x0b", "\ufffe", "\uffff", "\u202e", "\u2066", "]]>", "<&\"'"]
texts = st.one_of(
    st.text(max_size=40),
    st.text(st.characters(codec=None, min_codepoint=0, max_codepoint=0x10FFFF), max_size=40),
    st.sampled_from(HOSTILE),
    st.builds(lambda c, n: c * n, st.sampled_from(["x", "\u202e", "é"]), st.integers(1_000, 100_000)),
)
remote_values = st.one_of(st.none(), texts, st.integers(), st.floats(allow_nan=True), st.booleans())
STATE_MIX = ["success"] * 40 + [state.value for state in FlowState]
states = st.one_of(st.sampled_from([state.value for state in FlowState]), remote_values)


@st.composite
def graphs(draw: Any) -> dict[str, Any]:
    ids = draw(st.lists(texts, max_size=30, unique=True))
    nodes = [
        {
            "id": node_id,
            "name": draw(remote_values),
            "state": draw(states),
            "kind": draw(remote_values),
            "raw_state": draw(remote_values),
            "started_at": draw(remote_values),
            "url": draw(remote_values),
        }
        for node_id in ids
    ]
    ends = st.one_of(st.sampled_from(ids), texts) if ids else texts
    edges = draw(st.lists(st.fixed_dictionaries({"source": ends, "target": ends}), max_size=60))
    return {"nodes": nodes, "edges": edges}


@st.composite
def large_shapes(draw: Any) -> dict[str, Any]:
    size = draw(st.integers(MAX_DRAWN_NODES + 1, 3 * MAX_DRAWN_NODES))
    shape = draw(st.sampled_from(["chain_and_fan", "wide", "random"]))
    rnd = draw(st.randoms(use_true_random=False))
    ids = [f"n{i}" for i in range(size)]
    if shape == "chain_and_fan":
        pairs = [(ids[i], ids[i + 1]) for i in range(size - 1)] + [(ids[0], node) for node in ids[2:]]
    elif shape == "wide":
        pairs = [(ids[0], node) for node in ids[1:]] + [(node, ids[-1]) for node in ids[1:-1]]
    else:
        pairs = [(ids[rnd.randrange(i)], ids[i]) for i in range(1, size) for _ in range(rnd.randint(1, 3))]
    # A few nodes need attention, most do not: as in a real large run.
    nodes = [{"id": node_id, "name": node_id, "state": rnd.choice(STATE_MIX)} for node_id in ids]
    return {"nodes": nodes, "edges": [{"source": s, "target": t} for s, t in pairs]}


def instance(graph: dict[str, Any], name: Any, instance_id: Any, url: Any) -> dict[str, Any]:
    return {
        "platform": "enos_batch",
        "instance_id": instance_id,
        "name": name,
        "state": "running",
        "raw_state": name,
        "started_at": name,
        "url": url,
        "graph": graph,
    }


def check(svg: str, elapsed: float) -> None:
    assert elapsed < SECONDS
    assert len(svg.encode("utf-8")) < MAX_BYTES  # encodable: no lone surrogate survived
    root = ET.fromstring(svg)  # well-formed XML 1.0
    assert root.tag == f"{SVG}svg"
    assert float(root.get("width")) < MAX_PIXELS and float(root.get("height")) < MAX_PIXELS
    nodes = [g for g in root.iter(f"{SVG}g") if g.get("class") == "node"]
    edges = [p for p in root.iter(f"{SVG}path") if p.get("class") == "edge"]
    assert len(nodes) <= MAX_DRAWN_NODES and len(edges) <= MAX_DRAWN_EDGES
    assert "\u202e" not in svg and "<script" not in svg


@explore
@given(graph=graphs(), name=remote_values, instance_id=remote_values, url=remote_values)
def test_any_graph_and_names_give_a_valid_bounded_svg(graph, name, instance_id, url):
    started = time.perf_counter()
    svg = render_svg(instance(graph, name, instance_id, url))
    check(svg, time.perf_counter() - started)


@settings(explore, max_examples=max(EXAMPLES // 15, 5))
@given(graph=large_shapes())
def test_large_and_hostile_shapes_are_drawn_reduced_within_bounds(graph):
    started = time.perf_counter()
    svg = render_svg(instance(graph, "big", "1", None))
    check(svg, time.perf_counter() - started)
    root = ET.fromstring(svg)
    assert [t for t in root.iter(f"{SVG}text") if t.get("class") == "reduced"]  # says what it leaves out
