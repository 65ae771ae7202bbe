"""IBM Spectrum LSF Process Manager through LSF Application Center web services. No I/O.

- Logon: POST ``/platform/ws/logon`` with ``<User><name/><pass/></User>`` (``Content-Type: application/xml``)
  answers a token (JSON ``{"token": ...}`` or XML ``<User><token/></User>``). Every later call sends it back as
  the cookie ``platform_token=<token>`` with each ``"`` written ``#quote#``. The server drops a token after 60
  minutes unused (the call then answers 401) and may refuse a second logon while one is live (409), so a
  process done with a token logs out (POST ``/platform/ws/logout`` with the cookie; IBM: "the client must call
  the logout service").
- Flow instances: GET ``/platform/ws/flow/instances`` (JSON or XML), operations POST
  ``/platform/ws/flow/instances/{kill|suspend|resume|rerun}`` and POST ``/platform/ws/flow/definitions/submit``.
- Quirks read here: one match may come as a lone object instead of a list; key names (JSON keys and XML
  element names) may carry a stray leading space; times read "2018-08-14 14:11:15 GMT+08:00", "" = not yet;
  a query that matches nothing answers 404. No call offers a flow's inner graph, so ``graph`` is always None.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import json
import math
import re
import secrets
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypedDict
from xml.etree.ElementTree import Element, ParseError
from xml.sax.saxutils import escape

import defusedxml
import defusedxml.ElementTree

from airflow_provider_flowinst.errors import AmbiguousStart, FlowInstanceNotFound, FlowPlatformError, RunOutcomeUnknown
from airflow_provider_flowinst.models import FlowInstance, FlowState, GraphNode
from airflow_provider_flowinst.platforms._common import form_body, reading_times
from airflow_provider_flowinst.protocol import (
    AuthenticatorDefaults,
    FailureNotes,
    HttpRequest,
    Token,
    as_id,
    parse_json,
    require,
    required_id,
    snippet,
)
from airflow_provider_flowinst.reruns import RerunPlan, require_failure_state
from airflow_provider_flowinst.timeparse import parse_gmt_offset_time, parse_local_time

if TYPE_CHECKING:  # annotations only
    from typing_extensions import Unpack

    from airflow_provider_flowinst.protocol import HttpResponse, Operation, StartAttempt

PLATFORM = "lsf_pm"
WS_PATH = "/platform/ws"
LOGON_PATH = f"{WS_PATH}/logon"
LOGOUT_PATH = f"{WS_PATH}/logout"
INSTANCES_PATH = f"{WS_PATH}/flow/instances"
SUBMIT_PATH = f"{WS_PATH}/flow/definitions/submit"
TOKEN_COOKIE = "platform_token"
QUOTE_MARK = "#quote#"
#: The ports Application Center serves on when the connection's host names none.
APPLICATION_CENTER_PORTS: Mapping[str, int] = {"http": 8080, "https": 8443}
#: Page size used to gather every page of a query when the caller gives none.
DEFAULT_PAGE_SIZE = 100
#: Pages of the batched listing that answers many waits at once (inferred: the server sets no maximum).
BATCH_PAGE_SIZE = 500
#: A look for the run of an attempt made in another process takes runs started from this long before it
#: (clocks of the worker and the server differ).
START_WINDOW_MARGIN_MS = 120_000
#: Attempts whose "ids before the submit" a client remembers.
MAX_REMEMBERED_ATTEMPTS = 64
#: The server forgets a token after this long unused (it is not a fixed lifetime).
TOKEN_IDLE_SECONDS = 3600
JSON = "application/json"
XML = "application/xml"
FORM = "application/x-www-form-urlencoded"

QUERY_CALL = "Get Flow Instances"
LOGON_CALL = "Log On"
LOGOUT_CALL = "Log Out"
SUBMIT_CALL = "Submit Flow"
OPERATION_CALLS: Mapping[str, str] = {
    "kill": "Kill Flow Instances",
    "suspend": "Suspend Flow Instances",
    "resume": "Resume Flow Instances",
    "rerun": "Rerun Flow Instances",
}

#: LSF Process Manager's ``state`` words (compared case-insensitively); anything else is UNKNOWN.
STATE_BY_WORD: Mapping[str, FlowState] = {
    "running": FlowState.RUNNING,
    "suspended": FlowState.SUSPENDED,
    "done": FlowState.SUCCESS,
    "exit": FlowState.FAILED,
    "killed": FlowState.CANCELLED,
}
#: Fields whose XML text is a number in the JSON form of the same answer.
_INT_FIELDS = frozenset({"id", "status", "total"})
#: ``< lastUpdateTime>`` / ``</ lastUpdateTime>``: the documented XML has a space after ``<`` (or ``</``).
_SPACED_TAG = re.compile(rb"<(/?)\s+(?=[A-Za-z_])")


def map_state(word: Any) -> FlowState:
    """The FlowState of an LSF ``state`` word (Running, Suspended, Done, Exit, Killed)."""
    if word is None:
        return FlowState.UNKNOWN
    return STATE_BY_WORD.get(str(word).strip().lower(), FlowState.UNKNOWN)


# -- the token and the cookie ------------------------------------------------------------------------


def cookie_value(token: str) -> str:
    """The token as the ``platform_token`` cookie carries it: every ``"`` becomes ``#quote#``."""
    return token.replace('"', QUOTE_MARK)


def logon_body(user: str, password: str) -> bytes:
    """``<User><name>..</name><pass>..</pass></User>``, with XML special characters escaped."""
    return f"<User><name>{escape(user)}</name><pass>{escape(password)}</pass></User>".encode()


def parse_logon_response(response: HttpResponse, *, user: str, base_url: str) -> Token:
    """The token of a logon answer (JSON ``{"token"}`` or ``{"User": {"token"}}``, XML ``<User><token>``)."""
    if response.status == 409:
        raise FlowPlatformError(
            PLATFORM,
            LOGON_CALL,
            f"user {user!r} is already logged on to {base_url}: the server refuses a second logon while "
            "another session's token is live, and this process holds no token for it. Wait until that "
            f"session logs out or its token is dropped ({TOKEN_IDLE_SECONDS // 60} minutes unused); "
            f"the platform says: {_platform_says(response, LOGON_CALL)}",
            http_status=409,
            permanent=False,  # a later try may find the other session gone
        )
    payload = read_answer(response, call=LOGON_CALL)
    token: Any = None
    if isinstance(payload, dict):
        token = payload.get("token")
        nested = payload.get("User")
        if token is None and isinstance(nested, dict):
            token = nested.get("token")
    if isinstance(token, str):
        # ws_overview shows the token written as the cookie it becomes, "platform_token=lsfadmin"...": the
        # cookie is built from the bare token, so the prefix goes (else it would be sent twice).
        token = token.strip().removeprefix(f"{TOKEN_COOKIE}=").strip()
    if not isinstance(token, str) or not token:
        raise FlowPlatformError(PLATFORM, LOGON_CALL, "the answer holds no token", http_status=response.status)
    # The server forgets a token only after it has gone unused for an hour, so it has no fixed lifetime:
    # it stays cached until a call answers 401, and then the transport logs on again.
    return Token(value=token, expires_at=math.inf)


_PROCESS_KEY = secrets.token_bytes(32)


@dataclass(frozen=True)
class LSFLogonAuth(AuthenticatorDefaults):
    """Logon with user name and password; the token goes back as a cookie.

    The cache key is (base URL, user) (and a keyed digest of the password), so every hook of the process
    shares one token: a second logon while a token is live may be refused (409).
    """

    base_url: str
    user: str
    password: str = field(repr=False)
    platform: str = PLATFORM
    #: Told every token obtained (as the server wrote it and as the cookie carries it), so the hook can
    #: mask it in logs.
    on_secret: Callable[[str], None] | None = field(default=None, repr=False, compare=False)

    @property
    def cache_key(self) -> str:
        # One token per (base URL, user). The password's digest, keyed with a secret of this process,
        # reveals nothing outside it but keeps a connection with a wrong password from borrowing the token
        # another connection of the same user obtained.
        proof = hmac.new(_PROCESS_KEY, self.password.encode(), hashlib.sha256).hexdigest()[:16]
        return f"{PLATFORM}|{self.base_url}|{self.user}|{proof}"

    def renew(self, token: Token) -> None:
        """No renewal without a new login."""
        return None

    def login(self) -> Operation[Token]:
        response = yield HttpRequest(
            "POST",
            self.base_url + LOGON_PATH,
            call=LOGON_CALL,
            headers={"Content-Type": XML, "Accept": JSON},
            body=logon_body(self.user, self.password),
            authenticated=False,
            idempotent=True,  # logging on again does no harm
        )
        token = parse_logon_response(response, user=self.user, base_url=self.base_url)
        if self.on_secret is not None:
            self.on_secret(token.value)
            self.on_secret(cookie_value(token.value))
        return token

    def sign(self, request: HttpRequest, token: Token | None, now_ms: int) -> HttpRequest:
        if token is None:
            raise ValueError("LSF Application Center calls carry the logon token")
        return request.with_headers({"Cookie": f"{TOKEN_COOKIE}={cookie_value(token.value)}"})

    def is_token_expired(self, response: HttpResponse) -> bool:
        # The server answers 401 once it has dropped a token (60 minutes unused); log on again.
        return response.status == 401

    def secrets(self) -> tuple[str, ...]:
        return (self.password,)

    def logout(self, token: Token) -> Operation[None]:
        """POST ``/platform/ws/logout`` with the token's cookie: the server frees the token now instead of
        holding it (and, in single-session mode, refusing the user's next logon) for 60 minutes unused.

        A 401 means the server had already dropped the token: nothing is left to free.
        """
        response = yield HttpRequest(
            "POST",
            self.base_url + LOGOUT_PATH,
            call=LOGOUT_CALL,
            headers={"Accept": JSON, "Cookie": f"{TOKEN_COOKIE}={cookie_value(token.value)}"},
            authenticated=False,  # carries its own cookie: a logout never logs on first
            idempotent=True,  # logging out twice does no harm
        )
        if response.status != 401:
            read_answer(response, call=LOGOUT_CALL)


# -- reading answers ---------------------------------------------------------------------------------


def strip_keys(value: Any) -> Any:
    """The value with every mapping key stripped of stray spaces (``" lastUpdateTime"``), recursively."""
    if isinstance(value, dict):
        return {str(key).strip(): strip_keys(item) for key, item in value.items()}
    if isinstance(value, list):
        return [strip_keys(item) for item in value]
    return value


def parse_xml(body: bytes, *, call: str, http_status: int | None = None) -> dict[str, Any]:
    """An XML answer as JSON-like data: ``{root: {attributes..., child: text | {...} | [...]}}``.

    Parsed with defusedxml: entity declarations (entity bombs) and external entities (XXE) are refused.
    The documented answers write some element names with a space after ``<`` (``< lastUpdateTime>``), which
    is not well-formed XML; such tags are normalised before parsing. Raw ``<`` cannot occur in well-formed
    text, so only tags are touched (a CDATA section holding ``< x`` would be, but these answers have none).
    """
    normalised = _SPACED_TAG.sub(rb"<\1", body)
    try:
        root = defusedxml.ElementTree.fromstring(
            normalised, forbid_dtd=False, forbid_entities=True, forbid_external=True
        )
    except defusedxml.DefusedXmlException as exc:
        raise FlowPlatformError(
            PLATFORM,
            call,
            f"the XML answer was refused: it declares entities or external references ({type(exc).__name__})",
            http_status=http_status,
        ) from None
    except (ParseError, LookupError, ValueError) as exc:  # LookupError: an unknown encoding declared
        raise FlowPlatformError(
            PLATFORM, call, f"the answer is not well-formed XML ({exc})", http_status=http_status
        ) from None
    try:
        return {_local_name(root.tag): _element_value(root)}
    except RecursionError:
        raise FlowPlatformError(
            PLATFORM, call, "the XML answer is nested too deeply", http_status=http_status
        ) from None


def _local_name(tag: str) -> str:
    return tag.rsplit("}", 1)[-1].strip()


def _element_value(element: Element) -> Any:
    children = list(element)
    text = (element.text or "").strip()
    if not children and not element.attrib:
        return text
    result: dict[str, Any] = {name.strip(): _xml_scalar(name.strip(), value) for name, value in element.attrib.items()}
    repeated: set[str] = set()
    for child in children:
        name = _local_name(child.tag)
        value = _element_value(child)
        if isinstance(value, str):
            value = _xml_scalar(name, value)
        if name not in result:
            result[name] = value
        elif name in repeated:
            result[name].append(value)
        else:
            result[name] = [result[name], value]
            repeated.add(name)
    if not children and text:
        result["value"] = text
    return result


def _xml_scalar(name: str, text: str) -> Any:
    """XML carries every value as text; ids, status and totals are numbers in the JSON answers."""
    if name in _INT_FIELDS and re.fullmatch(r"-?\d+", text):
        return int(text)
    return text


def decode_answer(response: HttpResponse, *, call: str) -> Any:
    """The body as data, JSON or XML by its first character; empty is None. Keys are stripped."""
    body = response.body.strip()
    if not body:
        return None
    if body[:1] == b"<":
        return parse_xml(body, call=call, http_status=response.status)
    try:
        return strip_keys(parse_json(body))
    except RecursionError:
        raise FlowPlatformError(
            PLATFORM, call, "the JSON answer is nested too deeply", http_status=response.status
        ) from None
    except (ValueError, UnicodeDecodeError):
        raise FlowPlatformError(
            PLATFORM,
            call,
            f"the answer is neither JSON nor XML: {snippet(response.text)!r}",
            http_status=response.status,
        ) from None


def error_message(payload: Any) -> str | None:
    """The platform's message in ``{"error": {"message": ...}}`` (or the XML ``<error><message>``)."""
    if not isinstance(payload, dict):
        return None
    error = payload.get("error")
    if isinstance(error, dict):
        error = error.get("message")
    if isinstance(error, str) and error.strip():
        return " ".join(error.split())
    return message_text(payload)


def message_text(payload: Any) -> str | None:
    """The text of an operation's ``{"message": {"message": ...}}`` answer (or a plain ``{"message": ...}``)."""
    value = payload
    for _ in range(3):
        if isinstance(value, dict) and "message" in value:
            value = value["message"]
        else:
            break
    if isinstance(value, str) and value.strip():
        return " ".join(value.split())
    return None


def read_answer(response: HttpResponse, *, call: str, not_found: bool = False) -> Any:
    """The decoded answer of a 2xx; any other status is a FlowPlatformError with the platform's message.

    ``not_found``: a 404 means the instance (or flow) does not exist (FlowInstanceNotFound). Only a 404 does:
    a redirect (a login page, a proxy) or any other status is an error naming that status, never "not found".
    """
    if 200 <= response.status < 300:
        return decode_answer(response, call=call)
    error = FlowInstanceNotFound if not_found and response.status == 404 else FlowPlatformError
    if 300 <= response.status < 400:
        # Where it points is left out: a redirect's address may carry a session id.
        message = f"the server answered a redirect (HTTP {response.status}) instead of the call's answer"
        raise FlowPlatformError(PLATFORM, call, message, http_status=response.status)
    raise error(PLATFORM, call, _platform_says(response, call), http_status=response.status)


def _platform_says(response: HttpResponse, call: str = "") -> str:
    """The platform's own message in an error answer, or the start of its body."""
    try:
        message = error_message(decode_answer(response, call=""))
    except FlowPlatformError:
        message = None
    if message:
        return message
    if response.status == 401 and call != LOGON_CALL:
        return "the token was refused (expired or not valid)"
    return snippet(response.text) or f"HTTP {response.status}"


def records_of(payload: Any, *, call: str = QUERY_CALL) -> tuple[list[dict[str, Any]], int | None]:
    """The instance records of a query answer and its ``total``; a lone object counts as a list of one."""
    if payload is None:
        return [], 0
    if not isinstance(payload, dict):
        raise FlowPlatformError(PLATFORM, call, f"expected an object, got {type(payload).__name__}")
    if "pseudoFlowInstances" in payload:
        container = payload["pseudoFlowInstances"]
    elif "pseudoFlowInstance" in payload:
        container = payload  # (inferred) the wrapper left out
    else:
        raise FlowPlatformError(PLATFORM, call, "the answer has no 'pseudoFlowInstances'")
    if container is None or container == "":
        return [], 0  # an empty <pseudoFlowInstances/>
    if not isinstance(container, dict):
        raise FlowPlatformError(PLATFORM, call, "'pseudoFlowInstances' is not an object")
    items = container.get("pseudoFlowInstance")
    if items is None or items == "":
        items = []
    elif isinstance(items, dict):
        items = [items]  # one match may come as the object itself, not a list of one
    if not isinstance(items, list) or not all(isinstance(item, dict) for item in items):
        raise FlowPlatformError(PLATFORM, call, "'pseudoFlowInstance' is not a list of objects")
    total = container.get("total")
    try:
        count = None if total is None or total == "" else int(total)
    except (TypeError, ValueError):
        count = None
    return items, count


def parse_time(value: Any, timezone: str) -> dt.datetime | None:
    """ "2018-08-14 14:11:15 GMT+08:00" (the offset decides); a time without "GMT" is read in ``timezone``."""
    if value is None or str(value).strip() == "":
        return None
    if "GMT" in str(value).upper():
        return parse_gmt_offset_time(str(value).upper())
    return parse_local_time(value, timezone)


def flow_name_parts(record: Mapping[str, Any]) -> tuple[str | None, str | None]:
    """(owner, flow name) from ``user`` and ``name``, else from ``fullName`` "101:jsmith:flow1"."""
    user, name = as_id(record.get("user")), as_id(record.get("name"))
    full = as_id(record.get("fullName"))
    if full and (user is None or name is None):
        parts = full.split(":", 2)
        if len(parts) == 3:
            user, name = user or parts[1], name or parts[2]
    return user, name


def flow_id_of(record: Mapping[str, Any]) -> str | None:
    """``owner:flowname``, what ``submit_flow`` takes."""
    user, name = flow_name_parts(record)
    return f"{user}:{name}" if user and name else None


def split_flow(flow: str) -> tuple[str, str]:
    """``owner:flowname`` into its two parts, refusing anything else."""
    owner, _, name = flow.partition(":")
    if not owner.strip() or not name.strip():
        raise FlowPlatformError(PLATFORM, SUBMIT_CALL, f"a flow is named owner:flowname, got {flow!r}")
    return owner.strip(), name.strip()


def newest_instance_id(
    records: Iterable[Mapping[str, Any]], flow: str, *, newer_than: str | int | None = None
) -> str | None:
    """The highest instance id of ``flow`` (``owner:flowname``) among ``records``, or None.

    The submit answer does not document the new instance's id: list the flow's instances before and after
    submitting and pass the highest id seen before as ``newer_than``, so a run started by someone else in
    between is the only ambiguity left (inferred: ids grow with time).
    """
    floor = _as_int(newer_than)
    best: int | None = None
    for record in records:
        if flow_id_of(record) != flow:
            continue
        number = _as_int(record.get("id"))
        if number is None or (floor is not None and number <= floor):
            continue
        if best is None or number > best:
            best = number
    return None if best is None else str(best)


def highest_id(records: Iterable[Mapping[str, Any]], flow: str) -> int | None:
    """The highest instance id of ``flow`` among ``records``, or None."""
    newest = newest_instance_id(records, flow)
    return None if newest is None else int(newest)


def new_instance_ids(records: Iterable[Mapping[str, Any]], flow: str, *, newer_than: int) -> list[str]:
    """The ids of ``flow``'s instances above ``newer_than``, lowest first."""
    numbers = {
        number
        for record in records
        if flow_id_of(record) == flow and (number := _as_int(record.get("id"))) is not None and number > newer_than
    }
    return [str(number) for number in sorted(numbers)]


@dataclass(frozen=True)
class NamedIds:
    """Instance ids a submit answer names: ``strong`` as ``<id>:<owner>:<flow>`` or in a record of that
    flow, ``loose`` as a bare id near the word "id" (taken only if it is a new run of the flow)."""

    strong: tuple[str, ...] = ()
    loose: tuple[str, ...] = ()


_LOOSE_ID = re.compile(r"\bid\b\W{0,3}(\d+)", re.IGNORECASE)
_ID_KEYS = ("id", "instanceId", "flowInstanceId", "flowId")


def submitted_instance_ids(answer: Any, flow: str) -> NamedIds:
    """The ids a submit answer names for ``flow``, if it names any (the documentation does not say it does).

    Read are a record of the flow (``{"id": 107, "fullName": "107:jsmith:flow1"}``), a full name
    ``107:jsmith:flow1`` in any text, and a message such as "... flow id: 107" (loose: checked against the
    listing).
    """
    strong: list[str] = []
    loose: list[str] = []
    full_name = re.compile(r"\b(\d+):" + re.escape(flow) + r"(?![\w-]|\.\w)")  # not a longer name

    def visit(value: Any, depth: int = 0) -> None:
        if depth > 8:
            return
        if isinstance(value, dict):
            if flow_id_of(value) == flow:
                for key in _ID_KEYS:
                    if _as_int(value.get(key)) is not None:
                        strong.append(str(_as_int(value.get(key))))
                        break
            for item in value.values():
                visit(item, depth + 1)
        elif isinstance(value, list):
            for item in value:
                visit(item, depth + 1)
        elif isinstance(value, str):
            strong.extend(full_name.findall(value))
            loose.extend(_LOOSE_ID.findall(value))

    visit(answer)
    return NamedIds(tuple(dict.fromkeys(strong)), tuple(dict.fromkeys(loose)))


def ambiguous_start(flow: str, candidates: Sequence[str]) -> AmbiguousStart:
    return AmbiguousStart(
        PLATFORM,
        SUBMIT_CALL,
        f"{len(candidates)} runs of {flow} could be the one this submit started ({', '.join(candidates)}), and "
        "LSF's submit answer does not say which: another start of the same flow ran at about the same time. None "
        "is taken as this task's. Start one run of an LSF flow at a time: give the tasks that start it an Airflow "
        "pool with one slot",
    )


def _as_int(value: Any) -> int | None:
    if value is None or isinstance(value, bool):
        return None
    try:
        return int(str(value).strip())
    except ValueError:
        return None


def format_ids(ids: str | int | Iterable[str | int]) -> str:
    """``101,102``; a single id or a comma-separated string is accepted as well."""
    items = [] if ids is None else [ids] if isinstance(ids, (str, int)) else list(ids)
    # A None (an id that never came, e.g. from an empty XCom) is no id, not the text "None".
    parts = [part.strip() for item in items for part in ("" if item is None else str(item)).split(",")]
    if not parts or any(not part for part in parts):
        raise ValueError(f"flow instance ids must be non-empty, got {ids!r}")
    return ",".join(parts)


def format_variables(variables: Mapping[str, Any] | str | None) -> str | None:
    """``a=1;b=3`` from a mapping (or a string already in that form)."""
    if variables is None:
        return None
    if isinstance(variables, str):
        return variables
    pairs = []
    for key, value in variables.items():
        text_key, text_value = str(key), "" if value is None else str(value)
        if not text_key or any(mark in text_key for mark in "=;") or ";" in text_value:
            raise ValueError(f"variable {text_key!r}={text_value!r}: names hold no '=' or ';', values no ';'")
        pairs.append(f"{text_key}={text_value}")
    return ";".join(pairs)


# -- the client --------------------------------------------------------------------------------------


class InstancesQuery(TypedDict, total=False):
    """The filters of ``GET flow/instances`` and the index of the first record, under the API's own names
    (each may be left out or None)."""

    id: str | int | None
    flowname: str | None
    username: str | None
    state: str | None
    start: int | None


#: The query's parameters in the order they are sent (``pagesize`` last).
QUERY_KEYS = tuple(InstancesQuery.__annotations__)


@dataclass(frozen=True)
class LSFSettings:
    """``base_url`` is Application Center's (``https://pac.example.com:8443``); ``accept`` JSON or XML."""

    base_url: str
    timezone: str = "UTC"
    accept: str = JSON


class LSFClient:
    """Builds each LSF Process Manager call and reads its answer."""

    platform = PLATFORM
    offers_graph = False  # no LSF web service exposes a flow's inner jobs
    graph_in_one_read = True

    def __init__(self, settings: LSFSettings) -> None:
        self.settings = settings
        #: attempt marker -> the highest id of its flow listed just before its submit (0: none).
        self._floors: dict[str, int] = {}

    # -- requests -------------------------------------------------------------------------------------

    def query_request(self, params: Iterable[tuple[str, Any]], call: str = QUERY_CALL) -> HttpRequest:
        return HttpRequest(
            "GET",
            self.settings.base_url + INSTANCES_PATH,
            call=call,
            params=tuple((key, str(value)) for key, value in params if value is not None and value != ""),
            headers={"Accept": self.settings.accept},
        )

    def form_request(self, path: str, call: str, fields: Iterable[tuple[str, str]]) -> HttpRequest:
        return HttpRequest(
            "POST",
            self.settings.base_url + path,
            call=call,
            headers={"Accept": self.settings.accept, "Content-Type": FORM},
            body=form_body(fields, safe=",:"),  # ids and owner:flow names stay readable
        )

    # -- calls (each an operation the transport drives) ------------------------------------------------

    def query_page(
        self, *, pagesize: int | None = None, **query: Unpack[InstancesQuery]
    ) -> Operation[tuple[list[dict[str, Any]], int | None]]:
        """One page of ``GET flow/instances``: (records, total). A 404 (nothing matches) is an empty page."""
        request = self.query_request([*((key, query.get(key)) for key in QUERY_KEYS), ("pagesize", pagesize)])
        response = yield request
        if response.status == 404:
            return [], 0
        return records_of(read_answer(response, call=request.call), call=request.call)

    def list_flow_instances(
        self, *, pagesize: int | None = None, **query: Unpack[InstancesQuery]
    ) -> Operation[list[dict[str, Any]]]:
        """The platform's call: with ``pagesize``, that one page from ``start``; without, every page from it."""
        if pagesize is not None:
            records, _total = yield from self.query_page(pagesize=_page_size(pagesize), **query)
            return records
        return (yield from self.query_all(**query))

    def query_all(
        self, *, page_size: int = DEFAULT_PAGE_SIZE, **query: Unpack[InstancesQuery]
    ) -> Operation[list[dict[str, Any]]]:
        """Every page from ``start`` on, asked ``page_size`` records at a time, gathered into one list.

        The walk ends only where the platform shows there is no more: a 404 or an empty page, a page with no
        record not seen before (a server that ignores ``start`` cannot loop it), or ``total`` reached. A short
        page does not end it (a server may cap the page below the size asked). Whether ``total`` counts every
        match or the page is not documented, so it ends the walk only once it has shown itself a grand total
        (larger than a page). ``start`` is an index, 0-based (inferred); a 1-based server gives one record
        twice per page, which the walk drops, and none is lost.
        """
        page_size = _page_size(page_size)
        start = query.get("start")
        index = int(start) if start else 0
        found: list[dict[str, Any]] = []
        seen: set[str] = set()
        grand_total: int | None = None
        while True:
            query["start"] = index if index or start is not None else None
            page, total = yield from self.query_page(pagesize=page_size, **query)
            fresh = [record for record in page if _record_key(record) not in seen]
            found.extend(fresh)
            seen.update(_record_key(record) for record in fresh)
            index += len(page)
            if total is not None and total > len(page):
                grand_total = total
            if not fresh or (grand_total is not None and len(found) + (int(start) if start else 0) >= grand_total):
                return found

    def get_flow_instance(self, instance_id: str) -> Operation[dict[str, Any]]:
        """The record of one instance; FlowInstanceNotFound when the id query answers 404.

        The id is asked for with ``username=all`` so instances of other users are found too (the id alone
        picks one instance). If the server refuses ``all`` to this user (403), the id is asked for again
        without it, which covers the user's own instances (inferred: the owner filter defaults to the
        logged-on user).
        """
        request = self.query_request([("id", instance_id), ("username", "all")])
        response = yield request
        if response.status == 403:
            request = self.query_request([("id", instance_id)])
            response = yield request
        payload = read_answer(response, call=request.call, not_found=True)
        if payload is None:  # not "no match" (that is a 404): an answer with nothing in it says nothing
            raise FlowPlatformError(PLATFORM, request.call, "the answer is empty", http_status=response.status)
        records, _ = records_of(payload, call=request.call)
        for record in records:
            if as_id(record.get("id")) == instance_id:
                return record
        raise FlowInstanceNotFound(
            PLATFORM, request.call, f"the answer lists no flow instance {instance_id!r}", http_status=response.status
        )

    def get_instance(self, instance_id: str, include_graph: bool = True) -> Operation[FlowInstance]:
        """The instance as a FlowInstance; ``include_graph`` is moot: no call offers the graph."""
        record = yield from self.get_flow_instance(instance_id)
        return self.to_flow_instance(record)

    def flow_instance_operation(
        self, action: str, ids: str | int | Iterable[str | int], variables: Mapping[str, Any] | str | None = None
    ) -> Operation[str]:
        """POST ``flow/instances/<action>`` with ``ids=101,102`` (rerun: ``variables=a=1;b=3``); its message."""
        call = OPERATION_CALLS[action]
        try:
            fields = [("ids", format_ids(ids))]
            formatted = format_variables(variables)
        except ValueError as exc:
            raise FlowPlatformError(PLATFORM, call, str(exc)) from None
        if formatted is not None:
            fields.append(("variables", formatted))
        request = self.form_request(f"{INSTANCES_PATH}/{action}", call, fields)
        response = yield request
        payload = read_answer(response, call=call, not_found=True)
        return message_text(payload) or ""

    def kill_flow_instances(self, ids: str | int | Iterable[str | int]) -> Operation[str]:
        return self.flow_instance_operation("kill", ids)

    def suspend_flow_instances(self, ids: str | int | Iterable[str | int]) -> Operation[str]:
        return self.flow_instance_operation("suspend", ids)

    def resume_flow_instances(self, ids: str | int | Iterable[str | int]) -> Operation[str]:
        return self.flow_instance_operation("resume", ids)

    def rerun_flow_instances(
        self, ids: str | int | Iterable[str | int], variables: Mapping[str, Any] | str | None = None
    ) -> Operation[str]:
        return self.flow_instance_operation("rerun", ids, variables)

    # -- repair: rerun a run that failed (reruns.RerunningClient) --------------------------------------

    def plan_rerun(self, instance_id: str) -> Operation[RerunPlan]:
        """An Exit (or Killed) flow instance, rerun whole by ``flow/instances/rerun``.

        IBM: the flow "runs again, starting at the jobs that exited and any jobs set as rerun starting
        points, and all successor jobs are also rerun". No web-service call shows the jobs, so no node id is
        named; the run's state and times before the rerun tell later whether it took.
        """
        record = yield from self.get_flow_instance(instance_id)
        require_failure_state(self.to_flow_instance(record))
        before = rerun_evidence(record)
        return RerunPlan(instance_id=instance_id, node_ids=(), targets=(instance_id,), before=before)

    def send_rerun(self, plan: RerunPlan) -> Operation[None]:
        yield from self.rerun_flow_instances(list(plan.targets))

    def rerun_took_effect(self, plan: RerunPlan) -> Operation[bool]:
        """The flow instance left its ended state, or started again (a new start or end time)."""
        record = yield from self.get_flow_instance(plan.instance_id)
        return rerun_evidence(record) != plan.before

    def submit_flow(self, flowname: str, variables: Mapping[str, Any] | str | None = None) -> Operation[Any]:
        """POST ``flow/definitions/submit`` with ``flownames=owner:name``; the decoded answer as it came.

        The answer's shape (and whether it names the new instance) is not documented: use
        ``newest_instance_id`` on a listing of the flow to find the run.
        """
        try:
            formatted = format_variables(variables)
        except ValueError as exc:
            raise FlowPlatformError(PLATFORM, SUBMIT_CALL, str(exc)) from None
        fields = [("flownames", flowname)]
        if formatted is not None:
            fields.append(("variables", formatted))
        request = self.form_request(SUBMIT_PATH, SUBMIT_CALL, fields)
        response = yield request
        return read_answer(response, call=SUBMIT_CALL, not_found=True)

    # -- run control (TriggerFlowOperator, FlowInstanceEventTrigger) ----------------------------------

    def start_run(self, flow: str, parameters: Mapping[str, Any] | None, attempt: StartAttempt) -> Operation[str]:
        """Submit ``owner:flowname`` and find the run it started.

        The flow's instances are listed before and after the submit: the run is the one new instance of the
        flow, or the one the submit answer names (undocumented; read when it does). Where several new runs
        appeared and the answer names none, the run cannot be told from another start's: AmbiguousStart.
        LSF shows no variable in its listing, so a marker cannot ride with the run.
        """
        owner, name = split_flow(flow)
        before = yield from self.query_all(flowname=name, username=owner)
        self._remember_floor(attempt, highest_id(before, flow) or 0)
        # The submit is a POST: the transport does not send it again after a fault that may have reached
        # the platform, it raises RunOutcomeUnknown, and the hook then looks for the run (find_started_run).
        answer = yield from self.submit_flow(flow, parameters)
        after = yield from self.query_all(flowname=name, username=owner)
        new = new_instance_ids(after, flow, newer_than=self._floors[attempt.marker])
        named = submitted_instance_ids(answer, flow)
        if len(named.strong) == 1:
            return named.strong[0]
        named_new = [instance_id for instance_id in named.loose if instance_id in new]
        if len(named_new) == 1:
            return named_new[0]
        if len(new) == 1:
            return new[0]
        if new:
            raise ambiguous_start(flow, new)
        raise RunOutcomeUnknown(PLATFORM, SUBMIT_CALL, f"{flow} was submitted, but no new instance of it is listed yet")

    def find_started_run(
        self, flow: str, parameters: Mapping[str, Any] | None, attempt: StartAttempt
    ) -> Operation[str | None]:
        """The run ``attempt`` made, if any (see ``PlatformClient.find_started_run``).

        The flow's instances newer than those listed before this attempt's submit (when this client made the
        attempt), else those that started from ``START_WINDOW_MARGIN_MS`` before the attempt on (another
        process's attempt: a task's next try). More than one: AmbiguousStart.
        """
        owner, name = split_flow(flow)
        records = yield from self.query_all(flowname=name, username=owner)
        floor = self._floors.get(attempt.marker)
        if floor is not None:
            candidates = new_instance_ids(records, flow, newer_than=floor)
        else:
            since = attempt.requested_at_ms - START_WINDOW_MARGIN_MS
            recent = [record for record in records if self._started_since(record, since)]
            candidates = new_instance_ids(recent, flow, newer_than=0)
        if len(candidates) > 1:
            raise ambiguous_start(flow, candidates)
        return candidates[0] if candidates else None

    def _remember_floor(self, attempt: StartAttempt, floor: int) -> None:
        """The highest id listed before ``attempt`` submitted (0: none), for a look after an unclear submit."""
        self._floors[attempt.marker] = floor
        while len(self._floors) > MAX_REMEMBERED_ATTEMPTS:
            del self._floors[next(iter(self._floors))]

    def _started_since(self, record: Mapping[str, Any], since_ms: int) -> bool:
        """Whether the record started at or after ``since_ms``; a start time not shown or unreadable may be."""
        try:
            started = parse_time(record.get("startTime"), self.settings.timezone)
        except (TypeError, ValueError, OverflowError, OSError):
            return True
        return started is None or started.timestamp() * 1000 >= since_ms

    def stop_run(self, instance_id: str) -> Operation[None]:
        yield from self.kill_flow_instances(instance_id)

    def batch_instances(self, ids: Sequence[str]) -> Operation[dict[str, FlowInstance]]:
        """Every user's Running and Suspended instances: a wait missing from them has ended."""
        wanted = set(ids)
        found: dict[str, FlowInstance] = {}
        for state in ("Running", "Suspended"):
            records = yield from self.query_all(username="all", state=state, page_size=BATCH_PAGE_SIZE)
            for record in records:
                instance = self.to_flow_instance(record)
                if instance.instance_id in wanted:
                    found[instance.instance_id] = instance
        return found

    def recent_instances(
        self, flow: str, states: Iterable[FlowState], filters: Mapping[str, Any]
    ) -> Operation[list[FlowInstance]]:
        """Every instance of ``owner:flowname`` (LSF filters by one state at a time, so all are listed)."""
        owner, name = split_flow(flow)
        records = yield from self.list_flow_instances(flowname=name, username=owner, **filters)
        return [self.to_flow_instance(record) for record in records if flow_id_of(record) == flow]

    # -- reading --------------------------------------------------------------------------------------

    def to_flow_instance(self, record: Mapping[str, Any]) -> FlowInstance:
        call = QUERY_CALL
        record = strip_keys(dict(record)) if isinstance(record, Mapping) else record
        instance_id = required_id(record, "id", platform=PLATFORM, call=call)
        state = require(record, "state", platform=PLATFORM, call=call)
        with reading_times(PLATFORM, call):
            started_at = parse_time(record.get("startTime"), self.settings.timezone)
            ended_at = parse_time(record.get("endTime"), self.settings.timezone)
        return FlowInstance(
            platform=PLATFORM,
            instance_id=instance_id,
            flow_id=flow_id_of(record),
            name=flow_name_parts(record)[1],
            state=map_state(state),
            raw_state=as_id(state),
            started_at=started_at,
            ended_at=ended_at,
            url=None,
            graph=None,
            details=dict(record),
        )

    def instance_url(self, instance_id: str) -> str | None:
        """No documented console page per flow instance."""
        return None

    def node_log(self, node: GraphNode) -> Operation[str] | None:
        return None  # no job-log call either

    def failure_notes(self, instance: FlowInstance) -> FailureNotes:
        note = "LSF Process Manager's web services offer no graph and no job-log call; see the flow in Flow Manager"
        return FailureNotes(notes=(note,))


def rerun_evidence(record: Mapping[str, Any]) -> dict[str, str | None]:
    """What a rerun changes in a flow instance's record: its state and its start and end times."""
    stripped = strip_keys(dict(record))
    return {key: as_id(stripped.get(key)) for key in ("state", "startTime", "endTime")}


def _page_size(value: Any) -> int:
    size = int(value)
    if size < 1:
        raise ValueError(f"pagesize must be at least 1, got {value!r}")
    return size


def _record_key(record: Mapping[str, Any]) -> str:
    key = as_id(record.get("id"))
    return key if key is not None else json.dumps(record, sort_keys=True, default=str)
