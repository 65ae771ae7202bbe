"""Turning an injected fault into what a misbehaving server really sends."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

from aiohttp import web

from airflow_provider_flowinst.testing.emulator.state import EmulatorState, Fault

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
            response.headers["Retry-After"] = str(int(fault.retry_after))
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


#: Which platform a path belongs to, for faults after the action (DataWorks serves every action on "/").
PLATFORM_PREFIXES = (
    ("/batch-processing-service/", "enos_batch"),
    ("/dataflow-batch-service/", "enos_batch"),
    ("/enos-bpm-service/", "enos_bpm"),
    ("/app-portal-service/", "enos_bpm"),
    ("/apim-token-service/", "enos_gateway"),
    ("/platform/ws/", "lsf_pm"),
)


def platform_of(request: web.Request) -> str | None:
    for prefix, platform in PLATFORM_PREFIXES:
        if request.path.startswith(prefix):
            return platform
    return "dataworks" if "x-acs-action" in request.headers else None


def after_action_middleware(state: EmulatorState) -> Callable[..., Awaitable[web.StreamResponse]]:
    """Lets the platform carry a call out, then spoils its answer as an ``act_then_*`` fault says."""

    @web.middleware
    async def middleware(
        request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
    ) -> web.StreamResponse:
        platform = platform_of(request)
        call = f"{request.path_qs} {request.headers.get('x-acs-action', '')}"
        fault = None if platform is None else state.take_after_action_fault(platform, call)
        response = await handler(request)
        if fault is None:
            return response
        state.requests[f"{platform} acted, answer spoilt: {fault.kind}"] += 1
        if fault.kind == "act_then_503":
            return web.Response(status=503, text="emulated: the call was carried out, then its answer was lost")
        if fault.kind == "act_then_reset":
            if request.transport is not None:
                request.transport.abort()
            raise ConnectionResetError("emulated: the call was carried out, then the connection dropped")
        await asyncio.sleep(fault.delay)  # act_then_slow: the answer comes after the caller gave up
        return response

    return middleware


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
