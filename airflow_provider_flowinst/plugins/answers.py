"""What every answer of the plugin carries: the security headers, and errors as one plain sentence.

``SecurityHeaders`` wraps the whole plugin app (outside FastAPI's own error handling, so even an
unexpected 500 has them): the page, the SVG, the icon, 401/403 from the auth manager and every error.
The Content-Security-Policy allows what the page uses and nothing else: its one ``<style>`` element (by
hash), no script, no fetch of any kind, same-origin form posts, framing by the Airflow UI only.
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Iterable

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import PlainTextResponse, Response
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from airflow_provider_flowinst.safe_text import bounded

NONE = "'none'"


def content_security_policy(styles: Iterable[str]) -> str:
    """No source of any kind but the given ``<style>`` contents (by hash), same-origin forms and framing."""
    hashes = [f"'sha256-{base64.b64encode(hashlib.sha256(s.encode()).digest()).decode()}'" for s in styles]
    return (
        f"default-src 'none'; style-src {' '.join(hashes) or NONE}; base-uri 'none'; "
        "form-action 'self'; frame-ancestors 'self'"
    )


def security_headers(styles: Iterable[str]) -> dict[str, str]:
    return {
        "Content-Security-Policy": content_security_policy(styles),
        "X-Content-Type-Options": "nosniff",
        "X-Frame-Options": "SAMEORIGIN",  # frame-ancestors for browsers that predate it
        "Referrer-Policy": "same-origin",  # a console link does not carry the Airflow URL away
        "Cache-Control": "no-store",
    }


class SecurityHeaders:
    """ASGI middleware: sets ``headers`` on every HTTP answer of ``app`` (replacing any of the same name)."""

    def __init__(self, app: ASGIApp, headers: dict[str, str]) -> None:
        self.app = app
        self._names = {name.lower().encode("latin-1") for name in headers}
        self._headers = [(name.lower().encode("latin-1"), value.encode("latin-1")) for name, value in headers.items()]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                kept = [(name, value) for name, value in message.get("headers", []) if name.lower() not in self._names]
                message = {**message, "headers": kept + self._headers}
            await send(message)

        await self.app(scope, receive, send_with_headers)


def answer_errors_in_plain_text(app: FastAPI) -> None:
    """HTTP errors (the auth manager's too) and invalid request values as one plain sentence."""

    async def http_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, HTTPException)
        return PlainTextResponse(bounded(exc.detail, 1000), status_code=exc.status_code, headers=exc.headers)

    async def invalid_value(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, RequestValidationError)
        where = ", ".join(".".join(str(part) for part in error.get("loc", ())) for error in exc.errors())
        return PlainTextResponse(f"Invalid request value: {where or 'request'}.", status_code=422)

    app.add_exception_handler(HTTPException, http_error)
    app.add_exception_handler(RequestValidationError, invalid_value)
