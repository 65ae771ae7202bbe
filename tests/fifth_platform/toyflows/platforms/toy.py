"""Toy Flows' API, pure: ``GET /toy/v1/runs/<id>`` with the key in ``X-Toy-Key``; a run's steps are its graph,
``GET /toy/v1/runs/<id>/steps/<name>/log`` a step's log."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from airflow_provider_flowinst.errors import FlowInstanceNotFound, FlowPlatformError
from airflow_provider_flowinst.models import FlowInstance, FlowState, GraphEdge, GraphNode, InstanceGraph, NodeKind
from airflow_provider_flowinst.protocol import (
    AuthenticatorDefaults,
    FailureNotes,
    HttpRequest,
    HttpResponse,
    Operation,
    StartAttempt,
    Token,
    decode_json,
)
from airflow_provider_flowinst.timeparse import parse_epoch_ms

PLATFORM = "toy_flows"
STATES = {
    "QUEUED": FlowState.QUEUED,
    "RUNNING": FlowState.RUNNING,
    "DONE": FlowState.SUCCESS,
    "BROKEN": FlowState.FAILED,
}


@dataclass(frozen=True)
class ToyKeyAuth(AuthenticatorDefaults):
    """Every request carries the API key; there is no login."""

    key: str
    platform: str = PLATFORM

    @property
    def cache_key(self) -> str:
        return hashlib.sha256(self.key.encode()).hexdigest()[:32]

    def login(self) -> None:
        return None

    def renew(self, token: Token) -> None:
        return None

    def sign(self, request: HttpRequest, token: Token | None, now_ms: int) -> HttpRequest:
        return request.with_headers({"X-Toy-Key": self.key})

    def is_token_expired(self, response: HttpResponse) -> bool:
        return False

    def secrets(self) -> tuple[str, ...]:
        return (self.key,)


class ToyClient:
    platform = PLATFORM
    offers_graph = True

    def __init__(self, base_url: str) -> None:
        self.base_url = base_url.rstrip("/") + "/toy/v1"

    def _get(self, path: str, call: str) -> Operation[Any]:
        response = yield HttpRequest("GET", f"{self.base_url}/{path}", call=call)
        if response.status == 404:
            raise FlowInstanceNotFound(PLATFORM, call, "no such run", http_status=404)
        if response.status != 200:
            raise FlowPlatformError(PLATFORM, call, response.text[:200], http_status=response.status)
        return decode_json(response, platform=PLATFORM, call=call)

    def get_instance(self, instance_id: str, include_graph: bool = True) -> Operation[FlowInstance]:
        record = yield from self._get(f"runs/{instance_id}", "Get Run")
        state = STATES.get(str(record.get("status")), FlowState.UNKNOWN)
        steps = record.get("steps") or []
        graph = None
        if include_graph:
            nodes = [
                GraphNode(
                    id=str(step["name"]),
                    name=str(step["name"]),
                    kind=NodeKind.TASK,
                    state=STATES.get(str(step.get("status")), FlowState.UNKNOWN),
                    raw_state=str(step.get("status")),
                    instance_id=f"{instance_id}/{step['name']}",
                )
                for step in steps
            ]
            edges = [
                GraphEdge(source=str(up), target=str(step["name"])) for step in steps for up in step.get("after", [])
            ]
            graph = InstanceGraph(nodes=tuple(nodes), edges=tuple(edges))
        return FlowInstance(
            platform=PLATFORM,
            instance_id=str(record["id"]),
            flow_id=str(record.get("flow")),
            name=None,
            state=state,
            raw_state=str(record.get("status")),
            started_at=parse_epoch_ms(record.get("started")),
            ended_at=parse_epoch_ms(record.get("ended")),
            graph=graph,
            details={key: value for key, value in record.items() if key != "steps"},
        )

    def node_log(self, node: GraphNode) -> Operation[str] | None:
        if not node.instance_id:
            return None
        return self._log(node.instance_id)

    def _log(self, step_path: str) -> Operation[str]:
        run_id, _, step = step_path.partition("/")
        record = yield from self._get(f"runs/{run_id}/steps/{step}/log", "Get Step Log")
        return str(record.get("log") or "")

    def failure_notes(self, instance: FlowInstance) -> FailureNotes:
        reason = instance.details.get("reason")
        return FailureNotes(notes=(f"Toy Flows says: {reason}",) if reason else ())

    def instance_url(self, instance_id: str) -> str | None:
        return None

    def start_run(self, flow: str, parameters: Mapping[str, Any] | None, attempt: StartAttempt) -> Operation[str]:
        raise FlowPlatformError(PLATFORM, "Start Run", "Toy Flows starts no runs")
        yield  # pragma: no cover - an operation

    def find_started_run(
        self, flow: str, parameters: Mapping[str, Any] | None, attempt: StartAttempt
    ) -> Operation[str | None]:
        return None
        yield  # pragma: no cover - an operation

    def stop_run(self, instance_id: str) -> Operation[None]:
        raise FlowPlatformError(PLATFORM, "Stop Run", "Toy Flows stops no runs")
        yield  # pragma: no cover - an operation

    def recent_instances(
        self, flow: str, states: Iterable[FlowState], filters: Mapping[str, Any]
    ) -> Operation[list[FlowInstance]]:
        return []
        yield  # pragma: no cover - an operation

    def batch_instances(self, ids: Sequence[str]) -> Operation[dict[str, FlowInstance]]:
        return {}  # no list call: every wait is read on its own
        yield  # pragma: no cover - an operation
