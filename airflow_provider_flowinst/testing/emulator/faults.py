"""Turning an injected fault into what a misbehaving server really sends."""

from __future__ import annotations

import asyncio
import math
import uuid
import zlib
from collections.abc import Awaitable, Callable, Iterator
from html import escape

from aiohttp import web

from airflow_provider_flowinst.testing.emulator.state import AFTER_ACTION_FAULT_KINDS, EmulatorState, Fault

HTML_ERROR_PAGE = (
    "<html><head><title>502 Bad Gateway</title></head><body><center><h1>502 Bad Gateway</h1></center>"
    "<hr><center>nginx</center></body></html>"
)


async def fault_response(
    fault: Fault,
    request: web.Request,
    *,
    error: Callable[[int, str, str], web.Response],
    expired_token: Callable[[], web.Response],
) -> web.StreamResponse | None:
    """The response for ``fault``, or None when the call should then go on normally (a slow answer)."""
    kind = fault.kind
    if kind in ("503", "502", "500"):
        return error(int(kind), "InternalError" if kind == "500" else "ServiceUnavailable", f"emulated HTTP {kind}")
    if kind == "429":
        response = error(429, "Throttling.User", "Request was denied due to user flow control.")
        if fault.retry_after is not None:
            # HTTP's delay-seconds is a whole number: round up, so the server never asks for less than given.
            response.headers["Retry-After"] = str(math.ceil(fault.retry_after))
        return response
    if kind == "403":
        return error(403, "Forbidden", "emulated: no privilege for this call")
    if kind == "html":
        return web.Response(status=502, text=HTML_ERROR_PAGE, content_type="text/html")
    if kind == "malformed":
        return web.Response(status=200, text='{"code": 0, "data": {"truncat', content_type="application/json")
    if kind == "expired_token":
        return expired_token()
    if kind == "reset":
        if request.transport is not None:
            request.transport.abort()
        raise ConnectionResetError("emulated connection reset")
    if kind == "timeout":
        await asyncio.sleep(fault.delay)
        return None
    raise AssertionError(f"unhandled fault {kind}")


def after_action_middleware(
    state: EmulatorState, platform_of: Callable[[web.Request], str | None]
) -> Callable[..., Awaitable[web.StreamResponse]]:
    """Serves the faults of ``state.MIDDLEWARE_FAULT_KINDS``: those that let the platform carry a call out,
    then spoil its answer (``act_then_*``, ``trickle``), and those that stand in for the answer (``echo``,
    ``redirect``, ``oversized``, ``gzip_bomb``), on any call, logins included. ``platform_of`` tells which
    platform a request calls (None: the control API, never faulted)."""

    @web.middleware
    async def middleware(
        request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
    ) -> web.StreamResponse:
        platform = platform_of(request)
        call = f"{request.path_qs} {request.headers.get('x-acs-action', '')}"
        fault = None if platform is None else state.take_after_action_fault(platform, call)
        if fault is None:
            return await handler(request)
        assert platform is not None
        if fault.kind not in (*AFTER_ACTION_FAULT_KINDS, "trickle"):
            state.requests[f"{platform} fault: {fault.kind}"] += 1
            return await answer_fault(fault, request, platform)
        response = await handler(request)
        state.requests[f"{platform} acted, answer spoilt: {fault.kind}"] += 1
        if fault.kind == "act_then_503":
            return web.Response(status=503, text="emulated: the call was carried out, then its answer was lost")
        if fault.kind == "act_then_reset":
            if request.transport is not None:
                request.transport.abort()
            raise ConnectionResetError("emulated: the call was carried out, then the connection dropped")
        if fault.kind == "trickle":
            return await trickle(request, response, fault.delay)
        await asyncio.sleep(fault.delay)  # act_then_slow: the answer comes after the caller gave up
        return response

    return middleware


async def answer_fault(fault: Fault, request: web.Request, platform: str) -> web.StreamResponse:
    if fault.kind == "redirect":
        return web.Response(status=302, headers={"Location": fault.location}, text="Found")
    if fault.kind == "echo":
        return await echo(request, platform)
    stream = web.StreamResponse(status=200, headers={"Content-Type": "application/json"})
    chunks = gzip_bomb_chunks(fault.size) if fault.kind == "gzip_bomb" else oversized_chunks(fault.size)
    if fault.kind == "gzip_bomb":
        stream.headers["Content-Encoding"] = "gzip"
    await stream.prepare(request)
    try:
        for chunk in chunks:
            await stream.write(chunk)
        await stream.write_eof()
    except (ConnectionError, RuntimeError):  # the caller gave up reading: as it should
        pass
    return stream


async def trickle(request: web.Request, response: web.StreamResponse, delay: float) -> web.StreamResponse:
    """The real answer, its headers at once, then its body one byte per ``delay`` seconds."""
    body = response.body if isinstance(response, web.Response) and isinstance(response.body, bytes) else b""
    stream = web.StreamResponse(status=response.status, headers=response.headers)
    stream.content_length = len(body)
    await stream.prepare(request)
    try:
        for index in range(len(body)):
            await stream.write(body[index : index + 1])
            await asyncio.sleep(delay)
        await stream.write_eof()
    except (ConnectionError, RuntimeError):
        pass
    return stream


async def echo(request: web.Request, platform: str) -> web.Response:
    """An error answer that quotes the request, in the platform's own error shape."""
    body = (await request.read()).decode("utf-8", errors="replace")
    headers = "; ".join(f"{name}: {value}" for name, value in request.headers.items())
    text = f"Cannot process {request.method} {request.path_qs} with body {body} and headers {headers}"
    if platform == "lsf_pm":  # the application server's own 500 page, request dump and all
        page = f"<html><head><title>Error 500</title></head><body><h1>HTTP Status 500</h1><pre>{escape(text)}</pre>"
        return web.Response(status=500, text=page + "</body></html>", content_type="text/html")
    if platform == "dataworks":
        return web.json_response(
            {"RequestId": str(uuid.uuid4()).upper(), "Code": "InvalidParameter", "Message": text}, status=400
        )
    if request.path.startswith("/app-portal-service/"):  # the BPM portal answers HTTP 200 with its own code
        return web.json_response({"code": 31400, "msg": text, "message": text, "data": None})
    return web.json_response({"code": "400", "msg": text, "requestId": uuid.uuid4().hex[:16]}, status=400)


def oversized_chunks(size: int) -> Iterator[bytes]:
    """A JSON document of ``size`` bytes, made a chunk at a time (the emulator never holds it whole)."""
    head, tail = b'{"data": "', b'"}'
    yield head
    left = max(0, size - len(head) - len(tail))
    block = b"x" * 65536
    while left > 0:
        yield block[: min(left, len(block))]
        left -= len(block)
    yield tail


def gzip_bomb_chunks(size: int) -> Iterator[bytes]:
    """gzip of ``size`` zero bytes, compressed as it is sent: about a thousandth of ``size`` on the wire."""
    compressor = zlib.compressobj(9, zlib.DEFLATED, 31)
    block = b"0" * (1 << 20)
    left = size
    while left > 0:
        data = compressor.compress(block[: min(left, len(block))])
        left -= len(block)
        if data:
            yield data
    yield compressor.flush()


def take(state: EmulatorState, platform: str, request: web.Request) -> Fault | None:
    state.requests[f"{platform} {request.method} {request.path}"] += 1
    remember_credentials(state, request)
    return state.take_fault(platform, request.path_qs)


def remember_credentials(state: EmulatorState, request: web.Request) -> None:
    """Keep the tokens and signatures a call carries (EnOS gateway headers, a bearer token, the DataWorks
    signature, the LSF cookie), so tests can check that none of them ever reaches a log or a message."""
    headers = request.headers
    seen = [headers.get(name, "") for name in ("apim-accesstoken", "apim-signature", "x-acs-security-token")]
    scheme, _, credential = headers.get("Authorization", "").partition(" ")
    if scheme.lower() == "bearer":
        seen.append(credential)
    elif "Signature=" in credential:
        seen.append(credential.rsplit("Signature=", 1)[1])
    for part in headers.get("Cookie", "").split(";"):
        name, _, value = part.strip().partition("=")
        if name == "platform_token":
            seen += [value, value.replace("#quote#", '"')]
    state.credentials_seen.extend(value for value in seen if value)
