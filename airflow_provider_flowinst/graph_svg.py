"""A remote run's graph as a standalone SVG: nodes in Airflow's state colours, edges upstream to downstream.

Everything is drawn on the server from the instance's XCom dict (no script: the task instance tab is a
sandboxed frame). Each node carries its id, state and kind as ``data-`` attributes and its name, state
and times in a ``<title>`` (the browser's hover text). Only the dict's graph, names, states, times and
console link are drawn; its ``details`` (the platform's own record) never are.
"""

from __future__ import annotations

import html
from collections.abc import Mapping
from typing import Any

from airflow_provider_flowinst.graph_layout import LayoutSettings, Point, layered_layout
from airflow_provider_flowinst.models import FlowState

#: Which Airflow task state colour each remote state borrows (Airflow has no "cancelled" or "suspended").
AIRFLOW_STATE_FOR: Mapping[FlowState, str | None] = {
    FlowState.QUEUED: "queued",
    FlowState.RUNNING: "running",
    FlowState.SUSPENDED: "up_for_reschedule",
    FlowState.SUCCESS: "success",
    FlowState.FAILED: "failed",
    FlowState.CANCELLED: "upstream_failed",
    FlowState.SKIPPED: "skipped",
    FlowState.UNKNOWN: None,  # Airflow's "no status"
}
LABEL_CHARS = 26
HEADER_HEIGHT = 112.0
LEGEND_STEP = 92.0
FONT = "font-family:Inter,Helvetica,Arial,sans-serif"


def state_colours() -> dict[FlowState, tuple[str, str]]:
    """(fill, text) per remote state, from Airflow's own state colours (``State.state_color``, which
    ``STATE_COLORS`` in airflow_local_settings overrides)."""
    from airflow.utils.state import State, TaskInstanceState

    colours = {}
    for state, airflow_state in AIRFLOW_STATE_FOR.items():
        key = None if airflow_state is None else TaskInstanceState(airflow_state)
        colours[state] = (str(State.color(key)), str(State.color_fg(key)))  # type: ignore[no-untyped-call]
    return colours


def _esc(value: Any) -> str:
    return html.escape("" if value is None else str(value), quote=True)


def safe_link(url: Any) -> str | None:
    """Only http(s) links are drawn: a platform record must not smuggle a ``javascript:`` URL in."""
    text = str(url or "").strip()
    return text if text.lower().startswith(("http://", "https://")) else None


def _label(text: str) -> str:
    return text if len(text) <= LABEL_CHARS else text[: LABEL_CHARS - 1] + "…"


def _state(value: Any) -> FlowState:
    try:
        return FlowState(str(value))
    except ValueError:
        return FlowState.UNKNOWN


def _path(points: list[Point]) -> str:
    """A smooth curve through the points: each hop a cubic Bézier with horizontal tangents."""
    (x, y), rest = points[0], points[1:]
    parts = [f"M{x:.1f},{y:.1f}"]
    for nx, ny in rest:
        middle = (x + nx) / 2
        parts.append(f"C{middle:.1f},{y:.1f} {middle:.1f},{ny:.1f} {nx:.1f},{ny:.1f}")
        x, y = nx, ny
    return " ".join(parts)


def render_svg(instance: Mapping[str, Any], *, settings: LayoutSettings | None = None) -> str:
    """The SVG document of ``instance`` (its XCom dict): header, legend, then the graph."""
    settings = settings or LayoutSettings()
    colours = state_colours()
    graph = instance.get("graph") or {"nodes": [], "edges": []}
    nodes = [node for node in graph.get("nodes", []) if isinstance(node, Mapping) and node.get("id") is not None]
    node_ids = [str(node["id"]) for node in nodes]
    edges = [(str(e["source"]), str(e["target"])) for e in graph.get("edges", []) if isinstance(e, Mapping)]
    layout = layered_layout(node_ids, edges, settings)
    # Wide enough for the legend and the header's lines (about 6.6 px a character at 12 px, 9 px at 16 px).
    title = f"{instance.get('platform')} {instance.get('instance_id')} ({instance.get('name')})"
    width = max(layout.width, 40.0 + LEGEND_STEP * len(FlowState), 40.0 + 9.0 * len(title))
    width = max(width, 140.0 + 6.6 * len(_times_line(instance)))
    height = HEADER_HEIGHT + max(layout.height, 60.0)
    run_state = _state(instance.get("state"))
    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="remote-graph" width="{width:.0f}" height="{height:.0f}"'
        f' viewBox="0 0 {width:.0f} {height:.0f}" data-platform="{_esc(instance.get("platform"))}"'
        f' data-instance-id="{_esc(instance.get("instance_id"))}" data-state="{run_state.value}"'
        f' role="img" aria-label="Remote graph of {_esc(instance.get("instance_id"))}" style="{FONT}">',
        '<defs><marker id="arrow" viewBox="0 0 10 10" refX="10" refY="5" markerWidth="7" markerHeight="7"'
        ' orient="auto-start-reverse"><path d="M0,0 L10,5 L0,10 z" fill="#64748b"/></marker></defs>',
        '<rect width="100%" height="100%" fill="#ffffff"/>',
    ]
    out += _header(instance, run_state, colours, width)
    out.append(f'<g class="graph" transform="translate(0,{HEADER_HEIGHT:.0f})">')
    if not nodes:
        out.append('<text class="empty" x="20" y="30" font-size="14" fill="#475569">This run has no graph.</text>')
    for source, target in edges:
        points = layout.edge_points.get((source, target))
        if points is None:
            continue
        out.append(
            f'<path class="edge" data-source="{_esc(source)}" data-target="{_esc(target)}" d="{_path(points)}"'
            ' fill="none" stroke="#64748b" stroke-width="1.4" marker-end="url(#arrow)"/>'
        )
    for node in nodes:
        out += _node(node, layout.positions[str(node["id"])], colours, settings, instance)
    out += ["</g>", "</svg>"]
    return "\n".join(out)


def _times_line(instance: Mapping[str, Any]) -> str:
    return (
        f"platform state {instance.get('raw_state')} · started {instance.get('started_at') or '-'}"
        f" · ended {instance.get('ended_at') or '-'}"
    )


def _header(
    instance: Mapping[str, Any], run_state: FlowState, colours: Mapping[FlowState, tuple[str, str]], width: float
) -> list[str]:
    fill, text = colours[run_state]
    title = f"{instance.get('platform')} {instance.get('instance_id')}"
    name = instance.get("name")
    out = [
        '<g class="header">',
        f'<text x="20" y="28" font-size="16" font-weight="600" fill="#0f172a">{_esc(title)}'
        f"{' (' + _esc(name) + ')' if name else ''}</text>",
        f'<rect x="20" y="38" width="96" height="20" rx="10" fill="{_esc(fill)}" stroke="#334155" stroke-width="0.5"/>',
        f'<text class="run-state" x="68" y="52" font-size="12" text-anchor="middle" fill="{_esc(text)}">'
        f"{run_state.value}</text>",
        f'<text x="126" y="52" font-size="12" fill="#475569">{_esc(_times_line(instance))}</text>',
    ]
    link = safe_link(instance.get("url"))
    if link:
        out.append(
            f'<a class="console-link" href="{_esc(link)}"><text x="20" y="78" font-size="12" fill="#2563eb"'
            f' text-decoration="underline">Open in the platform console: {_esc(link)}</text></a>'
        )
    out.append(f'<g class="legend" transform="translate(20,{88 if link else 68})">')
    for index, state in enumerate(FlowState):
        fill, _ = colours[state]
        out.append(
            f'<rect x="{index * LEGEND_STEP:.0f}" y="0" width="12" height="12" rx="2" fill="{_esc(fill)}"'
            f' stroke="#334155" stroke-width="0.5"/><text x="{index * LEGEND_STEP + 16:.0f}" y="10" font-size="11"'
            f' fill="#334155">{state.value}</text>'
        )
    out += ["</g>", "</g>"]
    return out


def _node(
    node: Mapping[str, Any],
    centre: Point,
    colours: Mapping[FlowState, tuple[str, str]],
    settings: LayoutSettings,
    instance: Mapping[str, Any],
) -> list[str]:
    state = _state(node.get("state"))
    fill, text = colours[state]
    x, y = centre[0] - settings.node_width / 2, centre[1] - settings.node_height / 2
    name = str(node.get("name") or node["id"])
    started = node.get("started_at") or instance.get("started_at")
    ended = node.get("ended_at") or instance.get("ended_at")
    whose = "" if node.get("started_at") or node.get("ended_at") else "run "
    hover = "\n".join(
        [
            name,
            f"state: {state.value} (platform state {node.get('raw_state')})",
            f"kind: {node.get('kind')} · id: {node['id']}"
            + (f" · instance: {node['instance_id']}" if node.get("instance_id") else ""),
            f"{whose}started: {started or '-'}",
            f"{whose}ended: {ended or '-'}",
        ]
    )
    dash = ' stroke-dasharray="5,3"' if node.get("kind") == "flow" else ""
    shape = (
        f'<g class="node" data-node-id="{_esc(node["id"])}" data-state="{state.value}"'
        f' data-kind="{_esc(node.get("kind"))}"><title>{_esc(hover)}</title>'
        f'<rect x="{x:.1f}" y="{y:.1f}" width="{settings.node_width:.0f}" height="{settings.node_height:.0f}" rx="6"'
        f' fill="{_esc(fill)}" stroke="#1e293b" stroke-width="1"{dash}/>'
        f'<text x="{centre[0]:.1f}" y="{centre[1] + 4:.1f}" font-size="12" text-anchor="middle"'
        f' fill="{_esc(text)}">{_esc(_label(name))}</text></g>'
    )
    link = safe_link(node.get("url"))
    return [f'<a href="{_esc(link)}">{shape}</a>' if link else shape]
