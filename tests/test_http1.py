"""The async transport's own HTTP/1.1 client against a real socket server scripted per test.

The emulator (aiohttp's server) answers well; these servers answer the ways a platform's proxy or load
balancer may: closing a kept-alive connection, chunked and compressed bodies, bodies that end with the
connection, bombs, malformed heads, interim answers.
"""

from __future__ import annotations

import asyncio
import gzip
import time
from collections.abc import AsyncIterator

import pytest

from airflow_provider_flowinst import http1
from tests.helpers import ScriptedServer, eventually
from tests.helpers import scripted_answer as answer


async def get(server: ScriptedServer, path: str = "/flows/1", *, max_body: int = 1 << 20, **kwargs) -> http1.Answer:
    target = http1.target_of(server.url + path)
    assert target is not None
    return await http1.shared_pool().exchange(
        target,
        kwargs.pop("method", "GET"),
        kwargs.pop("headers", {"Authorization": "Bearer t"}),
        kwargs.pop("body", None),
        ssl_context=False,
        connect_timeout=5,
        max_body=max_body,
        deadline=time.monotonic() + 5,
    )


@pytest.fixture
async def pool() -> AsyncIterator[None]:
    yield
    await http1.close_shared_pool()


async def test_requests_one_after_another_share_one_kept_alive_connection(pool):
    async with ScriptedServer(lambda n, m, request: answer(b'{"n": %d}' % n)) as server:
        bodies = [(await get(server)).body for _ in range(5)]

    assert bodies == [b'{"n": %d}' % n for n in range(1, 6)]
    assert server.connections == 1
    head = server.requests[0].decode()
    assert head.startswith("GET /flows/1 HTTP/1.1\r\n")
    assert f"Host: {server.url.removeprefix('http://')}\r\n" in head
    assert "Authorization: Bearer t\r\n" in head
    assert "Accept-Encoding: gzip, deflate\r\n" in head


async def test_a_kept_connection_the_server_dropped_is_replaced_and_the_request_sent_on_a_fresh_one(pool):
    # The second request finds its pooled connection closed as it is sent (a load balancer's idle cut).
    async with ScriptedServer(lambda n, m, request: None if m == 2 else answer()) as server:
        await get(server)
        second = await get(server)

    assert second.status == 200
    assert server.connections == 2
    assert len(server.requests) == 3  # sent on the dropped connection, then once more on a fresh one


async def test_a_fresh_connection_closed_without_an_answer_is_an_error_not_a_resend(pool):
    async with ScriptedServer(lambda n, m, request: None) as server:
        with pytest.raises(asyncio.IncompleteReadError):
            await get(server)

    assert len(server.requests) == 1


async def test_a_chunked_gzip_answer_is_decoded():
    body = b'{"tasks": [' + b",".join(b'{"id": %d}' % n for n in range(2000)) + b"]}"
    packed = gzip.compress(body)
    chunks = b"".join(
        b"%x\r\n%s\r\n" % (len(packed[i : i + 1000]), packed[i : i + 1000]) for i in range(0, len(packed), 1000)
    )
    reply = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Encoding: gzip\r\n\r\n" + chunks + b"0\r\n\r\n"
    async with ScriptedServer(lambda n, m, request: reply) as server:
        first = await get(server)
        second = await get(server)
    await http1.close_shared_pool()

    assert first.body == body == second.body
    assert first.headers["content-encoding"] == "gzip"
    assert server.connections == 1  # a chunked body's end is known: the connection was kept


async def test_a_gzip_bomb_stops_at_max_body_without_being_held(pool):
    bomb = gzip.compress(b"0" * (50 * 1024 * 1024))  # 50 MiB in about 50 KB
    async with ScriptedServer(lambda n, m, request: answer(bomb, headers="Content-Encoding: gzip\r\n")) as server:
        with pytest.raises(http1.BodyTooLarge):
            await get(server, max_body=1024 * 1024)


async def test_a_declared_length_past_max_body_fails_before_the_body_is_read(pool):
    reply = b"HTTP/1.1 200 OK\r\nContent-Length: 999999999999\r\n\r\n{"
    async with ScriptedServer(lambda n, m, request: reply) as server:
        with pytest.raises(http1.BodyTooLarge):
            await get(server)


async def test_a_body_ending_with_the_connection_is_read_whole_and_the_connection_not_kept(pool):
    async with ScriptedServer(lambda n, m, request: b"HTTP/1.1 200 OK\r\n\r\nall of it", close_after=True) as server:
        bodies = [(await get(server)).body for _ in range(2)]

    assert bodies == [b"all of it", b"all of it"]
    assert server.connections == 2


@pytest.mark.parametrize("header", ["Connection: close\r\n", ""])
async def test_connection_close_is_honoured(pool, header):
    async with ScriptedServer(lambda n, m, request: answer(headers=header)) as server:
        await get(server)
        await get(server)

    assert server.connections == (2 if header else 1)


async def test_an_idle_connection_is_closed_after_idle_seconds(pool, monkeypatch):
    monkeypatch.setattr(http1, "IDLE_SECONDS", 0.2)
    async with ScriptedServer(lambda n, m, request: answer()) as server:
        await get(server)
        await eventually(lambda: server.closed_by_client == 1, timeout=5)
        await get(server)

    assert server.connections == 2


async def test_open_connections_per_origin_are_bounded(pool, monkeypatch):
    monkeypatch.setattr(http1, "MAX_CONNECTIONS_PER_ORIGIN", 2)
    await http1.close_shared_pool()
    async with ScriptedServer(lambda n, m, request: answer(), delay=0.1) as server:
        answers = await asyncio.gather(*(get(server) for _ in range(8)))

    assert [a.status for a in answers] == [200] * 8
    assert server.most_open == 2


async def test_an_interim_100_continue_is_passed_over(pool):
    reply = b"HTTP/1.1 100 Continue\r\n\r\n" + answer(b"final")
    async with ScriptedServer(lambda n, m, request: reply) as server:
        assert (await get(server, method="POST", body=b"{}")).body == b"final"

    assert b"Content-Length: 2\r\n" in server.requests[0]
    assert b"Content-Type: application/octet-stream\r\n" in server.requests[0]


@pytest.mark.parametrize(
    "reply",
    [
        b"SSH-2.0-OpenSSH_9.6\r\n\r\n",
        b"HTTP/1.1 20 OK\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nno colon here\r\n\r\n",
        b"HTTP/1.1 200 OK\r\n" + b"X-Many: 1\r\n" * 200 + b"\r\n",
        b"HTTP/1.1 200 OK\r\nX-Long: " + b"x" * 70_000 + b"\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nContent-Length: 12ab\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
        b"HTTP/1.1 200 OK\r\nContent-Encoding: br\r\nContent-Length: 1\r\n\r\nx",
        b"HTTP/1.1 200 OK\r\nContent-Encoding: gzip\r\nContent-Length: 5\r\n\r\nnotgz",
    ],
    ids=[
        "not-http",
        "short-status",
        "header-line",
        "too-many-headers",
        "long-line",
        "length",
        "chunk-size",
        "brotli",
        "bad-gzip",
    ],
)
async def test_a_malformed_answer_is_reported_as_such(pool, reply):
    async with ScriptedServer(lambda n, m, request: reply) as server:
        with pytest.raises(http1.MalformedAnswer):
            await get(server)


async def test_a_header_holding_a_line_break_is_refused_before_anything_is_sent(pool):
    async with ScriptedServer(lambda n, m, request: answer()) as server:
        with pytest.raises(http1.Unsendable, match="line break"):
            await get(server, headers={"X-Id": "1\r\nX-Injected: yes"})

    assert server.requests == []


async def test_a_refused_connection_says_nothing_was_sent(pool):
    async with ScriptedServer(lambda n, m, request: answer()) as server:
        url = server.url
    target = http1.target_of(url + "/")
    assert target is not None

    with pytest.raises(http1.ConnectFailed):
        await http1.shared_pool().exchange(
            target, "GET", {}, None, ssl_context=False, connect_timeout=2, max_body=100, deadline=time.monotonic() + 2
        )


@pytest.mark.parametrize(
    ("url", "sent"),
    [
        ("http://h.example/a?b=c", (b"/a?b=c", "h.example")),
        ("https://h.example:443/", (b"/", "h.example")),
        ("https://h.example:8443", (b"/", "h.example:8443")),
        ("http://[::1]:8080/x", (b"/x", "[::1]:8080")),
        ("ftp://h.example/", None),
        ("http://user:pw@h.example/", None),
        ("http://h.example/é", None),
        ("http://h.example/a b", None),
    ],
)
def test_what_a_url_is_sent_as(url, sent):
    target = http1.target_of(url)

    assert (None if target is None else (target.path, target.origin.host_header)) == sent
