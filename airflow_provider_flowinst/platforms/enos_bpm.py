"""EnOS BPM process instances: portal login, requests, envelopes, states and the one-node graph. No I/O.

Every BPM call goes through the EnOS API gateway (token plus per-call signature, see ``enos_gateway``)
and also carries ``Authorization: Bearer <user access token>`` from an Application Portal login.
The portal calls themselves (log in, choose organization, refresh) are gateway-signed as well: they are
served under the same ``{apigw-address}`` and the vendor's own samples (EnvisionIot/sample-code-python,
``poseidon.urlopen(accessKey, secretKey, ...)``) sign them like any other EnOS API call.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from airflow_provider_flowinst.errors import AmbiguousStart, FlowInstanceNotFound, FlowPlatformError
from airflow_provider_flowinst.models import FlowInstance, FlowState, GraphNode, InstanceGraph, NodeKind
from airflow_provider_flowinst.platforms._common import (
    Hints,
    epoch_ms,
    instance_record,
    json_request,
    object_list,
    reading_times,
)
from airflow_provider_flowinst.platforms.enos_batch import console_link
from airflow_provider_flowinst.platforms.enos_gateway import (
    EnOSGatewayAuth,
    envelope_code,
    envelope_message,
    read_enos_envelope,
    sha256_hex,
)
from airflow_provider_flowinst.protocol import (
    AuthenticatorDefaults,
    FailureNotes,
    HttpRequest,
    HttpResponse,
    Operation,
    StartAttempt,
    Token,
    as_id,
    decode_json,
    require,
)
from airflow_provider_flowinst.timeparse import parse_epoch_ms

PLATFORM = "enos_bpm"
SERVICE_PATH = "/enos-bpm-service/v2.0/work"
#: Log In: v2.2 in the zh app-portal 2.3.0 and the 2.4.0+ docs (``code: 0``), v2.0 in the en app-portal-api
#: 2.3.0 pages and api_en ``app_portal/login.md`` (``code: 200``). Tried in this order, the next on HTTP 404.
PORTAL_LOGIN_PATHS = ("/app-portal-service/v2.2/login", "/app-portal-service/v2.0/login")
PORTAL_LOGIN_PATH = PORTAL_LOGIN_PATHS[0]
#: Choose Organization: v2.2 in the current docs (answers ``code: 0``), v2.1 in the app-portal-api 2.1.0 to
#: 2.3.0 docs (``code: 200``). Tried in this order; the next one only when a version answers HTTP 404.
PORTAL_SESSION_SET_PATHS = ("/app-portal-service/v2.2/session/set", "/app-portal-service/v2.1/session/set")
#: Refresh Access Token: ``GET .../token/refresh?refreshToken=``, v2.2 in app-portal-api 2.2.0 to 3.0.0
#: (``code: 0``), v2.0 in the 2.1.0 docs (``code: 200``); the same fallback on HTTP 404.
PORTAL_REFRESH_PATHS = ("/app-portal-service/v2.2/token/refresh", "/app-portal-service/v2.0/token/refresh")

LOGIN_CALL = "Log In"
CHOOSE_CALL = "Choose Organization"
REFRESH_CALL = "Refresh Access Token"

NOT_FOUND_CODE = "33404"
#: Portal success: ``code: 0`` from v2.2, ``code: 200`` in the v2.0 and v2.1 documentation.
PORTAL_SUCCESS_CODES = frozenset({"0", "200"})
#: "Please login first" (31401, documented for an expired or unknown user session), and the portal's common
#: codes for "log in first" (401) and "token expired" (410), which a BPM call may pass on (inferred).
PORTAL_EXPIRED_CODES = frozenset({"31401", "401", "410"})
#: ``pagination.pageSize`` of each queryList request until the platform shows a smaller cap; the API's
#: own default is 1000.
QUERY_PAGE_SIZE = 100
#: Page sizes tried, in turn, after the platform refuses one (caps are not documented; they tend to be
#: round numbers); below the last one a refusal is not about the page size.
SMALLER_PAGE_SIZES = (500, 200, 100, 50, 20, 10)
#: A start's run is looked for from this long before the start was asked for (clocks differ).
START_SEARCH_MARGIN_MS = 2 * 60 * 1000

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


@dataclass(frozen=True)
class PortalSession:
    """What a BPM token carries beside the gateway token (its ``payload``): the portal user's token, sent as
    the bearer token of every call, and the refresh token that renews it without the password."""

    bearer: str = field(repr=False)
    refresh_value: str | None = field(default=None, repr=False)

    def secrets(self) -> tuple[str, ...]:
        return (self.bearer,) if self.refresh_value is None else (self.bearer, self.refresh_value)


def portal_session(token: Token) -> PortalSession | None:
    """The portal session a BPM login cached with the gateway token, if ``token`` holds one."""
    return token.payload if isinstance(token.payload, PortalSession) else None


class PortalVersions:
    """Which version of each portal call (Log In, Choose Organization, Refresh) a portal serves, learnt from
    its 404s: the hook keeps one per connection, so only the first login on an older portal meets a 404."""

    def __init__(self) -> None:
        self._served: dict[str, str] = {}

    def in_order(self, call: str, paths: Sequence[str]) -> tuple[str, ...]:
        """``paths`` with the one known to be served first (the rest still follow: a portal may be upgraded)."""
        known = self._served.get(call)
        if known is None or known not in paths:
            return tuple(paths)
        return (known, *(path for path in paths if path != known))

    def served(self, call: str) -> str | None:
        return self._served.get(call)

    def remember(self, call: str, path: str) -> None:
        self._served[call] = path


@dataclass(frozen=True)
class EnOSBPMAuth(AuthenticatorDefaults):
    """The gateway signature plus the portal user's bearer token, obtained by one login and cached together.

    ``login()`` fetches the gateway token, logs the portal account in and always chooses an organization
    (``org_id``, or the only one the login answer lists): the login's own token serves Choose Organization
    only, and the token that call hands out is the one BPM accepts. The resulting ``Token`` holds the
    gateway token in ``value`` and that user token and its refresh token in its ``PortalSession`` payload.
    ``renew()`` replaces a refused or spent token by the refresh token, and logs in again only when that fails.
    ``on_secret`` is told every token obtained, so the hook can mask it in logs.
    """

    gateway: EnOSGatewayAuth
    account: str
    password: str = field(repr=False)
    org_id: str | None = None
    on_secret: Callable[[str], None] | None = field(default=None, repr=False, compare=False)
    #: The portal versions found to answer; the hook passes the connection's own, kept across its hooks.
    versions: PortalVersions = field(default_factory=PortalVersions, repr=False, compare=False)

    @property
    def platform(self) -> str:
        return self.gateway.platform

    @property
    def cache_key(self) -> str:
        # A digest of the secrets keeps a connection with a wrong password from reusing another's token.
        digest = sha256_hex(f"{self.password}\0{self.gateway.app_secret}")[:16]
        return f"enos-bpm|{self.gateway.base_url}|{self.gateway.app_key}|{self.account}|{self.org_id or ''}|{digest}"

    def login(self) -> Operation[Token]:
        gateway_token = yield from self._gateway_token()
        return (yield from self._log_in(gateway_token))

    def renew(self, token: Token) -> Operation[Token]:
        """A new session for one the platform refused or that ran out, without the password if it can be.

        A fresh gateway token (the refused call may have met an expired one), then Refresh Access Token
        with ``token``'s refresh token; a password login only when there is none or the portal refuses it.
        """
        gateway_token = yield from self._gateway_token()
        refresh_value = _refresh_value(token)
        if refresh_value:
            try:
                data = yield from self._refresh_session(gateway_token, refresh_value)
                return self._session_token(gateway_token, data, REFRESH_CALL, refresh_value=refresh_value)
            except FlowPlatformError:
                pass  # the refresh token expired or was revoked: only the password is left
        return (yield from self._log_in(gateway_token))

    def refresh(self, token: Token) -> Operation[Token]:
        """Refresh Access Token with ``token``'s own gateway token: a new user token, without the password."""
        refresh_value = _refresh_value(token)
        if not refresh_value:
            raise FlowPlatformError(self.platform, REFRESH_CALL, "no refresh token: Choose Organization hands one out")
        data = yield from self._refresh_session(token, refresh_value)
        return self._session_token(token, data, REFRESH_CALL, refresh_value=refresh_value)

    def sign(self, request: HttpRequest, token: Token | None, now_ms: int) -> HttpRequest:
        session = None if token is None else portal_session(token)
        if token is None or session is None or not session.bearer:
            raise ValueError("EnOS BPM calls need the gateway token and the portal user token")
        signed = self.gateway.sign(request, token, now_ms)
        return signed.with_headers({"Authorization": f"Bearer {session.bearer}"})

    def authorize(self, request: HttpRequest, token: Token | None, now_ms: int) -> HttpRequest:
        """Calls signed; the login's steps as the gateway sends them (its token request stamped anew)."""
        if request.authenticated:
            return self.sign(request, token, now_ms)
        return self.gateway.authorize(request, token, now_ms)

    def is_token_expired(self, response: HttpResponse) -> bool:
        """HTTP 401, the gateway's 1203, or the portal's 31401 "Please login first" (or 401/410) in a BPM answer."""
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

    # -- the steps ------------------------------------------------------------------------------------

    def _gateway_token(self) -> Operation[Token]:
        gateway_token = yield from self.gateway.login()
        # Each credential is handed over for masking as soon as it arrives, even if a later step fails.
        self._reveal(gateway_token.value)
        return gateway_token

    def _log_in(self, gateway_token: Token) -> Operation[Token]:
        """Log In, then Choose Organization with the login's token (which serves for nothing else)."""
        body = {"account": self.account, "password": self.password}
        response = yield from self._first_served(
            LOGIN_CALL,
            PORTAL_LOGIN_PATHS,
            lambda path: self._portal_request("POST", path, LOGIN_CALL, gateway_token, body=body),
        )
        data = read_portal_envelope(response, call=LOGIN_CALL, platform=self.platform)
        login_token = _access_token(data, call=LOGIN_CALL, platform=self.platform)
        self._reveal(login_token)
        org_id = self.org_id or only_organization(data.get("organizations"), platform=self.platform)
        session = yield from self._choose_organization(gateway_token, login_token, org_id)
        # v2.1 answers with "the access token in the request", now bound to the organization.
        return self._session_token(gateway_token, session, CHOOSE_CALL, bearer=login_token)

    def _choose_organization(self, gateway_token: Token, login_token: str, org_id: str) -> Operation[dict[str, Any]]:
        response = yield from self._first_served(
            CHOOSE_CALL,
            PORTAL_SESSION_SET_PATHS,
            lambda path: self._portal_request(
                "POST", path, CHOOSE_CALL, gateway_token, login_token, body={"orgId": org_id}
            ),
        )
        return read_portal_envelope(response, call=CHOOSE_CALL, platform=self.platform)

    def _refresh_session(self, gateway_token: Token, refresh_token: str) -> Operation[dict[str, Any]]:
        # No bearer token: the portal needs none for a refresh ("the user need not be logged in").
        response = yield from self._first_served(
            REFRESH_CALL,
            PORTAL_REFRESH_PATHS,
            lambda path: self._portal_request(
                "GET", path, REFRESH_CALL, gateway_token, params=(("refreshToken", refresh_token),)
            ),
        )
        return read_portal_envelope(response, call=REFRESH_CALL, platform=self.platform)

    def _first_served(
        self, call: str, paths: Sequence[str], request_at: Callable[[str], HttpRequest]
    ) -> Operation[HttpResponse]:
        """The answer of the first version of ``call`` the portal serves: a 404 means a portal without that
        version, so the next is tried; the one that answers is remembered for the connection."""
        response: HttpResponse | None = None
        for path in self.versions.in_order(call, paths):
            response = yield request_at(path)
            if response.status != 404:
                self.versions.remember(call, path)
                break
        assert response is not None
        return response

    def _session_token(
        self,
        gateway_token: Token,
        data: Mapping[str, Any],
        call: str,
        *,
        bearer: str | None = None,
        refresh_value: str | None = None,
    ) -> Token:
        """The cached token: the gateway token with the portal answer's access and refresh tokens."""
        bearer = as_id(data.get("accessToken")) or bearer
        if not bearer:
            raise FlowPlatformError(self.platform, call, "the answer has no accessToken")
        refreshed = as_id(data.get("refreshToken")) or refresh_value
        self._reveal(bearer, refreshed)
        session = PortalSession(bearer=bearer, refresh_value=refreshed)
        return Token(value=gateway_token.value, expires_at=gateway_token.expires_at, payload=session)

    def _portal_request(
        self,
        method: str,
        path: str,
        call: str,
        gateway_token: Token,
        bearer: str | None = None,
        body: Any = None,
        params: tuple[tuple[str, str], ...] = (),
    ) -> HttpRequest:
        # Marked unauthenticated so the transport sends it as it is: it is signed here, with the gateway
        # token this very login obtained, because no cached token exists yet.
        request = json_request(
            method,
            self.gateway.base_url + path,
            call=call,
            params=params,
            body=body,
            headers={"Authorization": f"Bearer {bearer}"} if bearer else None,
            authenticated=False,
            idempotent=True,  # logging in again does no harm
        )
        return self.gateway.sign(request, gateway_token, epoch_ms(self.gateway.clock))

    def _reveal(self, *secrets: str | None) -> None:
        if self.on_secret is None:
            return
        for secret in dict.fromkeys(secrets):
            if secret:
                self.on_secret(secret)


def _refresh_value(token: Token) -> str | None:
    session = portal_session(token)
    return None if session is None else session.refresh_value


def only_organization(organizations: Any, *, platform: str = PLATFORM) -> str:
    """The one organization a login answer lists; with none or several, an error saying to set ``org_id``."""
    listed = [item for item in organizations if isinstance(item, Mapping)] if isinstance(organizations, list) else []
    known = [(org, as_id(item.get("name"))) for item in listed if (org := as_id(item.get("id")))]
    if len(known) == 1:
        return known[0][0]
    if not known:
        message = "the login answer lists no organization for this account: set the connection's extra 'org_id'"
    else:
        names = ", ".join(f"{org} ({name})" if name else str(org) for org, name in known)
        message = (
            f"the account belongs to {len(known)} organizations ({names}): "
            "set the connection's extra 'org_id' to the one to use"
        )
    raise FlowPlatformError(platform, CHOOSE_CALL, message)


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
    offers_graph = True  # the current task, as a one-node graph
    graph_in_one_read = True

    def __init__(self, settings: EnOSBPMSettings) -> None:
        self.settings = settings
        self.service_url = settings.base_url + SERVICE_PATH
        #: The page size queryList gets: smaller once the platform refuses or caps one, for this connection.
        self.page_size = QUERY_PAGE_SIZE
        #: When each instance read started: a batched read asks queryList for the window of its waits only.
        self.started: Hints[dt.datetime | None] = Hints()

    # -- requests -------------------------------------------------------------------------------------

    def _request(
        self, method: str, resource: str, call: str, params: Mapping[str, Any] | None = None, body: Any = None
    ) -> HttpRequest:
        return json_request(
            method,
            f"{self.service_url}/{resource}",
            call=call,
            params=params or {},
            body=body,
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
        missing = f"no process instance {process_instance_id!r}"
        return instance_record(data, platform=PLATFORM, call=request.call, missing=missing)

    def query_process_instances_page(
        self,
        process_status: str,
        *,
        current: int = 0,
        page_size: int | None = None,
        sorts: list[Mapping[str, str]] | None = None,
        **filters: Any,
    ) -> Operation[dict[str, Any]]:
        """One page of Query Process Instance: ``{pagination, processInstances}``."""
        size = page_size or self.page_size
        body = query_body(process_status, current=current, page_size=size, sorts=sorts, **filters)
        request = self._request("POST", "process-instances/queryList", "Query Process Instance", body=body)
        data = yield from self._call(request)
        if not isinstance(data, dict):
            raise FlowPlatformError(PLATFORM, request.call, "the answer has no data object")
        object_list(data.get("processInstances") or [], platform=PLATFORM, call=request.call)
        return data

    def query_process_instances(
        self,
        process_status: str,
        *,
        page_size: int | None = None,
        sorts: list[Mapping[str, str]] | None = None,
        **filters: Any,
    ) -> Operation[list[dict[str, Any]]]:
        """Every page of Query Process Instance, as the platform sent the records.

        ``pagination.current`` counts from 0 ("starting from 0"). The listing ends only where the platform
        shows there is no more: an empty page, or as many rows handed out as its ``total``. A page shorter
        than asked may be a cap, not the end: the paging goes on in the platform's own page size, which is
        remembered, as is a smaller size after the platform refuses one.
        """
        size = page_size or self.page_size
        found: dict[str, dict[str, Any]] = {}
        current = handed = 0  # handed: rows the platform has sent, so the offset of the next page
        previous: list[str] = []
        capped_at: int | None = None  # a page size the platform may have capped this listing to
        while True:
            try:
                data = yield from self.query_process_instances_page(
                    process_status, current=current, page_size=size, sorts=sorts, **filters
                )
            except FlowPlatformError as refused:
                smaller = smaller_page_size(size, refused) if handed == 0 else None
                if smaller is None:
                    raise
                size = self.page_size = smaller
                continue
            page = object_list(data.get("processInstances") or [], platform=PLATFORM, call="Query Process Instance")
            keys = [_record_id(record) or f"#{handed + n}" for n, record in enumerate(page)]
            if not page or keys == previous:  # empty, or the same page again (a server counting from 1)
                return list(found.values())
            for key, record in zip(keys, page, strict=True):
                found.setdefault(key, record)
            if capped_at is not None:  # rows after a short page: it was a cap, remember it
                self.page_size, capped_at = min(self.page_size, capped_at), None
            handed += len(page)
            pagination = data.get("pagination")
            pagination = pagination if isinstance(pagination, dict) else {}
            total = _int_or_none(pagination.get("total"))
            if total is not None and handed >= total:
                return list(found.values())
            if len(page) < size:  # a cap, since the platform says there is more (or does not say)
                echoed = _int_or_none(pagination.get("pageSize"))
                capped = echoed if echoed is not None and 0 < echoed < size else len(page)
                if handed % capped == 0:  # the next page starts where the platform's own paging puts it
                    size = capped_at = capped
                    current = handed // size - 1
            current += 1
            previous = keys

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
        """Start a process instance of the definition ``flow``; ``parameters`` are its ``values``.

        The instance's name carries the attempt's marker, which queryList shows back: that is how
        ``find_started_run`` tells this attempt's instance from any other.
        """
        name = f"{flow.split(':', 1)[0]} {marker_tag(attempt.marker)}"
        return (yield from self.start_process_instance(flow, values=parameters, name=name))

    def find_started_run(
        self, flow: str, parameters: Mapping[str, Any] | None, attempt: StartAttempt
    ) -> Operation[str | None]:
        """The instance whose name carries ``attempt``'s marker, started since a little before it was asked.

        Looks among instances in progress first (a new one nearly always is), then completed and terminated
        ones. The name is matched here, not by queryList's ``processName``, which may mean the definition's.
        """
        tag = marker_tag(attempt.marker)
        window: dict[str, Any] = {"startedAfter": attempt.requested_at_ms - START_SEARCH_MARGIN_MS}
        found: list[str] = []
        for status in PROCESS_STATUSES:
            records = yield from self.query_process_instances(status, **window)
            for record in records:
                name = as_id(record.get("name")) or as_id(record.get("processName")) or ""
                instance_id = _record_id(record)
                if tag in name and instance_id and instance_id not in found:
                    found.append(instance_id)
            if found:
                break
        if len(found) > 1:
            raise AmbiguousStart(
                PLATFORM,
                "Start Process Instance",
                f"several process instances carry this start's marker {tag}: {', '.join(found)}",
            )
        return found[0] if found else None

    def stop_run(self, instance_id: str) -> Operation[None]:
        return (yield from self.terminate_process_instance(instance_id, STOP_REASON))

    def batch_instances(self, ids: Sequence[str]) -> Operation[dict[str, FlowInstance]]:
        """Every instance in progress, in a few query pages: a wait missing from them has ended.

        When every wait's start time is known (from an earlier read), the query asks only for that window.
        """
        wanted = set(ids)
        records = yield from self.query_process_instances("inProgress", **started_window(ids, self.started))
        instances = (self.to_flow_instance(record, include_graph=False, listed_as="inProgress") for record in records)
        return {instance.instance_id: instance for instance in instances if instance.instance_id in wanted}

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
                self.to_flow_instance(record, include_graph=False, listed_as=status)
                for record in records
                if as_id(record.get("processDefinitionId")) == flow
            ]
        return found

    # -- reading --------------------------------------------------------------------------------------

    def to_flow_instance(
        self, record: Mapping[str, Any], *, include_graph: bool = True, listed_as: str | None = None
    ) -> FlowInstance:
        """A record of Get, or of a queryList for ``processStatus`` ``listed_as`` (its records may lack one)."""
        call = "Get Process Instance" if listed_as is None else "Query Process Instance"
        if not isinstance(record, Mapping):
            raise FlowPlatformError(PLATFORM, call, f"expected an object, got {type(record).__name__}")
        instance_id = as_id(record.get("id")) or as_id(record.get("processInstanceId"))
        if instance_id is None:
            raise FlowPlatformError(PLATFORM, call, "the answer has no 'id' field")
        status = record.get("processStatus") if record.get("processStatus") is not None else listed_as
        raw_state = as_id(require({"processStatus": status}, "processStatus", platform=PLATFORM, call=call))
        state = map_status(raw_state)
        flow_id = as_id(record.get("processDefinitionId"))
        with reading_times(PLATFORM, call):
            started_at = _first_time(record, "createdTime", "started")
            ended_at = _first_time(record, "completedTime", "terminatedTime", "ended")
        self.started.remember(instance_id, started_at)
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

    # -- diagnosis ------------------------------------------------------------------------------------

    def node_log(self, node: GraphNode) -> Operation[str] | None:
        return None  # BPM has no task-log call

    def failure_notes(self, instance: FlowInstance) -> FailureNotes:
        """The current task and its assignee, and who terminated the process and why."""
        details = instance.details
        assignee = details.get("assignee")
        who = _person(assignee) if isinstance(assignee, Mapping) else None
        notes = [f"current task: {details.get('taskName') or '-'}, assignee: {who or '-'}"]
        termination = _termination(details)
        if termination:
            notes.append(termination)
        notes.append("EnOS BPM has no task-log call; the process's history is in the BPM console")
        return FailureNotes(notes=tuple(notes), cause=termination)


def _termination(details: Mapping[str, Any]) -> str | None:
    """ "terminated by <who>: <reason>" for a terminated process (``terminatedBy``, ``terminateReason``)."""
    if not (details.get("terminateReason") or details.get("terminatedBy")):
        return None
    by = details.get("terminatedBy")
    who = (_person(by) if isinstance(by, Mapping) else None) or "-"
    return f"terminated by {who}: {details.get('terminateReason') or 'no reason given'}"


def _person(record: Mapping[str, Any]) -> str | None:
    """A user record's name: ``fullName``, else first and last name, else its id."""
    name = record.get("fullName") or " ".join(str(record.get(k) or "") for k in ("firstName", "lastName")).strip()
    return str(name or record.get("id") or "") or None


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


def marker_tag(marker: str) -> str:
    """What an instance's name carries of the start attempt that made it: short, and unique enough."""
    return f"[airflow:{marker[:12]}]"


def started_window(ids: Sequence[str], started: Hints[dt.datetime | None]) -> dict[str, Any]:
    """queryList's ``startedAfter``/``startedBefore`` around the waits' start times, when all are known.

    A second either side: whether the platform's bounds include the moment itself is not documented.
    """
    starts = [started.get(i) for i in ids]
    if not ids or any(moment is None for moment in starts):
        return {}
    millis = [_epoch_ms(moment) for moment in starts if moment is not None]
    return {"startedAfter": min(millis) - 1000, "startedBefore": max(millis) + 1000}


def smaller_page_size(size: int, refused: FlowPlatformError) -> int | None:
    """The page size to try after the platform refused ``size``; None where the refusal is not about it.

    A number below ``size`` in the platform's message is taken as its limit; else the next smaller
    usual size. A refusal that passed through retries (5xx) or names no code is not a page-size refusal.
    """
    if refused.retryable or refused.code is None or isinstance(refused, FlowInstanceNotFound):
        return None
    named = [int(n) for n in re.findall(r"\d+", refused.platform_message) if 0 < int(n) < size]
    if named:
        return max(named)
    return next((smaller for smaller in SMALLER_PAGE_SIZES if smaller < size), None)


def _record_id(record: Mapping[str, Any]) -> str | None:
    return as_id(record.get("id")) or as_id(record.get("processInstanceId"))


def _int_or_none(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


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
