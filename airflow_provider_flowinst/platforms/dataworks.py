"""Alibaba Cloud DataWorks OpenAPI 2024-05-18: V3 signature, requests, answers, graph and states. No I/O.

Every call is RPC style: path ``/``, the action in ``x-acs-action``, each request signed on its own with
``ACS3-HMAC-SHA256`` (Alibaba Cloud's "Request syntax and signature method V3"):

1. ``CanonicalRequest = METHOD\\nURI\\nQUERY\\nHEADERS\\nSIGNED_HEADERS\\nsha256_hex(body)``, where QUERY holds the
   parameters sorted by name, names and values RFC 3986 encoded, and HEADERS the ``host``,
   ``content-type`` and ``x-acs-*`` headers as ``name:trimmed value\\n``, sorted.
2. ``StringToSign = "ACS3-HMAC-SHA256\\n" + sha256_hex(CanonicalRequest)``.
3. ``Authorization: ACS3-HMAC-SHA256 Credential=<AccessKeyId>,SignedHeaders=<names>,Signature=<hex HMAC>``.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import json
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import pendulum

from airflow_provider_flowinst.clock import SYSTEM
from airflow_provider_flowinst.errors import AmbiguousStart, FlowInstanceNotFound, FlowPlatformError, RerunNotSupported
from airflow_provider_flowinst.models import FlowInstance, FlowState, GraphEdge, GraphNode, InstanceGraph, NodeKind
from airflow_provider_flowinst.platforms._common import (
    SCHEME_PORTS,
    Hints,
    epoch_ms,
    form_body,
    instance_record,
    int_or_text,
    object_list,
    reading_times,
)
from airflow_provider_flowinst.protocol import (
    AuthenticatorDefaults,
    FailureNotes,
    HttpRequest,
    HttpResponse,
    Operation,
    Sleep,
    StartAttempt,
    Throttling,
    Token,
    as_id,
    credential_digest,
    decode_json,
    parse_json,
    percent_encode,
    require,
    required_id,
    retry_after_header,
)
from airflow_provider_flowinst.reruns import RerunPlan, require_failure_state
from airflow_provider_flowinst.timeparse import parse_epoch_ms

PLATFORM = "dataworks"
API_VERSION = "2024-05-18"
ALGORITHM = "ACS3-HMAC-SHA256"
FORM_CONTENT_TYPE = "application/x-www-form-urlencoded"
EMPTY_SHA256 = hashlib.sha256(b"").hexdigest()
#: The largest page ListTaskInstances accepts (its SDK model: "Maximum value: 500"). ListWorkflowInstances and
#: ListUpstreamTaskInstances name no maximum: a page size they refuse is retried smaller (PAGE_SIZE_STEPS).
MAX_PAGE_SIZE = 500
DEFAULT_PAGE_SIZE = 100
#: The page sizes tried, largest first, when the platform refuses one; 10 is every listing's default.
PAGE_SIZE_STEPS = (500, 200, 100, 50, 20, 10)
#: A listing that goes on past this many pages is the platform misbehaving, not data.
MAX_PAGES = 10_000
#: The zone business dates (BizDate, Bizdate) are counted in unless the connection says otherwise: the SDK's
#: example 1743350400000 is 2025-03-31 00:00 at UTC+8 (China Standard Time).
DEFAULT_TIMEZONE = "Asia/Shanghai"
#: Regions the official SDK's endpoint map (``alibabacloud_dataworks_public20240518`` Client._endpoint_map)
#: sends to the central endpoint; every other region of that map is ``dataworks.<region>.aliyuncs.com``.
CENTRAL_ENDPOINT = "dataworks.aliyuncs.com"
CENTRAL_ENDPOINT_REGIONS = frozenset(
    {
        "ap-northeast-2-pop", "ap-south-1", "ap-southeast-2", "cn-beijing-finance-pop", "cn-beijing-gov-1",
        "cn-beijing-nu16-b01", "cn-edge-1", "cn-fujian", "cn-haidian-cm12-c01", "cn-hangzhou-bj-b01",
        "cn-hangzhou-finance", "cn-hangzhou-internal-prod-1", "cn-hangzhou-internal-test-1",
        "cn-hangzhou-internal-test-2", "cn-hangzhou-internal-test-3", "cn-hangzhou-test-306",
        "cn-hongkong-finance-pop", "cn-huhehaote", "cn-huhehaote-nebula-1", "cn-qingdao", "cn-qingdao-nebula",
        "cn-shanghai-et15-b01", "cn-shanghai-et2-b01", "cn-shanghai-inner", "cn-shanghai-internal-test-1",
        "cn-shenzhen-inner", "cn-shenzhen-st4-d01", "cn-shenzhen-su18-b01", "cn-wuhan", "cn-yushanfang",
        "cn-zhangbei", "cn-zhangbei-na61-b01", "cn-zhangjiakou-na62-a01", "cn-zhengzhou-nebula-1",
        "eu-west-1-oxs", "rus-west-1-pop",
    }
)  # fmt: skip
#: How a start finds the run it made: business dates around the request, this far either side (clocks differ).
FIND_MARGIN_MS = 2 * 60 * 1000
#: How long ``create_workflow_instances`` polls GetCreateWorkflowInstancesResult, in seconds of waiting.
CREATE_TIMEOUT_SECONDS = 600.0
#: The first and the longest pause between two polls; pauses double in between.
CREATE_POLL_FIRST_SECONDS = 0.5
CREATE_POLL_MAX_SECONDS = 5.0

STATE_BY_STATUS: Mapping[str, FlowState] = {
    "NotRun": FlowState.QUEUED,
    "WaitTime": FlowState.QUEUED,
    "WaitResource": FlowState.QUEUED,
    "WaitTrigger": FlowState.QUEUED,
    "Running": FlowState.RUNNING,
    "CheckingCondition": FlowState.RUNNING,
    "Checking": FlowState.RUNNING,
    "Success": FlowState.SUCCESS,
    "Failure": FlowState.FAILED,
}

#: Codes that hold "NotFound" or "NotExist" but speak of the caller's credentials or request, not of a
#: missing workflow instance (inferred from Alibaba Cloud's common error codes).
NOT_AN_ENTITY_PREFIXES = ("InvalidAccessKeyId", "InvalidSecurityToken", "InvalidAction", "InvalidVersion", "InvalidApi")


def map_status(status: Any) -> FlowState:
    """A workflow or task instance's ``Status`` as a FlowState (STATE_BY_STATUS; anything else is unknown)."""
    return STATE_BY_STATUS.get(str(status), FlowState.UNKNOWN) if status is not None else FlowState.UNKNOWN


# -- the V3 signature ---------------------------------------------------------------------------------


def canonical_query(params: Iterable[tuple[str, str]]) -> str:
    """Parameters sorted by name, names and values encoded, joined ``k=v&...`` (an empty value gives ``k=``).

    Alibaba's document and its Java SDK write ``k=`` for an empty value; the Python SDK writes a bare ``k``.
    """
    pairs = sorted((str(key), str(value)) for key, value in params)
    return "&".join(f"{percent_encode(key)}={percent_encode(value)}" for key, value in pairs)


def is_signed_header(name: str) -> bool:
    lower = name.lower()
    return lower.startswith("x-acs-") or lower in ("host", "content-type")


def canonical_headers(headers: Iterable[tuple[str, str]]) -> tuple[str, str]:
    """(``name:value\\n`` lines, ``name;name``) of the signed headers: lower-case names, sorted.

    A name sent twice (in any case) becomes one line with its trimmed values sorted and joined by ``,``,
    as the official SDK does.
    """
    merged: dict[str, list[str]] = {}
    for name, value in headers:
        if is_signed_header(name):
            merged.setdefault(name.lower(), []).append(str(value).strip())
    names = sorted(merged)
    lines = "".join(f"{name}:{','.join(sorted(merged[name]))}\n" for name in names)
    return lines, ";".join(names)


def canonical_request(
    method: str, uri: str, query: str, headers: Iterable[tuple[str, str]], payload_hash: str
) -> tuple[str, str]:
    """(the canonical request, its signed header names); ``query`` is already canonical."""
    header_lines, signed = canonical_headers(headers)
    return "\n".join([method.upper(), uri, query, header_lines, signed, payload_hash]), signed


def string_to_sign(canonical: str) -> str:
    return f"{ALGORITHM}\n{hashlib.sha256(canonical.encode('utf-8')).hexdigest()}"


def signature(secret: str, to_sign: str) -> str:
    """Lower-case hex HMAC-SHA256 keyed with the AccessKey secret itself (no ``&`` suffix, unlike V2)."""
    return hmac.new(secret.encode("utf-8"), to_sign.encode("utf-8"), hashlib.sha256).hexdigest()


def authorization(access_key_id: str, signed_headers: str, signature_hex: str) -> str:
    return f"{ALGORITHM} Credential={access_key_id},SignedHeaders={signed_headers},Signature={signature_hex}"


def parse_authorization(value: str) -> tuple[str, str, str] | None:
    """(AccessKey ID, signed header names, signature) of an ``Authorization`` header, or None if malformed."""
    algorithm, _, rest = value.strip().partition(" ")
    if algorithm != ALGORITHM:
        return None
    parts: dict[str, str] = {}
    for item in rest.split(","):
        key, sep, item_value = item.strip().partition("=")
        if not sep:
            return None
        parts[key] = item_value
    try:
        return parts["Credential"], parts["SignedHeaders"], parts["Signature"]
    except KeyError:
        return None


def acs_date(now_ms: int) -> str:
    """``x-acs-date``: UTC ISO 8601 to the second, ``YYYY-MM-DDTHH:MM:SSZ``."""
    return dt.datetime.fromtimestamp(now_ms // 1000, tz=dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def host_header(url: str) -> str:
    """The ``host`` a URL is sent to: with its port unless it is the scheme's default."""
    parts = urlsplit(url)
    netloc = parts.netloc.rsplit("@", 1)[-1]
    if parts.port is not None and parts.port == SCHEME_PORTS.get(parts.scheme.lower()):
        netloc = netloc.rsplit(":", 1)[0]
    return netloc


def canonical_uri(url: str) -> str:
    """The URL's path, each segment RFC 3986 encoded; ``/`` for RPC-style calls."""
    path = urlsplit(url).path or "/"
    return "/".join(percent_encode(segment) for segment in path.split("/"))


def new_nonce() -> str:
    """A fresh ``x-acs-signature-nonce``: the platform refuses a nonce it has seen before."""
    return uuid.uuid4().hex


def sign_request(
    request: HttpRequest,
    *,
    access_key_id: str,
    access_key_secret: str,
    now_ms: int,
    nonce: str,
    security_token: str | None = None,
) -> HttpRequest:
    """The request with its common headers and ``Authorization``; the same inputs give the same bytes."""
    body = request.body or b""
    extra = {
        "host": host_header(request.url),
        "x-acs-date": acs_date(now_ms),
        "x-acs-signature-nonce": nonce,
        "x-acs-content-sha256": hashlib.sha256(body).hexdigest(),
    }
    if security_token:
        # As the tea SDK does with STS credentials (alibabacloud_tea_openapi 0.4.6, ``Client.do_request``):
        # the AccessKey id goes beside the token, and both are signed (every header is).
        extra["x-acs-accesskey-id"] = access_key_id
        extra["x-acs-security-token"] = security_token
    headers = {**request.headers, **extra}
    canonical, signed = canonical_request(
        request.method,
        canonical_uri(request.url),
        canonical_query(request.params),
        headers.items(),
        extra["x-acs-content-sha256"],
    )
    headers["Authorization"] = authorization(
        access_key_id, signed, signature(access_key_secret, string_to_sign(canonical))
    )
    return request.with_headers(headers)


@dataclass(frozen=True)
class DataWorksSigner(AuthenticatorDefaults):
    """Signs every request on its own with an AccessKey pair (and an STS token): no login, no token cache."""

    access_key_id: str
    access_key_secret: str = field(repr=False)
    security_token: str | None = field(default=None, repr=False)
    nonce_factory: Callable[[], str] = field(default=new_nonce, repr=False, compare=False)
    platform: str = PLATFORM

    @property
    def cache_key(self) -> str:
        return f"dataworks|{self.access_key_id}|{credential_digest(self.access_key_secret, self.security_token)}"

    def renew(self, token: Token) -> None:
        """No renewal without a new login."""
        return None

    def login(self) -> None:
        return None

    def sign(self, request: HttpRequest, token: Token | None, now_ms: int) -> HttpRequest:
        return sign_request(
            request,
            access_key_id=self.access_key_id,
            access_key_secret=self.access_key_secret,
            now_ms=now_ms,
            nonce=self.nonce_factory(),
            security_token=self.security_token,
        )

    def is_token_expired(self, response: HttpResponse) -> bool:
        return False  # an expired STS token cannot be renewed from the connection; it is reported

    def throttling(self, response: HttpResponse, now: float) -> Throttling:
        """A ``Throttling...`` code with any status (429, 400 or 503); the wait from ``x-acs-retry-after``
        (milliseconds), else the standard ``Retry-After``."""
        throttled = response.status == 429 or is_throttled(response)
        return Throttling(throttled=throttled, retry_after=retry_after_hint(response, now))

    def secrets(self) -> tuple[str, ...]:
        return tuple(value for value in (self.access_key_secret, self.security_token) if value)


# -- answers and errors -------------------------------------------------------------------------------


def is_not_found_code(code: str | None) -> bool:
    """``EntityNotExists...`` or a code naming NotFound / NotExist, unless it is about credentials."""
    if not code or code.startswith(NOT_AN_ENTITY_PREFIXES):
        return False
    return code.startswith("EntityNotExists") or "NotFound" in code or "NotExist" in code


def is_throttling_code(code: str | None) -> bool:
    """``Throttling``, ``Throttling.User``, ``Throttling.Api``...: the call may pass when sent later."""
    return bool(code) and str(code).startswith("Throttling")


def error_code(response: HttpResponse) -> str | None:
    """The ``Code`` of an error answer, or None when the body is not a JSON object with one."""
    if not response.body.lstrip().startswith(b"{"):
        return None
    try:
        payload = parse_json(response.body)
    except (ValueError, UnicodeDecodeError):
        return None
    code = payload.get("Code") if isinstance(payload, dict) else None
    return None if code is None else str(code)


def retry_after_hint(response: HttpResponse, now: float) -> float | None:
    """``x-acs-retry-after`` (milliseconds, with a ``Throttling`` answer), else the standard ``Retry-After``."""
    acs = (response.header("x-acs-retry-after") or "").strip()
    if acs.isascii() and acs.isdigit():  # ASCII digits only: "²" is a digit to str.isdigit(), not to int()
        return int(acs) / 1000.0
    return retry_after_header(response, now)


def is_throttled(response: HttpResponse) -> bool:
    """A throttling answer, whatever its HTTP status (429, 400 or 503): the transport retries it."""
    return response.status >= 400 and is_throttling_code(error_code(response))


def platform_error(payload: Any, response: HttpResponse, *, call: str) -> FlowPlatformError:
    """The FlowPlatformError (or FlowInstanceNotFound) for an ``{Code, Message, RequestId}`` answer."""
    record = payload if isinstance(payload, dict) else {}
    code = as_id(record.get("Code"))
    message = str(record.get("Message") or f"HTTP {response.status}").strip()
    request_id = as_id(record.get("RequestId"))
    if request_id:
        message = f"{message} (RequestId {request_id})"
    error = FlowInstanceNotFound if is_not_found_code(code) else FlowPlatformError
    return error(PLATFORM, call, message, code=code, http_status=response.status, retryable=is_throttling_code(code))


def read_response(response: HttpResponse, *, call: str) -> dict[str, Any]:
    """The answer's JSON object, or the platform's error."""
    payload = decode_json(response, platform=PLATFORM, call=call)
    if response.status >= 400 or not isinstance(payload, dict):
        raise platform_error(payload, response, call=call)
    return payload


# -- the client ---------------------------------------------------------------------------------------


def endpoint_url(region_id: str | None, endpoint: str | None) -> str:
    """``endpoint`` (scheme optional, https by default; port kept), else the region's endpoint as the SDK's
    map gives it: ``dataworks.aliyuncs.com`` for CENTRAL_ENDPOINT_REGIONS, ``dataworks.<region>.aliyuncs.com``."""
    if endpoint and str(endpoint).strip():
        text = str(endpoint).strip()
        if "://" not in text:
            text = "https://" + text
        parts = urlsplit(text)
        if parts.scheme.lower() not in SCHEME_PORTS or not parts.hostname:
            raise ValueError(f"the endpoint must be an http or https host, got {endpoint!r}")
        return text.rstrip("/")
    if region_id and str(region_id).strip():
        region = str(region_id).strip()
        return (
            f"https://{CENTRAL_ENDPOINT}"
            if region in CENTRAL_ENDPOINT_REGIONS
            else f"https://dataworks.{region}.aliyuncs.com"
        )
    raise ValueError("set the connection's extra 'region_id' (e.g. cn-hangzhou) or 'endpoint'")


def zone_of(name: str) -> dt.tzinfo:
    """The zone an IANA name stands for (ValueError naming it when unknown)."""
    try:
        zone: dt.tzinfo = pendulum.timezone(name)
    except Exception:
        raise ValueError(f"unknown timezone {name!r}; use an IANA name such as {DEFAULT_TIMEZONE!r}") from None
    return zone


def business_day_ms(day: dt.date, timezone: str = DEFAULT_TIMEZONE) -> int:
    """A business date as DataWorks sends it: 00:00:00 of ``day`` in the business zone, in epoch ms
    (2025-03-31 in Asia/Shanghai is 1743350400000, the SDK's own example)."""
    midnight = dt.datetime(day.year, day.month, day.day, tzinfo=zone_of(timezone))
    return int(midnight.timestamp() * 1000)


def business_date(epoch_ms: int, timezone: str = DEFAULT_TIMEZONE) -> dt.date:
    """The day an epoch-ms moment falls on in the business zone."""
    return dt.datetime.fromtimestamp(epoch_ms / 1000, tz=zone_of(timezone)).date()


def to_epoch_ms(value: int | str | dt.date | dt.datetime, timezone: str = DEFAULT_TIMEZONE) -> int:
    """A DataWorks time (BizDate, Bizdate) in epoch ms: a date is its midnight in the business zone, a naive
    datetime is read in that zone, numbers pass as they are."""
    if isinstance(value, dt.datetime):
        moment = value if value.tzinfo else value.replace(tzinfo=zone_of(timezone))
        return int(moment.timestamp() * 1000)
    if isinstance(value, dt.date):
        return business_day_ms(value, timezone)
    return int(value)


def param_text(value: Any) -> str:
    """A parameter as it travels: arrays and objects as a JSON string, booleans as true/false."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (list, tuple, dict)):
        return json.dumps(value, separators=(",", ":"), ensure_ascii=False)
    return str(value)


@dataclass(frozen=True)
class DataWorksSettings:
    endpoint: str
    project_id: str | None = None
    #: The zone business dates are counted in (the connection's extra ``timezone``).
    timezone: str = DEFAULT_TIMEZONE


class DataWorksClient:
    """Builds each DataWorks call and reads its answer."""

    platform = PLATFORM
    offers_graph = True
    graph_in_one_read = False  # the graph takes ListTaskInstances and ListUpstreamTaskInstances calls

    def __init__(self, settings: DataWorksSettings, clock: Callable[[], float] = SYSTEM.now) -> None:
        zone_of(settings.timezone)  # an unknown zone fails here, not at the first business date
        self.settings = settings
        self.url = settings.endpoint.rstrip("/") + "/"
        self.clock = clock
        #: The largest page size each action has accepted on this connection, once it refused a larger one.
        self.page_size_limits: dict[str, int] = {}
        #: (ProjectId, BizDate) of each instance read: ListWorkflowInstances lists an instance only by both.
        self.listing_keys: Hints[tuple[str, int]] = Hints()

    def bizdate_ms(self, value: int | str | dt.date | dt.datetime) -> int:
        return to_epoch_ms(value, self.settings.timezone)

    # -- requests -------------------------------------------------------------------------------------

    def request(self, method: str, action: str, params: Mapping[str, Any]) -> HttpRequest:
        """An RPC call: GET parameters in the query, POST parameters in a form body."""
        values = tuple((key, param_text(value)) for key, value in params.items() if value is not None)
        headers = {"x-acs-action": action, "x-acs-version": API_VERSION, "Accept": "application/json"}
        reads = action.startswith(("Get", "List"))  # reads, whatever their method
        if method == "GET":
            return HttpRequest("GET", self.url, call=action, params=values, headers=headers, idempotent=reads)
        headers["Content-Type"] = FORM_CONTENT_TYPE
        return HttpRequest(method, self.url, call=action, headers=headers, body=form_body(values), idempotent=reads)

    def _call(self, request: HttpRequest) -> Operation[dict[str, Any]]:
        response = yield request
        return read_response(response, call=request.call)

    def project(self, project_id: Any) -> str:
        """The call's ProjectId, else the connection's default workspace."""
        chosen = project_id if project_id not in (None, "") else self.settings.project_id
        if chosen in (None, ""):
            raise FlowPlatformError(
                PLATFORM, "checking input", "a ProjectId is needed: pass project_id or set the connection's extra"
            )
        return str(chosen)

    def _pages(
        self,
        method: str,
        action: str,
        params: Mapping[str, Any],
        key: str,
        page_size: int,
    ) -> Operation[list[dict[str, Any]]]:
        """Every page of a ``PagingInfo{TotalCount, <key>[]}`` answer, PageNumber from 1.

        The listing ends only where the platform shows there is no more: ``TotalCount`` reached, or an empty
        page (a page shorter than asked is not the end: a server may cap pages without saying so). A page size
        the platform refuses is tried smaller, and the size it takes is kept for this connection.
        """
        if not 1 <= page_size <= MAX_PAGE_SIZE:
            raise ValueError(f"page_size must be between 1 and {MAX_PAGE_SIZE}, got {page_size}")
        size = min(page_size, self.page_size_limits.get(action, page_size))
        found: list[dict[str, Any]] = []
        page_number = 1
        for _ in range(MAX_PAGES):
            request = self.request(method, action, {**params, "PageNumber": page_number, "PageSize": size})
            try:
                payload = yield from self._call(request)
            except FlowPlatformError as exc:
                smaller = smaller_page_size(size) if is_page_size_refusal(exc) else None
                if smaller is None:
                    raise
                self.page_size_limits[action] = size = smaller
                found, page_number = [], 1  # start again at the size the platform takes
                continue
            paging = payload.get("PagingInfo")
            if not isinstance(paging, dict):
                raise FlowPlatformError(PLATFORM, action, "the answer has no PagingInfo object")
            page = object_list(paging.get(key), platform=PLATFORM, call=action, what=f"the answer's {key}")
            found.extend(page)
            total_count = _count(paging.get("TotalCount"))
            if not page or (total_count is not None and len(found) >= total_count):
                return found
            if len(page) < size and len(found) % len(page) == 0:
                # Maybe a silent cap: go on at the size the server served, so the next page starts where this
                # one ended. Kept for the connection only where TotalCount shows rows remain (a cap for sure).
                size = len(page)
                if total_count is not None:
                    self.page_size_limits[action] = size
                page_number = len(found) // size
            page_number += 1
        raise FlowPlatformError(PLATFORM, action, f"the listing did not end after {MAX_PAGES} pages")

    # -- calls (each an operation the transport drives) ------------------------------------------------

    def get_workflow_instance(self, instance_id: str) -> Operation[dict[str, Any]]:
        request = self.request("GET", "GetWorkflowInstance", {"Id": int_or_text(instance_id)})
        payload = yield from self._call(request)
        if "WorkflowInstance" not in payload:
            raise FlowPlatformError(PLATFORM, request.call, "the answer has no WorkflowInstance")
        missing = f"no workflow instance {instance_id!r}"
        return instance_record(payload["WorkflowInstance"], platform=PLATFORM, call=request.call, missing=missing)

    def list_workflow_instances(
        self,
        *,
        bizdate: int | str | dt.date,
        project_id: Any = None,
        workflow_id: Any = None,
        ids: Sequence[Any] | None = None,
        type: str | None = None,
        page_size: int = DEFAULT_PAGE_SIZE,
        **filters: Any,
    ) -> Operation[list[dict[str, Any]]]:
        """ListWorkflowInstances, every page; ``filters`` are the API's own names (Name, Owner, SortBy...)."""
        params = {
            "ProjectId": self.project(project_id),
            "BizDate": self.bizdate_ms(bizdate),
            "WorkflowId": workflow_id,
            "Ids": None if ids is None else [int_or_text(item) for item in ids],
            "Type": type,
            **filters,
        }
        return (yield from self._pages("POST", "ListWorkflowInstances", params, "WorkflowInstances", page_size))

    def list_task_instances(
        self,
        *,
        workflow_instance_id: str,
        bizdate: int | str | dt.date,
        project_id: Any = None,
        page_size: int = DEFAULT_PAGE_SIZE,
    ) -> Operation[list[dict[str, Any]]]:
        """ListTaskInstances of one workflow instance, every page (note ``Bizdate`` with a lower-case d)."""
        params = {
            "ProjectId": self.project(project_id),
            "Bizdate": self.bizdate_ms(bizdate),
            "WorkflowInstanceId": int_or_text(workflow_instance_id),
        }
        return (yield from self._pages("POST", "ListTaskInstances", params, "TaskInstances", page_size))

    def list_upstream_task_instances(
        self, task_instance_id: str, page_size: int = DEFAULT_PAGE_SIZE
    ) -> Operation[list[dict[str, Any]]]:
        """ListUpstreamTaskInstances: ``{DependencyType, TaskInstance}`` records, every page."""
        params = {"Id": int_or_text(task_instance_id)}
        return (yield from self._pages("GET", "ListUpstreamTaskInstances", params, "UpstreamTaskInstances", page_size))

    def get_workflow(self, workflow_id: str, env_type: str | None = None) -> Operation[dict[str, Any]]:
        """GetWorkflow: the workflow's record, with ``Trigger.Type`` (Scheduler, Manual, TriggerWorkflow) and
        its ``Tasks``."""
        request = self.request("GET", "GetWorkflow", {"Id": int_or_text(workflow_id), "EnvType": env_type})
        payload = yield from self._call(request)
        record = payload.get("Workflow")
        if not isinstance(record, dict):
            raise FlowPlatformError(PLATFORM, request.call, f"the answer has no Workflow object for {workflow_id!r}")
        return record

    def create_workflow_instances(
        self,
        *,
        workflow_id: str,
        name: str,
        type: str = "ManualWorkflow",
        project_id: Any = None,
        periods: Mapping[str, Any] | None = None,
        parameters: Mapping[str, Any] | None = None,
        default_run_properties: Mapping[str, Any] | None = None,
        timeout: float = CREATE_TIMEOUT_SECONDS,
    ) -> Operation[list[str]]:
        """CreateWorkflowInstances, then GetCreateWorkflowInstancesResult until Created: the new instance ids.

        ``parameters`` travel as ``WorkflowParameters``: JSON for a ManualWorkflow, ``key=value`` text for the
        other types (the SDK model: "For a periodic workflow or an event-triggered workflow, the format is
        key=value ... For a manually triggered workflow, the format is JSON"). The create is a POST the
        transport never sends twice; GetCreateWorkflowInstancesResult is a read.
        """
        params = {
            "ProjectId": self.project(project_id),
            "WorkflowId": int_or_text(workflow_id),
            "Name": name,
            "Type": type,
            "Periods": None if periods is None else dict(periods),
            "DefaultRunProperties": None if default_run_properties is None else dict(default_run_properties),
            "WorkflowParameters": workflow_parameters_text(parameters, type),
        }
        request = self.request("POST", "CreateWorkflowInstances", params)
        payload = yield from self._call(request)
        operation_id = as_id(payload.get("OperationId"))
        if operation_id is None:
            raise FlowPlatformError(PLATFORM, request.call, "the answer has no OperationId")
        return (yield from self.wait_for_created(operation_id, timeout=timeout))

    def wait_for_created(self, operation_id: str, *, timeout: float = CREATE_TIMEOUT_SECONDS) -> Operation[list[str]]:
        """Poll GetCreateWorkflowInstancesResult, pausing ever longer, until Created or CreateFailure."""
        call = "GetCreateWorkflowInstancesResult"
        waited = 0.0
        for longest in poll_pauses():
            result = yield from self.get_create_workflow_instances_result(operation_id)
            status = result.get("Status")
            if status == "Created":
                ids = result.get("WorkflowInstanceIds")
                if not isinstance(ids, list) or not ids:
                    raise FlowPlatformError(PLATFORM, call, "the operation was created but names no instance")
                return [str(item) for item in ids]
            if status == "CreateFailure":
                reason = str(result.get("FailureMessage") or "no reason given")
                raise FlowPlatformError(PLATFORM, call, f"operation {operation_id} failed: {reason}", code=status)
            if status != "Creating":
                raise FlowPlatformError(PLATFORM, call, f"operation {operation_id} has an unknown status {status!r}")
            if waited >= timeout:
                raise FlowPlatformError(
                    PLATFORM, call, f"operation {operation_id} still Creating after {timeout:.0f} s", retryable=True
                )
            pause = min(longest, timeout - waited)
            waited += pause
            yield Sleep(pause)
        raise AssertionError("unreachable")  # pragma: no cover

    def get_create_workflow_instances_result(self, operation_id: str) -> Operation[dict[str, Any]]:
        request = self.request("GET", "GetCreateWorkflowInstancesResult", {"OperationId": operation_id})
        payload = yield from self._call(request)
        result = payload.get("Result")
        if not isinstance(result, dict):
            raise FlowPlatformError(PLATFORM, request.call, "the answer has no Result object")
        return result

    def stop_workflow_instances(self, ids: Sequence[Any], comment: str | None = None) -> Operation[dict[str, Any]]:
        """StopWorkflowInstances: its ``SuccessInfo``; any instance it could not stop is an error."""
        if isinstance(ids, (str, int)):
            ids = [ids]
        request = self.request(
            "POST", "StopWorkflowInstances", {"Ids": [int_or_text(item) for item in ids], "Comment": comment}
        )
        payload = yield from self._call(request)
        return success_info(payload, call=request.call, verb="stopped")

    def rerun_task_instances(
        self, ids: Sequence[Any], comment: str | None = None, use_latest_config: bool | None = None
    ) -> Operation[dict[str, Any]]:
        """RerunTaskInstances (POST, the 2024-05-18 SDK's model: ``Ids`` as a JSON array, ``Comment``,
        ``UseLatestConfig``): its ``SuccessInfo``; any task instance it did not rerun is an error. Never sent
        twice by the transport: it changes the remote side."""
        if isinstance(ids, (str, int)):
            ids = [ids]
        params = {
            "Ids": [int_or_text(item) for item in ids],
            "Comment": comment,
            "UseLatestConfig": use_latest_config,
        }
        request = self.request("POST", "RerunTaskInstances", params)
        payload = yield from self._call(request)
        return success_info(payload, call=request.call, verb="rerun")

    def get_instance(self, instance_id: str, include_graph: bool = True) -> Operation[FlowInstance]:
        """The workflow instance, and with ``include_graph`` its task instances and their dependencies."""
        record = yield from self.get_workflow_instance(instance_id)
        graph = None
        if include_graph:
            tasks = yield from self.task_instances_of(record)
            upstream: dict[str, list[dict[str, Any]]] = {}
            for task in tasks:
                task_id = required_id(task, "Id", platform=PLATFORM, call="ListTaskInstances")
                if task_id not in upstream:
                    upstream[task_id] = yield from self.list_upstream_task_instances(task_id)
            graph = build_graph(tasks, upstream)
        return self.to_flow_instance(record, graph=graph)

    def task_instances_of(self, record: Mapping[str, Any]) -> Operation[list[dict[str, Any]]]:
        """ListTaskInstances of a GetWorkflowInstance record (by its Id, BizDate and ProjectId)."""
        call = "GetWorkflowInstance"
        bizdate = require(record, "BizDate", platform=PLATFORM, call=call)
        try:
            bizdate = to_epoch_ms(bizdate)
        except (TypeError, ValueError, OverflowError):
            raise FlowPlatformError(PLATFORM, call, f"the BizDate {bizdate!r} is not epoch milliseconds") from None
        return (
            yield from self.list_task_instances(
                workflow_instance_id=str(require(record, "Id", platform=PLATFORM, call=call)),
                bizdate=bizdate,
                project_id=require(record, "ProjectId", platform=PLATFORM, call=call),
            )
        )

    # -- repair: rerun the failed task instances of a run (reruns.RerunningClient) ---------------------

    def plan_rerun(self, instance_id: str) -> Operation[RerunPlan]:
        """The run's failed task instances (``Status`` Failure) and the RunNumber each has now.

        Only they are rerun: DataWorks runs a task instance once all its upstream ones have succeeded, so the
        downstream ones that never ran (NotRun) follow by themselves.
        """
        record = yield from self.get_workflow_instance(instance_id)
        require_failure_state(self.to_flow_instance(record))
        tasks = yield from self.task_instances_of(record)
        failed = {
            required_id(task, "Id", platform=PLATFORM, call="ListTaskInstances"): run_number(task)
            for task in tasks
            if map_status(task.get("Status")) is FlowState.FAILED
        }
        if not failed:
            raise RerunNotSupported(
                PLATFORM, "ListTaskInstances", f"workflow instance {instance_id} failed, but no task instance of it did"
            )
        ids = tuple(failed)
        return RerunPlan(instance_id=instance_id, node_ids=ids, targets=ids, before=failed)

    def send_rerun(self, plan: RerunPlan) -> Operation[None]:
        comment = f"Rerun by Apache Airflow: the failed task instances of workflow instance {plan.instance_id}"
        yield from self.rerun_task_instances(plan.targets, comment=comment)

    def rerun_took_effect(self, plan: RerunPlan) -> Operation[bool]:
        """A task instance of the plan has a higher RunNumber, or is no longer Failure."""
        record = yield from self.get_workflow_instance(plan.instance_id)
        tasks = yield from self.task_instances_of(record)
        for task in tasks:
            task_id = as_id(task.get("Id"))
            if (
                task_id is not None
                and task_id in plan.before
                and (run_number(task) > plan.before[task_id] or map_status(task.get("Status")) is not FlowState.FAILED)
            ):
                return True
        return False

    # -- run control (TriggerFlowOperator, FlowInstanceEventTrigger) ----------------------------------

    def start_run(self, flow: str, parameters: Mapping[str, Any] | None, attempt: StartAttempt) -> Operation[str]:
        """Run the workflow ``flow`` once, the way its trigger type allows, and wait until it is created.

        GetWorkflow tells how the workflow is triggered: a manual one gets a ``ManualWorkflow`` instance, an
        event-triggered one a ``TriggerWorkflow`` instance, a scheduled (periodic) one a one-day data backfill
        (``SupplementData``) of the business day before the request, as its schedule would have run today.
        CreateWorkflowInstances has no idempotency token (its 2024-05-18 model has none), so the instance's
        ``Name`` carries the attempt's marker, and ``find_started_run`` finds it by that.
        """
        workflow = yield from self.get_workflow(flow)
        plan = creation_plan(workflow, flow, attempt, self.settings.timezone)
        ids = yield from self.create_workflow_instances(
            workflow_id=flow,
            name=run_name(flow, attempt),
            type=plan.type,
            project_id=as_id(workflow.get("ProjectId")),
            periods=plan.periods,
            parameters=parameters,
            default_run_properties=plan.default_run_properties,
        )
        if not ids:
            raise FlowPlatformError(PLATFORM, "CreateWorkflowInstances", "the platform created no instance")
        return ids[0]

    def find_started_run(
        self, flow: str, parameters: Mapping[str, Any] | None, attempt: StartAttempt
    ) -> Operation[str | None]:
        """The instance ``attempt`` created: ListWorkflowInstances of the workflow, for the business dates
        around the request, whose ``Name`` holds the attempt's marker; None when there is none. Only reads."""
        workflow = yield from self.get_workflow(flow)
        project = as_id(workflow.get("ProjectId"))
        matched: dict[str, str] = {}
        for bizdate in attempt_bizdates(attempt.requested_at_ms, self.settings.timezone):
            records = yield from self.list_workflow_instances(
                bizdate=bizdate, project_id=project, workflow_id=flow, Name=attempt.marker
            )
            for record in records:
                instance_id = as_id(record.get("Id"))
                if instance_id and attempt.marker in str(record.get("Name") or ""):
                    matched.setdefault(instance_id, str(record.get("Name")))
        if len(matched) > 1:
            listed = ", ".join(sorted(matched))
            raise AmbiguousStart(
                PLATFORM,
                "ListWorkflowInstances",
                f"several instances carry the start's marker {attempt.marker}: {listed}",
            )
        return next(iter(matched), None)

    def stop_run(self, instance_id: str) -> Operation[None]:
        yield from self.stop_workflow_instances([instance_id], comment="Stopped by Apache Airflow")

    def batch_instances(self, ids: Sequence[str]) -> Operation[dict[str, FlowInstance]]:
        """ListWorkflowInstances by ``Ids``, per workspace and data timestamp (learnt from an earlier read)."""
        groups: dict[tuple[str, int], list[str]] = {}
        for instance_id in ids:
            key = self.listing_keys.get(instance_id)
            if key is not None:
                groups.setdefault(key, []).append(instance_id)
        found: dict[str, FlowInstance] = {}
        for (project, bizdate), members in groups.items():
            for chunk in _chunks(members, MAX_PAGE_SIZE):
                records = yield from self.list_workflow_instances(
                    bizdate=bizdate, project_id=project, ids=chunk, page_size=MAX_PAGE_SIZE
                )
                for record in records:
                    instance = self.to_flow_instance(record)
                    found[instance.instance_id] = instance
        return found

    def recent_instances(
        self, flow: str, states: Iterable[FlowState], filters: Mapping[str, Any]
    ) -> Operation[list[FlowInstance]]:
        """Instances of the workflow ``flow`` for the data timestamps in ``filters["bizdates"]``, each once.

        ListWorkflowInstances needs a BizDate: by default yesterday's and today's in the business zone, as a
        run's data timestamp is usually the day before the day it runs. ``filters`` may also name a
        ``project_id``. An instance a listing returns twice (pages shifting under it) is kept once.
        """
        options = dict(filters)
        today = business_date(epoch_ms(self.clock), self.settings.timezone)
        bizdates = options.pop("bizdates", None) or recent_bizdates(today)
        found: dict[str, FlowInstance] = {}
        for bizdate in bizdates:
            records = yield from self.list_workflow_instances(bizdate=bizdate, workflow_id=flow, **options)
            for record in records:
                if as_id(record.get("WorkflowId")) == flow:
                    instance = self.to_flow_instance(record)
                    found.setdefault(instance.instance_id, instance)
        return list(found.values())

    # -- reading --------------------------------------------------------------------------------------

    def to_flow_instance(self, record: Mapping[str, Any], *, graph: InstanceGraph | None = None) -> FlowInstance:
        call = "GetWorkflowInstance"
        instance_id = required_id(record, "Id", platform=PLATFORM, call=call)
        status = as_id(record.get("Status"))
        with reading_times(PLATFORM, call):
            started_at = parse_epoch_ms(record.get("StartedTime"))
            ended_at = parse_epoch_ms(record.get("FinishedTime"))
        project, bizdate = record.get("ProjectId"), record.get("BizDate")
        if project is not None and isinstance(bizdate, int):
            self.listing_keys.remember(instance_id, (str(project), bizdate))
        return FlowInstance(
            platform=PLATFORM,
            instance_id=instance_id,
            flow_id=as_id(record.get("WorkflowId")),
            name=as_id(record.get("Name")),
            state=map_status(status),
            raw_state=status,
            started_at=started_at,
            ended_at=ended_at,
            url=self.instance_url(instance_id),
            graph=graph,
            details=dict(record),
        )

    def instance_url(self, instance_id: str) -> str | None:
        return None  # the console's instance pages need the account's own console address (not known here)

    # -- diagnosis ------------------------------------------------------------------------------------

    def get_task_instance_log(self, task_instance_id: str, run_number: int | None = None) -> Operation[str]:
        """GetTaskInstanceLog (GET, the 2024-05-18 SDK's model): ``Id`` and optional ``RunNumber`` (from 1;
        the latest run by default); the answer's ``TaskInstanceLog`` text."""
        params = {"Id": int_or_text(task_instance_id), "RunNumber": run_number}
        request = self.request("GET", "GetTaskInstanceLog", params)
        payload = yield from self._call(request)
        text = payload.get("TaskInstanceLog")
        return "" if text is None else str(text)

    def node_log(self, node: GraphNode) -> Operation[str] | None:
        """A task instance's log of its latest run."""
        return self.get_task_instance_log(node.instance_id) if node.instance_id else None

    def failure_notes(self, instance: FlowInstance) -> FailureNotes:
        return FailureNotes()  # its failed task instances' logs say it all


#: CreateWorkflowInstances ``Type`` per GetWorkflow ``Trigger.Type``.
INSTANCE_TYPE_BY_TRIGGER: Mapping[str, str] = {
    "Manual": "ManualWorkflow",
    "Scheduler": "SupplementData",
    "TriggerWorkflow": "TriggerWorkflow",
}


@dataclass(frozen=True)
class CreationPlan:
    """What CreateWorkflowInstances needs besides the workflow, its name and its parameters."""

    type: str
    periods: Mapping[str, Any] | None = None
    default_run_properties: Mapping[str, Any] | None = None


def creation_plan(workflow: Mapping[str, Any], flow: str, attempt: StartAttempt, timezone: str) -> CreationPlan:
    """How to run ``workflow`` (a GetWorkflow record) once, by its trigger type.

    A scheduled workflow runs as a backfill of one business date (the day before the request, in the business
    zone) of all its tasks: ``Mode`` ManualSelection with every task as a root, serial, no analysis (the
    model names Mode, Parallelism, Analysis and RootTaskIds as required for SupplementData).
    """
    trigger = workflow.get("Trigger")
    trigger_type = as_id(trigger.get("Type")) if isinstance(trigger, Mapping) else None
    instance_type = INSTANCE_TYPE_BY_TRIGGER.get(trigger_type or "")
    if instance_type is None:
        raise FlowPlatformError(
            PLATFORM,
            "GetWorkflow",
            f"workflow {flow} has the trigger type {trigger_type!r}; only Manual, Scheduler and TriggerWorkflow "
            "workflows can be started",
        )
    if instance_type != "SupplementData":
        return CreationPlan(type=instance_type)
    tasks = workflow.get("Tasks")
    task_ids = [int_or_text(task.get("Id")) for task in tasks or [] if isinstance(task, Mapping) and task.get("Id")]
    if not task_ids:
        raise FlowPlatformError(PLATFORM, "GetWorkflow", f"the scheduled workflow {flow} lists no tasks to run")
    day = (business_date(attempt.requested_at_ms, timezone) - dt.timedelta(days=1)).isoformat()
    return CreationPlan(
        type=instance_type,
        periods={"BizDates": [{"StartBizDate": day, "EndBizDate": day}]},
        default_run_properties={
            "Mode": "ManualSelection",
            "RootTaskIds": task_ids,
            "Parallelism": 1,
            "Analysis": {"Enabled": False, "Blocked": False},
        },
    )


def run_name(flow: str, attempt: StartAttempt) -> str:
    """The instance's Name: readable, and holding the attempt's marker so that the run can be found by it."""
    stamp = dt.datetime.fromtimestamp(attempt.requested_at_ms / 1000, dt.timezone.utc).strftime("%Y%m%d%H%M%S")
    return f"airflow_{flow}_{stamp}_{attempt.marker}"


def attempt_bizdates(requested_at_ms: int, timezone: str) -> list[dt.date]:
    """The business dates an instance created at about ``requested_at_ms`` can carry: the day of the request
    (either side of a clock-skew margin) and the day before it (a backfill's, and a manual run's usual one)."""
    days = {
        business_date(moment, timezone)
        for moment in (requested_at_ms - FIND_MARGIN_MS, requested_at_ms + FIND_MARGIN_MS)
    }
    return sorted(days | {day - dt.timedelta(days=1) for day in days})


def workflow_parameters_text(parameters: Mapping[str, Any] | None, instance_type: str) -> str | None:
    """``WorkflowParameters``: a JSON object for a ManualWorkflow; ``key=value`` pairs, separated by spaces as
    DataWorks writes scheduling parameters, for the other types (the separator is inferred)."""
    if not parameters:
        return None
    if instance_type == "ManualWorkflow":
        return param_text(dict(parameters))
    pairs = []
    for key, value in parameters.items():
        text = param_text(value)
        if not str(key) or any(char.isspace() or char == "=" for char in str(key)) or any(c.isspace() for c in text):
            raise FlowPlatformError(
                PLATFORM,
                "checking input",
                f"the parameter {key!r} cannot travel as key=value text (no spaces, and no '=' in the name)",
            )
        pairs.append(f"{key}={text}")
    return " ".join(pairs)


def success_info(payload: Mapping[str, Any], *, call: str, verb: str) -> dict[str, Any]:
    """A batch operation's ``SuccessInfo`` ({id: {Success, Message}}); an id not ``Success`` is an error."""
    info = payload.get("SuccessInfo")
    if not isinstance(info, dict):
        raise FlowPlatformError(PLATFORM, call, "the answer has no SuccessInfo object")
    refused = {
        key: value.get("Message") if isinstance(value, dict) else value
        for key, value in info.items()
        if not (isinstance(value, dict) and value.get("Success") is True)
    }
    if refused:
        listed = "; ".join(f"{key}: {message}" for key, message in sorted(refused.items()))
        raise FlowPlatformError(PLATFORM, call, f"not {verb}: {listed}")
    return info


def run_number(task: Mapping[str, Any]) -> int:
    """A task instance's ``RunNumber`` (1 for its first run; 1 when the platform sends none)."""
    number = int_or_text(task.get("RunNumber", 1))
    return number if isinstance(number, int) else 1


def _chunks(items: Sequence[str], size: int) -> Iterator[Sequence[str]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def recent_bizdates(today: dt.date) -> list[dt.date]:
    return [today - dt.timedelta(days=1), today]


def _count(value: Any) -> int | None:
    """A ``TotalCount``: a whole number of ASCII digits, else None (not shown)."""
    number = int_or_text(value)
    return number if isinstance(number, int) else None


def is_page_size_refusal(exc: FlowPlatformError) -> bool:
    """A 400 that names PageSize in its code or message: the page asked for is larger than the action takes.

    (The platform's code for it is not documented; the emulator answers ``InvalidParameter.PageSize``.)
    """
    if exc.http_status != 400 or isinstance(exc, FlowInstanceNotFound):
        return False
    return "pagesize" in (exc.code or "").lower() or "pagesize" in exc.platform_message.lower()


def smaller_page_size(size: int) -> int | None:
    """The next page size to try below ``size``, or None where none is left."""
    return next((step for step in PAGE_SIZE_STEPS if step < size), None)


def poll_pauses() -> Iterator[float]:
    """0.5, 1, 2, 4, 5, 5... seconds between two polls."""
    pause = CREATE_POLL_FIRST_SECONDS
    while True:
        yield pause
        pause = min(pause * 2, CREATE_POLL_MAX_SECONDS)


def build_graph(
    task_instances: Sequence[Mapping[str, Any]], upstream: Mapping[str, Sequence[Mapping[str, Any]]]
) -> InstanceGraph:
    """Nodes from ListTaskInstances; edges upstream -> task from ListUpstreamTaskInstances, kept only
    between task instances of this workflow instance (dependencies on other workflows are left out)."""
    nodes: dict[str, GraphNode] = {}
    for task in task_instances:
        node_id = required_id(task, "Id", platform=PLATFORM, call="ListTaskInstances")
        status = as_id(task.get("Status"))
        nodes.setdefault(
            node_id,
            GraphNode(
                id=node_id,
                name=as_id(task.get("TaskName")),
                kind=NodeKind.TASK,
                state=map_status(status),
                raw_state=status,
                instance_id=node_id,
            ),
        )
    edges: dict[tuple[str, str], GraphEdge] = {}
    for target, entries in upstream.items():
        if target not in nodes:
            continue
        for entry in entries:
            nested = entry.get("TaskInstance")
            upstream_task = nested if isinstance(nested, Mapping) else entry
            source = as_id(upstream_task.get("Id"))
            if source is None:
                raise FlowPlatformError(PLATFORM, "ListUpstreamTaskInstances", "an upstream task instance has no Id")
            if source in nodes and source != target:
                edges.setdefault((source, target), GraphEdge(source, target))
    return InstanceGraph(nodes=tuple(nodes.values()), edges=tuple(edges.values()))
