"""Which part of a remote run's graph is drawn: all of it when small, what needs attention when large.

A platform may return tens of thousands of nodes, and the api-server draws the tab on request. Above
``MAX_DRAWN_NODES`` the drawing keeps the nodes that need attention (failed, running, suspended) first, then
their direct neighbours, then the others in the platform's order until the cap; the rest are counted by
state and the page says so. Every step here is linear in the graph's size.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from airflow_provider_flowinst.models import FlowState

MAX_DRAWN_NODES = 400
MAX_DRAWN_EDGES = 1200
#: Drawn first in a reduced graph, in this order, with their neighbours.
ATTENTION_STATES = (FlowState.FAILED, FlowState.RUNNING, FlowState.SUSPENDED)


def node_state(value: Any) -> FlowState:
    try:
        return FlowState(str(value))
    except (ValueError, TypeError):
        return FlowState.UNKNOWN


@dataclass
class GraphView:
    """The nodes (each a mapping with an ``id``) and edges drawn, and what was left out."""

    nodes: list[Mapping[str, Any]]
    edges: list[tuple[str, str]]
    total_nodes: int
    total_edges: int
    hidden_by_state: dict[FlowState, int] = field(default_factory=dict)

    @property
    def hidden_nodes(self) -> int:
        return self.total_nodes - len(self.nodes)

    @property
    def hidden_edges(self) -> int:
        return self.total_edges - len(self.edges)

    @property
    def reduced(self) -> bool:
        return self.hidden_nodes > 0 or self.hidden_edges > 0

    def summary(self) -> str:
        """What the drawing leaves out, in words ("" when it shows everything)."""
        if not self.reduced:
            return ""
        parts = [f"Drawn: {len(self.nodes):,} of {self.total_nodes:,} nodes"]
        if self.hidden_nodes:
            parts[0] += " (failed, running and suspended ones and their neighbours first)"
            counts = ", ".join(f"{count:,} {state.value}" for state, count in self.hidden_by_state.items() if count)
            parts.append(f"not drawn: {counts}")
        if self.hidden_edges:
            parts.append(f"{self.hidden_edges:,} of {self.total_edges:,} edges not drawn")
        return "; ".join(parts) + "."


def _listed(value: Any, key: str) -> list[Any]:
    items = value.get(key) if isinstance(value, Mapping) else None
    return items if isinstance(items, list) else []


def graph_view(graph: Any, max_nodes: int = MAX_DRAWN_NODES, max_edges: int = MAX_DRAWN_EDGES) -> GraphView:
    """The part of ``graph`` (an instance dict's ``graph``: ``nodes`` and ``edges`` lists) to draw."""
    nodes: dict[str, Mapping[str, Any]] = {}
    for node in _listed(graph, "nodes"):
        if isinstance(node, Mapping) and node.get("id") is not None:
            nodes.setdefault(str(node["id"]), node)
    edges: dict[tuple[str, str], None] = {}
    for edge in _listed(graph, "edges"):
        if isinstance(edge, Mapping) and edge.get("source") is not None and edge.get("target") is not None:
            source, target = str(edge["source"]), str(edge["target"])
            if source != target and source in nodes and target in nodes:
                edges.setdefault((source, target), None)

    if len(nodes) <= max_nodes:
        drawn = list(nodes)
        seeds: set[str] = set()
    else:
        drawn, seeds = _choose(nodes, edges, max_nodes)
    kept = set(drawn)
    inside = [edge for edge in edges if edge[0] in kept and edge[1] in kept]
    # Edges at a node needing attention first, then the others, in the platform's order.
    inside.sort(key=lambda edge: not (edge[0] in seeds or edge[1] in seeds))
    hidden = Counter(node_state(node.get("state")) for node_id, node in nodes.items() if node_id not in kept)
    return GraphView(
        nodes=[nodes[node_id] for node_id in drawn],
        edges=inside[:max_edges],
        total_nodes=len(nodes),
        total_edges=len(edges),
        hidden_by_state={state: hidden[state] for state in FlowState if hidden[state]},
    )


def _choose(
    nodes: Mapping[str, Mapping[str, Any]], edges: Mapping[tuple[str, str], None], cap: int
) -> tuple[list[str], set[str]]:
    """Up to ``cap`` node ids: those needing attention, their neighbours, then the rest in order."""
    by_state: dict[FlowState, list[str]] = defaultdict(list)
    for node_id, node in nodes.items():
        by_state[node_state(node.get("state"))].append(node_id)
    seeds = [node_id for state in ATTENTION_STATES for node_id in by_state[state]][:cap]
    seed_set = set(seeds)
    neighbours: dict[str, list[str]] = defaultdict(list)
    for source, target in edges:
        if source in seed_set:
            neighbours[source].append(target)
        if target in seed_set:
            neighbours[target].append(source)
    chosen: dict[str, None] = dict.fromkeys(seeds)
    for seed in seeds:
        for other in neighbours[seed]:
            if len(chosen) >= cap:
                break
            chosen.setdefault(other, None)
    for node_id in nodes:
        if len(chosen) >= cap:
            break
        chosen.setdefault(node_id, None)
    return list(chosen), seed_set
