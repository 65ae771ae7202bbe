"""EnOS BPM process instances: portal login, requests, envelopes, states and the one-node graph. No I/O.

Every BPM call goes through the EnOS API gateway (token plus per-call signature, see ``enos_gateway``)
and also carries ``Authorization: Bearer <user access token>`` from an Application Portal login.
The portal calls themselves (log in, choose organization, refresh) are gateway-signed as well: they are
served under the same ``{apigw-address}`` and the vendor's own samples (EnvisionIot/sample-code-python,
``poseidon.urlopen(accessKey, secretKey, ...)``) sign them like any other EnOS API call.
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from airflow_provider_flowinst.errors import FlowInstanceNotFound, FlowPlatformError
from airflow_provider_flowinst.models import FlowInstance, FlowState, GraphNode, InstanceGraph, NodeKind
from airflow_provider_flowinst.platforms.enos_batch import console_link
from airflow_provider_flowinst.platforms.enos_gateway import (
    EnOSGatewayAuth,
    envelope_code,
    envelope_message,
    read_enos_envelope,
    sha256_hex,
)
from airflow_provider_flowinst.protocol import (
    HttpRequest,
    HttpResponse,
    Operation,
    StartAttempt,
    Token,
    as_id,
    decode_json,
    json_body,
    require,
)
from airflow_provider_flowinst.timeparse import parse_epoch_ms

PLATFORM = "enos_bpm"
SERVICE_PATH = "/enos-bpm-service/v2.0/work"
PORTAL_LOGIN_PATH = "/app-portal-service/v2.2/login"
PORTAL_SESSION_SET_PATH = "/app-portal-service/v2.1/session/set"
PORTAL_REFRESH_PATH = "/app-portal-service/v2.2/token/refresh"

NOT_FOUND_CODE = "33404"
#: Portal success: ``code: 0`` from v2.2, ``code: 200`` in the v2.0 documentation.
PORTAL_SUCCESS_CODES = frozenset({"0", "200"})
#: The portal's common codes for "log in first" (401 unauthenticated) and "token expired" (410
#: cache.token.expired), as a BPM call may pass them on from the bearer-token check (inferred).
PORTAL_EXPIRED_CODES = frozenset({"401", "410"})
#: ``pagination.pageSize`` of each queryList request; the API's own default is 1000.
QUERY_PAGE_SIZE = 100

PROCESS_STATUSES = ("inProgress", "completed", "terminated")
#: The reason recorded when an Airflow task stops the process instance it started.
STOP_REASON = "Stopped by Apache Airflow: the task that started it was killed or timed out"
STATE_BY_STATUS: Mapping[str, FlowState] = {
    "inprogress": FlowState.RUNNING,
    "completed": FlowState.SUCCESS,
    "terminated": FlowState.CANCELLED,
}


def map_status(process_status: Any) -> FlowState:
    """``processStatus`` to a FlowState (case-insensitive); anything else is ``unknown``."""
    if not isinstance(process_status, str):
        return FlowState.UNKNOWN
    return STATE_BY_STATUS.get(process_status.strip().lower(), FlowState.UNKNOWN)


def _now_ms() -> int:
    return int(time.time() * 1000)


@dataclass(frozen=True)
class EnOSBPMAuth:
    """The gateway signature plus the portal user's bearer token, obtained by one login and cached together.

    ``login()`` fetches the gateway token, logs the portal account in (and chooses ``org_id`` when given);
    the resulting ``Token`` holds the gateway token in ``value``, the user token in ``bearer`` and the
    portal's refresh token (handed out by "Choose Organization") in ``refresh_value``.
    ``on_secret`` is told every token obtained, so the hook can mask it in logs.
    """

    gateway: EnOSGatewayAuth
    account: str
    password: str = field(repr=False)
    org_id: str | None = None
    on_secret: Callable[[str], None] | None = field(default=None, repr=False, compare=False)

    @property
    def platform(self) -> str:
        return self.gateway.platform

    @property
    def cache_key(self) -> str:
        # A digest of the secrets keeps a connection with a wrong password from reusing another's token.
        digest = sha256_hex(f"{self.password}\0{self.gateway.app_secret}")[:16]
        return f"enos-bpm|{self.gateway.base_url}|{self.gateway.app_key}|{self.account}|{self.org_id or ''}|{digest}"

    def login(self) -> Operation[Token]:
        gateway_token = yield from self.gateway.login()
        # Each credential is handed over for masking as soon as it arrives, even if a later step fails.
        self._reveal(gateway_token.value)
        response = yield self._portal_request(
            "POST",
            PORTAL_LOGIN_PATH,
            "Log In",
            gateway_token,
            body={"account": self.account, "password": self.password},
        )
        data = read_portal_envelope(response, call="Log In", platform=self.platform)
        bearer = _access_token(data, call="Log In", platform=self.platform)
        self._reveal(bearer)
        refresh_value: str | None = None
        if self.org_id:
            response = yield self._portal_request(
                "POST", PORTAL_SESSION_SET_PATH, "Choose Organization", gateway_token, bearer, {"orgId": self.org_id}
            )
            data = read_portal_envelope(response, call="Choose Organization", platform=self.platform)
            # The answer repeats the access token now bound to the organization; keep ours if it does not.
            bearer = as_id(data.get("accessToken")) or bearer
            refresh_value = as_id(data.get("refreshToken"))
            self._reveal(bearer, refresh_value)
        token = Token(
            value=gateway_token.value,
            expires_at=gateway_token.expires_at,
            refresh_value=refresh_value,
            bearer=bearer,
        )
        return token

    def refresh(self, token: Token) -> Operation[Token]:
        """Refresh Access Token: a new user token from the refresh token, without sending the password.

        The transport re-logs in with ``login()`` when a call is refused; this is the building block for
        a caller that holds an expiring token and prefers not to send the password again.
        """
        if not token.refresh_value:
            raise FlowPlatformError(
                self.platform,
                "Refresh Access Token",
                "no refresh token: the portal hands one out when an organization is chosen (set org_id)",
            )
        request = HttpRequest(
            "GET",
            self.gateway.base_url + PORTAL_REFRESH_PATH,
            call="Refresh Access Token",
            params=(("refreshToken", token.refresh_value),),
            headers={"Accept": "application/json"},
            authenticated=False,
        )
        response = yield self.gateway.sign(request, token, _now_ms())
        data = read_portal_envelope(response, call=request.call, platform=self.platform)
        renewed = replace(
            token,
            bearer=_access_token(data, call=request.call, platform=self.platform),
            refresh_value=as_id(data.get("refreshToken")) or token.refresh_value,
        )
        self._reveal(renewed.bearer, renewed.refresh_value)
        return renewed

    def sign(self, request: HttpRequest, token: Token | None, now_ms: int) -> HttpRequest:
        if token is None or not token.bearer:
            raise ValueError("EnOS BPM calls need the gateway token and the portal user token")
        signed = self.gateway.sign(request, token, now_ms)
        return signed.with_headers({"Authorization": f"Bearer {token.bearer}"})

    def is_token_expired(self, response: HttpResponse) -> bool:
        """HTTP 401, the gateway's 1203, or the portal's 401/410 codes inside a BPM answer."""
        if self.gateway.is_token_expired(response):
            return True
        if response.status >= 500 or not response.body.lstrip().startswith(b"{"):
            return False
        try:
            payload = decode_json(response, platform=self.platform, call="")
        except FlowPlatformError:
            return False
        return envelope_code(payload) in PORTAL_EXPIRED_CODES

    def secrets(self) -> tuple[str, ...]:
        return (self.password, *self.gateway.secrets())

    def _portal_request(
        self,
        method: str,
        path: str,
        call: str,
        gateway_token: Token,
        bearer: str | None = None,
        body: Any = None,
    ) -> HttpRequest:
        # Marked unauthenticated so the transport sends it as it is: it is signed here, with the gateway
        # token this very login obtained, because no cached token exists yet.
        headers = {"Accept": "application/json", "Content-Type": "application/json;charset=UTF-8"}
        if bearer:
            headers["Authorization"] = f"Bearer {bearer}"
        request = HttpRequest(
            method,
            self.gateway.base_url + path,
            call=call,
            headers=headers,
            body=json_body(body),
            authenticated=False,
            idempotent=True,  # logging in again does no harm
        )
        return self.gateway.sign(request, gateway_token, _now_ms())

    def _reveal(self, *secrets: str | None) -> None:
        if self.on_secret is None:
            return
        for secret in dict.fromkeys(secrets):
            if secret:
                self.on_secret(secret)


def read_portal_envelope(response: HttpResponse, *, call: str, platform: str = PLATFORM) -> dict[str, Any]:
    """The ``data`` object of a portal answer ``{code: 0 | 200, message, data}``, or the portal's error."""
    payload = decode_json(response, platform=platform, call=call)
    code = envelope_code(payload)
    data = payload.get("data") if isinstance(payload, dict) else None
    if response.status >= 400 or code not in PORTAL_SUCCESS_CODES or not isinstance(data, dict):
        message = envelope_message(payload, response)
        if code in PORTAL_SUCCESS_CODES and response.status < 400:
            message = "the answer has no data object"
        raise FlowPlatformError(platform, call, message, code=code, http_status=response.status)
    return data


def _access_token(data: Mapping[str, Any], *, call: str, platform: str) -> str:
    token = data.get("accessToken")
    if not isinstance(token, str) or not token:
        raise FlowPlatformError(platform, call, "the answer has no accessToken")
    return token


def read_envelope(response: HttpResponse, *, call: str, not_found_code: str | None = None) -> Any:
    """The ``data`` of a BPM answer ``{code: 0, msg, data}``; 33404 becomes FlowInstanceNotFound."""
    return read_enos_envelope(response, platform=PLATFORM, call=call, not_found_code=not_found_code)


@dataclass(frozen=True)
class EnOSBPMSettings:
    base_url: str
    timezone: str = "UTC"  # BPM times are epoch milliseconds; kept for symmetry with the other platforms
    console_url: str | None = None


#: snake_case spellings accepted for queryList's own (camelCase) filter keys.
QUERY_FILTER_KEYS: Mapping[str, str] = {
    "process_name": "processName",
    "process_instance_id": "processInstanceId",
    "started_before": "startedBefore",
    "started_after": "startedAfter",
    "start_by": "startBy",
    "started_by": "startBy",
}


class EnOSBPMClient:
    """Builds each EnOS BPM call and reads its answer."""

    platform = PLATFORM

    def __init__(self, settings: EnOSBPMSettings) -> None:
        self.settings = settings
        self.service_url = settings.base_url + SERVICE_PATH

    # -- requests -------------------------------------------------------------------------------------

    def _request(
        self, method: str, resource: str, call: str, params: Mapping[str, Any] | None = None, body: Any = None
    ) -> HttpRequest:
        headers = {"Accept": "application/json"}
        if body is not None:
            headers["Content-Type"] = "application/json;charset=UTF-8"
        return HttpRequest(
            method,
            f"{self.service_url}/{resource}",
            call=call,
            params=tuple((key, str(value)) for key, value in (params or {}).items() if value is not None),
            headers=headers,
            body=None if body is None else json_body(body),
            idempotent=method == "GET" or resource.endswith("/queryList"),
        )

    def _call(self, request: HttpRequest, *, not_found_code: str | None = None) -> Operation[Any]:
        response = yield request
        return read_envelope(response, call=request.call, not_found_code=not_found_code)

    # -- calls (each an operation the transport drives) ------------------------------------------------

    def get_process_instance(self, process_instance_id: str) -> Operation[dict[str, Any]]:
        request = self._request(
            "GET", "process-instances", "Get Process Instance", {"processInstanceId": process_instance_id}
        )
        data = yield from self._call(request, not_found_code=NOT_FOUND_CODE)
        if data is None:
            raise FlowInstanceNotFound(PLATFORM, request.call, f"no process instance {process_instance_id!r}")
        if not isinstance(data, dict):
            raise FlowPlatformError(PLATFORM, request.call, f"expected an object, got {type(data).__name__}")
        return data

    def query_process_instances_page(
        self,
        process_status: str,
        *,
        current: int = 0,
        page_size: int = QUERY_PAGE_SIZE,
        sorts: list[Mapping[str, str]] | None = None,
        **filters: Any,
    ) -> Operation[dict[str, Any]]:
        """One page of Query Process Instance: ``{pagination, processInstances}``."""
        body = query_body(process_status, current=current, page_size=page_size, sorts=sorts, **filters)
        request = self._request("POST", "process-instances/queryList", "Query Process Instance", body=body)
        data = yield from self._call(request)
        if not isinstance(data, dict):
            raise FlowPlatformError(PLATFORM, request.call, "the answer has no data object")
        _as_list(data.get("processInstances") or [], call=request.call)
        return data

    def query_process_instances(
        self,
        process_status: str,
        *,
        page_size: int = QUERY_PAGE_SIZE,
        sorts: list[Mapping[str, str]] | None = None,
        **filters: Any,
    ) -> Operation[list[dict[str, Any]]]:
        """Every page of Query Process Instance.

        ``pagination.current`` counts from 0 (the documentation's default, and the vendor's sample). A
        server that counted from 1 would send its first page twice: records are kept once by id, and a
        page that adds nothing new ends the loop.
        """
        found: dict[str, dict[str, Any]] = {}
        current = 0
        while True:
            data = yield from self.query_process_instances_page(
                process_status, current=current, page_size=page_size, sorts=sorts, **filters
            )
            page = _as_list(data.get("processInstances") or [], call="Query Process Instance")
            added = 0
            for record in page:
                key = as_id(record.get("id")) or as_id(record.get("processInstanceId")) or f"#{len(found)}"
                if key not in found:
                    found[key] = record
                    added += 1
            pagination = data.get("pagination")
            total = pagination.get("total") if isinstance(pagination, dict) else None
            if not page or added == 0 or len(page) < page_size or (isinstance(total, int) and len(found) >= total):
                return list(found.values())
            current += 1

    def start_process_instance(
        self, process_definition_id: str, values: Mapping[str, Any] | None = None, name: str | None = None
    ) -> Operation[str]:
        """Start Process Instance; the new instance's id (``data.id``, or ``data.processInstanceId``)."""
        body: dict[str, Any] = {"processDefinitionId": process_definition_id, "values": dict(values or {})}
        if name:
            body["name"] = name
        request = self._request("POST", "process-instances", "Start Process Instance", body=body)
        data = yield from self._call(request)
        if isinstance(data, dict):
            instance_id = as_id(data.get("id")) or as_id(data.get("processInstanceId"))
        else:
            instance_id = as_id(data) if isinstance(data, (str, int)) and not isinstance(data, bool) else None
        if instance_id is None:
            raise FlowPlatformError(PLATFORM, request.call, "the answer has no process instance id")
        return instance_id

    def terminate_process_instance(self, process_instance_id: str, reason: str) -> Operation[None]:
        """Terminate Process Instance; the reason goes as ``deleteReason`` and ``terminateReason`` (the
        reference table names the first, its sample the second)."""
        request = self._request(
            "POST",
            "process-instances",
            "Terminate Process Instance",
            {"action": "delete", "processInstanceId": process_instance_id},
            body={"deleteReason": reason, "terminateReason": reason},
        )
        data = yield from self._call(request, not_found_code=NOT_FOUND_CODE)
        if data is False:
            raise FlowPlatformError(PLATFORM, request.call, "the platform answered that it did not terminate it")

    def get_instance(self, instance_id: str, include_graph: bool = True) -> Operation[FlowInstance]:
        record = yield from self.get_process_instance(instance_id)
        return self.to_flow_instance(record, include_graph=include_graph)

    # -- run control (TriggerFlowOperator, FlowInstanceEventTrigger) ----------------------------------

    def start_run(self, flow: str, parameters: Mapping[str, Any] | None, attempt: StartAttempt) -> Operation[str]:
        """Start a process instance of the definition ``flow``; ``parameters`` are its ``values``."""
        return (yield from self.start_process_instance(flow, values=parameters))

    def find_started_run(
        self, flow: str, parameters: Mapping[str, Any] | None, attempt: StartAttempt
    ) -> Operation[str | None]:
        """The run ``attempt`` made, if any (see ``PlatformClient.find_started_run``)."""
        raise NotImplementedError("TODO(issue 9): find the run an attempt made")
        yield  # pragma: no cover - makes this a generator

    def stop_run(self, instance_id: str) -> Operation[None]:
        return (yield from self.terminate_process_instance(instance_id, STOP_REASON))

    def batch_instances(
        self, ids: Sequence[str], known: Mapping[str, FlowInstance]
    ) -> Operation[dict[str, FlowInstance]]:
        """Every instance in progress, in a few query pages: a wait missing from them has ended."""
        records = yield from self.query_process_instances("inProgress")
        wanted = set(ids)
        return {
            instance.instance_id: instance
            for instance in (self.to_flow_instance(record) for record in records)
            if instance.instance_id in wanted
        }

    def recent_instances(
        self, flow: str, states: Iterable[FlowState], filters: Mapping[str, Any]
    ) -> Operation[list[FlowInstance]]:
        """Instances of the definition ``flow`` in ``states``: one query per matching ``processStatus``."""
        wanted = set(states)
        statuses = [status for status in PROCESS_STATUSES if map_status(status) in wanted] or list(PROCESS_STATUSES)
        found: list[FlowInstance] = []
        for status in statuses:
            records = yield from self.query_process_instances(status, **filters)
            found += [
                self.to_flow_instance(record, include_graph=False)
                for record in records
                if as_id(record.get("processDefinitionId")) == flow
            ]
        return found

    # -- reading --------------------------------------------------------------------------------------

    def to_flow_instance(self, record: Mapping[str, Any], *, include_graph: bool = True) -> FlowInstance:
        call = "Get Process Instance"
        if not isinstance(record, Mapping):
            raise FlowPlatformError(PLATFORM, call, f"expected an object, got {type(record).__name__}")
        instance_id = as_id(record.get("id")) or as_id(record.get("processInstanceId"))
        if instance_id is None:
            raise FlowPlatformError(PLATFORM, call, "the answer has no 'id' field")
        raw_state = as_id(require(record, "processStatus", platform=PLATFORM, call=call))
        state = map_status(raw_state)
        flow_id = as_id(record.get("processDefinitionId"))
        try:
            started_at = _first_time(record, "createdTime", "started")
            ended_at = _first_time(record, "completedTime", "terminatedTime", "ended")
        except (TypeError, ValueError, OverflowError, OSError) as exc:  # OSError: out of the OS's time range
            raise FlowPlatformError(PLATFORM, call, f"unreadable time: {exc}") from None
        return FlowInstance(
            platform=PLATFORM,
            instance_id=instance_id,
            flow_id=flow_id,
            name=as_id(record.get("name")) or as_id(record.get("processName")),
            state=state,
            raw_state=raw_state,
            started_at=started_at,
            ended_at=ended_at,
            url=self.instance_url(instance_id, flow_id) or as_id(record.get("url")),
            graph=current_task_graph(record, state, raw_state) if include_graph else None,
            details=dict(record),
        )

    def instance_url(self, instance_id: str, flow_id: str | None = None) -> str | None:
        return console_link(self.settings.console_url, instance_id=instance_id, flow_id=flow_id)


def query_body(
    process_status: str,
    *,
    current: int = 0,
    page_size: int = QUERY_PAGE_SIZE,
    sorts: list[Mapping[str, str]] | None = None,
    **filters: Any,
) -> dict[str, Any]:
    """The queryList body: ``processStatus`` (checked), the filters under their API names, the pagination.

    Filters may use the API's own names or snake_case; datetimes become epoch milliseconds.
    """
    if process_status not in PROCESS_STATUSES:
        raise FlowPlatformError(
            PLATFORM,
            "Query Process Instance",
            f"processStatus must be one of {', '.join(PROCESS_STATUSES)}; got {process_status!r}",
        )
    body: dict[str, Any] = {"processStatus": process_status}
    for key, value in filters.items():
        if value is None:
            continue
        body[QUERY_FILTER_KEYS.get(key, key)] = _epoch_ms(value) if isinstance(value, dt.datetime) else value
    pagination: dict[str, Any] = {"current": int(current), "pageSize": int(page_size)}
    if sorts:
        pagination["sorts"] = [dict(sort) for sort in sorts]
    body["pagination"] = pagination
    return body


def current_task_graph(record: Mapping[str, Any], state: FlowState, raw_state: str | None) -> InstanceGraph | None:
    """BPM has no graph call: the graph is the one current task (``taskName``), or None when there is none.

    The node's id is derived from the task name, so the same task keeps the same id from poke to poke.
    """
    task_name = as_id(record.get("taskName"))
    if task_name is None or not task_name.strip():
        return None
    node = GraphNode(
        id=activity_node_id(task_name),
        name=task_name,
        kind=NodeKind.ACTIVITY,
        state=state,
        raw_state=raw_state,
    )
    return InstanceGraph(nodes=(node,))


def activity_node_id(task_name: str) -> str:
    """``a_`` and the first 16 hex digits of the task name's SHA-256: stable, short, any script."""
    return "a_" + sha256_hex(task_name)[:16]


def _first_time(record: Mapping[str, Any], *keys: str) -> dt.datetime | None:
    for key in keys:
        value = record.get(key)
        if value not in (None, "", 0):
            if isinstance(value, bool) or not isinstance(value, (int, float, str)):
                raise ValueError(f"{key}={value!r} is not epoch milliseconds")
            return parse_epoch_ms(int(value))
    return None


def _epoch_ms(moment: dt.datetime) -> int:
    if moment.tzinfo is None:
        raise FlowPlatformError(PLATFORM, "Query Process Instance", f"the time {moment} has no timezone")
    return int(moment.timestamp() * 1000)


def _as_list(data: Any, *, call: str) -> list[dict[str, Any]]:
    if not isinstance(data, list) or not all(isinstance(item, dict) for item in data):
        raise FlowPlatformError(PLATFORM, call, f"expected a list of objects, got {type(data).__name__}")
    return data
