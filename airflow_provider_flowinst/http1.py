"""A small HTTP/1.1 client on asyncio streams: the async transport's path for requests that may be resent.

Why: a poll is one small signed GET, and aiohttp's request machinery (tracing, cookie and header merging,
its timers and payload writers) was most of a poll's CPU, more than the provider's own work
(``benchmarks/poll_cpu_vs_floor.py --profile``). This client does only what a poll needs: one request at
a time per connection, keep-alive connections pooled per origin and event loop, bodies framed by
``Content-Length`` or chunked, ``gzip`` and ``deflate`` decoded, never more than ``max_body`` bytes of
it (on the wire or decoded) and never past ``deadline``.

What it leaves to aiohttp (the transport decides): requests through a proxy, and requests that must not
be sent twice. Those are never sent here because a pooled connection the server closed while it was idle
is found out only by sending on it, and a request may be resent on a fresh connection only when sending
it twice does no harm.

The caller bounds each attempt as a whole (``asyncio.timeout``); connecting is bounded here by
``connect_timeout``. Errors: ``ConnectFailed`` (nothing was sent), ``TlsFailed`` (the handshake),
``BodyTooLarge``, ``DeadlinePassed``, ``MalformedAnswer``, ``Unsendable``, and ``OSError`` or
``asyncio.IncompleteReadError`` when the connection broke during the exchange.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
import time
import weakref
import zlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from urllib.parse import urlsplit

#: Open connections per origin and event loop (aiohttp's connector limit, which this path replaces).
MAX_CONNECTIONS_PER_ORIGIN = 100
#: An idle connection is closed after this long, as aiohttp's connector does (servers drop idle ones anyway).
IDLE_SECONDS = 15.0
#: Bytes read from the socket at a time, and the stream's limit: the longest head (status line and headers).
READ_CHUNK_BYTES = MAX_HEAD_BYTES = 64 * 1024
#: The most lines an answer's head (or a chunked body's trailer) may have.
MAX_HEADER_LINES = 128
#: A compressed body may be a little longer than what it decodes to: this much slack on the wire.
WIRE_SLACK_BYTES = 4096

_DEFAULT_PORTS = {"http": 80, "https": 443}
_NO_BODY_STATUSES = frozenset({204, 304})


class ConnectFailed(Exception):
    """The connection could not be made (refused, unresolvable, not set up in time): nothing was sent."""


class TlsFailed(Exception):
    """The TLS handshake failed (most often an unverifiable certificate): its ``ssl.SSLError`` is the cause.
    A TLS error later, on a connection that was set up, is a broken connection like any other."""


class BodyTooLarge(Exception):
    """The answer's body is longer than ``max_body``."""


class DeadlinePassed(Exception):
    """The answer had not fully arrived by ``deadline``."""


class MalformedAnswer(Exception):
    """What came back is not an HTTP/1.x answer this client reads."""


class Unsendable(Exception):
    """The request cannot be written as HTTP/1.1 (a header holding a line break): nothing was sent."""


@dataclass(frozen=True)
class Origin:
    """Where a request goes: the pool's key, and what connecting needs."""

    scheme: str
    host: str
    port: int
    host_header: str


@dataclass(frozen=True)
class Target:
    """A URL worked out once: its origin and the request target (path and query) as sent."""

    origin: Origin
    path: bytes


def target_of(url: str) -> Target | None:
    """``url`` as this client sends it, or None where it cannot (not http/https, no host, not ASCII)."""
    if not url.isascii():
        return None
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme not in _DEFAULT_PORTS or not parts.hostname or parts.username is not None:
        return None
    try:
        port = parts.port or _DEFAULT_PORTS[scheme]
    except ValueError:
        return None
    host = parts.hostname
    bracketed = f"[{host}]" if ":" in host else host
    host_header = bracketed if port == _DEFAULT_PORTS[scheme] else f"{bracketed}:{port}"
    path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    if any(character in path for character in " \r\n"):
        return None
    return Target(Origin(scheme, host, port, host_header), path.encode("ascii"))


@dataclass(frozen=True)
class Answer:
    status: int
    headers: dict[str, str]  # names lower-case; a repeated header keeps its last value
    body: bytes


class _Connection:
    __slots__ = ("idle_since", "reader", "writer")

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer
        self.idle_since = 0.0

    def usable(self, now: float) -> bool:
        return now - self.idle_since < IDLE_SECONDS and not self.reader.at_eof() and not self.writer.is_closing()

    def close(self) -> None:
        self.writer.close()


@dataclass
class _OriginPool:
    slots: asyncio.Semaphore
    idle: list[_Connection] = field(default_factory=list)


class Pool:
    """Keep-alive connections of one event loop, per origin."""

    def __init__(self) -> None:
        self._origins: dict[Origin, _OriginPool] = {}
        self._sweep: asyncio.TimerHandle | None = None
        self.closed = False

    async def exchange(
        self,
        target: Target,
        method: str,
        headers: Mapping[str, str],
        body: bytes | None,
        *,
        ssl_context: ssl.SSLContext | bool,
        connect_timeout: float,
        max_body: int,
        deadline: float,
    ) -> Answer:
        """Send one request and read its whole answer."""
        head = _request_head(method, target, headers, body)
        message = head + body if body else head
        origin_pool = self._origins.get(target.origin)
        if origin_pool is None:
            origin_pool = self._origins[target.origin] = _OriginPool(asyncio.Semaphore(MAX_CONNECTIONS_PER_ORIGIN))
        async with origin_pool.slots:
            connection = self._idle_connection(origin_pool)
            if connection is not None:
                # A pooled connection the server closed is found out only by sending: its request may be sent
                # again (this path carries only those), once, on a fresh connection.
                answer = await _attempt(connection, message, method, max_body, deadline, reused=True)
                if answer is not None:
                    return self._done(origin_pool, connection, answer)
            connection = await _connect(target.origin, ssl_context, connect_timeout)
            answer = await _attempt(connection, message, method, max_body, deadline, reused=False)
            assert answer is not None  # a fresh connection's failure raises
            return self._done(origin_pool, connection, answer)

    def _idle_connection(self, origin_pool: _OriginPool) -> _Connection | None:
        idle = origin_pool.idle
        now = time.monotonic()
        while idle:
            connection = idle.pop()  # the most recently used: the likeliest to be still open
            if connection.usable(now):
                return connection
            connection.close()
        return None

    def _done(self, origin_pool: _OriginPool, connection: _Connection, answer: tuple[Answer, bool]) -> Answer:
        if answer[1] and not self.closed:
            connection.idle_since = time.monotonic()
            origin_pool.idle.append(connection)
            self._sweep_later()
        else:
            connection.close()
        return answer[0]

    def _sweep_later(self) -> None:
        if self._sweep is None:
            self._sweep = asyncio.get_running_loop().call_later(IDLE_SECONDS, self._close_expired)

    def _close_expired(self) -> None:
        self._sweep = None
        now = time.monotonic()
        for origin_pool in self._origins.values():
            kept = []
            for connection in origin_pool.idle:
                if connection.usable(now):
                    kept.append(connection)
                else:
                    connection.close()
            origin_pool.idle[:] = kept
        if any(origin_pool.idle for origin_pool in self._origins.values()):
            self._sweep_later()

    async def close(self) -> None:
        self.closed = True
        if self._sweep is not None:
            self._sweep.cancel()
            self._sweep = None
        connections = [connection for pool in self._origins.values() for connection in pool.idle]
        self._origins.clear()
        for connection in connections:
            connection.close()
        for connection in connections:
            with contextlib.suppress(OSError, ssl.SSLError):  # a peer that went away first is no error
                await connection.writer.wait_closed()


async def _attempt(
    connection: _Connection, message: bytes, method: str, max_body: int, deadline: float, *, reused: bool
) -> tuple[Answer, bool] | None:
    """The answer and whether the connection may be kept; None where a reused connection turned out closed
    before any of the answer came (the request is then sent again on a fresh one)."""
    head = b""
    try:
        writer = connection.writer
        writer.write(message)
        if writer.transport.get_write_buffer_size() > READ_CHUNK_BYTES:
            await writer.drain()
        head = await _head(connection.reader)
        return await _read_answer(connection.reader, head, method, max_body, deadline)
    except (ConnectionResetError, BrokenPipeError, asyncio.IncompleteReadError) as exc:
        connection.close()
        nothing_came = not head and not getattr(exc, "partial", b"")
        if reused and nothing_came:
            return None
        raise
    except BaseException:
        connection.close()
        raise


async def _connect(origin: Origin, ssl_context: ssl.SSLContext | bool, timeout: float) -> _Connection:
    context: ssl.SSLContext | None = None
    if origin.scheme == "https":
        context = ssl_context if isinstance(ssl_context, ssl.SSLContext) else _unverified_context()
    try:
        reader, writer = await asyncio.wait_for(
            asyncio.open_connection(
                origin.host,
                origin.port,
                ssl=context,
                server_hostname=origin.host if context is not None else None,
                limit=READ_CHUNK_BYTES,
            ),
            timeout,
        )
    except ssl.SSLError as exc:
        raise TlsFailed(str(exc)) from exc
    except asyncio.TimeoutError as exc:
        raise ConnectFailed(f"no connection within connect_timeout ({timeout:g} s)") from exc
    except OSError as exc:
        raise ConnectFailed(f"{type(exc).__name__}: {exc}") from exc
    return _Connection(reader, writer)


_UNVERIFIED: list[ssl.SSLContext] = []


def _unverified_context() -> ssl.SSLContext:
    """TLS without verification, for a connection whose ``verify`` is off."""
    if not _UNVERIFIED:
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        _UNVERIFIED.append(context)
    return _UNVERIFIED[0]


def _request_head(method: str, target: Target, headers: Mapping[str, str], body: bytes | None) -> bytes:
    lines = [f"{method} ", "", " HTTP/1.1\r\n"]
    present = set()
    for name, value in headers.items():
        if "\r" in value or "\n" in value or "\r" in name or "\n" in name or ":" in name:
            raise Unsendable(f"header {name!r} holds a line break or colon")
        present.add(name.lower())
        lines.append(f"{name}: {value}\r\n")
    if "host" not in present:
        lines.append(f"Host: {target.origin.host_header}\r\n")
    if "accept" not in present:
        lines.append("Accept: */*\r\n")
    if "accept-encoding" not in present:
        lines.append("Accept-Encoding: gzip, deflate\r\n")
    if body:
        if "content-type" not in present:
            lines.append("Content-Type: application/octet-stream\r\n")
        lines.append(f"Content-Length: {len(body)}\r\n")
    elif method not in ("GET", "HEAD"):
        lines.append("Content-Length: 0\r\n")
    lines.append("\r\n")
    return lines[0].encode("ascii") + target.path + "".join(lines[2:]).encode("latin-1")


async def _read_answer(
    reader: asyncio.StreamReader, head: bytes, method: str, max_body: int, deadline: float
) -> tuple[Answer, bool]:
    version, status, headers = _parse_head(head)
    while 100 <= status < 200 and status != 101:  # an interim answer (100 Continue): the real one follows
        version, status, headers = _parse_head(await _head(reader))
    connection_header = headers.get("connection", "").lower()
    keep = "close" not in connection_header and (version == "HTTP/1.1" or "keep-alive" in connection_header)
    if status < 200:  # 101 Switching Protocols: nothing this client speaks
        return Answer(status, headers, b""), False
    if method == "HEAD" or status in _NO_BODY_STATUSES:
        return Answer(status, headers, b""), keep
    decoder = _decoder(headers.get("content-encoding", ""))
    body = _Body(max_body, decoder, deadline)
    if "chunked" in headers.get("transfer-encoding", "").lower():
        await _read_chunked(reader, body)
    elif "content-length" in headers:
        length = headers["content-length"].strip()
        if not length.isdigit():
            raise MalformedAnswer(f"Content-Length is not a number: {length[:40]!r}")
        await _read_exactly(reader, int(length), body)
    else:  # the body ends with the connection
        keep = False
        while data := await reader.read(READ_CHUNK_BYTES):
            body.feed(data)
    return Answer(status, headers, body.finish()), keep


async def _head(reader: asyncio.StreamReader) -> bytes:
    """The status line and headers, up to the blank line: at most the stream's limit (64 KiB) in all."""
    try:
        return await reader.readuntil(b"\r\n\r\n")
    except asyncio.LimitOverrunError:
        raise MalformedAnswer(f"the answer's head is longer than {MAX_HEAD_BYTES} bytes") from None


def _parse_head(head: bytes) -> tuple[str, int, dict[str, str]]:
    """(HTTP version, status, headers) of a head that ends with its blank line."""
    lines = head[:-4].split(b"\r\n")
    parts = lines[0].split(None, 2)
    if len(parts) < 2 or not parts[0].startswith(b"HTTP/1.") or not parts[1].isdigit() or len(parts[1]) != 3:
        raise MalformedAnswer(f"not an HTTP/1.x status line: {lines[0][:60]!r}")
    if len(lines) > MAX_HEADER_LINES:
        raise MalformedAnswer(f"the answer's head is longer than {MAX_HEADER_LINES} lines")
    headers: dict[str, str] = {}
    for line in lines[1:]:
        name, colon, value = line.partition(b":")
        if not colon or not name.strip() or name != name.strip():
            raise MalformedAnswer(f"not a header line: {line[:60]!r}")
        headers[name.decode("latin-1").lower()] = value.strip().decode("latin-1")
    return parts[0].decode("ascii"), int(parts[1]), headers


async def _line(reader: asyncio.StreamReader) -> bytes:
    """One line of a chunked body's framing, at most the stream's limit (64 KiB) long."""
    try:
        return await reader.readline()
    except ValueError:  # the stream's LimitOverrunError, as readline raises it
        raise MalformedAnswer(f"a chunk's framing line is longer than {READ_CHUNK_BYTES} bytes") from None


class _Body:
    """Collects a body: decoded as it comes, bounded in size (wire and decoded) and in time."""

    __slots__ = ("chunks", "deadline", "decoder", "limit", "size", "wire")

    def __init__(self, limit: int, decoder: zlib._Decompress | None, deadline: float) -> None:
        self.limit = limit
        self.decoder = decoder
        self.deadline = deadline
        self.chunks: list[bytes] = []
        self.size = 0
        self.wire = 0

    def expect(self, wire_bytes: int) -> None:
        """Fail before reading a body (or chunk) that says it is longer than any allowed."""
        if self.wire + wire_bytes > self.limit + WIRE_SLACK_BYTES:
            raise BodyTooLarge

    def feed(self, data: bytes) -> None:
        if time.monotonic() > self.deadline:
            raise DeadlinePassed
        self.wire += len(data)
        self.expect(0)
        if self.decoder is None:
            self._keep(data)
            return
        try:
            while data:
                # Never more decoded out of one piece than what may still be kept (a small gzip can be huge).
                self._keep(self.decoder.decompress(data, self.limit - self.size + 1))
                data = self.decoder.unconsumed_tail
        except zlib.error as exc:
            raise MalformedAnswer(f"the compressed body is damaged: {exc}") from None

    def _keep(self, data: bytes) -> None:
        self.size += len(data)
        if self.size > self.limit:
            raise BodyTooLarge
        if data:
            self.chunks.append(data)

    def finish(self) -> bytes:
        if self.decoder is not None:
            try:
                self._keep(self.decoder.flush())
            except zlib.error as exc:
                raise MalformedAnswer(f"the compressed body is damaged: {exc}") from None
        return b"".join(self.chunks)


def _decoder(encoding: str) -> zlib._Decompress | None:
    encoding = encoding.strip().lower()
    if encoding in ("", "identity"):
        return None
    if encoding in ("gzip", "x-gzip"):
        return zlib.decompressobj(16 + zlib.MAX_WBITS)
    if encoding == "deflate":
        return zlib.decompressobj(zlib.MAX_WBITS + 32)  # zlib or gzip framing, told by the header
    raise MalformedAnswer(f"unsupported Content-Encoding {encoding[:40]!r} (asked for gzip or deflate)")


async def _read_exactly(reader: asyncio.StreamReader, length: int, body: _Body) -> None:
    body.expect(length)
    while length > 0:
        data = await reader.read(min(length, READ_CHUNK_BYTES))
        if not data:
            raise asyncio.IncompleteReadError(b"", length)
        length -= len(data)
        body.feed(data)


async def _read_chunked(reader: asyncio.StreamReader, body: _Body) -> None:
    while True:
        line = await _line(reader)
        size_text = line.split(b";", 1)[0].strip()
        if not line.endswith(b"\n") or not size_text or len(size_text) > 16:
            raise MalformedAnswer(f"not a chunk size line: {line[:40]!r}")
        try:
            size = int(size_text, 16)
        except ValueError:
            raise MalformedAnswer(f"not a chunk size line: {line[:40]!r}") from None
        if size == 0:
            for _ in range(MAX_HEADER_LINES):  # trailers, if any: read and dropped
                if await _line(reader) in (b"\r\n", b"\n", b""):
                    return
            raise MalformedAnswer(f"more than {MAX_HEADER_LINES} trailer lines")
        await _read_exactly(reader, size, body)
        if await _line(reader) not in (b"\r\n", b"\n"):
            raise MalformedAnswer("a chunk does not end with a line break")


_POOLS: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, Pool] = weakref.WeakKeyDictionary()


def shared_pool() -> Pool:
    """This event loop's pool: every wait in a triggerer shares its connections."""
    loop = asyncio.get_running_loop()
    pool = _POOLS.get(loop)
    if pool is None or pool.closed:
        pool = _POOLS[loop] = Pool()
    return pool


async def close_shared_pool() -> None:
    pool = _POOLS.pop(asyncio.get_running_loop(), None)
    if pool is not None:
        await pool.close()
