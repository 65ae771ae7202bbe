"""EnOS Batch Processing (Dataflow) flow instances: requests, envelopes, graph and states. No I/O."""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from airflow_provider_flowinst.errors import FlowInstanceNotFound, FlowPlatformError
from airflow_provider_flowinst.models import FlowInstance, FlowState, GraphEdge, GraphNode, InstanceGraph, NodeKind
from airflow_provider_flowinst.platforms.enos_gateway import read_enos_envelope
from airflow_provider_flowinst.protocol import (
    HttpRequest,
    HttpResponse,
    Operation,
    StartAttempt,
    as_id,
    decode_embedded_json,
    json_body,
    required_id,
)
from airflow_provider_flowinst.timeparse import parse_local_time

PLATFORM = "enos_batch"
API_BASE_PATHS = {
    "v2.1": "/batch-processing-service/v2.1",
    "v2.0": "/dataflow-batch-service/v2.0",
}
NOT_FOUND_CODE = "62102"
SEARCH_PAGE_SIZE = 100
RECENT_PAGE_SIZE = 100
#: Up to this many flows among the waits, a batched read searches each flow instead of every active instance.
BATCH_MAX_FLOW_SEARCHES = 4

STATE_BY_CODE: Mapping[int, FlowState] = {
    -1: FlowState.FAILED,
    0: FlowState.QUEUED,
    1: FlowState.SUCCESS,
    2: FlowState.RUNNING,
    3: FlowState.SUSPENDED,
    4: FlowState.FAILED,
    5: FlowState.QUEUED,
    6: FlowState.QUEUED,
    7: FlowState.FAILED,
    8: FlowState.CANCELLED,
    9: FlowState.RUNNING,
    10: FlowState.SKIPPED,
}
STATE_BY_WORD: Mapping[str, FlowState] = {
    "FAIL": FlowState.FAILED,
    "INIT": FlowState.QUEUED,
    "SUCCESS": FlowState.SUCCESS,
    "RUNNING": FlowState.RUNNING,
    "SUSPEND": FlowState.SUSPENDED,
    "INTERNAL_ERROR": FlowState.FAILED,
    "WAIT": FlowState.QUEUED,
    "READY": FlowState.QUEUED,
    "TIMEOUT": FlowState.FAILED,
    "CANCEL": FlowState.CANCELLED,
    "RERUN": FlowState.RUNNING,
    "SKIP": FlowState.SKIPPED,
    "NONE": FlowState.QUEUED,  # a graph node whose task has not been scheduled yet
}


def map_state(code: Any, word: Any) -> FlowState:
    """The instance's ``status`` code decides; its ``statusDesc`` word is the fallback."""
    if isinstance(code, int) and not isinstance(code, bool) and code in STATE_BY_CODE:
        return STATE_BY_CODE[code]
    digits = code.strip().removeprefix("-") if isinstance(code, str) else ""
    # ASCII digits only: str.isdigit() also accepts "²", which int() refuses.
    if digits.isascii() and digits.isdigit() and int(code) in STATE_BY_CODE:
        return STATE_BY_CODE[int(code)]
    return map_word(word)


def map_word(word: Any) -> FlowState:
    return STATE_BY_WORD.get(str(word).strip().upper(), FlowState.UNKNOWN) if word is not None else FlowState.UNKNOWN


@dataclass(frozen=True)
class EnOSBatchSettings:
    base_url: str
    org_id: str
    user_id: str
    api_version: str = "v2.1"
    timezone: str = "UTC"
    console_url: str | None = None

    def __post_init__(self) -> None:
        if self.api_version not in API_BASE_PATHS:
            raise ValueError(f"api_version must be one of {sorted(API_BASE_PATHS)}, got {self.api_version!r}")


class EnOSBatchClient:
    """Builds each EnOS Batch Processing call and reads its answer."""

    platform = PLATFORM

    def __init__(self, settings: EnOSBatchSettings) -> None:
        self.settings = settings
        self.service_url = settings.base_url + API_BASE_PATHS[settings.api_version]

    # -- requests -------------------------------------------------------------------------------------

    def _request(
        self,
        method: str,
        resource: str,
        action: str,
        call: str,
        params: Mapping[str, Any] | None = None,
        body: Any = None,
    ) -> HttpRequest:
        query = [("action", action)]
        query += [(key, str(value)) for key, value in (params or {}).items() if value is not None]
        query += [("userId", self.settings.user_id), ("orgId", self.settings.org_id)]
        headers = {"Accept": "application/json"}
        if body is not None:
            headers["Content-Type"] = "application/json;charset=UTF-8"
        return HttpRequest(
            method,
            f"{self.service_url}/{resource}",
            call=call,
            params=tuple(query),
            headers=headers,
            body=None if body is None else json_body(body),
            idempotent=method == "GET" or action == "search",
        )

    def _call(self, request: HttpRequest, *, not_found_code: str | None = None) -> Operation[Any]:
        response = yield request
        return read_envelope(response, call=request.call, not_found_code=not_found_code)

    # -- calls (each an operation the transport drives) ------------------------------------------------

    def get_flow_instance(self, flow_inst_id: str) -> Operation[dict[str, Any]]:
        request = self._request("GET", "flowInstances", "get", "Get Flow Instance", {"flowInstId": flow_inst_id})
        data = yield from self._call(request, not_found_code=NOT_FOUND_CODE)
        if data is None:
            raise FlowInstanceNotFound(PLATFORM, request.call, f"no flow instance {flow_inst_id!r}")
        if not isinstance(data, dict):
            raise FlowPlatformError(PLATFORM, request.call, f"expected an object, got {type(data).__name__}")
        return data

    def get_my_flows(self, expression: str | None = None) -> Operation[list[dict[str, Any]]]:
        request = self._request("GET", "flows", "getMyFlow", "Get My Flow", {"expression": expression})
        data = yield from self._call(request)
        return _as_list(data, call=request.call)

    def search_flow_instances(self, **filters: Any) -> Operation[list[dict[str, Any]]]:
        """Every page of ``flowInstances?action=search``; ``filters`` are the body's own keys."""
        found: list[dict[str, Any]] = []
        page_size = int(filters.pop("page_size", SEARCH_PAGE_SIZE))
        for page_no in itertools.count(1):
            body = {**filters, "pagination": {"pageNo": page_no, "pageSize": page_size}}
            request = self._request("POST", "flowInstances", "search", "List Flow Instances", body=body)
            data = yield from self._call(request)
            if not isinstance(data, dict):
                raise FlowPlatformError(PLATFORM, request.call, "the answer has no flowInsts object")
            page = _as_list(data.get("flowInsts") or [], call=request.call)
            found.extend(page)
            total = data.get("count")
            if not page or len(page) < page_size or (isinstance(total, int) and len(found) >= total):
                return found
        raise AssertionError("unreachable")  # pragma: no cover

    def trigger_flow(
        self, flow_id: str, trigger_time: int | None = None, parameters: Mapping[str, Any] | None = None
    ) -> Operation[str]:
        body: dict[str, Any] = {"flowId": _int_if_digits(flow_id)}
        if trigger_time is not None:
            body["triggerTime"] = int(trigger_time)
        if parameters:
            # (inferred) the same JSON-in-a-string shape the instance's own ``parameters`` field has.
            body["parameters"] = json_body([{"key": k, "value": v} for k, v in parameters.items()]).decode()
        request = self._request("POST", "flows", "trigger", "Trigger Flow", body=body)
        data = yield from self._call(request, not_found_code=NOT_FOUND_CODE)
        instance_id = data.get("flowInstanceId") if isinstance(data, dict) else data
        if not instance_id:
            raise FlowPlatformError(PLATFORM, request.call, "the answer has no flowInstanceId")
        return str(instance_id)

    def cancel_flow_instance(self, flow_inst_id: str) -> Operation[None]:
        request = self._request(
            "POST", "flowInstances", "cancel", "Cancel Flow Instance", body={"flowInstId": flow_inst_id}
        )
        yield from self._call(request, not_found_code=NOT_FOUND_CODE)

    def get_task_instance_log(self, task_inst_id: str, max_length: int | None = None) -> Operation[str]:
        request = self._request(
            "GET",
            "taskInstances",
            "getLog",
            "Get Task Instance Log",
            {"taskInstId": task_inst_id, "maxLength": max_length},
        )
        data = yield from self._call(request)
        if isinstance(data, dict):
            return str(data.get("log") or "")
        return "" if data is None else str(data)

    def get_instance(self, instance_id: str, include_graph: bool = True) -> Operation[FlowInstance]:
        record = yield from self.get_flow_instance(instance_id)
        return self.to_flow_instance(record, include_graph=include_graph)

    # -- run control (TriggerFlowOperator, FlowInstanceEventTrigger) ----------------------------------

    def start_run(self, flow: str, parameters: Mapping[str, Any] | None, attempt: StartAttempt) -> Operation[str]:
        """Trigger Flow now; there is no other way to run a flow (no public rerun)."""
        return (yield from self.trigger_flow(flow, trigger_time=attempt.requested_at_ms, parameters=parameters))

    def find_started_run(
        self, flow: str, parameters: Mapping[str, Any] | None, attempt: StartAttempt
    ) -> Operation[str | None]:
        """The run ``attempt`` made, if any (see ``PlatformClient.find_started_run``)."""
        raise NotImplementedError("TODO(issue 9): find the run an attempt made")
        yield  # pragma: no cover - makes this a generator

    def stop_run(self, instance_id: str) -> Operation[None]:
        return (yield from self.cancel_flow_instance(instance_id))

    def batch_instances(
        self, ids: Sequence[str], known: Mapping[str, FlowInstance]
    ) -> Operation[dict[str, FlowInstance]]:
        """The instances not yet ended, in a few search pages: a wait missing from them has ended.

        The search cannot filter by id: when the waits are on a few flows it searches those flows only
        (ids are ``<flowId>-<time>``), otherwise every active instance the user can see.
        """
        active = ",".join(str(code) for code, state in STATE_BY_CODE.items() if not state.is_terminal)
        flows = {instance_id.rsplit("-", 1)[0] for instance_id in ids}
        records: list[dict[str, Any]] = []
        if len(flows) <= BATCH_MAX_FLOW_SEARCHES:
            for flow in sorted(flows):
                page = yield from self.search_flow_instances(status=active, expression=flow)
                records += [record for record in page if as_id(record.get("flowId")) == flow]
        else:
            records = yield from self.search_flow_instances(status=active)
        wanted = set(ids)
        return {
            instance.instance_id: instance
            for instance in (self.to_flow_instance(record, include_graph=False) for record in records)
            if instance.instance_id in wanted
        }

    def recent_instances(
        self, flow: str, states: Iterable[FlowState], filters: Mapping[str, Any]
    ) -> Operation[list[FlowInstance]]:
        """The newest instances of ``flow`` (one search page), narrowed to ``states`` where codes allow."""
        codes = sorted({code for code, state in STATE_BY_CODE.items() if state in set(states)})
        body: dict[str, Any] = {"expression": flow, **filters}
        if codes:
            body["status"] = ",".join(str(code) for code in codes)
        body["pagination"] = {
            "pageNo": 1,
            "pageSize": RECENT_PAGE_SIZE,
            "sorters": [{"field": "triggerTime", "order": "DESC"}],
        }
        request = self._request("POST", "flowInstances", "search", "List Flow Instances", body=body)
        data = yield from self._call(request)
        records = _as_list(data.get("flowInsts") if isinstance(data, dict) else None, call=request.call)
        # The expression matches ids and names fuzzily: keep the flow's own instances only.
        return [
            self.to_flow_instance(record, include_graph=False)
            for record in records
            if as_id(record.get("flowId")) == flow
        ]

    # -- reading --------------------------------------------------------------------------------------

    def to_flow_instance(self, record: Mapping[str, Any], *, include_graph: bool = True) -> FlowInstance:
        call = "Get Flow Instance"
        instance_id = required_id(record, "instanceId", platform=PLATFORM, call=call)
        graph_text = record.get("graph")
        details = {key: value for key, value in record.items() if key != "graph"}
        if "parameters" in details:
            details["parameters"] = decode_embedded_json(
                details["parameters"], platform=PLATFORM, call=call, what="parameters"
            )
        try:
            started_at = parse_local_time(record.get("startTime"), self.settings.timezone)
            ended_at = parse_local_time(record.get("endTime"), self.settings.timezone)
        except (TypeError, ValueError, OverflowError, OSError) as exc:  # OSError: out of the OS's time range
            raise FlowPlatformError(PLATFORM, call, f"unreadable time: {exc}") from None
        return FlowInstance(
            platform=PLATFORM,
            instance_id=instance_id,
            flow_id=as_id(record.get("flowId")),
            name=as_id(record.get("flowName")),
            state=map_state(record.get("status"), record.get("statusDesc")),
            raw_state=as_id(record.get("statusDesc")) or as_id(record.get("status")),
            started_at=started_at,
            ended_at=ended_at,
            url=self.instance_url(instance_id, as_id(record.get("flowId"))),
            graph=parse_graph(graph_text, call=call) if include_graph else None,
            details=details,
        )

    def instance_url(self, instance_id: str, flow_id: str | None = None) -> str | None:
        # EnOS instance ids are "<flowId>-<trigger time>", so the flow id can be read off the instance id.
        flow_id = flow_id or instance_id.rsplit("-", 1)[0]
        return console_link(self.settings.console_url, instance_id=instance_id, flow_id=flow_id)


def console_link(template: str | None, *, instance_id: str, flow_id: str | None) -> str | None:
    """The console page of an instance: ``{instance_id}`` and ``{flow_id}`` in the template are filled in."""
    if not template:
        return None
    if "{instance_id}" in template or "{flow_id}" in template:
        return template.replace("{instance_id}", instance_id).replace("{flow_id}", flow_id or "")
    return template


def read_envelope(response: HttpResponse, *, call: str, not_found_code: str | None = None) -> Any:
    """The ``data`` of a v2.0 ``{status, msg, data}`` or v2.1 ``{code, msg, data}`` answer, or the error."""
    return read_enos_envelope(response, platform=PLATFORM, call=call, not_found_code=not_found_code)


def parse_graph(text: Any, *, call: str = "Get Flow Instance") -> InstanceGraph | None:
    """The instance graph, a JSON document inside a string, in either key spelling."""
    graph = decode_embedded_json(text, platform=PLATFORM, call=call, what="graph")
    if graph is None:
        return None
    if not isinstance(graph, dict):
        raise FlowPlatformError(PLATFORM, call, f"the graph is a {type(graph).__name__}, not an object")
    nodes: list[GraphNode] = []
    for task in _records(graph, "tasks", call):
        task_id = _pick(task, "task_id", "taskId")
        node_id = as_id(_pick(task, "node_id", "nodeId")) or (f"t_{task_id}" if task_id is not None else None)
        if node_id is None:
            raise FlowPlatformError(PLATFORM, call, "a graph task has neither node_id nor task_id")
        status = as_id(task.get("status"))
        nodes.append(
            GraphNode(
                id=node_id,
                name=as_id(_pick(task, "task_name", "taskName")),
                kind=NodeKind.TASK,
                state=map_word(status),
                raw_state=status,
                instance_id=as_id(_pick(task, "task_inst_id", "taskInstId")),
            )
        )
    for flow in _records(graph, "flows", call):
        flow_id = _pick(flow, "flow_id", "flowId")
        node_id = as_id(_pick(flow, "node_id", "nodeId")) or (f"f_{flow_id}" if flow_id is not None else None)
        if node_id is None:
            raise FlowPlatformError(PLATFORM, call, "a graph flow has neither node_id nor flow_id")
        status = as_id(flow.get("status"))
        nodes.append(
            GraphNode(
                id=node_id,
                name=as_id(_pick(flow, "flow_name", "flowName")),
                kind=NodeKind.FLOW,
                state=map_word(status),
                raw_state=status,
                instance_id=as_id(_pick(flow, "flow_inst_id", "flowInstId")),
            )
        )
    edges = []
    for relation in _records(graph, "relations", call):
        source, target = as_id(relation.get("source")), as_id(relation.get("target"))
        if source is None or target is None:
            raise FlowPlatformError(PLATFORM, call, "a graph relation lacks its source or target")
        edges.append(GraphEdge(source, target))
    return InstanceGraph(nodes=tuple(nodes), edges=tuple(edges))


def _records(graph: Mapping[str, Any], key: str, call: str) -> Iterator[Mapping[str, Any]]:
    items = graph.get(key) or []
    if not isinstance(items, list) or not all(isinstance(item, dict) for item in items):
        raise FlowPlatformError(PLATFORM, call, f"the graph's {key!r} is not a list of objects")
    yield from items


def _pick(record: Mapping[str, Any], snake: str, camel: str) -> Any:
    value = record.get(snake)
    return record.get(camel) if value is None else value


def _as_list(data: Any, *, call: str) -> list[dict[str, Any]]:
    if data is None:
        return []
    if not isinstance(data, list) or not all(isinstance(item, dict) for item in data):
        raise FlowPlatformError(PLATFORM, call, f"expected a list of objects, got {type(data).__name__}")
    return data


def _int_if_digits(value: str) -> int | str:
    text = str(value)
    return int(text) if text.isascii() and text.isdigit() else value
