"""A remote run's graph as a standalone SVG: nodes in Airflow's state colours, edges upstream to downstream.

Everything is drawn on the server from the instance's XCom dict (no script: the plugin's
Content-Security-Policy allows none). Each node carries its id, state and kind as ``data-`` attributes
and its name, state and times in a ``<title>`` (the browser's hover text). Only the dict's graph, names,
states, times and console link are drawn; its ``details`` (the platform's own record) never are.

Everything drawn is remote text, so it goes through ``safe_text`` (bounded, only characters XML 1.0 can
carry), and a large graph is drawn reduced (``graph_reduce``): the document stays valid and bounded in size
whatever the platform returns.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from airflow_provider_flowinst.graph_layout import LayoutSettings, Point, layered_layout
from airflow_provider_flowinst.graph_reduce import GraphView, graph_view, node_state
from airflow_provider_flowinst.models import FlowState
from airflow_provider_flowinst.safe_text import bounded, escaped

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
#: Longest remote texts drawn: ids (also in data- attributes), names in hover text, the header's title
#: parts, states and times, and links (a longer link is not drawn: a cut one would lead elsewhere).
ID_CHARS = 200
NAME_CHARS = 300
TITLE_CHARS = 100
SHORT_CHARS = 64
LINK_CHARS = 2000
HEADER_HEIGHT = 112.0
SUMMARY_HEIGHT = 22.0  # the line saying what a reduced drawing leaves out
LEGEND_STEP = 92.0
FONT = "Inter,Helvetica,Arial,sans-serif"  # a presentation attribute: no inline style for the CSP to allow


def state_colours() -> dict[FlowState, tuple[str, str]]:
    """(fill, text) per remote state, from Airflow's own state colours (``State.state_color``, which
    ``STATE_COLORS`` in airflow_local_settings overrides)."""
    from airflow.utils.state import State, TaskInstanceState

    colours = {}
    for state, airflow_state in AIRFLOW_STATE_FOR.items():
        key = None if airflow_state is None else TaskInstanceState(airflow_state)
        colours[state] = (str(State.color(key)), str(State.color_fg(key)))  # type: ignore[no-untyped-call]
    return colours


def _esc(value: Any, limit: int = SHORT_CHARS) -> str:
    return escaped(value, limit)


def safe_link(url: Any) -> str | None:
    """Only http(s) links are drawn: a platform record must not smuggle a ``javascript:`` URL in; nor one
    too long or with characters ``safe_text`` would replace (the link drawn would not be the one given)."""
    if not isinstance(url, str) or len(url) > LINK_CHARS:
        return None
    text = url.strip()
    if bounded(text, LINK_CHARS) != text:
        return None
    return text if text.lower().startswith(("http://", "https://")) else None


_state = node_state


def _path(points: list[Point]) -> str:
    """A smooth curve through the points: each hop a cubic Bézier with horizontal tangents."""
    (x, y), rest = points[0], points[1:]
    parts = [f"M{x:.1f},{y:.1f}"]
    for nx, ny in rest:
        middle = (x + nx) / 2
        parts.append(f"C{middle:.1f},{y:.1f} {middle:.1f},{ny:.1f} {nx:.1f},{ny:.1f}")
        x, y = nx, ny
    return " ".join(parts)


@dataclass(frozen=True)
class Drawing:
    """An instance's SVG document and the part of its graph it shows."""

    svg: str
    view: GraphView


def render_svg(instance: Mapping[str, Any], *, settings: LayoutSettings | None = None) -> str:
    """The SVG document of ``instance`` (its XCom dict): header, legend, then the graph."""
    return draw(instance, settings=settings).svg


def draw(instance: Mapping[str, Any], *, settings: LayoutSettings | None = None) -> Drawing:
    """``render_svg``, with the part of the graph drawn (``view.summary()`` says what is left out)."""
    settings = settings or LayoutSettings()
    colours = state_colours()
    view = graph_view(instance.get("graph"))
    node_ids = [str(node["id"]) for node in view.nodes]
    layout = layered_layout(node_ids, view.edges, settings)
    header_height = HEADER_HEIGHT + (SUMMARY_HEIGHT if view.reduced else 0.0)
    # Wide enough for the legend and the header's lines (about 6.6 px a character at 12 px, 9 px at 16 px).
    width = max(layout.width, 40.0 + LEGEND_STEP * len(FlowState), 40.0 + 9.0 * len(_title(instance)))
    width = max(width, 140.0 + 6.6 * len(_times_line(instance)), 40.0 + 6.6 * len(view.summary()))
    height = header_height + max(layout.height, 60.0)
    run_state = _state(instance.get("state"))
    instance_id = _esc(instance.get("instance_id"), TITLE_CHARS)
    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="remote-graph" width="{width:.0f}" height="{height:.0f}"'
        f' viewBox="0 0 {width:.0f} {height:.0f}" data-platform="{_esc(instance.get("platform"))}"'
        f' data-instance-id="{instance_id}" data-state="{run_state.value}"'
        f' role="img" aria-label="Remote graph of {instance_id}" font-family="{FONT}">',
        '<defs><marker id="arrow" viewBox="0 0 10 10" refX="10" refY="5" markerWidth="7" markerHeight="7"'
        ' orient="auto-start-reverse"><path d="M0,0 L10,5 L0,10 z" fill="#64748b"/></marker></defs>',
        '<rect width="100%" height="100%" fill="#ffffff"/>',
    ]
    out += _header(instance, run_state, colours, view)
    out.append(f'<g class="graph" transform="translate(0,{header_height:.0f})">')
    if not view.nodes:
        out.append('<text class="empty" x="20" y="30" font-size="14" fill="#475569">This run has no graph.</text>')
    for source, target in view.edges:
        points = layout.edge_points.get((source, target))
        if points is None:
            continue
        out.append(
            f'<path class="edge" data-source="{_esc(source, ID_CHARS)}" data-target="{_esc(target, ID_CHARS)}"'
            f' d="{_path(points)}" fill="none" stroke="#64748b" stroke-width="1.4" marker-end="url(#arrow)"/>'
        )
    for node in view.nodes:
        out += _node(node, layout.positions[str(node["id"])], colours, settings, instance)
    out += ["</g>", "</svg>"]
    return Drawing(svg="\n".join(out), view=view)


def _title(instance: Mapping[str, Any]) -> str:
    """The header's first line, unescaped but bounded."""
    title = f"{bounded(instance.get('platform'), SHORT_CHARS)} {bounded(instance.get('instance_id'), TITLE_CHARS)}"
    name = bounded(instance.get("name"), TITLE_CHARS)
    return f"{title} ({name})" if name else title


def _times_line(instance: Mapping[str, Any]) -> str:
    """Unescaped but bounded."""
    return (
        f"platform state {bounded(instance.get('raw_state'), SHORT_CHARS)}"
        f" · started {bounded(instance.get('started_at') or '-', SHORT_CHARS)}"
        f" · ended {bounded(instance.get('ended_at') or '-', SHORT_CHARS)}"
    )


def _header(
    instance: Mapping[str, Any], run_state: FlowState, colours: Mapping[FlowState, tuple[str, str]], view: GraphView
) -> list[str]:
    fill, text = colours[run_state]
    out = [
        '<g class="header">',
        f'<text x="20" y="28" font-size="16" font-weight="600" fill="#0f172a">{_esc(_title(instance), 300)}</text>',
        f'<rect x="20" y="38" width="96" height="20" rx="10" fill="{_esc(fill)}" stroke="#334155" stroke-width="0.5"/>',
        f'<text class="run-state" x="68" y="52" font-size="12" text-anchor="middle" fill="{_esc(text)}">'
        f"{run_state.value}</text>",
        f'<text x="126" y="52" font-size="12" fill="#475569">{_esc(_times_line(instance), 300)}</text>',
    ]
    link = safe_link(instance.get("url"))
    if link:
        out.append(
            f'<a class="console-link" href="{_esc(link, LINK_CHARS)}"><text x="20" y="78" font-size="12" fill="#2563eb"'
            f' text-decoration="underline">Open in the platform console: {_esc(link, LINK_CHARS)}</text></a>'
        )
    out.append(f'<g class="legend" transform="translate(20,{88 if link else 68})">')
    for index, state in enumerate(FlowState):
        fill, _ = colours[state]
        out.append(
            f'<rect x="{index * LEGEND_STEP:.0f}" y="0" width="12" height="12" rx="2" fill="{_esc(fill)}"'
            f' stroke="#334155" stroke-width="0.5"/><text x="{index * LEGEND_STEP + 16:.0f}" y="10" font-size="11"'
            f' fill="#334155">{state.value}</text>'
        )
    out.append("</g>")
    if view.reduced:
        out.append(
            f'<text class="reduced" x="20" y="{(108 if link else 88) + SUMMARY_HEIGHT:.0f}" font-size="12"'
            f' fill="#b45309">{_esc(view.summary(), 1000)}</text>'
        )
    out.append("</g>")
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
    name = bounded(node.get("name") or node["id"], NAME_CHARS)
    node_id = bounded(node["id"], ID_CHARS)
    started = node.get("started_at") or instance.get("started_at")
    ended = node.get("ended_at") or instance.get("ended_at")
    whose = "" if node.get("started_at") or node.get("ended_at") else "run "
    sub_instance = bounded(node.get("instance_id"), ID_CHARS)
    hover = "\n".join(
        [
            name,
            f"state: {state.value} (platform state {bounded(node.get('raw_state'), SHORT_CHARS)})",
            f"kind: {bounded(node.get('kind'), SHORT_CHARS)} · id: {node_id}"
            + (f" · instance: {sub_instance}" if sub_instance else ""),
            f"{whose}started: {bounded(started or '-', SHORT_CHARS)}",
            f"{whose}ended: {bounded(ended or '-', SHORT_CHARS)}",
        ]
    )
    dash = ' stroke-dasharray="5,3"' if node.get("kind") == "flow" else ""
    shape = (
        f'<g class="node" data-node-id="{_esc(node_id, ID_CHARS)}" data-state="{state.value}"'
        f' data-kind="{_esc(node.get("kind"))}"><title>{_esc(hover, 1000)}</title>'
        f'<rect x="{x:.1f}" y="{y:.1f}" width="{settings.node_width:.0f}" height="{settings.node_height:.0f}" rx="6"'
        f' fill="{_esc(fill)}" stroke="#1e293b" stroke-width="1"{dash}/>'
        f'<text x="{centre[0]:.1f}" y="{centre[1] + 4:.1f}" font-size="12" text-anchor="middle"'
        f' fill="{_esc(text)}">{_esc(name, LABEL_CHARS)}</text></g>'
    )
    link = safe_link(node.get("url"))
    return [f'<a href="{_esc(link, LINK_CHARS)}">{shape}</a>' if link else shape]
