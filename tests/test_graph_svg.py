"""The SVG of a run: every node and edge with its state, Airflow's colours, hover text, escaped and safe."""

from __future__ import annotations

import json
from pathlib import Path

import defusedxml.ElementTree as ET
from airflow.utils.state import State

from airflow_provider_flowinst.graph_svg import render_svg, state_colours
from airflow_provider_flowinst.models import FlowState
from airflow_provider_flowinst.platforms.enos_batch import EnOSBatchClient, EnOSBatchSettings

SVG = "{http://www.w3.org/2000/svg}"
FIXTURE = Path(__file__).parent / "fixtures" / "enos_get_flow_instance_v20.json"


def fixture_instance() -> dict:
    record = json.loads(FIXTURE.read_text())["data"]
    client = EnOSBatchClient(EnOSBatchSettings(base_url="https://gw.example.com", org_id="o", user_id="u"))
    return client.to_flow_instance(record).to_dict()


def instance_with(nodes, edges=(), **fields) -> dict:
    return {
        "platform": "enos_batch",
        "instance_id": "1-20240101000000",
        "name": "demo",
        "state": "failed",
        "raw_state": "FAIL",
        "started_at": "2024-01-01T00:00:00+00:00",
        "ended_at": "2024-01-01T00:05:00+00:00",
        "url": None,
        "graph": {"nodes": list(nodes), "edges": list(edges)},
        **fields,
    }


def node(node_id: str, state: str = "success", name: str | None = None, **extra) -> dict:
    return {"id": node_id, "name": name or node_id, "kind": "task", "state": state, "raw_state": state.upper(), **extra}


def test_every_node_and_edge_of_a_real_record_is_drawn_with_its_state():
    instance = fixture_instance()

    root = ET.fromstring(render_svg(instance))

    groups = [g for g in root.iter(f"{SVG}g") if g.get("class") == "node"]
    assert {g.get("data-node-id"): g.get("data-state") for g in groups} == {
        n["id"]: n["state"] for n in instance["graph"]["nodes"]
    }
    paths = [p for p in root.iter(f"{SVG}path") if p.get("class") == "edge"]
    assert {(p.get("data-source"), p.get("data-target")) for p in paths} == {
        (e["source"], e["target"]) for e in instance["graph"]["edges"]
    }


def test_nodes_take_airflows_own_state_colours():
    instance = instance_with([node("a", "success"), node("b", "failed"), node("c", "running")])

    root = ET.fromstring(render_svg(instance))

    fills = {
        g.get("data-node-id"): g.find(f"{SVG}rect").get("fill")
        for g in root.iter(f"{SVG}g")
        if g.get("class") == "node"
    }
    assert fills == {"a": State.color("success"), "b": State.color("failed"), "c": State.color("running")}
    assert set(state_colours()) == set(FlowState)


def test_hover_text_names_the_node_its_states_and_times():
    instance = instance_with([node("a", "failed", name="load_mart", started_at="2024-01-01T00:01:00+00:00")])

    root = ET.fromstring(render_svg(instance))

    title = next(g for g in root.iter(f"{SVG}g") if g.get("class") == "node").find(f"{SVG}title").text
    assert title.splitlines()[0] == "load_mart"
    assert "state: failed (platform state FAILED)" in title
    assert "started: 2024-01-01T00:01:00+00:00" in title


def test_names_are_escaped_and_only_http_links_are_drawn():
    instance = instance_with(
        [node("a", name='<script>alert("x")</script>', url="javascript:alert(1)")],
        url="https://console.example.com/i/1",
    )

    svg = render_svg(instance)

    assert "<script>" not in svg
    assert "javascript:" not in svg
    links = [a.get("href") for a in ET.fromstring(svg).iter(f"{SVG}a")]
    assert links == ["https://console.example.com/i/1"]


def test_the_platforms_own_record_is_never_drawn():
    instance = instance_with([node("a")], details={"doAs": "secret_service_account"})

    assert "secret_service_account" not in render_svg(instance)


def test_a_run_without_graph_says_so():
    svg = render_svg(instance_with([]) | {"graph": None})

    assert "This run has no graph." in svg
    ET.fromstring(svg)


def test_a_graph_of_several_hundred_nodes_keeps_readable_labels():
    nodes = [node(f"n{i}", name=f"a_rather_long_task_name_number_{i}") for i in range(300)]
    edges = [{"source": f"n{i // 3}", "target": f"n{i}"} for i in range(1, 300)]

    root = ET.fromstring(render_svg(instance_with(nodes, edges)))

    assert float(root.get("width")) >= 720  # drawn at full size (the page scrolls), never shrunk to fit
    labels = [t.text for t in root.iter(f"{SVG}text") if t.text and t.text.startswith("a_rather")]
    assert len(labels) == 300
    assert all(len(label) <= 26 for label in labels)


HOSTILE = "\ud800\x00\x1b\x0b\ufffe\u202e"  # lone surrogate, NUL, ESC, VT, a non-character, a bidi override


def test_hostile_characters_in_any_remote_field_leave_a_valid_document():
    hostile_node = node(f"id{HOSTILE}", name=f"name{HOSTILE}", kind=HOSTILE, raw_state=HOSTILE, started_at=HOSTILE)
    instance = instance_with(
        [hostile_node, node("b")],
        [{"source": f"id{HOSTILE}", "target": "b"}],
        instance_id=f"1{HOSTILE}",
        name=HOSTILE,
        raw_state=HOSTILE,
        url=f"https://console.example.com/{HOSTILE}",
    )

    svg = render_svg(instance)

    svg.encode("utf-8")  # a lone surrogate could not be
    root = ET.fromstring(svg)
    title = next(g for g in root.iter(f"{SVG}g") if g.get("class") == "node").find(f"{SVG}title").text
    assert title.splitlines()[0] == "name\ufffd\ufffd\ufffd\ufffd\ufffd\ufffd"
    assert "\u202e" not in svg
    assert not list(root.iter(f"{SVG}a"))  # a link that would be drawn altered is not drawn


def test_a_100_kb_name_is_cut_and_the_drawing_stays_narrow():
    instance = instance_with([node("a" * 100_000, name="b" * 100_000)], name="c" * 100_000)

    svg = render_svg(instance)

    root = ET.fromstring(svg)
    assert float(root.get("width")) < 3000  # was 2.7 million pixels
    assert len(svg) < 5_000


def test_a_large_graph_is_drawn_reduced_and_says_so():
    nodes = [node(f"n{i}", "success") for i in range(20_000)]
    nodes[12_345] = node("n12345", "failed")
    edges = [{"source": f"n{i}", "target": f"n{i + 1}"} for i in range(19_999)]

    svg = render_svg(instance_with(nodes, edges))

    root = ET.fromstring(svg)
    drawn = {g.get("data-node-id") for g in root.iter(f"{SVG}g") if g.get("class") == "node"}
    assert {"n12344", "n12345", "n12346"} <= drawn
    assert len(drawn) == 400
    summary = next(t.text for t in root.iter(f"{SVG}text") if t.get("class") == "reduced")
    assert summary.startswith("Drawn: 400 of 20,000 nodes")
    assert "not drawn: 19,600 success" in summary


def test_the_svg_carries_no_inline_style():
    # The plugin's Content-Security-Policy allows no inline style in the SVG served alone.
    assert "style=" not in render_svg(fixture_instance())
