"""The only module that touches the network (with ``http1.py``, the HTTP/1.1 client it sends reads over).

It drives the platforms' sans-I/O operations (see ``protocol.py``) with a sync executor on ``requests``
and an async one on ``http1.py`` (reads) and ``aiohttp`` (the rest). What they do with an operation (sign
each attempt, retry with backoff, log in once per credential, renew a refused token, judge every answer) is
written once, in ``_Calls``: a generator that yields only what needs I/O (send this, sleep this long, hold
this login lock while that runs, run these at once). Each executor carries those out, and nothing else. Both
share one process-wide token cache and one notion of timeouts and TLS settings.
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import functools
import logging
import os
import re
import ssl
import threading
import time
import weakref
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Generator
from dataclasses import dataclass, replace
from typing import Any, NamedTuple, TypeVar
from urllib.parse import urlsplit

import aiohttp
import requests
import urllib3
import yarl

from airflow_provider_flowinst import http1
from airflow_provider_flowinst.clock import SYSTEM, Clock
from airflow_provider_flowinst.errors import FlowPlatformError, RunOutcomeUnknown
from airflow_provider_flowinst.protocol import (
    Authenticator,
    AuthenticatorDefaults,
    HttpRequest,
    HttpResponse,
    JSONTooDeep,
    Operation,
    Sleep,
    Throttling,
    Together,
    Token,
    retry_after_header,
    snippet,
    standard_throttling,
)
from airflow_provider_flowinst.redaction import SecretsSeen, redact

#: What an answer that is neither an error nor throttling says of throttling.
NOT_THROTTLED = Throttling()

log = logging.getLogger(__name__)

T = TypeVar("T")
#: ``asyncio.timeout`` (Python 3.11+), else None: ``asyncio.wait_for`` then, which runs the attempt as a task.
_timeout: Callable[[float | None], contextlib.AbstractAsyncContextManager[Any]] | None = getattr(
    asyncio, "timeout", None
)

#: Tokens are renewed this long before the platform says they expire.
TOKEN_RENEWAL_MARGIN_SECONDS = 60.0
TRANSIENT_STATUSES = frozenset({429, 500, 502, 503, 504})
#: The largest answer read (decompressed), unless the connection's extra ``max_response_bytes`` says otherwise.
DEFAULT_MAX_RESPONSE_BYTES = 64 * 1024 * 1024
#: Bytes read from the socket (or out of the decompressor) at a time.
READ_CHUNK_BYTES = 64 * 1024


@dataclass(frozen=True)
class TransportSettings:
    """How one connection talks to its platform.

    ``read_timeout`` bounds the whole answer, not just each wait for a byte: an attempt whose answer has not
    fully arrived ``read_timeout`` seconds after it began fails (a server that trickles it), and no attempt
    lasts longer than ``connect_timeout`` + ``read_timeout``. A request is sent at most ``max_retries`` + 1
    times, each retry after a wait of at most ``retry_max_wait``: a call's time is bounded by
    (``max_retries`` + 1) x (``connect_timeout`` + ``read_timeout``) + ``max_retries`` x ``retry_max_wait``.
    """

    platform: str
    auth: Authenticator
    verify: bool | str = True
    connect_timeout: float = 10.0
    read_timeout: float = 60.0
    max_retries: int = 5
    retry_max_wait: float = 60.0
    max_response_bytes: int = DEFAULT_MAX_RESPONSE_BYTES


class TransientFault(Exception):
    """A fault that may pass: the request is sent again after a backoff.

    ``may_have_acted`` is False only where the platform provably did not act on the request: the
    connection was never made (refused, or not set up in time), or the platform answered that it refused
    the call (429, throttling). A call that is not repeatable is sent again only then.
    """

    def __init__(
        self,
        message: str,
        *,
        http_status: int | None = None,
        retry_after: float | None = None,
        may_have_acted: bool = True,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.http_status = http_status
        self.retry_after = retry_after
        self.may_have_acted = may_have_acted


def retry_after_seconds(response: HttpResponse, now: float | None = None) -> float | None:
    """The standard ``Retry-After`` (seconds or an HTTP date), at ``now`` (default: the clock's now).

    A platform with a header of its own says so in its authenticator's ``throttling``.
    """
    return retry_after_header(response, time.time() if now is None else now)


#: Backoff: the n-th retry waits BACKOFF_FIRST * 2**(n-1) seconds plus up to BACKOFF_JITTER (capped at
#: retry_max_wait), and never less than the platform's Retry-After.
BACKOFF_FIRST = 0.5
BACKOFF_JITTER = 0.5


def _backoff(settings: TransportSettings, retry: int, fault: TransientFault, clock: Clock = SYSTEM) -> float:
    """The wait before the ``retry``-th retry (from 1): exponential with jitter, but never sooner than the
    platform asked (up to ``retry_max_wait``)."""
    try:
        delay = BACKOFF_FIRST * float(2 ** (retry - 1)) + clock.uniform(0, BACKOFF_JITTER)
    except OverflowError:  # pragma: no cover - max_retries is bounded far below this
        delay = settings.retry_max_wait
    delay = max(0.0, min(delay, settings.retry_max_wait))
    if fault.retry_after is not None:
        delay = max(delay, min(fault.retry_after, settings.retry_max_wait))
    return delay


#: Ends a token on the server (a logout), run at exit for a token the process still holds.
TokenEnder = Callable[[Token], None]


class TokenCache:
    """Process-wide tokens, one per credential: one token request per token lifetime, not per call.

    A token the server holds until it is ended (``Authenticator.logout``) is ended when the process exits, if
    it is still cached then (no hook closed it): user code that never calls ``close`` leaves no token behind.
    Only tokens this process obtained are ended. A forked child (an Airflow task or trigger runner) may use
    the tokens it inherited, but never ends them: they are its parent's. Airflow's forked children drop the
    parent's exit handlers and run those registered after the fork, so the handler is registered anew in
    each process that obtains such a token.
    """

    def __init__(self) -> None:
        self._tokens: dict[str, Token] = {}
        self._lock = threading.Lock()
        self._sync_locks: dict[str, threading.Lock] = {}
        self._async_locks: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[str, asyncio.Lock]] = (
            weakref.WeakKeyDictionary()
        )
        #: key -> (token, the pid that obtained it, how to end it)
        self._to_end: dict[str, tuple[Token, int, TokenEnder]] = {}
        self._exit_handler_pid: int | None = None
        #: key -> how many open hooks of this process use its token (``hold`` / ``release``).
        self._users: dict[str, int] = {}

    def get(self, key: str, now: float | None = None) -> Token | None:
        """The token of ``key`` while it has more than the renewal margin to live (at ``now``, epoch seconds)."""
        token = self._tokens.get(key)
        if token is None or token.expires_at - TOKEN_RENEWAL_MARGIN_SECONDS <= (SYSTEM.now() if now is None else now):
            return None
        return token

    def put(self, key: str, token: Token, *, end_at_exit: TokenEnder | None = None) -> None:
        """Cache ``token``; with ``end_at_exit``, this process obtained it and ends it at exit if still cached."""
        self._tokens[key] = token
        if end_at_exit is None:
            return
        with self._lock:
            self._to_end[key] = (token, os.getpid(), end_at_exit)
            if self._exit_handler_pid != os.getpid():
                atexit.register(self.end_at_exit)
                self._exit_handler_pid = os.getpid()

    def take_own(self, key: str) -> Token | None:
        """The token under ``key``, out of the cache, for its user to end now, if this process obtained it and
        it still needs ending; a token inherited from a parent process (or needing no end) stays."""
        with self._lock:
            entry = self._to_end.get(key)
            if entry is None or entry[1] != os.getpid() or self._tokens.get(key) is not entry[0]:
                return None
            del self._to_end[key], self._tokens[key]
            return entry[0]

    def hold(self, key: str) -> None:
        """One more open hook of this process uses the token of ``key``."""
        with self._lock:
            self._users[key] = self._users.get(key, 0) + 1

    def release(self, key: str) -> Token | None:
        """One user fewer. When it was the last, the token to end now (out of the cache, so that a hook that
        starts meanwhile logs in anew instead of using a token being ended), if this process obtained it and
        the platform ends tokens; otherwise None: a token another hook still works with is never ended."""
        with self._lock:
            left = self._users.get(key, 0) - 1
            if left > 0:
                self._users[key] = left
                return None
            self._users.pop(key, None)
        return self.take_own(key)

    def users(self, key: str) -> int:
        return self._users.get(key, 0)

    def end_at_exit(self) -> None:
        """End every token this process obtained and still holds (registered with ``atexit``)."""
        while (key := next(iter(self._to_end), None)) is not None:
            token, pid, end = self._to_end.pop(key)
            if pid != os.getpid() or self._tokens.get(key) is not token:
                continue  # a parent's, or already ended or replaced
            del self._tokens[key]
            try:
                end(token)
            except Exception as exc:  # the process ends anyway; the server drops the token in time
                why = redact(str(exc), token.secrets())  # an echoed logout carries it
                log.warning("Could not end a session at exit (%s): the server keeps it until it expires", why)

    def after_fork_in_child(self) -> None:
        """A forked child: locks another thread of the parent held stay held in the copy, so new ones; and the
        parent's open hooks are not the child's, so it counts its own users from none."""
        self._lock = threading.Lock()
        self._sync_locks = {}
        self._users = {}

    def stale(self, key: str) -> Token | None:
        """The token last put under ``key``, even one that ran out: what a renewal starts from."""
        return self._tokens.get(key)

    def invalidate(self, key: str, token: Token | None) -> None:
        """Drop ``token`` unless another caller already replaced it."""
        if token is not None and self._tokens.get(key) is token:
            del self._tokens[key]

    def clear(self) -> None:
        self._tokens.clear()
        self._to_end.clear()
        self._users.clear()

    def sync_lock(self, key: str) -> threading.Lock:
        """The lock a login for ``key`` holds: a login waits only for logins of the same credential."""
        with self._lock:
            return self._sync_locks.setdefault(key, threading.Lock())

    def async_lock(self, key: str) -> asyncio.Lock:
        loop = asyncio.get_running_loop()
        locks = self._async_locks.setdefault(loop, {})
        return locks.setdefault(key, asyncio.Lock())


TOKENS = TokenCache()
if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=TOKENS.after_fork_in_child)


#: What a platform says of a refused call: throttled or not, and how long to wait (``Authenticator.throttling``).
ThrottlingReader = Callable[[HttpResponse, float], Throttling]


def _classify(
    settings: TransportSettings,
    request: HttpRequest,
    response: HttpResponse,
    throttling: ThrottlingReader = standard_throttling,
    now: float | None = None,
) -> None:
    """Raise TransientFault for answers worth sending again.

    Those are 5xx and 429 (whatever the body: JSON, an HTML error page from a proxy, nothing), the
    platform's own throttling answers, and, for a request that is safe to repeat (a read, a login), a 2xx
    answer that declares JSON but does not parse (cut short or garbled on the way): a call that started or
    stopped something did act, so sending it again could start a second run. Any other answer goes to the
    platform module, which reads it or reports it.
    """
    if 300 <= response.status < 400:
        raise _redirect_error(settings, request, response)
    said = throttling(response, SYSTEM.now() if now is None else now) if response.status >= 400 else NOT_THROTTLED
    if response.status in TRANSIENT_STATUSES or said.throttled:
        raise TransientFault(
            f"HTTP {response.status}: {readable_snippet(response)}",
            http_status=response.status,
            retry_after=said.retry_after,
            may_have_acted=not said.throttled,
        )
    if request.repeatable and is_damaged_json(response):
        raise TransientFault(
            f"HTTP {response.status}: the JSON answer is malformed: {readable_snippet(response)!r}",
            http_status=response.status,
        )


def _redirect_error(settings: TransportSettings, request: HttpRequest, response: HttpResponse) -> FlowPlatformError:
    location = (response.header("location") or "").strip()
    try:
        host = yarl.URL(location).host if location else None
    except ValueError:
        host = None
    where = f" to {host}" if host else ""
    return FlowPlatformError(
        settings.platform,
        request.call,
        f"the platform answered with a redirect (HTTP {response.status}){where}, which is not followed: check "
        "the connection's host and schema (a login page or a proxy may stand in front of the API)",
        http_status=response.status,
    )


def _too_large(settings: TransportSettings, request: HttpRequest) -> FlowPlatformError:
    """An answer past ``max_response_bytes``; for a call that may have acted, its outcome is unknown."""
    message = (
        f"the answer is larger than {settings.max_response_bytes} bytes (the connection's extra "
        "'max_response_bytes'), so it was not read to its end"
    )
    error = FlowPlatformError if request.repeatable else RunOutcomeUnknown
    return error(settings.platform, request.call, message)


def _read_deadline_passed(settings: TransportSettings) -> TransientFault:
    return TransientFault(
        f"the answer did not arrive in full within read_timeout ({settings.read_timeout:g} s)", may_have_acted=True
    )


def _lost(exc: BaseException, *, never_connected: bool) -> TransientFault:
    """The answer did not come (a reset, a timeout, a connection refused): ``never_connected`` where provably
    nothing was sent."""
    return TransientFault(f"{type(exc).__name__}: {exc}", may_have_acted=not never_connected)


def _unsendable(settings: TransportSettings, request: HttpRequest, exc: BaseException) -> FlowPlatformError:
    """An invalid URL or header: sending again cannot help."""
    message = f"the request could not be sent: {type(exc).__name__}: {exc}"
    return FlowPlatformError(settings.platform, request.call, message)


_TAG = re.compile(r"<[^>]*>")


def readable_snippet(response: HttpResponse, limit: int = 200) -> str:
    """The start of a body for a message: whitespace folded, and an HTML page's tags left out."""
    text = response.text
    media = (response.header("content-type") or "").split(";", 1)[0].strip().lower()
    if media == "text/html" or text.lstrip()[:15].lower().startswith(("<!doctype html", "<html")):
        text = _TAG.sub(" ", text)
    return snippet(text, limit)


def is_damaged_json(response: HttpResponse) -> bool:
    """A 2xx answer whose Content-Type says JSON but whose body is not JSON (an empty body is left alone)."""
    if not 200 <= response.status < 300:
        return False
    media = (response.header("content-type") or "").split(";", 1)[0].strip().lower()
    if media != "application/json" and not media.endswith("+json"):
        return False
    if not response.body.strip():
        return False
    try:
        response.json()
    except JSONTooDeep:
        return False  # well-formed but nested too deeply: not damage; the platform module reports it
    except (ValueError, UnicodeDecodeError):
        return True
    return False


_SSL_REASON = re.compile(r"\[SSL: [^\]]*\][^'\"()\]]*")


def tls_error(settings: TransportSettings, request: HttpRequest, exc: BaseException) -> FlowPlatformError:
    """A TLS failure (most often an unverifiable certificate), with what to do about it."""
    match = _SSL_REASON.search(str(exc))
    reason = match.group(0).strip() if match else f"{type(exc).__name__}: {exc}"
    host = yarl.URL(request.url).host
    return FlowPlatformError(
        settings.platform,
        request.call,
        f"TLS error with {host}: {reason}. TLS certificates are verified by default: set the connection's extra "
        "'verify' to the path of the CA bundle that signed the server's certificate (or false to turn "
        "verification off)",
    )


def _obtain_token(auth: Authenticator, stale: Token | None) -> Operation[Token] | None:
    """The operation that gets a new token: a renewal of ``stale`` where the authenticator offers one, else
    a login."""
    renewal = None if stale is None else auth.renew(stale)
    return renewal if renewal is not None else auth.login()


def _mask_token(token: Token) -> None:
    """Register every credential a login handed out with Airflow's secret masker (logs show ***)."""
    try:
        from airflow.sdk.log import mask_secret
    except ImportError:  # pragma: no cover - older task SDKs
        return
    for value in token.secrets():
        if value:
            mask_secret(value)


E = TypeVar("E", bound=FlowPlatformError)


def _call_error(settings: TransportSettings, request: HttpRequest, message: str, kind: type[E], **details: Any) -> E:
    """An error of ``request``'s call, naming the connection's platform."""
    return kind(settings.platform, request.call, message, **details)


def _gave_up(settings: TransportSettings, request: HttpRequest, fault: TransientFault) -> FlowPlatformError:
    message = f"still failing after {settings.max_retries + 1} attempts: {fault.message}"
    # retry_after: a task's retry policy may wait as long as the platform last asked
    details = {"http_status": fault.http_status, "retryable": True, "retry_after": fault.retry_after}
    return _call_error(settings, request, message, FlowPlatformError, **details)


def _credentials_refused(
    settings: TransportSettings, request: HttpRequest, response: HttpResponse
) -> FlowPlatformError:
    """The platform refused a token it had just handed out: the credentials, not the token, are refused."""
    message = f"the platform refused the call again right after a fresh login: {readable_snippet(response)}"
    return _call_error(settings, request, message, FlowPlatformError, http_status=response.status, permanent=True)


def _outcome_unknown(settings: TransportSettings, request: HttpRequest, fault: TransientFault) -> RunOutcomeUnknown:
    message = f"the call may have been carried out, but its answer was lost ({fault.message}); it is not sent again"
    return _call_error(settings, request, message, RunOutcomeUnknown, http_status=fault.http_status)


def _may_send_again(settings: TransportSettings, request: HttpRequest, fault: TransientFault) -> None:
    """A call that starts or stops something is sent again only where it provably was not acted on."""
    if fault.may_have_acted and not request.repeatable:
        raise _outcome_unknown(settings, request, fault)


def _never_connected(exc: BaseException) -> bool:
    """requests/urllib3: the connection was refused or not set up in time, so nothing was sent."""
    seen: set[int] = set()
    stack: list[BaseException | None] = [exc]
    while stack:
        error = stack.pop()
        if error is None or id(error) in seen:
            continue
        seen.add(id(error))
        if isinstance(error, urllib3.exceptions.ConnectTimeoutError):  # NewConnectionError is one too
            return True
        stack += [getattr(error, "reason", None), error.__cause__, error.__context__]
        stack += [arg for arg in error.args if isinstance(arg, BaseException)]
    return False


#: Where ``verify: true`` finds its CA certificates, on both paths: the first of these variables that is set
#: (a bundle file or a directory), else certifi's bundle (what requests trusts by default).
CA_ENVIRONMENT_VARIABLES = ("REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE", "SSL_CERT_FILE", "SSL_CERT_DIR")


def trust_store(verify: bool | str) -> str | bool:
    """The CA bundle file or directory both paths verify with, or False (verification off)."""
    if verify is False:
        return False
    if isinstance(verify, str):
        return verify
    for name in CA_ENVIRONMENT_VARIABLES:
        value = os.environ.get(name, "").strip()
        if value:
            return value
    return str(requests.utils.DEFAULT_CA_BUNDLE_PATH)


_SSL_CONTEXTS: dict[str, ssl.SSLContext] = {}


def ssl_context(verify: bool | str) -> ssl.SSLContext | bool:
    """aiohttp's ``ssl`` for ``verify``: a context trusting exactly what requests trusts (see ``trust_store``)."""
    store = trust_store(verify)
    if store is False:
        return False
    assert isinstance(store, str)
    context = _SSL_CONTEXTS.get(store)
    if context is None:
        if os.path.isdir(store):
            context = ssl.create_default_context(capath=store)
        else:
            context = ssl.create_default_context(cafile=store)
        _SSL_CONTEXTS[store] = context
    return context


def proxy_for(url: str) -> str | None:
    """The proxy for ``url`` from HTTPS_PROXY / HTTP_PROXY / ALL_PROXY and NO_PROXY, decided as requests does
    (its own function), so the async path goes where the sync path goes."""
    proxies = requests.utils.get_environ_proxies(url)
    return proxies.get(urlsplit(url).scheme) or proxies.get("all")


class _Exchange:
    """An effect: send ``wire`` (``request`` as this attempt signed it) and read the answer.

    The executor answers with the ``HttpResponse``, whatever its status, or throws what went wrong: a
    ``TransientFault`` (``_lost``, ``_read_deadline_passed``) or a ``FlowPlatformError`` that ends the call.
    """

    __slots__ = ("request", "wire")

    def __init__(self, request: HttpRequest, wire: HttpRequest) -> None:
        self.request = request
        self.wire = wire


class _Exclusive:
    """An effect: drive ``steps`` (a login) holding the login lock of credential ``key``, and answer with
    what they return: a login waits only for logins of the same credential."""

    __slots__ = ("key", "steps")

    def __init__(self, key: str, steps: _Steps[Token | None]) -> None:
        self.key = key
        self.steps = steps


class _Together:
    """An effect: drive each of ``steps`` (an operation's ``Together``) and answer with their results, in order,
    or throw in the first failure."""

    __slots__ = ("steps",)

    def __init__(self, steps: tuple[_Steps[Any], ...]) -> None:
        self.steps = steps


_Effect = _Exchange | _Exclusive | _Together | Sleep
#: What ``_Calls`` yields (each effect, answered by the executor) and returns.
_Steps = Generator[_Effect, Any, T]


class _Done:
    """``_resume``'s answer once the steps have returned ``value``."""

    __slots__ = ("value",)

    def __init__(self, value: Any) -> None:
        self.value = value


def _resume(steps: _Steps[Any], reply: Any = None, error: Exception | None = None) -> _Effect | _Done:
    """The next effect of ``steps``, sent the last one's ``reply`` (or thrown its ``error``)."""
    try:
        return steps.send(reply) if error is None else steps.throw(error)
    except StopIteration as done:
        return _Done(done.value)


def _answer(carry_out: Callable[[Any], Any], effect: _Effect) -> tuple[Any, Exception | None]:
    """What carrying ``effect`` out gave: (its result, None), or (None, the error it met)."""
    try:
        return carry_out(effect), None
    except Exception as exc:
        return None, exc


def _member(auth: Authenticator, name: str) -> Any:
    """``auth``'s own ``name``, or the default of ``AuthenticatorDefaults`` for an authenticator written
    without it (a duck-typed one with only ``sign``)."""
    own = getattr(auth, name, None)
    return own if own is not None else functools.partial(getattr(AuthenticatorDefaults, name), auth)


#: Answers judged ordinary that ``_Calls`` remembers (one per request: a wait polls one) and the largest body.
MAX_JUDGED_ANSWERS = 256
MAX_JUDGED_BODY = 16 * 1024


class _Calls:
    """What both transports do with an operation, sans-I/O: each attempt signed at its own time, transient
    faults retried with backoff (at most ``max_retries`` times, never sooner than the platform asks, never
    again where a call may have acted), one login per credential at a time, a refused token renewed and the
    call sent once more, every answer judged (``_classify``) before the operation reads it.

    ``run`` is a generator of effects (``_Exchange``, ``Sleep``, ``_Exclusive``, ``_Together``); an executor
    carries out each and sends back its result, or throws its error in.
    """

    def __init__(self, settings: TransportSettings, seen: SecretsSeen, clock: Clock = SYSTEM) -> None:
        self.settings = settings
        self.seen = seen
        self.clock = clock
        self.auth = settings.auth
        self.key = settings.auth.cache_key  # a digest of the credentials: taken once, not per call
        self.authorize: Callable[[HttpRequest, Token | None, int], HttpRequest] = _member(self.auth, "authorize")
        self.throttling: ThrottlingReader = _member(self.auth, "throttling")
        #: The last answer judged ordinary per bodiless request (full URL): (status, content type, body).
        self._judged: dict[str, tuple[int, str | None, bytes]] = {}

    def run(self, operation: Operation[T]) -> _Steps[T]:
        try:
            step = next(operation)
        except StopIteration as done:  # an operation that needed no request at all
            return done.value  # type: ignore[no-any-return]
        while True:
            response: Any = None
            failure: Exception | None = None
            if isinstance(step, Sleep):
                yield step
            elif isinstance(step, Together):
                try:
                    response = yield _Together(tuple(self.run(part) for part in step.operations))
                except Exception as exc:  # where ``yield from`` each would have raised it
                    failure = exc
            else:
                response = yield from self.send(step)
            try:  # send(None) is next()
                step = operation.send(response) if failure is None else operation.throw(failure)
            except StopIteration as done:
                return done.value  # type: ignore[no-any-return]

    def send(self, request: HttpRequest) -> _Steps[HttpResponse]:
        if not request.authenticated:
            return (yield from self.retrying(request, None))
        token = yield from self.token()
        response = yield from self.retrying(request, token)
        if self._as_before(request, response):
            return response
        if not self.auth.is_token_expired(response):
            self._remember(request, response)
            return response
        # The token ran out: a fresh one, and the call sent once more.
        TOKENS.invalidate(self.key, token)
        fresh = yield from self.token(refused=token)
        response = yield from self.retrying(request, fresh)
        if fresh is not None and self.auth.is_token_expired(response):
            TOKENS.invalidate(self.key, fresh)
            raise _credentials_refused(self.settings, request, response)
        return response

    def _as_before(self, request: HttpRequest, response: HttpResponse) -> bool:
        """Whether ``response`` is, byte for byte, the last answer to ``request`` that was judged ordinary (not
        a fault, not an expired token): a wait polling a run that goes on gets the same answer each time, and
        judging a 2xx answer reads only its status, content type and body."""
        if request.body is not None:
            return False
        judged = self._judged.get(request.full_url)
        return judged is not None and judged == (response.status, response.headers.get("content-type"), response.body)

    def _remember(self, request: HttpRequest, response: HttpResponse) -> None:
        if request.body is not None or not 200 <= response.status < 300 or len(response.body) > MAX_JUDGED_BODY:
            return
        if len(self._judged) >= MAX_JUDGED_ANSWERS and request.full_url not in self._judged:
            return
        self._judged[request.full_url] = (response.status, response.headers.get("content-type"), response.body)

    def token(self, refused: Token | None = None) -> _Steps[Token | None]:
        token = TOKENS.get(self.key, self.clock.now())
        if token is None:
            token = yield _Exclusive(self.key, self.login(refused))
            if token is None:
                return None
        self.seen.token(token)
        return token

    def login(self, refused: Token | None) -> _Steps[Token | None]:
        """Run under the credential's login lock: another caller may have logged in meanwhile."""
        token = TOKENS.get(self.key, self.clock.now())
        if token is None:
            login = _obtain_token(self.auth, refused or TOKENS.stale(self.key))
            if login is None:
                return None
            token = yield from self.run(login)
            _mask_token(token)
            TOKENS.put(self.key, token, end_at_exit=self._ender(token))
        return token

    def _ender(self, token: Token) -> TokenEnder | None:
        """How to end ``token`` at exit, where the platform ends tokens (a logout): sent with the sync
        transport, since no event loop is left to run at exit, and retried once at most."""
        if _member(self.auth, "logout")(token) is None:  # an operation is only built here, nothing is sent
            return None
        settings = replace(self.settings, max_retries=min(self.settings.max_retries, 1))

        def end(held: Token) -> None:
            operation = _member(settings.auth, "logout")(held)
            transport = SyncTransport(settings)
            try:
                transport.run(operation)
            finally:
                transport.close()

        return end

    def retrying(self, request: HttpRequest, token: Token | None) -> _Steps[HttpResponse]:
        try:
            return (yield from self.attempt(request, token))  # most calls: one attempt, no retry machinery
        except TransientFault as fault:
            failure = fault
        for retry in range(1, self.settings.max_retries + 1):
            delay = _backoff(self.settings, retry, failure, self.clock)
            log.warning(
                "Transient fault (%s); attempt %d, retrying in %.1f s", self.seen.scrub(str(failure)), retry, delay
            )
            yield Sleep(delay)
            try:
                return (yield from self.attempt(request, token))
            except TransientFault as fault:
                failure = fault
        raise _gave_up(self.settings, request, failure)

    def attempt(self, request: HttpRequest, token: Token | None) -> _Steps[HttpResponse]:
        wire = self.authorize(request, token, self.clock.now_ms())
        self.seen.sent(request, wire)
        try:
            response: HttpResponse = yield _Exchange(request, wire)
            if not self._as_before(request, response):
                _classify(self.settings, request, response, self.throttling, self.clock.now())
        except TransientFault as fault:  # a lost answer or a transient one: sent again only where it may be
            _may_send_again(self.settings, request, fault)
            raise
        return response


class SyncTransport:
    """Runs operations with ``requests``; one session (and its connection pool) per transport."""

    def __init__(self, settings: TransportSettings, session: requests.Session | None = None) -> None:
        self.settings = settings
        self.session = session or requests.Session()
        self.seen = SecretsSeen(settings.auth)
        self._calls = _Calls(settings, self.seen)
        self._carry_out: dict[type, Callable[[Any], Any]] = {
            _Exchange: self._exchange,
            Sleep: self._sleep,
            _Exclusive: self._exclusive,
            _Together: self._together,
        }
        self._verify = trust_store(settings.verify)  # read once: the environment as the hook was set up

    def run(self, operation: Operation[T]) -> T:
        try:
            return self._drive(self._calls.run(operation))
        except FlowPlatformError as error:  # the platform's own text may echo a secret
            self.seen.redact(error)
            raise

    def close(self) -> None:
        self.session.close()

    def _drive(self, steps: _Steps[T]) -> T:
        effect = _resume(steps)
        while not isinstance(effect, _Done):
            effect = _resume(steps, *_answer(self._carry_out[type(effect)], effect))
        return effect.value  # type: ignore[no-any-return]

    def _together(self, effect: _Together) -> list[Any]:
        return [self._drive(steps) for steps in effect.steps]  # in turn: this path waits on each anyway

    def _exclusive(self, effect: _Exclusive) -> Token | None:
        with TOKENS.sync_lock(effect.key):
            return self._drive(effect.steps)

    def _sleep(self, effect: Sleep) -> None:
        time.sleep(max(0.0, effect.seconds))

    def _exchange(self, effect: _Exchange) -> HttpResponse:
        request, wire, settings = effect.request, effect.wire, self.settings
        deadline = time.monotonic() + settings.read_timeout  # the whole answer, not each wait for a byte
        try:
            raw = self.session.request(
                wire.method,
                wire.full_url,
                headers=dict(wire.headers),
                data=wire.body,
                timeout=(settings.connect_timeout, settings.read_timeout),
                verify=self._verify,
                allow_redirects=False,
                stream=True,  # the body is read below, against the deadline and the size limit
            )
            try:
                body = self._read_body(raw, request, deadline)
            finally:
                raw.close()
        except requests.exceptions.SSLError as exc:
            raise tls_error(settings, request, exc) from None
        except (
            requests.ConnectionError,
            requests.Timeout,
            requests.exceptions.ChunkedEncodingError,
            requests.exceptions.ContentDecodingError,
            urllib3.exceptions.HTTPError,  # the answer was cut off, timed out or garbled mid-body
        ) as exc:
            raise _lost(exc, never_connected=_never_connected(exc)) from None
        except requests.RequestException as exc:  # an OSError too, but an invalid URL or header: not transient
            raise _unsendable(settings, request, exc) from None
        except OSError as exc:  # the socket failed mid-body
            raise _lost(exc, never_connected=_never_connected(exc)) from None
        return HttpResponse(
            status=raw.status_code,
            headers={name.lower(): value for name, value in raw.headers.items()},
            body=body,
        )

    def _read_body(self, raw: requests.Response, request: HttpRequest, deadline: float) -> bytes:
        """The decompressed body, read a chunk at a time: past ``deadline`` the attempt fails (a trickle),
        past ``max_response_bytes`` the call does (a huge answer or a gzip bomb; never held in full)."""
        limit = self.settings.max_response_bytes
        chunks: list[bytes] = []
        size = 0
        while True:
            if time.monotonic() > deadline:
                raise _read_deadline_passed(self.settings)
            # read1: whatever one read of the socket brings (decompressed, at most a chunk), not a full chunk
            data = raw.raw.read1(READ_CHUNK_BYTES, decode_content=True)
            if not data:
                return b"".join(chunks)
            size += len(data)
            if size > limit:
                raise _too_large(self.settings, request)
            chunks.append(data)


#: URLs (with their query) a transport remembers the target of; a wait polls one, a connection calls a few more.
MAX_REMEMBERED_URLS = 1024

_SESSIONS: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, aiohttp.ClientSession] = weakref.WeakKeyDictionary()


def _shared_session() -> aiohttp.ClientSession:
    """One aiohttp session per event loop: every wait in a triggerer shares one connection pool."""
    loop = asyncio.get_running_loop()
    session = _SESSIONS.get(loop)
    if session is None or session.closed:
        session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=100, ttl_dns_cache=300),
            auto_decompress=True,
            skip_auto_headers=("User-Agent",),
            # Shared by every connection on the loop: never let one server's cookies ride along to another.
            cookie_jar=aiohttp.DummyCookieJar(),
        )
        _SESSIONS[loop] = session
    return session


async def close_shared_session() -> None:
    """Close this loop's session and ``http1`` pool (tests and the triggerer's shutdown)."""
    await http1.close_shared_pool()
    session = _SESSIONS.pop(asyncio.get_running_loop(), None)
    if session is not None:
        await session.close()


_LEASES: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, int] = weakref.WeakKeyDictionary()


@contextlib.asynccontextmanager
async def shared_session_lease() -> AsyncIterator[None]:
    """Hold this loop's session open while in use; the last holder to leave closes it.

    Triggers wrap their polling in a lease: thousands of waits in one triggerer share one session,
    and a loop that ends (as ``dag.test()`` runs each trigger) leaves no unclosed connection behind.
    """
    loop = asyncio.get_running_loop()
    _LEASES[loop] = _LEASES.get(loop, 0) + 1
    try:
        yield
    finally:
        _LEASES[loop] -= 1
        if _LEASES[loop] == 0:
            await close_shared_session()


class _Target(NamedTuple):
    url: yarl.URL  # as aiohttp takes it
    proxy: str | None
    direct: http1.Target | None  # None: through aiohttp (a proxy, or a URL http1 does not send)


class AsyncTransport:
    """Runs the same operations without blocking the event loop: over ``http1`` where a request may be sent twice
    and no proxy is on its way (a poll), over aiohttp otherwise."""

    def __init__(self, settings: TransportSettings) -> None:
        self.settings = settings
        self.seen = SecretsSeen(settings.auth)
        self._calls = _Calls(settings, self.seen)
        self._carry_out: dict[type, Callable[[Any], Awaitable[Any]]] = {
            _Exchange: self._exchange,
            Sleep: self._sleep,
            _Exclusive: self._exclusive,
            _Together: self._together,
        }
        self._ssl = ssl_context(settings.verify)  # read once: the environment as the hook was set up
        self._proxies: dict[str, str | None] = {}  # by origin
        self._targets: dict[str, _Target] = {}  # by full URL
        # total: one attempt, connecting and the whole answer (the headers too); sock_read: each wait for a byte.
        self._timeout = aiohttp.ClientTimeout(
            total=settings.connect_timeout + settings.read_timeout,
            sock_connect=settings.connect_timeout,
            sock_read=settings.read_timeout,
        )
        self._attempt_seconds = settings.connect_timeout + settings.read_timeout

    def run(self, operation: Operation[T]) -> Coroutine[Any, Any, T]:
        """Drive ``operation``: ``await transport.run(operation)`` (a plain function returning the coroutine
        that drives it: one coroutine less a poll)."""
        return self._drive(self._calls.run(operation))

    async def _drive(self, steps: _Steps[T]) -> T:
        carry_out = self._carry_out
        try:
            effect = _resume(steps)
            while not isinstance(effect, _Done):
                fault: Exception | None = None
                try:  # _answer written out for awaited effects (no coroutine of its own: one less per request)
                    reply = await carry_out[type(effect)](effect)
                except Exception as exc:
                    reply, fault = None, exc
                effect = _resume(steps, reply, fault)
        except FlowPlatformError as error:
            # seen.redacting() written out: a poll's hot path, where a generator-based context manager costs
            # more than the call it wraps. Only an error leaving the process is redacted (again, harmlessly,
            # by an outer drive).
            self.seen.redact(error)
            raise
        return effect.value  # type: ignore[no-any-return]

    async def _exclusive(self, effect: _Exclusive) -> Token | None:
        async with TOKENS.async_lock(effect.key):
            return await self._drive(effect.steps)

    async def _together(self, effect: _Together) -> list[Any]:
        """Side by side; every part runs to its end (none is left half done), then the first failure is raised."""
        outcomes = await asyncio.gather(*(self._drive(steps) for steps in effect.steps), return_exceptions=True)
        for outcome in outcomes:
            if isinstance(outcome, BaseException):
                raise outcome
        return outcomes

    async def _sleep(self, effect: Sleep) -> None:
        await asyncio.sleep(max(0.0, effect.seconds))

    async def _exchange(self, effect: _Exchange) -> HttpResponse:
        request, wire = effect.request, effect.wire
        deadline = time.monotonic() + self.settings.read_timeout
        target = self._targets.get(wire.full_url) or self._target(wire)
        if target.direct is not None and request.repeatable:
            return await self._exchange_direct(request, wire, target.direct, deadline)
        try:
            async with _shared_session().request(
                wire.method,
                target.url,
                headers=wire.headers,
                data=wire.body,
                ssl=self._ssl,
                proxy=target.proxy,
                timeout=self._timeout,
                allow_redirects=False,
            ) as raw:
                return HttpResponse(
                    status=raw.status,
                    headers={name.lower(): value for name, value in raw.headers.items()},
                    body=await self._read_body(raw, request, deadline),
                )
        except aiohttp.ClientSSLError as exc:
            raise tls_error(self.settings, request, exc) from None
        except aiohttp.InvalidURL as exc:
            raise _unsendable(self.settings, request, exc) from None
        except (aiohttp.ClientError, asyncio.TimeoutError, OSError) as exc:
            # ClientConnectorError and ConnectionTimeoutError: the connection was never made, nothing was sent.
            never = isinstance(exc, aiohttp.ClientConnectorError | aiohttp.ConnectionTimeoutError)
            raise _lost(exc, never_connected=never) from None

    async def _exchange_direct(
        self, request: HttpRequest, wire: HttpRequest, direct: http1.Target, deadline: float
    ) -> HttpResponse:
        """A request that may be sent twice, with no proxy on its way: over ``http1`` (a poll's path)."""
        exchange = http1.shared_pool().exchange(
            direct,
            wire.method,
            wire.headers,
            wire.body,
            ssl_context=self._ssl,
            connect_timeout=self.settings.connect_timeout,
            max_body=self.settings.max_response_bytes,
            deadline=deadline,
        )
        try:
            if _timeout is None:  # Python 3.10
                answer = await asyncio.wait_for(exchange, self._attempt_seconds)
            else:
                async with _timeout(self._attempt_seconds):
                    answer = await exchange
        except http1.TlsFailed as exc:
            raise tls_error(self.settings, request, exc.__cause__ or exc) from None
        except http1.Unsendable as exc:
            raise _unsendable(self.settings, request, exc) from None
        except http1.BodyTooLarge:
            raise _too_large(self.settings, request) from None
        except http1.DeadlinePassed:
            raise _read_deadline_passed(self.settings) from None
        except http1.ConnectFailed as exc:
            raise _lost(exc, never_connected=True) from None
        except (http1.MalformedAnswer, asyncio.IncompleteReadError, asyncio.TimeoutError, OSError) as exc:
            raise _lost(exc, never_connected=False) from None
        return HttpResponse(status=answer.status, headers=answer.headers, body=answer.body)

    def _target(self, wire: HttpRequest) -> _Target:
        """Where ``wire`` goes: its URL as aiohttp takes it, its proxy (decided once per origin) and, without
        one, its ``http1`` target; remembered for the URL with its query: a poll's request is looked up, not
        parsed again."""
        parts = urlsplit(wire.url)
        origin = f"{parts.scheme}://{parts.netloc}"
        if origin not in self._proxies:
            self._proxies[origin] = proxy_for(wire.url)
        proxy = self._proxies[origin]
        direct = None if proxy else http1.target_of(wire.full_url)
        target = _Target(yarl.URL(wire.full_url, encoded=True), proxy, direct)
        if len(self._targets) < MAX_REMEMBERED_URLS:
            self._targets[wire.full_url] = target
        return target

    async def _read_body(self, raw: aiohttp.ClientResponse, request: HttpRequest, deadline: float) -> bytes:
        """The decompressed body, a chunk at a time, never more than ``max_response_bytes`` of it, and no
        later than ``deadline`` (aiohttp's ``total`` timeout bounds the attempt too; this says why it ended)."""
        limit = self.settings.max_response_bytes
        chunks: list[bytes] = []
        size = 0
        content = raw.content
        while data := await content.readany():  # what has arrived (readany, not iter_any: no StopAsyncIteration)
            if time.monotonic() > deadline:
                raise _read_deadline_passed(self.settings)
            size += len(data)
            if size > limit:
                raise _too_large(self.settings, request)
            chunks.append(data)
        return b"".join(chunks)
