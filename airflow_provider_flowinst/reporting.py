"""Readable text for an instance's XCom dict: its state, times and graph as a tree."""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from collections.abc import Iterable, Mapping
from typing import Any


def render_instance(instance: Mapping[str, Any]) -> str:
    """``platform instance: state (raw)`` then the graph, each node under the nodes it depends on."""
    lines = [
        f"{instance['platform']} {instance['instance_id']} ({instance.get('name') or '-'}): "
        f"{instance['state']} [{instance.get('raw_state')}]",
        f"  started {instance.get('started_at') or '-'}, ended {instance.get('ended_at') or '-'}{_duration(instance)}",
    ]
    graph = instance.get("graph")
    if not graph:
        lines.append("  (no graph)")
        return "\n".join(lines)
    nodes = {node["id"]: node for node in graph["nodes"]}
    children: dict[str, list[str]] = defaultdict(list)
    has_parent = set()
    for edge in graph["edges"]:
        children[edge["source"]].append(edge["target"])
        has_parent.add(edge["target"])
    seen: set[str] = set()

    def walk(node_id: str, depth: int) -> None:
        node = nodes.get(node_id, {"id": node_id, "kind": "?", "name": None, "state": "unknown", "raw_state": None})
        marker = " (see above)" if node_id in seen else ""
        lines.append(
            f"  {'  ' * depth}└─ [{node['kind']}] {node.get('name') or node_id}: {node['state']}"
            f" [{node.get('raw_state')}]{marker}"
        )
        if node_id in seen:
            return
        seen.add(node_id)
        for child in children.get(node_id, []):
            walk(child, depth + 1)

    for root in [node_id for node_id in nodes if node_id not in has_parent] or list(nodes):
        walk(root, 0)
    return "\n".join(lines)


def render_report(instances: Iterable[Mapping[str, Any]]) -> str:
    """A combined report: a summary line per instance, then each instance with its graph."""
    instances = list(instances)
    width = max((len(instance["platform"]) for instance in instances), default=0)
    summary = [
        f"  {instance['platform']:<{width}}  {instance['instance_id']:<40}  {instance['state']:<9}"
        f"  {_seconds(instance) if _seconds(instance) is not None else '-':>8}"
        for instance in instances
    ]
    header = f"  {'platform':<{width}}  {'instance':<40}  {'state':<9}  {'duration':>8}"
    return "\n".join(
        [f"{len(instances)} remote runs", header, *summary, "", *(render_instance(i) + "\n" for i in instances)]
    )


def _seconds(instance: Mapping[str, Any]) -> str | None:
    started, ended = instance.get("started_at"), instance.get("ended_at")
    if not started or not ended:
        return None
    return f"{(dt.datetime.fromisoformat(ended) - dt.datetime.fromisoformat(started)).total_seconds():g} s"


def _duration(instance: Mapping[str, Any]) -> str:
    seconds = _seconds(instance)
    return f" ({seconds})" if seconds else ""
