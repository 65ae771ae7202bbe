"""EnOS API gateway authentication, shared by EnOS Batch Processing and EnOS BPM.

1. A token: POST ``/apim-token-service/v2.0/token/get`` with
   ``encryption = sha256_hex(appKey + timestamp + appSecret)``.
2. Every call: ``apim-accesstoken``, ``apim-timestamp`` and
   ``apim-signature = sha256_hex(accessToken + paramsData + timestamp + appSecret)``, where ``paramsData``
   is the query parameters sorted by key as ``k1v1k2v2`` followed by the raw body text.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from airflow_provider_flowinst.clock import SYSTEM
from airflow_provider_flowinst.errors import FlowInstanceNotFound, FlowPlatformError
from airflow_provider_flowinst.platforms._common import epoch_ms
from airflow_provider_flowinst.protocol import (
    AuthenticatorDefaults,
    HttpRequest,
    HttpResponse,
    Operation,
    Sleep,
    Token,
    credential_digest,
    decode_json,
    json_body,
)

TOKEN_PATH = "/apim-token-service/v2.0/token/get"
TOKEN_EXPIRED_CODE = "1203"
#: "Repeated requests with duplicated encryption": the encryption depends only on the app and the
#: millisecond, so workers of one application that ask for a token in the same millisecond meet; the
#: gateway gives the first a token and refuses the others, which ask again at a later millisecond.
DUPLICATED_ENCRYPTION_CODE = "1001"
DUPLICATED_ENCRYPTION_RETRIES = 3
#: The pause before asking again (seconds, drawn uniformly between these so that the refused workers spread apart).
DUPLICATED_ENCRYPTION_PAUSE = (0.005, 0.05)
DEFAULT_TOKEN_LIFETIME_SECONDS = 7200


def sha256_hex(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def token_encryption(app_key: str, timestamp_ms: int, app_secret: str) -> str:
    """The ``encryption`` field of a token request."""
    return sha256_hex(f"{app_key}{timestamp_ms}{app_secret}")


def params_data(params: Iterable[tuple[str, str]], body: bytes | None) -> str:
    """Query parameters sorted by key and joined as ``k1v1k2v2``, then the exact body text."""
    joined = "".join(f"{key}{value}" for key, value in sorted(params, key=lambda item: item[0]))
    return joined + (body.decode("utf-8") if body else "")


#: ``params_data`` of the bodiless calls signed most often, by their parameters: a wait signs the same read
#: at each poll. Nothing secret: the text is what the request sends in its query.
_QUERY_DATA: dict[tuple[tuple[str, str], ...], str] = {}
MAX_QUERY_DATA = 1024


def _params_data_of(request: HttpRequest) -> str:
    if request.body is not None:
        return params_data(request.params, request.body)
    data = _QUERY_DATA.get(request.params)
    if data is None:
        data = params_data(request.params, None)
        if len(_QUERY_DATA) < MAX_QUERY_DATA:
            _QUERY_DATA[request.params] = data
    return data


def request_signature(
    access_token: str, params: Iterable[tuple[str, str]], body: bytes | None, timestamp_ms: int, app_secret: str
) -> str:
    """The ``apim-signature`` header of a call."""
    return signature_of(access_token, params_data(params, body), timestamp_ms, app_secret)


def signature_of(access_token: str, data: str, timestamp_ms: int, app_secret: str) -> str:
    """``request_signature`` of a call whose ``params_data`` is ``data``."""
    return sha256_hex(f"{access_token}{data}{timestamp_ms}{app_secret}")


def envelope_code(payload: Any) -> str | None:
    """The result code of any EnOS envelope: ``code`` (v2.1, gateway) or ``status`` (v2.0, token service)."""
    if not isinstance(payload, dict):
        return None
    for key in ("code", "status", "stauts"):  # "stauts": the token service's documented misspelling
        value = payload.get(key)
        if isinstance(value, (int, str)) and not isinstance(value, bool):
            return str(value)
    return None


def read_enos_envelope(response: HttpResponse, *, platform: str, call: str, not_found_code: str | None = None) -> Any:
    """The ``data`` of an EnOS answer (``{code|status, msg, data}``), or the platform's error.

    ``not_found_code`` (EnOS Batch 62102 on a get, BPM 33404) becomes FlowInstanceNotFound.
    """
    payload = decode_json(response, platform=platform, call=call)
    code = envelope_code(payload)
    if response.status >= 400 or code not in (None, "0") or not isinstance(payload, dict):
        error = FlowInstanceNotFound if code is not None and code == not_found_code else FlowPlatformError
        raise error(platform, call, envelope_message(payload, response), code=code, http_status=response.status)
    return payload.get("data")


def envelope_message(payload: Any, response: HttpResponse) -> str:
    if isinstance(payload, dict):
        for key in ("msg", "message", "error_description", "error"):
            if payload.get(key):
                return str(payload[key]).strip()
    return f"HTTP {response.status}"


@dataclass(frozen=True)
class EnOSGatewayAuth(AuthenticatorDefaults):
    """Gateway token and per-call signature for one application (appKey, appSecret)."""

    platform: str
    base_url: str
    app_key: str
    app_secret: str = field(repr=False)
    #: Epoch seconds now: the token request's timestamp and the token's expiry count from it.
    clock: Callable[[], float] = field(default=SYSTEM.now, repr=False, compare=False)
    #: Draws the pause before a refused token request is asked again (the system clock's ``uniform`` by default).
    uniform: Callable[[float, float], float] = field(default=SYSTEM.uniform, repr=False, compare=False)

    @property
    def cache_key(self) -> str:
        return f"enos-gateway|{self.base_url}|{self.app_key}|{credential_digest(self.app_secret)}"

    def renew(self, token: Token) -> None:
        """No renewal without a new login."""
        return None

    def login(self) -> Operation[Token]:
        for retry in range(DUPLICATED_ENCRYPTION_RETRIES + 1):
            response = yield self.token_request(epoch_ms(self.clock))
            if retry == DUPLICATED_ENCRYPTION_RETRIES or not _is_duplicated_encryption(response):
                break
            # Refused before any token was issued: asking again, a few milliseconds on, is safe.
            yield Sleep(self.uniform(*DUPLICATED_ENCRYPTION_PAUSE))
        return parse_token_response(response, platform=self.platform, now=self.clock())

    def token_request(self, timestamp_ms: int) -> HttpRequest:
        """Get Access Token; rebuilt at each attempt, since the gateway refuses an encryption seen before (1001)."""
        return HttpRequest(
            "POST",
            self.base_url + TOKEN_PATH,
            call="Get Access Token",
            headers={"Content-Type": "application/json"},
            body=json_body(
                {
                    "appKey": self.app_key,
                    "encryption": token_encryption(self.app_key, timestamp_ms, self.app_secret),
                    "timestamp": timestamp_ms,
                }
            ),
            authenticated=False,
            idempotent=True,  # asking for a token again does no harm
        )

    def sign(self, request: HttpRequest, token: Token | None, now_ms: int) -> HttpRequest:
        if token is None:
            raise ValueError("the EnOS gateway signs calls with a token")
        return request.with_headers(
            {
                "apim-accesstoken": token.value,
                "apim-timestamp": str(now_ms),
                "apim-signature": signature_of(token.value, _params_data_of(request), now_ms, self.app_secret),
            }
        )

    def authorize(self, request: HttpRequest, token: Token | None, now_ms: int) -> HttpRequest:
        """Calls signed; the token request built anew at each attempt, with that attempt's timestamp."""
        if request.authenticated:
            return self.sign(request, token, now_ms)
        if request.url == self.base_url + TOKEN_PATH:
            return self.token_request(now_ms)
        return request

    def is_token_expired(self, response: HttpResponse) -> bool:
        if response.status == 401:
            return True
        return response.status < 500 and _answer_code(response) == TOKEN_EXPIRED_CODE

    def secrets(self) -> tuple[str, ...]:
        return (self.app_secret,)


def _is_duplicated_encryption(response: HttpResponse) -> bool:
    return response.status < 400 and _answer_code(response) == DUPLICATED_ENCRYPTION_CODE


def _answer_code(response: HttpResponse) -> str | None:
    """The envelope's result code, or None for an answer that is no JSON envelope (judged elsewhere)."""
    if not response.body.startswith(b"{"):
        return None
    try:
        return envelope_code(decode_json(response, platform="", call=""))
    except FlowPlatformError:
        return None


def parse_token_response(response: HttpResponse, *, platform: str, now: float) -> Token:
    """The token of a Get Access Token answer, valid for its ``expire`` seconds from ``now`` (epoch seconds)."""
    call = "Get Access Token"
    payload = decode_json(response, platform=platform, call=call)
    code = envelope_code(payload)
    data = payload.get("data") if isinstance(payload, dict) else None
    if response.status >= 400 or code not in (None, "0") or not isinstance(data, dict):
        raise FlowPlatformError(
            platform, call, envelope_message(payload, response), code=code, http_status=response.status
        )
    access_token = data.get("accessToken")
    if not isinstance(access_token, str) or not access_token:
        raise FlowPlatformError(platform, call, "the answer has no accessToken", http_status=response.status)
    try:
        lifetime = float(data.get("expire") or DEFAULT_TOKEN_LIFETIME_SECONDS)
    except (TypeError, ValueError, OverflowError):
        lifetime = DEFAULT_TOKEN_LIFETIME_SECONDS
    if not math.isfinite(lifetime) or lifetime <= 0:
        # An infinite, NaN or negative lifetime would keep a token forever or never: take the documented
        # default (a token refused before then is renewed on its 401 / 1203 anyway).
        lifetime = DEFAULT_TOKEN_LIFETIME_SECONDS
    return Token(value=access_token, expires_at=now + lifetime)
