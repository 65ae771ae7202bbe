"""Plain data for the sans-I/O platform modules: requests, responses, tokens and operations.

A platform call is an *operation*: a generator that yields the ``HttpRequest``s it needs, is sent back
each ``HttpResponse``, and returns the decoded result. The sync and the async transports drive the very
same generator, so every line of protocol logic is shared and testable without a socket.
"""

from __future__ import annotations

import email.utils
import hashlib
import hmac
import json
import re
import secrets
import uuid
from collections.abc import Generator, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, TypeVar
from urllib.parse import quote

from airflow_provider_flowinst.errors import FlowPlatformError
from airflow_provider_flowinst.models import FlowInstance, FlowState, GraphNode

T = TypeVar("T")
T_co = TypeVar("T_co", covariant=True)


@dataclass(frozen=True)
class HttpRequest:
    """A request before it is signed: ``url`` has no query; ``params`` keep their order."""

    method: str
    url: str
    call: str
    params: tuple[tuple[str, str], ...] = ()
    headers: Mapping[str, str] = field(default_factory=dict)
    body: bytes | None = None
    authenticated: bool = True
    #: Whether sending it twice does no harm (None: GET and HEAD do). A read or a login sent as a POST says
    #: True; a call that starts or stops something keeps the default False.
    idempotent: bool | None = None

    @property
    def repeatable(self) -> bool:
        """Safe to send again although the platform may have acted on it (its answer came back damaged)."""
        if self.idempotent is not None:
            return self.idempotent
        return self.method.upper() in ("GET", "HEAD")

    @property
    def query_string(self) -> str:
        # Every reserved character is escaped, so ids holding & = / ? # or spaces stay one value.
        return "&".join(f"{percent_encode(key)}={percent_encode(value)}" for key, value in self.params)

    @property
    def full_url(self) -> str:
        # Worked out once per request (a copy with other headers keeps it): a poll's request is reused.
        cached = self.__dict__.get("_full_url")
        if cached is None:
            cached = f"{self.url}?{self.query_string}" if self.params else self.url
            self.__dict__["_full_url"] = cached  # a cache, not state: written around the frozen __setattr__
        return cached

    def with_headers(self, extra: Mapping[str, str]) -> HttpRequest:
        # A copy of every field but the headers, written around the frozen __setattr__: dataclasses.replace
        # reads the class's fields at each call, and every signed attempt (each poll) comes here.
        signed = object.__new__(type(self))
        signed.__dict__.update(self.__dict__, headers={**self.headers, **extra}, _full_url=self.full_url)
        return signed


@dataclass(frozen=True)
class HttpResponse:
    """What came back; header names are lower-case."""

    status: int
    headers: Mapping[str, str]
    body: bytes

    @property
    def text(self) -> str:
        return self.body.decode("utf-8", errors="replace")

    def header(self, name: str) -> str | None:
        return self.headers.get(name.lower())

    def json(self) -> Any:
        """The body as JSON, parsed once however many readers ask; ValueError when it is not JSON."""
        cached = self.__dict__.get("_json")
        if cached is None:
            try:
                cached = (True, parse_json(self.body))
            except (ValueError, UnicodeDecodeError) as exc:
                cached = (False, exc)
            self.__dict__["_json"] = cached  # a cache, not state: written around the frozen __setattr__
        ok, value = cached
        if not ok:
            raise value
        return value


class TokenPayload(Protocol):
    """What an authenticator keeps with a token beyond its value (EnOS BPM: the portal session). Only the
    authenticator that made it reads it; the transport knows only which secrets it holds, to hide them."""

    def secrets(self) -> tuple[str, ...]:
        """The credentials it holds, masked in logs and redacted from messages like the token's value."""


@dataclass(frozen=True)
class Token:
    """A credential a platform handed out, valid until ``expires_at`` (epoch seconds), cached as one.

    ``payload`` is whatever else the same login obtained, opaque to everything but the authenticator that
    made the token (which reads it when it signs a call or renews the token).
    """

    value: str
    expires_at: float
    payload: TokenPayload | None = None

    def secrets(self) -> tuple[str, ...]:
        """The token's value and every credential its payload holds."""
        if self.payload is None:
            return (self.value,)
        return (self.value, *self.payload.secrets())

    def __repr__(self) -> str:  # never print the secret value
        return f"Token(expires_at={self.expires_at})"


@dataclass(frozen=True)
class Sleep:
    """An operation asks to pause ``seconds`` before it goes on (e.g. between two polls).

    The transport waits (``time.sleep`` or ``asyncio.sleep``) and resumes the operation with None, so an
    operation writes ``yield Sleep(2.0)`` as a statement; the wait stays out of the pure module.
    """

    seconds: float


@dataclass(frozen=True)
class Together:
    """An operation asks for several operations at once (the pages of a listing it knows it must read) and is
    resumed with their results, in order, as if it had run each with ``yield from``: the first failure, in
    that order, is thrown into it instead. The async transport runs them side by side, the sync one in turn.

    ``results = yield Together((page(2), page(3)))``: every one is sent, so ask only for what is needed.
    """

    operations: tuple[Generator[Any, Any, Any], ...]


Operation = Generator[HttpRequest | Sleep | Together, HttpResponse, T]


@dataclass(frozen=True)
class StartAttempt:
    """One attempt to start a run, recorded *before* the start call, so that whoever comes after an unclear
    failure (this call, or the task's next try after a crash) can find the run it made instead of starting
    another.

    ``marker`` is unique per attempt; a platform that can carry it with the run (the run's name, a variable)
    does, and finds the run by it. ``requested_at_ms`` is the epoch ms just before the start call: a search
    for the run looks from a little before it (clocks differ).
    """

    flow: str
    requested_at_ms: int
    marker: str

    @classmethod
    def new(cls, flow: str, now_ms: int) -> StartAttempt:
        return cls(flow=flow, requested_at_ms=now_ms, marker=uuid.uuid4().hex)

    def to_dict(self) -> dict[str, Any]:
        return {"flow": self.flow, "requested_at_ms": self.requested_at_ms, "marker": self.marker}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> StartAttempt:
        return cls(flow=str(data["flow"]), requested_at_ms=int(data["requested_at_ms"]), marker=str(data["marker"]))


_PROCESS_KEY = secrets.token_bytes(32)


def credential_digest(*credentials: str | None) -> str:
    """A digest of every credential, keyed with a secret of this process, for token cache keys: two
    connections that differ in any credential never share a token, and the key reveals nothing."""
    text = "\0".join(value or "" for value in credentials)
    return hmac.new(_PROCESS_KEY, text.encode("utf-8"), hashlib.sha256).hexdigest()[:32]


@dataclass(frozen=True)
class Throttling:
    """A platform's word on a refused call (``Authenticator.throttling``)."""

    #: The platform refused the call for its rate and did not act on it: it may be sent again, even a start.
    throttled: bool = False
    #: Seconds it asks the caller to wait before sending the call again; None where it asks nothing.
    retry_after: float | None = None


class Authenticator(Protocol):
    """How one platform proves who is calling; pure, so it is tested without a network."""

    @property
    def platform(self) -> str:
        """The platform key, for error messages."""

    @property
    def cache_key(self) -> str:
        """Identifies the credential for the process-wide token cache, without revealing it: a digest of every
        credential (``credential_digest``), so that connections differing in any of them never share a token."""

    def login(self) -> Operation[Token] | None:
        """The operation that obtains a token, or None where each request is signed on its own."""

    def renew(self, token: Token) -> Operation[Token] | None:
        """The operation that renews ``token`` once it ran out without a new login (EnOS BPM's refresh
        token, sparing the password), or None where only a new login helps."""

    def sign(self, request: HttpRequest, token: Token | None, now_ms: int) -> HttpRequest:
        """An authenticated request as it goes on the wire, signed with ``token`` at ``now_ms``."""

    def authorize(self, request: HttpRequest, token: Token | None, now_ms: int) -> HttpRequest:
        """Any request as one attempt sends it, called anew at each attempt (``AuthenticatorDefaults``: an
        authenticated request signed, any other as it is). A platform whose login request must differ per
        attempt (EnOS's gateway refuses a token request's timestamp seen before) rebuilds it here."""

    def is_token_expired(self, response: HttpResponse) -> bool:
        """True when the platform refused the call because the token ran out."""

    def throttling(self, response: HttpResponse, now: float) -> Throttling:
        """What an error answer (status 400 or more) says of throttling, at ``now`` (epoch seconds): whether the
        platform refused the call for its rate (so it did not act on it) and how long it asks to wait before
        the call is sent again. ``AuthenticatorDefaults``: HTTP 429 and the standard ``Retry-After``."""

    def secrets(self) -> tuple[str, ...]:
        """The values to mask in logs and never show in messages."""

    def logout(self, token: Token) -> Operation[None] | None:
        """The operation that ends ``token`` on the server, or None where a token needs no ending (it only
        runs out). A token this process obtained and still holds at its exit is ended with it."""


class AuthenticatorDefaults:
    """The members of ``Authenticator`` that most platforms leave as they are: inherit it, override what differs."""

    def logout(self, token: Token) -> Operation[None] | None:
        return None

    def sign(self, request: HttpRequest, token: Token | None, now_ms: int) -> HttpRequest:
        raise NotImplementedError

    def authorize(self, request: HttpRequest, token: Token | None, now_ms: int) -> HttpRequest:
        return self.sign(request, token, now_ms) if request.authenticated else request

    def throttling(self, response: HttpResponse, now: float) -> Throttling:
        return standard_throttling(response, now)


_DIGITS = re.compile(r"[0-9]+")


def standard_throttling(response: HttpResponse, now: float) -> Throttling:
    """HTTP 429 is throttling, and the standard ``Retry-After`` says how long to wait."""
    return Throttling(throttled=response.status == 429, retry_after=retry_after_header(response, now))


def retry_after_header(response: HttpResponse, now: float) -> float | None:
    """The standard ``Retry-After`` (seconds, or an HTTP date counted from ``now``, epoch seconds).

    Anything else (a word, a negative number, a date that does not parse) is ignored, never an error.
    """
    value = (response.header("retry-after") or "").strip()
    if not value:
        return None
    if _DIGITS.fullmatch(value):  # ASCII digits only: str.isdigit() also accepts "²", which int() refuses
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
        return max(0.0, when.timestamp() - now)
    except (TypeError, ValueError, OverflowError, IndexError):
        return None


@dataclass(frozen=True)
class FailureNotes:
    """What a platform tells of a failed run beyond its nodes and their logs (``PlatformClient.failure_notes``)."""

    #: Lines for the task log (who holds the run's current task, where its history is kept).
    notes: tuple[str, ...] = ()
    #: Said in the task's error when no node is to blame (a BPM process terminated by someone).
    cause: str | None = None


class PlatformClient(Protocol):
    """What every pure platform client offers the generic hooks, sensors, operators and the diagnosis."""

    platform: str
    #: Whether an instance read with ``include_graph`` can carry a graph (LSF's web services offer none).
    offers_graph: bool
    #: Whether reading an instance with its graph takes no more requests than without (the graph comes in the
    #: same answer, or there is none): the poller then reads a wait that left its listing with the graph.
    #: Optional for a platform of one's own (read with a default of False).
    graph_in_one_read: bool

    def instance_url(self, instance_id: str) -> str | None:
        """The instance's page in the platform's console, if the connection says where that is."""

    def get_instance(self, instance_id: str, include_graph: bool = True) -> Operation[FlowInstance]:
        """One instance, normalised."""

    def start_run(self, flow: str, parameters: Mapping[str, Any] | None, attempt: StartAttempt) -> Operation[str]:
        """Start a run of ``flow``; the new instance's id.

        Raises ``RunOutcomeUnknown`` where the platform's answer leaves open whether a run was started (the
        transport raises it for a lost answer; a platform module for a refusal such as EnOS's "triggered less
        than a minute ago"), and ``AmbiguousStart`` where it cannot tell its run from another's.
        """

    def find_started_run(
        self, flow: str, parameters: Mapping[str, Any] | None, attempt: StartAttempt
    ) -> Operation[str | None]:
        """The run ``attempt`` made, if the platform shows one; None where it shows none.

        Looks by whatever the platform keeps (the attempt's marker, the flow, the calling user, a time window
        from a little before ``attempt.requested_at_ms``); raises ``AmbiguousStart`` naming the candidates
        where several runs could be this attempt's. Only reads: it never starts anything.
        """

    def stop_run(self, instance_id: str) -> Operation[None]:
        """Stop (cancel, kill, terminate) a run."""

    def recent_instances(
        self, flow: str, states: Iterable[FlowState], filters: Mapping[str, Any]
    ) -> Operation[list[FlowInstance]]:
        """The newest instances of ``flow``, narrowed to ``states`` where the platform can filter."""

    def batch_instances(self, ids: Sequence[str]) -> Operation[dict[str, FlowInstance]]:
        """As many of ``ids`` as a few list calls can read (without graphs); the rest are read one by one.

        What a platform needs to list an instance (DataWorks: its workspace and data timestamp) the client
        remembers from its own earlier reads.
        """

    def node_log(self, node: GraphNode) -> Operation[str] | None:
        """The operation that reads the task log of one graph node, or None where the platform has no such
        call (the diagnosis of a failed run shows the log's last lines)."""

    def failure_notes(self, instance: FlowInstance) -> FailureNotes:
        """What the platform's own record of a failed ``instance`` tells (pure: it reads ``details``)."""


_UNRESERVED = re.compile(r"[A-Za-z0-9_.~-]*")


def percent_encode(text: str) -> str:
    """RFC 3986 percent-encoding of a query key or value; most are plain already (a poll's hot path)."""
    text = str(text)
    return text if _UNRESERVED.fullmatch(text) else quote(text, safe="")


def json_body(payload: Any) -> bytes:
    """The one JSON encoding of request bodies: compact, so the bytes signed are the bytes sent."""
    return json.dumps(payload, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def parse_json(document: str | bytes) -> Any:
    """``json.loads``, except that a document nested too deeply for Python is a ValueError like any bad JSON.

    (``json.loads`` raises RecursionError on ``[[[[...]]]]`` a few thousand levels deep.)
    """
    try:
        if isinstance(document, bytes) and document[:1] in (b"{", b"["):
            # Most answers: UTF-8 text, decoded here rather than by json.loads' encoding detection (a poll's
            # hot path). Anything that fails so is read again as given (UTF-16 or -32, which json detects).
            try:
                return json.loads(document.decode("utf-8"))
            except ValueError:
                pass
        return json.loads(document)
    except RecursionError:
        raise JSONTooDeep("the JSON document is nested too deeply") from None


class JSONTooDeep(ValueError):
    """Well-formed JSON nested deeper than Python can decode."""


def snippet(text: str, limit: int = 200) -> str:
    """The start of a text for a message, its whitespace folded."""
    return " ".join(text.split())[:limit]


def decode_json(response: HttpResponse, *, platform: str, call: str) -> Any:
    """The answer's JSON, or a FlowPlatformError that quotes the start of what came instead."""
    try:
        return response.json()
    except (ValueError, UnicodeDecodeError):
        raise FlowPlatformError(
            platform,
            call,
            f"the answer is not JSON: {snippet(response.text)!r}",
            http_status=response.status,
        ) from None


def decode_embedded_json(text: Any, *, platform: str, call: str, what: str) -> Any:
    """Decode a JSON document that a platform sends inside a string field ("graph", "parameters")."""
    if text is None or text == "":
        return None
    if not isinstance(text, str):
        return text  # already decoded by a newer API version
    try:
        return parse_json(text)
    except json.JSONDecodeError as exc:
        raise FlowPlatformError(platform, call, f"the {what} text is not JSON ({exc.msg} at {exc.pos})") from None
    except ValueError as exc:
        raise FlowPlatformError(platform, call, f"the {what} text is not JSON ({exc})") from None


def require(record: Mapping[str, Any], key: str, *, platform: str, call: str) -> Any:
    """A field the platform must send; its absence is a FlowPlatformError, never a KeyError."""
    if not isinstance(record, Mapping):
        raise FlowPlatformError(platform, call, f"expected an object, got {type(record).__name__}")
    value = record.get(key)
    if value is None:
        raise FlowPlatformError(platform, call, f"the answer has no {key!r} field")
    return value


def required_id(record: Mapping[str, Any], key: str, *, platform: str, call: str) -> str:
    """An id the platform must send, as a string; missing, null or empty is a FlowPlatformError."""
    value = as_id(require(record, key, platform=platform, call=call))
    if value is None or not value.strip():
        raise FlowPlatformError(platform, call, f"the answer's {key!r} is empty")
    return value


def as_id(value: Any) -> str | None:
    """Every id in this provider is a string (platforms send ints and strings alike)."""
    if value is None or value == "":
        return None
    return str(value)
