"""The EnOS API gateway: the token service, and the signature check in front of every EnOS call.

Written from the gateway's documentation (EnvisionDoc/api_en ``token/``), not from the client's code, so a
signing mistake in the client is refused here:

- token: ``encryption = sha256_hex(appKey + timestamp + appSecret)``;
- each call: ``apim-signature = sha256_hex(accessToken + paramsData + timestamp + appSecret)``, where
  ``paramsData`` is the query parameters sorted by key, each written as key then value with nothing
  between, followed by the raw body text.
"""

from __future__ import annotations

import hashlib
import json
import secrets
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import ClassVar

from aiohttp import web

from airflow_provider_flowinst.testing.emulator.credentials import ENOS_APP_KEY, ENOS_APP_SECRET
from airflow_provider_flowinst.testing.emulator.faults import fault_response, remember_credentials, take
from airflow_provider_flowinst.testing.emulator.state import EmulatorState

DEFAULT_APPS = {ENOS_APP_KEY: ENOS_APP_SECRET}
TIMESTAMP_TOLERANCE_MS = 5 * 60 * 1000  # (inferred) how far a caller's clock may drift


def _sha256_hex(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def expected_encryption(app_key: str, timestamp: int, app_secret: str) -> str:
    return _sha256_hex(app_key + str(timestamp) + app_secret)


def expected_signature(token: str, query: Iterable[tuple[str, str]], body: bytes, timestamp: str, secret: str) -> str:
    """The signature the gateway computes for a call, from the query as received and the body's bytes."""
    params_data = ""
    for key, value in sorted(query, key=lambda pair: pair[0]):
        params_data += key + value
    if body:
        params_data += body.decode("utf-8")
    return _sha256_hex(token + params_data + timestamp + secret)


def gateway_error(status: int, code: str, message: str) -> web.Response:
    return web.json_response({"code": code, "msg": message, "requestId": secrets.token_hex(8)}, status=status)


@dataclass
class Gateway:
    """Shared by the EnOS platforms (the emulator mounts it once, before them)."""

    platform: ClassVar[str] = "enos_gateway"
    state: EmulatorState
    apps: dict[str, str] = field(default_factory=lambda: dict(DEFAULT_APPS))
    tokens: dict[str, tuple[str, float]] = field(default_factory=dict)  # token -> (appKey, expires monotonic)
    seen_encryptions: set[str] = field(default_factory=set)

    def routes(self) -> list[web.RouteDef]:
        return [web.post("/apim-token-service/v2.0/token/get", self.get_token)]

    def serves(self, request: web.Request) -> bool:
        return request.path.startswith("/apim-token-service/")

    def expire_tokens(self) -> None:
        self.expire_all()

    async def get_token(self, request: web.Request) -> web.StreamResponse:
        self.state.token_requests["enos_gateway"] += 1
        try:
            body = json.loads(await request.read())
            app_key, encryption, timestamp = body["appKey"], body["encryption"], int(body["timestamp"])
        except (ValueError, KeyError, TypeError):
            return web.json_response({"status": 1004, "msg": "Invalid parameter.", "data": None})
        secret = self.apps.get(app_key)
        if secret is None:
            return web.json_response({"status": 1002, "msg": "The appKey does not exist.", "data": None})
        if encryption != expected_encryption(app_key, timestamp, secret):
            return web.json_response({"status": 1003, "msg": "The encryption is not valid.", "data": None})
        if encryption in self.seen_encryptions:
            return web.json_response({"status": 1001, "msg": "Repeated requests with duplicated encryption."})
        self.seen_encryptions.add(encryption)
        # A fault here is an answer lost after the gateway handled the request: its encryption is spent.
        fault = take(self.state, "enos_gateway", request)
        if fault is not None:
            faulted = await fault_response(fault, request, error=gateway_error, expired_token=self.expired_response)
            if faulted is not None:
                return faulted
        token = secrets.token_urlsafe(24)
        self.tokens[token] = (app_key, time.monotonic() + self.state.token_lifetime)
        return web.json_response(
            {
                "status": 0,
                "msg": "SUCCESS",
                "business": "apim-token-service",
                "data": {"accessToken": token, "expire": self.state.token_lifetime},
            }
        )

    def expire_all(self) -> None:
        self.tokens.clear()

    @staticmethod
    def expired_response() -> web.Response:
        return gateway_error(401, "1203", "The access token has expired.")

    async def check(self, request: web.Request) -> web.Response | None:
        """None when the call is signed by a live token; otherwise the gateway's refusal."""
        remember_credentials(self.state, request)
        token = request.headers.get("apim-accesstoken")
        timestamp = request.headers.get("apim-timestamp", "")
        signature = request.headers.get("apim-signature")
        if not token or not signature or not timestamp.isdigit():
            return gateway_error(
                401, "1202", "The parameter is empty: apim-accesstoken, apim-timestamp, apim-signature"
            )
        entry = self.tokens.get(token)
        if entry is None or entry[1] <= time.monotonic():
            self.tokens.pop(token, None)
            return self.expired_response()
        if abs(int(timestamp) - int(time.time() * 1000)) > TIMESTAMP_TOLERANCE_MS:
            return gateway_error(401, "1004", "Invalid parameter: apim-timestamp is out of range")
        body = await request.read()
        try:
            expected = expected_signature(token, request.query.items(), body, timestamp, self.apps[entry[0]])
        except UnicodeDecodeError:
            return gateway_error(400, "1004", "Invalid parameter: the body is not UTF-8 text")
        if not secrets.compare_digest(expected, signature):
            return gateway_error(401, "1003", "Signature verification failed.")
        return None


class BehindGateway:
    """An EnOS service the emulated gateway stands in front of: its requests meet the faults asked for first,
    then the gateway's own checks, before the service reads them."""

    platform: ClassVar[str]
    #: The paths of its calls (the fault middleware matches faults by platform on these).
    path_prefixes: ClassVar[tuple[str, ...]]

    def __init__(self, state: EmulatorState, gateway: Gateway) -> None:
        self.state = state
        self.gateway = gateway

    def serves(self, request: web.Request) -> bool:
        return request.path.startswith(self.path_prefixes)

    async def refusal(self, request: web.Request) -> web.StreamResponse | None:
        """What a fault or the gateway answers instead of the service, if anything."""
        fault = take(self.state, self.platform, request)
        if fault is not None:
            faulted = await fault_response(fault, request, error=gateway_error, expired_token=self._expire_and_refuse)
            if faulted is not None:
                return faulted
        return await self.gateway.check(request)

    def _expire_and_refuse(self) -> web.Response:
        """A token that expires mid-call: every token the gateway handed out ends, and the call is refused."""
        self.gateway.expire_all()
        return self.gateway.expired_response()
