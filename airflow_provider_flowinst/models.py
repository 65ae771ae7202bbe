"""The one vocabulary every platform, hook, sensor and trigger speaks."""

from __future__ import annotations

import datetime as dt
import enum
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any


class FlowState(str, enum.Enum):
    """A remote instance's state, normalised across platforms (each platform module maps its own words onto these)."""

    QUEUED = "queued"
    RUNNING = "running"
    SUSPENDED = "suspended"
    SUCCESS = "success"
    FAILED = "failed"
    CANCELLED = "cancelled"
    SKIPPED = "skipped"
    UNKNOWN = "unknown"

    @property
    def is_terminal(self) -> bool:
        return self in TERMINAL_STATES

    @classmethod
    def parse_many(cls, values: object, *, argument: str) -> tuple[FlowState, ...]:
        """Turn user input ("success" or ["failed", FlowState.CANCELLED]) into states, naming a bad value."""
        items = [values] if isinstance(values, str) else list(values)  # type: ignore[call-overload]
        try:
            return tuple(cls(str(item.value if isinstance(item, cls) else item).lower()) for item in items)
        except ValueError:
            allowed = ", ".join(state.value for state in cls)
            raise ValueError(f"{argument} must hold states among: {allowed}; got {values!r}") from None


TERMINAL_STATES = frozenset({FlowState.SUCCESS, FlowState.FAILED, FlowState.CANCELLED, FlowState.SKIPPED})

#: XCom keys, besides ``return_value`` (the instance dict), each written in one place and read by the links
#: and the "Remote graph" tab: the remote run's id, pushed as soon as it is known (also when the task then
#: fails), and its console URL, pushed before a task defers.
XCOM_INSTANCE_ID_KEY = "flow_instance_id"
XCOM_URL_KEY = "flow_instance_url"


class NodeKind(str, enum.Enum):
    TASK = "task"
    FLOW = "flow"
    ACTIVITY = "activity"


@dataclass(frozen=True)
class GraphNode:
    id: str
    name: str | None
    kind: NodeKind
    state: FlowState
    raw_state: str | None
    instance_id: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "name": self.name,
            "kind": self.kind.value,
            "state": self.state.value,
            "raw_state": self.raw_state,
            "instance_id": self.instance_id,
        }


@dataclass(frozen=True)
class GraphEdge:
    """A dependency: ``source`` runs before ``target``."""

    source: str
    target: str

    def to_dict(self) -> dict[str, str]:
        return {"source": self.source, "target": self.target}


@dataclass(frozen=True)
class InstanceGraph:
    """The remote tasks of one instance and the dependencies between them."""

    nodes: tuple[GraphNode, ...] = ()
    edges: tuple[GraphEdge, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {
            "nodes": [node.to_dict() for node in self.nodes],
            "edges": [edge.to_dict() for edge in self.edges],
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> InstanceGraph:
        return cls(
            nodes=tuple(
                GraphNode(
                    id=node["id"],
                    name=node.get("name"),
                    kind=NodeKind(node["kind"]),
                    state=FlowState(node["state"]),
                    raw_state=node.get("raw_state"),
                    instance_id=node.get("instance_id"),
                )
                for node in data.get("nodes", ())
            ),
            edges=tuple(GraphEdge(edge["source"], edge["target"]) for edge in data.get("edges", ())),
        )


def format_time(value: dt.datetime | None) -> str | None:
    """ISO 8601 in UTC with an explicit ``+00:00``; whole seconds unless the platform gave fractions."""
    if value is None:
        return None
    return value.astimezone(dt.timezone.utc).isoformat()


@dataclass(frozen=True)
class FlowInstance:
    """One remote flow or process instance, as every platform's parser returns it."""

    platform: str
    instance_id: str
    flow_id: str | None
    name: str | None
    state: FlowState
    raw_state: str | None
    started_at: dt.datetime | None = None
    ended_at: dt.datetime | None = None
    url: str | None = None
    graph: InstanceGraph | None = None
    details: Mapping[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """The XCom dict: JSON-safe, every id a string, times ISO 8601 in UTC."""
        return {
            "platform": self.platform,
            "instance_id": self.instance_id,
            "flow_id": self.flow_id,
            "name": self.name,
            "state": self.state.value,
            "raw_state": self.raw_state,
            "started_at": format_time(self.started_at),
            "ended_at": format_time(self.ended_at),
            "url": self.url,
            "graph": None if self.graph is None else self.graph.to_dict(),
            # A round trip through json both copies the details and proves they are JSON-safe.
            "details": json.loads(json.dumps(dict(self.details), default=str)),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> FlowInstance:
        """Rebuild an instance from its XCom dict (as triggers hand it to operators)."""
        graph = data.get("graph")
        return cls(
            platform=data["platform"],
            instance_id=data["instance_id"],
            flow_id=data.get("flow_id"),
            name=data.get("name"),
            state=FlowState(data["state"]),
            raw_state=data.get("raw_state"),
            started_at=_parse_iso(data.get("started_at")),
            ended_at=_parse_iso(data.get("ended_at")),
            url=data.get("url"),
            graph=None if graph is None else InstanceGraph.from_dict(graph),
            details=dict(data.get("details") or {}),
        )


def _parse_iso(value: str | None) -> dt.datetime | None:
    return None if value is None else dt.datetime.fromisoformat(value)
