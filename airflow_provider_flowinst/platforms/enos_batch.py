"""EnOS Batch Processing (Dataflow) flow instances: requests, envelopes, graph and states. No I/O."""

from __future__ import annotations

import datetime as dt
import json
import logging
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, cast

from airflow_provider_flowinst.clock import SYSTEM
from airflow_provider_flowinst.errors import AmbiguousStart, FlowInstanceNotFound, FlowPlatformError, RunOutcomeUnknown
from airflow_provider_flowinst.models import FlowInstance, FlowState, GraphEdge, GraphNode, InstanceGraph, NodeKind
from airflow_provider_flowinst.platforms._common import (
    Hints,
    epoch_ms,
    int_or_text,
    json_request,
    object_list,
    reading_times,
)
from airflow_provider_flowinst.platforms.enos_gateway import read_enos_envelope
from airflow_provider_flowinst.protocol import (
    FailureNotes,
    HttpRequest,
    HttpResponse,
    Operation,
    StartAttempt,
    Together,
    as_id,
    decode_embedded_json,
    required_id,
)
from airflow_provider_flowinst.timeparse import parse_local_time, validate_timezone

log = logging.getLogger(__name__)

PLATFORM = "enos_batch"
API_BASE_PATHS = {
    "v2.1": "/batch-processing-service/v2.1",
    "v2.0": "/dataflow-batch-service/v2.0",
}
NOT_FOUND_CODE = "62102"
#: "Invalid parameter": also the answer to a page size too large (inferred: the limit is not documented).
INVALID_PARAMETER_CODE = "62102"
SEARCH_PAGE_SIZE = 100
RECENT_PAGE_SIZE = 100
#: Smaller page sizes tried, in turn, when the platform refuses the one asked for (the limit is undocumented).
SMALLER_PAGE_SIZES = (50, 20, 10)
#: A listing that goes on longer than this is a server that ignores ``pageNo``: it is stopped with an error.
MAX_PAGES = 10_000
#: A search page: its rows, its ``count``, and the page size that served it.
_Page = tuple[list[dict[str, Any]], Any, int]
#: Search pages asked for at once once a listing's page size is settled (the async path sends them side by side).
PAGES_AT_ONCE = 4
#: List Flow Instances ``type``: the flow's scheduling type (0 manual, 1 periodic, 2 temporary).
FLOW_TYPES = (0, 1, 2)
#: The trigger-time window when a search names none: 2000-01-01 to 2100-01-01 (UTC), every instance.
EARLIEST_TRIGGER_MS = 946_684_800_000
LATEST_TRIGGER_MS = 4_102_444_800_000
DAY_MS = 86_400_000
#: How far the clocks of this host and the platform may differ, for the window of a start's search.
CLOCK_SKEW_MS = 2 * 60 * 1000
#: The most a task log read for a failed run's diagnosis asks for (``maxLength``): bounds a huge log's transfer.
LOG_FETCH_CHARS = 1_000_000
#: Up to this many flows among the waits, a batched read searches each flow instead of every active instance.
BATCH_MAX_FLOW_SEARCHES = 4
#: Instances read one by one whose request and last record a client keeps (the newest read).
MAX_SINGLE_READS = 1024

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
    #: The zone of the platform's times, which carry no offset; None: ask the service (Get Time Zone).
    timezone: str | None = None
    console_url: str | None = None

    def __post_init__(self) -> None:
        if self.api_version not in API_BASE_PATHS:
            raise ValueError(f"api_version must be one of {sorted(API_BASE_PATHS)}, got {self.api_version!r}")


class EnOSBatchClient:
    """Builds each EnOS Batch Processing call and reads its answer.

    It remembers, for the connection it serves, what the service told it: the deployment's time zone, each
    flow's scheduling type and the largest page size the service gives.
    """

    platform = PLATFORM
    offers_graph = True
    graph_in_one_read = True

    def __init__(self, settings: EnOSBatchSettings, clock: Callable[[], float] = SYSTEM.now) -> None:
        self.settings = settings
        self.service_url = settings.base_url + API_BASE_PATHS[settings.api_version]
        #: v2.0 counts search pages from 0 (``search_flow.md``: "starting from 0"), v2.1 from 1.
        self.first_page_no = 0 if settings.api_version == "v2.0" else 1
        #: Get My Flow's filter: ``searchValue`` on v2.0, ``expression`` on v2.1.
        self.flow_filter_name = "searchValue" if settings.api_version == "v2.0" else "expression"
        self.timezone: str | None = settings.timezone
        #: Lowered when the service refuses a page size or caps its pages; kept for the connection.
        self.page_size = SEARCH_PAGE_SIZE
        self.flow_types: dict[str, tuple[int, ...]] = {}
        self.clock = clock
        #: Whether batched reads have said (once for the connection) that some ids cannot be batched.
        self.told_unbatchable = False
        #: Per instance read one by one: its Get Flow Instance request (built once) and the last answer read with
        #: what it made, so a wait polling an unchanged instance neither rebuilds the one nor re-reads the other.
        self._single_reads: Hints[_SingleRead] = Hints(MAX_SINGLE_READS)

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
        query = [("action", action), *(params or {}).items()]
        query += [("userId", self.settings.user_id), ("orgId", self.settings.org_id)]
        return json_request(
            method,
            f"{self.service_url}/{resource}",
            call=call,
            params=query,
            body=body,
            idempotent=method == "GET" or action == "search",
        )

    def _call(self, request: HttpRequest, *, not_found_code: str | None = None) -> Operation[Any]:
        response = yield request
        return read_envelope(response, call=request.call, not_found_code=not_found_code)

    # -- what the service says about itself ----------------------------------------------------------

    def deployment_zone(self) -> Operation[str]:
        """The zone of the platform's times: the connection's ``timezone``, else Get Time Zone (asked once,
        when the first answer with times is read)."""
        if self.timezone is None:
            request = self._request("GET", "time", "getTimeZone", "Get Time Zone")
            try:
                data = yield from self._call(request)
                self.timezone = zone_from_answer(data.get("timezone") if isinstance(data, dict) else data)
            except FlowPlatformError as exc:
                if exc.retryable:  # the service did not answer: the next call asks again
                    raise
                log.warning(
                    "%s; its times are read as UTC. Set the connection's extra 'timezone' to the deployment's zone",
                    exc,
                )
                self.timezone = "UTC"
        return self.timezone

    def get_flow(self, flow_id: str) -> Operation[dict[str, Any]]:
        request = self._request("GET", "flows", "get", "Get Flow", {"flowId": flow_id})
        data = yield from self._call(request, not_found_code=NOT_FOUND_CODE)
        if not isinstance(data, dict):
            raise FlowInstanceNotFound(PLATFORM, request.call, f"no flow {flow_id!r}")
        return data

    def types_of_flow(self, flow_id: str) -> Operation[tuple[int, ...]]:
        """The ``type`` values a search for ``flow_id``'s instances needs: the flow's own (Get Flow, asked once
        per flow), or all three where Get Flow does not say (one search per type then)."""
        if flow_id not in self.flow_types:
            try:
                flow = yield from self.get_flow(flow_id)
            except FlowPlatformError as exc:
                if exc.retryable:
                    raise
                flow = {}
            kind = flow.get("type")
            known = isinstance(kind, int) and not isinstance(kind, bool) and kind in FLOW_TYPES
            self.flow_types[flow_id] = (kind,) if isinstance(kind, int) and known else FLOW_TYPES
        return self.flow_types[flow_id]

    # -- calls (each an operation the transport drives) ------------------------------------------------

    def get_flow_instance(self, flow_inst_id: str) -> Operation[dict[str, Any]]:
        request = self._single_read(flow_inst_id).request
        response = yield request
        return self._flow_instance_record(request, response, flow_inst_id)

    def _flow_instance_record(self, request: HttpRequest, response: HttpResponse, flow_inst_id: str) -> dict[str, Any]:
        data = read_envelope(response, call=request.call, not_found_code=NOT_FOUND_CODE)
        if data is None:
            raise FlowInstanceNotFound(PLATFORM, request.call, f"no flow instance {flow_inst_id!r}")
        if not isinstance(data, dict):
            raise FlowPlatformError(PLATFORM, request.call, f"expected an object, got {type(data).__name__}")
        return data

    def get_my_flows(self, expression: str | None = None) -> Operation[list[dict[str, Any]]]:
        request = self._request("GET", "flows", "getMyFlow", "Get My Flow", {self.flow_filter_name: expression})
        data = yield from self._call(request)
        return object_list(data, platform=PLATFORM, call=request.call)

    def search_flow_instances(self, **filters: Any) -> Operation[list[dict[str, Any]]]:
        """Every page of ``flowInstances?action=search``; ``filters`` are the body's own keys.

        The Mandatory fields the caller leaves out are filled in: any name and owner, every status, trigger
        times from 2000 to 2100, and, without ``type``, one search per type.
        """
        filters = dict(filters)
        page_size = filters.pop("page_size", None)
        kinds = (filters.pop("type"),) if "type" in filters else FLOW_TYPES
        found: list[dict[str, Any]] = []
        for kind in kinds:
            body = search_body(kind, from_ms=EARLIEST_TRIGGER_MS, to_ms=LATEST_TRIGGER_MS, extra=filters)
            found += yield from self._list_all(body, None if page_size is None else int(page_size))
        return found

    def _list_all(
        self, body: Mapping[str, Any], page_size: int | None = None, sorters: list[dict[str, str]] | None = None
    ) -> Operation[list[dict[str, Any]]]:
        """Every row of a search, whatever ``count`` means and however the service caps its pages.

        ``count`` is "the number of searched workflow instances": the total, or the page's length. A page
        shorter than asked proves nothing (the service may cap it), so the listing ends only on an empty page,
        on a page with no row not seen already (a service that ignores ``pageNo``), or once ``count``, shown to
        be a total (it differed from a page's length), is reached.

        Once the page size is settled (the first page, or a second after a short first one), up to
        ``PAGES_AT_ONCE`` pages are asked for together: the pages a known total still needs, else as many as
        were read so far (those past the end come back empty and are dropped). A listing of thousands of
        running instances then takes a quarter of the round trips, and at most ``PAGES_AT_ONCE - 1`` requests
        more (none with a total).
        """
        size = min(page_size or self.page_size, self.page_size)
        rows: dict[str, dict[str, Any]] = {}
        received = 0  # rows received
        total: int | None = None
        short_first: int | None = None  # the length of a short first page, until shown to be a cap
        index = 0
        while index < MAX_PAGES:
            pages: list[_Page]
            if index == 0 or short_first is not None:
                pages = [
                    (yield from self._search_page(body, self.first_page_no + index, size, sorters, first=index == 0))
                ]
            else:
                # With a total, the pages it still needs; without, as many as were read so far: a short listing
                # asks for no page more than one at a time would, a long one for at most PAGES_AT_ONCE - 1.
                left = index if total is None else -(-(total - received) // size)
                asked = max(1, min(PAGES_AT_ONCE, left, MAX_PAGES - index))
                parts = tuple(
                    self._search_page(body, self.first_page_no + index + offset, size, sorters, first=False)
                    for offset in range(asked)
                )
                pages = cast(list[_Page], (yield Together(parts))) if asked > 1 else [(yield from parts[0])]
            for page, count, served in pages:
                size = served
                if not page:
                    return list(rows.values())
                if received and all(_key(record) in rows for record in page):
                    return list(rows.values())
                rows.update((_key(record), record) for record in page)
                if isinstance(count, int) and not isinstance(count, bool) and count != len(page):
                    total = count  # not this page's length: the total
                if short_first is not None:  # a second page came after a short first one: the cap is real
                    self.page_size = min(self.page_size, short_first)
                    short_first = None
                received += len(page)
                if index == 0 and len(page) < size:
                    # Shorter than asked: the end, or a cap. The next page is asked at this size, so it starts
                    # right after these rows whichever the service counts pages by.
                    short_first, size = len(page), len(page)
                    if total is not None and total > len(page):
                        self.page_size = min(self.page_size, len(page))
                        short_first = None
                if total is not None and received >= total:
                    return list(rows.values())
                index += 1
        raise FlowPlatformError(PLATFORM, "List Flow Instances", f"still paging after {MAX_PAGES} pages")

    def _search_page(
        self, body: Mapping[str, Any], page_no: int, size: int, sorters: list[dict[str, str]] | None, *, first: bool
    ) -> Operation[_Page]:
        """One page: (rows, count, the page size that served). A first page whose size the service refuses is
        asked again smaller, and the size that works is kept for the connection."""
        sizes = [size] + [smaller for smaller in SMALLER_PAGE_SIZES if smaller < size] if first else [size]
        for attempt, asked in enumerate(sizes):
            pagination: dict[str, Any] = {"pageNo": page_no, "pageSize": asked}
            if sorters:
                pagination["sorters"] = sorters
            request = self._request(
                "POST", "flowInstances", "search", "List Flow Instances", body={**body, "pagination": pagination}
            )
            try:
                data = yield from self._call(request)
            except FlowPlatformError as exc:
                refused_size = exc.code == INVALID_PARAMETER_CODE or exc.http_status in (400, 413)
                if not refused_size or exc.retryable or attempt == len(sizes) - 1:
                    raise
                log.info("%s with pageSize %d; asking for %d rows", exc, asked, sizes[attempt + 1])
                continue
            if attempt > 0:  # a smaller size served after a refusal: keep it for the connection
                self.page_size = min(self.page_size, asked)
            if not isinstance(data, dict):
                raise FlowPlatformError(PLATFORM, request.call, "the answer has no flowInsts object")
            return (
                object_list(data.get("flowInsts") or [], platform=PLATFORM, call=request.call),
                data.get("count"),
                asked,
            )
        raise AssertionError("unreachable")  # pragma: no cover

    def trigger_flow(
        self, flow_id: str, trigger_time: int | None = None, parameters: Mapping[str, Any] | None = None
    ) -> Operation[str]:
        """Trigger Flow (``flowId``, ``triggerTime`` only); with ``parameters``, Update And Trigger Flow, whose
        ``parameters`` (a JSON array of ``{key, value}`` in the body) apply to the new instance only.

        ``triggerTime`` is Mandatory on both (``v2.1/trigger_flow.md``, ``v2.1/update_and_trigger_flow.md``):
        without one given, now is sent."""
        body: dict[str, Any] = {
            "flowId": int_or_text(flow_id),
            "triggerTime": int(epoch_ms(self.clock) if trigger_time is None else trigger_time),
        }
        if parameters:
            body["parameters"] = [{"key": str(key), "value": _parameter_text(v)} for key, v in parameters.items()]
            request = self._request("POST", "flows", "updateAndTrigger", "Update And Trigger Flow", body=body)
        else:
            request = self._request("POST", "flows", "trigger", "Trigger Flow", body=body)
        try:
            data = yield from self._call(request)
        except FlowPlatformError as exc:
            raise _trigger_refusal(exc) from None
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

    def node_log(self, node: GraphNode) -> Operation[str] | None:
        """A task node's log (Get Task Instance Log), at most ``LOG_FETCH_CHARS`` of it; flow nodes have none."""
        if node.kind is not NodeKind.TASK or not node.instance_id:
            return None
        return self.get_task_instance_log(node.instance_id, LOG_FETCH_CHARS)

    def failure_notes(self, instance: FlowInstance) -> FailureNotes:
        return FailureNotes()  # its failed tasks' logs say it all

    def get_instance(self, instance_id: str, include_graph: bool = True) -> Operation[FlowInstance]:
        read = self._single_read(instance_id)
        response = yield read.request
        # The very answer of the last read (a run going on) is the instance read then: reused, not parsed again.
        if read.answer != (response.status, response.body) or read.include_graph is not include_graph:
            record = self._flow_instance_record(read.request, response, instance_id)
            if self.timezone is None:
                yield from self.deployment_zone()  # once per hook, after the first answer, so a bad id fails first
            read.instance = self.to_flow_instance(record, include_graph=include_graph)
            read.answer, read.include_graph = (response.status, response.body), include_graph
        assert read.instance is not None
        return read.instance

    def _single_read(self, instance_id: str) -> _SingleRead:
        read = self._single_reads.get(instance_id)
        if read is None:
            request = self._request("GET", "flowInstances", "get", "Get Flow Instance", {"flowInstId": instance_id})
            read = _SingleRead(request)
            self._single_reads.remember(instance_id, read)
        return read

    # -- run control (TriggerFlowOperator, FlowInstanceEventTrigger) ----------------------------------

    def start_run(self, flow: str, parameters: Mapping[str, Any] | None, attempt: StartAttempt) -> Operation[str]:
        """Trigger Flow at the attempt's time: the instance shows that time back, which finds it again."""
        return (yield from self.trigger_flow(flow, trigger_time=attempt.requested_at_ms, parameters=parameters))

    def find_started_run(
        self, flow: str, parameters: Mapping[str, Any] | None, attempt: StartAttempt
    ) -> Operation[str | None]:
        """The instance of ``flow`` whose ``triggerTime`` is the one ``attempt`` sent (to the second).

        The instance keeps the trigger time it was given (``trigger_flow.md``: the time "is passed into the
        time parameters"). Should a platform stamp its own time instead, an instance triggered within the
        clock-skew margin of the attempt may be it: that is an AmbiguousStart naming them, never a guess.
        """
        sent_s = attempt.requested_at_ms // 1000
        window = (attempt.requested_at_ms - CLOCK_SKEW_MS, attempt.requested_at_ms + CLOCK_SKEW_MS)
        records: list[dict[str, Any]] = []
        for kind in (yield from self.types_of_flow(flow)):
            body = search_body(kind, expression=flow, from_ms=window[0], to_ms=window[1], status=ALL_STATUSES)
            records += yield from self._list_all(body, sorters=[{"field": "triggerTime", "order": "DESC"}])
        mine = [record for record in records if as_id(record.get("flowId")) == flow]
        zone = (yield from self.deployment_zone()) if mine else "UTC"
        exact = [record for record in mine if _trigger_seconds(record, zone) == sent_s]
        if len(exact) == 1:
            return required_id(exact[0], "instanceId", platform=PLATFORM, call="List Flow Instances")
        candidates = exact or mine
        if candidates:
            ids = ", ".join(str(record.get("instanceId")) for record in candidates)
            raise AmbiguousStart(
                PLATFORM,
                "List Flow Instances",
                f"no single instance of flow {flow} carries the trigger time this start sent "
                f"({attempt.requested_at_ms}); instances triggered around it: {ids}",
            )
        return None

    def stop_run(self, instance_id: str) -> Operation[None]:
        return (yield from self.cancel_flow_instance(instance_id))

    def batch_instances(self, ids: Sequence[str]) -> Operation[dict[str, FlowInstance]]:
        """The instances not yet ended, in a few search pages: a wait missing from them has ended.

        The search cannot filter by id. Ids are ``<flowId>-<trigger time>`` (the time with 14, 12 or 10 digits,
        as the vendor's samples show): when the waits are on a few flows it searches those flows only (each
        with its own type), otherwise every active instance the user can see (one search per type), in the
        trigger-time window of the ids, a day wider each side (the id's time is local to the deployment). A
        flow's id whose time cannot be read widens that flow's window to every trigger time (still one search).
        Ids with no flow id in front are left to single reads, and the connection says so once.
        """
        bounds: dict[str, list[int]] = {}
        unbatchable: list[str] = []
        for instance_id in ids:
            # The day of margin covers any zone: the zone need not be known yet (it is asked below).
            flow, moment = split_instance_id(instance_id, self.timezone or "UTC")
            if flow is None:
                unbatchable.append(instance_id)
                continue
            edges = (
                (moment - DAY_MS, moment + DAY_MS) if moment is not None else (EARLIEST_TRIGGER_MS, LATEST_TRIGGER_MS)
            )
            bounds.setdefault(flow, []).extend(edges)
        if unbatchable and not self.told_unbatchable:
            self.told_unbatchable = True
            log.warning(
                "%d EnOS Batch waits (e.g. %r) are on ids not of the form <flowId>-<trigger time>: the search cannot "
                "find them, so each is read on its own at every poll (said once per connection)",
                len(unbatchable),
                unbatchable[0],
            )
        records: list[dict[str, Any]] = []
        if len(bounds) <= BATCH_MAX_FLOW_SEARCHES:
            for flow in sorted(bounds):
                window = (min(bounds[flow]), max(bounds[flow]))
                for kind in (yield from self.types_of_flow(flow)):
                    body = search_body(
                        kind, expression=flow, from_ms=window[0], to_ms=window[1], status=ACTIVE_STATUSES
                    )
                    page = yield from self._list_all(body)
                    records += [record for record in page if as_id(record.get("flowId")) == flow]
        elif bounds:
            every = [bound for flow_bounds in bounds.values() for bound in flow_bounds]
            for kind in FLOW_TYPES:
                body = search_body(kind, from_ms=min(every), to_ms=max(every), status=ACTIVE_STATUSES)
                records += yield from self._list_all(body)
        if records:
            yield from self.deployment_zone()
        wanted = set(ids)
        return {
            instance.instance_id: instance
            for instance in (self.to_flow_instance(record, include_graph=False) for record in records)
            if instance.instance_id in wanted
        }

    def recent_instances(
        self, flow: str, states: Iterable[FlowState], filters: Mapping[str, Any]
    ) -> Operation[list[FlowInstance]]:
        """The newest instances of ``flow`` (one search page per type), narrowed to ``states`` where codes allow."""
        wanted = set(states)
        codes = sorted({code for code, state in STATE_BY_CODE.items() if state in wanted})
        types = (filters["type"],) if "type" in filters else (yield from self.types_of_flow(flow))
        records: list[dict[str, Any]] = []
        for kind in types:
            body = search_body(
                kind,
                expression=flow,
                # Every trigger time: the newest come first, and old runs belong to the watcher's baseline.
                from_ms=EARLIEST_TRIGGER_MS,
                to_ms=LATEST_TRIGGER_MS,
                status=",".join(str(code) for code in codes) if codes else ALL_STATUSES,
                extra={key: value for key, value in filters.items() if key != "type"},
            )
            page, _, _ = yield from self._search_page(
                body,
                self.first_page_no,
                min(RECENT_PAGE_SIZE, self.page_size),
                [{"field": "triggerTime", "order": "DESC"}],
                first=True,
            )
            records += page
        if records:
            yield from self.deployment_zone()
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
        with reading_times(PLATFORM, call):
            started_at = parse_local_time(record.get("startTime"), self.timezone or "UTC")
            ended_at = parse_local_time(record.get("endTime"), self.timezone or "UTC")
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


class _SingleRead:
    """An instance read one by one: its request, and the last answer read (status, body) with the instance made
    of it."""

    __slots__ = ("answer", "include_graph", "instance", "request")

    def __init__(self, request: HttpRequest) -> None:
        self.request = request
        self.answer: tuple[int, bytes] | None = None
        self.include_graph = False
        self.instance: FlowInstance | None = None


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
    nodes = [_graph_node(task, "task", NodeKind.TASK, call) for task in _records(graph, "tasks", call)]
    nodes += [_graph_node(flow, "flow", NodeKind.FLOW, call) for flow in _records(graph, "flows", call)]
    edges = []
    for relation in _records(graph, "relations", call):
        source, target = as_id(relation.get("source")), as_id(relation.get("target"))
        if source is None or target is None:
            raise FlowPlatformError(PLATFORM, call, "a graph relation lacks its source or target")
        edges.append(GraphEdge(source, target))
    return InstanceGraph(nodes=tuple(nodes), edges=tuple(edges))


def _graph_node(item: Mapping[str, Any], word: str, kind: NodeKind, call: str) -> GraphNode:
    """A graph ``task`` or ``flow`` entry as a node: its ``node_id``, else ``t_<task_id>`` / ``f_<flow_id>``."""
    own_id = _pick(item, f"{word}_id", f"{word}Id")
    node_id = as_id(_pick(item, "node_id", "nodeId")) or (f"{word[0]}_{own_id}" if own_id is not None else None)
    if node_id is None:
        raise FlowPlatformError(PLATFORM, call, f"a graph {word} has neither node_id nor {word}_id")
    status = as_id(item.get("status"))
    return GraphNode(
        id=node_id,
        name=as_id(_pick(item, f"{word}_name", f"{word}Name")),
        kind=kind,
        state=map_word(status),
        raw_state=status,
        instance_id=as_id(_pick(item, f"{word}_inst_id", f"{word}InstId")),
    )


def _records(graph: Mapping[str, Any], key: str, call: str) -> list[dict[str, Any]]:
    return object_list(graph.get(key) or [], platform=PLATFORM, call=call, what=f"the graph's {key!r}")


def _pick(record: Mapping[str, Any], snake: str, camel: str) -> Any:
    value = record.get(snake)
    return record.get(camel) if value is None else value


ALL_STATUSES = ",".join(str(code) for code in STATE_BY_CODE)
ACTIVE_STATUSES = ",".join(str(code) for code, state in STATE_BY_CODE.items() if not state.is_terminal)


def search_body(
    kind: Any,
    *,
    expression: str = "",
    from_ms: int,
    to_ms: int,
    status: str = ALL_STATUSES,
    extra: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """A List Flow Instances body with every Mandatory field (``v2.1/list_flow_instances.md``).

    The table and the JSON sample name the window ``fromTriggerTime``/``toTriggerTime``; the doc's Java
    sample ``startTriggerTime``/``endTriggerTime``. Both are sent, with the same values, so the window holds
    whichever the service reads (a JSON binder ignores the names it does not know).
    """
    body: dict[str, Any] = {
        "type": kind,
        "expression": expression,
        "owner": "",  # any owner, as the doc's own request sample sends
        "fromTriggerTime": from_ms,
        "toTriggerTime": to_ms,
        "status": status,
        **(extra or {}),
    }
    body["startTriggerTime"], body["endTriggerTime"] = body["fromTriggerTime"], body["toTriggerTime"]
    return body


_GMT = re.compile(r"^(?:GMT|UTC)?\s*(?P<sign>[+-])\s*(?P<hours>\d{1,2})(?::?(?P<minutes>\d{2}))?$", re.IGNORECASE)
#: Offsets that are not whole hours, by the zone that keeps them all year (IANA has no Etc/ name for them).
_PART_HOUR_ZONES = {
    (3, 30): "Asia/Tehran",
    (4, 30): "Asia/Kabul",
    (5, 30): "Asia/Kolkata",
    (5, 45): "Asia/Kathmandu",
    (6, 30): "Asia/Yangon",
    (8, 45): "Australia/Eucla",
    (9, 30): "Australia/Darwin",
    (-9, 30): "Pacific/Marquesas",
}


def zone_from_answer(value: Any) -> str:
    """Get Time Zone's ``timezone`` ("GMT+8", in the doc's ``GMT+N`` format) as a zone name pendulum knows."""
    text = str(value or "").strip()
    if text.upper() in ("GMT", "UTC", "Z"):
        return "UTC"
    match = _GMT.match(text)
    if match is None:
        try:
            return validate_timezone(text)  # an IANA name, should a deployment answer one
        except ValueError:
            raise FlowPlatformError(PLATFORM, "Get Time Zone", f"unreadable time zone {value!r}") from None
    hours, minutes = int(match["hours"]), int(match["minutes"] or 0)
    sign = -1 if match["sign"] == "-" else 1
    if minutes == 0 and hours <= 14:
        # Etc/GMT names count the other way round: GMT+8 is "Etc/GMT-8".
        return "UTC" if hours == 0 else f"Etc/GMT{'-' if sign > 0 else '+'}{hours}"
    zone = _PART_HOUR_ZONES.get((sign * hours, minutes))
    if zone is None:
        raise FlowPlatformError(PLATFORM, "Get Time Zone", f"unsupported time zone {value!r}")
    return zone


#: ``<flowId>-<trigger time>``: flow ids are numbers (``2809``); the time has 14, 12 or 10 digits in the
#: vendor's samples (``2809-20190808093200``, ``2438-201907261239`` in seed 000, ``13774-2022031400``).
_STAMP_FORMATS = {14: "%Y%m%d%H%M%S", 12: "%Y%m%d%H%M", 10: "%Y%m%d%H"}


def split_instance_id(instance_id: str, zone: str) -> tuple[str | None, int | None]:
    """(flow id, trigger time in epoch ms) of an ``<flowId>-<yyyyMMddHH[mm[ss]]>`` id, the time local to
    ``zone``: the time None where it cannot be read, the flow id None where the id does not start with one."""
    flow, separator, stamp = instance_id.strip().rpartition("-")
    if not separator or not flow.isascii() or not flow.isdigit():
        return None, None
    pattern = _STAMP_FORMATS.get(len(stamp)) if stamp.isascii() and stamp.isdigit() else None
    if pattern is None:
        return flow, None
    try:
        moment = parse_local_time(dt.datetime.strptime(stamp, pattern).isoformat(), zone)
    except ValueError:
        return flow, None
    return flow, None if moment is None else int(moment.timestamp() * 1000)


def _trigger_seconds(record: Mapping[str, Any], zone: str) -> int | None:
    try:
        moment = parse_local_time(record.get("triggerTime"), zone)
    except (TypeError, ValueError, OverflowError, OSError):
        return None
    return None if moment is None else int(moment.timestamp())


def _key(record: Mapping[str, Any]) -> str:
    instance_id = record.get("instanceId")
    return str(instance_id) if instance_id not in (None, "") else json.dumps(record, sort_keys=True, default=str)


def _parameter_text(value: Any) -> str:
    """A global parameter's value is text (``key=value``); other values travel as their JSON text."""
    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)


def _trigger_refusal(exc: FlowPlatformError) -> FlowPlatformError:
    """A refused trigger: "the flow does not exist" is not found; any other 62102 (above all "triggered less
    than one minute ago": this start, or another, already made a run) leaves open which run there is."""
    if exc.code != NOT_FOUND_CODE or isinstance(exc, RunOutcomeUnknown):
        return exc
    message = exc.platform_message.lower()
    if "not exist" in message or "not found" in message:
        return FlowInstanceNotFound(
            PLATFORM, exc.call, exc.platform_message, code=exc.code, http_status=exc.http_status
        )
    return RunOutcomeUnknown(PLATFORM, exc.call, exc.platform_message, code=exc.code, http_status=exc.http_status)
