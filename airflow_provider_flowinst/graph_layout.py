"""A layered (Sugiyama-style) layout of a remote run's graph, left to right as Airflow draws DAGs.

Why our own: the graphs are small to medium (up to several hundred nodes), drawn on the api-server for
every page view, and the provider should not pull in Graphviz (a system binary) or a large layout
library for it. The classic four steps are enough and run in well under a second for 500 nodes:

1. cycles are broken by reversing the back edges a depth-first search finds (drawn the right way round);
2. longest-path layering: a node sits one layer right of its furthest upstream node;
3. edges spanning several layers get a dummy node per layer crossed, so they bend around nodes; an edge
   crossing more than ``max_edge_span`` layers, or past ``max_dummies`` in all, is drawn straight from end
   to end instead (a fan from a first node to every other one would otherwise cost N**2/2 dummies);
4. barycentric ordering: sweeps down and up the layers, each node moved to the mean position of its
   neighbours in the layer just swept, keeping the order with the fewest crossings seen;

then each node's vertical position is pulled towards its neighbours' while keeping a minimum gap.
"""

from __future__ import annotations

import bisect
import itertools
from collections import defaultdict
from collections.abc import Iterable, Sequence
from collections.abc import Set as AbstractSet
from dataclasses import dataclass, field

Point = tuple[float, float]


@dataclass(frozen=True)
class LayoutSettings:
    node_width: float = 200.0
    node_height: float = 40.0
    layer_gap: float = 80.0  # horizontal space between two layers
    node_gap: float = 16.0  # vertical space between two nodes of a layer
    dummy_height: float = 8.0  # the slot an edge passing through a layer takes
    sweeps: int = 12
    margin: float = 20.0
    max_edge_span: int = 8  # layers an edge may cross through dummy nodes; longer ones are drawn straight
    max_dummies: int = 4000  # dummy nodes in all, whatever the graph


@dataclass
class Layout:
    """Node centres, each edge's points from its source's right side to its target's left side, and size."""

    positions: dict[str, Point] = field(default_factory=dict)
    layer_of: dict[str, int] = field(default_factory=dict)
    edge_points: dict[tuple[str, str], list[Point]] = field(default_factory=dict)
    width: float = 0.0
    height: float = 0.0
    crossings: int = 0


def clean_edges(node_ids: Sequence[str], edges: Iterable[tuple[str, str]]) -> list[tuple[str, str]]:
    """Edges between known nodes, without self-loops or repeats, in their first order."""
    known = set(node_ids)
    seen: dict[tuple[str, str], None] = {}
    for source, target in edges:
        if source in known and target in known and source != target:
            seen.setdefault((source, target), None)
    return list(seen)


def back_edges(node_ids: Sequence[str], edges: Sequence[tuple[str, str]]) -> set[tuple[str, str]]:
    """Edges that close a cycle, found by an iterative depth-first search in the nodes' order."""
    children: dict[str, list[str]] = defaultdict(list)
    for source, target in edges:
        children[source].append(target)
    state: dict[str, int] = {}  # 1 on the stack, 2 done
    found: set[tuple[str, str]] = set()
    for root in node_ids:
        if root in state:
            continue
        state[root] = 1
        stack = [(root, iter(children[root]))]
        while stack:
            node, pending = stack[-1]
            child = next(pending, None)
            if child is None:
                state[node] = 2
                stack.pop()
            elif state.get(child) == 1:
                found.add((node, child))
            elif child not in state:
                state[child] = 1
                stack.append((child, iter(children[child])))
    return found


def longest_path_layers(node_ids: Sequence[str], edges: Sequence[tuple[str, str]]) -> dict[str, int]:
    """Layer 0 for nodes without upstream; otherwise one more than the furthest upstream node (edges acyclic)."""
    indegree = dict.fromkeys(node_ids, 0)
    children: dict[str, list[str]] = defaultdict(list)
    for source, target in edges:
        children[source].append(target)
        indegree[target] += 1
    layer = dict.fromkeys(node_ids, 0)
    ready = [node for node in node_ids if indegree[node] == 0]
    while ready:
        node = ready.pop()
        for child in children[node]:
            layer[child] = max(layer[child], layer[node] + 1)
            indegree[child] -= 1
            if indegree[child] == 0:
                ready.append(child)
    return layer


def count_crossings(upper: Sequence[str], lower: Sequence[str], edges: Sequence[tuple[str, str]]) -> int:
    """Crossings between two adjacent layers: inversions of the lower ends once sorted by upper end."""
    top = {node: index for index, node in enumerate(upper)}
    bottom = {node: index for index, node in enumerate(lower)}
    pairs = sorted((top[s], bottom[t]) for s, t in edges if s in top and t in bottom)
    seen: list[int] = []
    crossings = 0
    for _, position in pairs:
        # Ends already placed to the right of this one (their upper end is left of, or at, this one's).
        crossings += len(seen) - bisect.bisect_right(seen, position)
        bisect.insort(seen, position)
    return crossings


def layered_layout(
    node_ids: Sequence[str], edges: Iterable[tuple[str, str]], settings: LayoutSettings | None = None
) -> Layout:
    """Lay out ``node_ids`` with ``edges`` (source upstream of target); see the module's docstring."""
    settings = settings or LayoutSettings()
    node_ids = list(dict.fromkeys(node_ids))
    graph_edges = clean_edges(node_ids, edges)
    reversed_edges = back_edges(node_ids, graph_edges)
    acyclic = [(t, s) if (s, t) in reversed_edges else (s, t) for s, t in graph_edges]
    acyclic = list(dict.fromkeys(acyclic))
    layer_of = longest_path_layers(node_ids, acyclic)

    # Long edges become chains through dummy nodes, one per layer crossed, within bounds (see the docstring).
    chains: dict[tuple[str, str], list[str]] = {}
    short_edges: list[tuple[str, str]] = []
    dummies: dict[str, None] = {}  # in the order made: their first order in each layer
    known = set(node_ids)
    for source, target in acyclic:
        crossed = range(layer_of[source] + 1, layer_of[target])
        chain = [source]
        if len(crossed) <= settings.max_edge_span and len(dummies) + len(crossed) <= settings.max_dummies:
            for step in crossed:
                dummy = f"\0{len(dummies)}"  # short whatever the ids' length; never a node's id
                while dummy in known:
                    dummy = "\0" + dummy
                dummies[dummy] = None
                layer_of[dummy] = step
                chain.append(dummy)
            short_edges += list(itertools.pairwise([*chain, target]))
        chain.append(target)
        chains[(source, target)] = chain

    layers: list[list[str]] = [[] for _ in range(max(layer_of.values(), default=-1) + 1)]
    for node in [*node_ids, *dummies]:
        layers[layer_of[node]].append(node)
    upstream: dict[str, list[str]] = defaultdict(list)
    downstream: dict[str, list[str]] = defaultdict(list)
    for source, target in short_edges:
        downstream[source].append(target)
        upstream[target].append(source)

    best, best_crossings = _order(layers, upstream, downstream, short_edges, settings.sweeps)
    y = _place(best, upstream, downstream, dummies.keys(), settings)

    layout = Layout(layer_of={node: layer_of[node] for node in node_ids}, crossings=best_crossings)
    step_x = settings.node_width + settings.layer_gap
    for index, layer in enumerate(best):
        for node in layer:
            layout.positions[node] = (settings.margin + settings.node_width / 2 + index * step_x, y[node])
    half = settings.node_width / 2
    for (source, target), chain in chains.items():
        points = [layout.positions[node] for node in chain]
        (sx, sy), (tx, ty) = points[0], points[-1]
        points[0], points[-1] = (sx + half, sy), (tx - half, ty)
        original = (target, source) if (target, source) in reversed_edges else (source, target)
        layout.edge_points[original] = points if original == (source, target) else points[::-1]
    for node in dummies:
        layout.positions.pop(node)
    layout.width = settings.margin * 2 + max(len(best), 1) * step_x - settings.layer_gap
    bottom = max((y[node] for node in y), default=0.0)
    layout.height = bottom + settings.node_height / 2 + settings.margin
    return layout


def _order(
    layers: list[list[str]],
    upstream: dict[str, list[str]],
    downstream: dict[str, list[str]],
    edges: Sequence[tuple[str, str]],
    sweeps: int,
) -> tuple[list[list[str]], int]:
    """Barycentric sweeps; the ordering with the fewest crossings seen."""
    by_pair: dict[int, list[tuple[str, str]]] = defaultdict(list)
    layer_index = {node: index for index, layer in enumerate(layers) for node in layer}
    for source, target in edges:
        by_pair[layer_index[source]].append((source, target))

    def crossings(order: list[list[str]]) -> int:
        return sum(count_crossings(order[i], order[i + 1], by_pair[i]) for i in range(len(order) - 1))

    current = [list(layer) for layer in layers]
    best, best_count = [list(layer) for layer in current], crossings(current)
    for sweep in range(sweeps):
        if best_count == 0:
            break
        downward = sweep % 2 == 0
        indices = range(1, len(current)) if downward else range(len(current) - 2, -1, -1)
        for index in indices:
            fixed = current[index - 1] if downward else current[index + 1]
            neighbours = upstream if downward else downstream
            position = {node: i for i, node in enumerate(fixed)}
            own = {node: i for i, node in enumerate(current[index])}

            def barycentre(
                node: str,
                position: dict[str, int] = position,
                own: dict[str, int] = own,
                neighbours: dict[str, list[str]] = neighbours,
            ) -> float:
                placed = [position[n] for n in neighbours[node] if n in position]
                return sum(placed) / len(placed) if placed else float(own[node])

            current[index].sort(key=lambda node: (barycentre(node), own[node]))
        count = crossings(current)
        if count < best_count:
            best, best_count = [list(layer) for layer in current], count
    return best, best_count


def _place(
    layers: list[list[str]],
    upstream: dict[str, list[str]],
    downstream: dict[str, list[str]],
    dummies: AbstractSet[str],
    settings: LayoutSettings,
) -> dict[str, float]:
    """Vertical centres: stacked in order, then pulled towards their neighbours without overlapping."""

    def size(node: str) -> float:
        return settings.dummy_height if node in dummies else settings.node_height

    def gap(a: str, b: str) -> float:
        return (size(a) + size(b)) / 2 + settings.node_gap

    y: dict[str, float] = {}
    for layer in layers:
        top = settings.margin
        for node in layer:
            y[node] = top + size(node) / 2
            top += size(node) + settings.node_gap
    for sweep in range(4):
        for index in range(len(layers)) if sweep % 2 == 0 else range(len(layers) - 1, -1, -1):
            layer = layers[index]
            wanted = []
            for node in layer:
                neighbours = upstream[node] + downstream[node]
                wanted.append(sum(y[n] for n in neighbours) / len(neighbours) if neighbours else y[node])
            # Keep the order and the gaps: push down from the top, then back up from the bottom.
            placed = list(wanted)
            for i in range(1, len(layer)):
                placed[i] = max(placed[i], placed[i - 1] + gap(layer[i - 1], layer[i]))
            for i in range(len(layer) - 2, -1, -1):
                placed[i] = min(placed[i], placed[i + 1] - gap(layer[i], layer[i + 1]))
            floor = settings.margin + size(layer[0]) / 2 if layer else 0.0
            shift = max(0.0, floor - placed[0]) if layer else 0.0
            for node, value in zip(layer, placed, strict=True):
                y[node] = value + shift
    low = min((y[node] - size(node) / 2 for node in y), default=settings.margin)
    return {node: value - low + settings.margin for node, value in y.items()}
