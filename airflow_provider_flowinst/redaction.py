"""The one redactor: what counts as a secret, and how it is hidden in every form an answer may echo it.

Errors (``FlowPlatformError.redact``), the transports' log records and errors (``SecretsSeen``), failure
diagnosis and the Remote graph tab all hide secrets here, so each catches the same encoded forms.
"""

from __future__ import annotations

import base64
import collections
import html
import json
import re
from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, quote_plus

if TYPE_CHECKING:
    from airflow_provider_flowinst.errors import FlowPlatformError
    from airflow_provider_flowinst.protocol import Authenticator, HttpRequest, Token

#: What a secret is replaced by in messages and log records (as Airflow's masker writes it).
REDACTED = "***"
#: Shorter values are not looked for: hiding every "ab" in a message protects nothing and garbles it.
MIN_SECRET_LENGTH = 3
#: Connection extras that hold secrets, whatever the platform (the password field always does).
SECRET_EXTRAS = ("app_secret", "security_token", "password", "secret", "token")


def secret_forms(secrets: Iterable[str]) -> tuple[str, ...]:
    """Each secret as it may appear in an answer that echoes a request: as is, XML/HTML-escaped, JSON-escaped,
    percent-encoded, base64-encoded (standard and URL-safe, with and without padding); longest first, so that
    a secret inside another is not replaced before it."""
    forms: set[str] = set()
    for secret in secrets:
        if not secret or len(secret) < MIN_SECRET_LENGTH:
            continue
        encoded = secret.encode("utf-8", errors="replace")
        standard = base64.b64encode(encoded).decode("ascii")
        url_safe = base64.urlsafe_b64encode(encoded).decode("ascii")
        forms.update(
            (
                secret,
                html.escape(secret, quote=True),
                html.escape(secret, quote=False),
                json.dumps(secret)[1:-1],
                json.dumps(secret, ensure_ascii=False)[1:-1],
                quote(secret, safe=""),
                quote_plus(secret, safe=""),
                standard,
                standard.rstrip("="),
                url_safe,
                url_safe.rstrip("="),
            )
        )
    return tuple(sorted((form for form in forms if len(form) >= MIN_SECRET_LENGTH), key=len, reverse=True))


def redact_text(text: str, forms: Iterable[str]) -> str:
    """``text`` with every form of a secret (see ``secret_forms``) replaced by ``***``."""
    for form in forms:
        if form in text:
            text = text.replace(form, REDACTED)
    return text


def redact(text: str, secrets: Iterable[str]) -> str:
    """``text`` with every secret, in every form of ``secret_forms``, replaced by ``***``."""
    return redact_text(text, secret_forms(secrets))


def mentions(text: str, forms: Iterable[str]) -> bool:
    """Whether ``text`` shows any of ``forms`` (see ``secret_forms``)."""
    return any(form in text for form in forms)


def connection_secrets(hook: Any) -> tuple[str, ...]:
    """A platform hook's secrets: its connection's password, its secret extras and whatever its authenticator
    holds (tokens too)."""
    found: list[str] = []
    connection = getattr(hook, "_connection", None)
    if connection is not None:
        found.append(connection.password or "")
        extras = connection.extra_dejson if connection.extra else {}
        found += [str(value) for key, value in extras.items() if any(word in key.lower() for word in SECRET_EXTRAS)]
    settings = getattr(hook, "_settings", None)
    if settings is not None:
        found += list(settings.auth.secrets())
    return tuple(secret for secret in found if secret)


_CREDENTIAL_HEADER = re.compile(r"token|signature|secret|password|authorization|cookie", re.IGNORECASE)


class SecretsSeen:
    """What this connection must never show: its credentials, the tokens it holds, what it signed.

    Every FlowPlatformError leaving a transport, and every log record it writes, is redacted against these,
    where the error is built: a triggerer never registered them with Airflow's masker.
    """

    #: Requests kept as signed: enough for the requests of one operation and its retries.
    KEPT_REQUESTS = 128
    #: Parts of signed values shorter than this are names and flags (``Bearer``, ``SignedHeaders``), not secrets.
    MIN_PART_LENGTH = 16
    _PART = re.compile(r"[A-Za-z0-9+/=_.~%#\"-]{16,}")

    def __init__(self, auth: Authenticator) -> None:
        self._static = tuple(value for value in auth.secrets() if value)
        self._tokens: set[str] = set()
        self._last_token: Token | None = None
        self._sent: collections.deque[tuple[HttpRequest, HttpRequest]] = collections.deque(maxlen=self.KEPT_REQUESTS)

    def token(self, token: Token | None) -> None:
        if token is not None and token is not self._last_token:  # a poll's hot path: the same token again
            self._tokens.update(value for value in token.secrets() if value)
            self._last_token = token

    def sent(self, original: HttpRequest, wire: HttpRequest) -> None:
        """Keep a request as it was before and after signing (a poll's hot path: a reference, nothing more).

        What signing or stamping added is worked out only when text leaves the process (``values``)."""
        self._sent.append((original, wire))

    def _signed(self) -> Iterator[str]:
        """What signing or stamping added to the kept requests (signatures, tokens, a token request's proof)
        and every credential header (a login that carries another login's token)."""
        for original, wire in self._sent:
            for name, value in wire.headers.items():
                if original.headers.get(name) != value or _CREDENTIAL_HEADER.search(name):
                    yield value
            if wire.params != original.params:
                before = set(original.params)
                yield from (value for param in wire.params if param not in before for value in param[1:])
            if wire.body != original.body and wire.body:
                yield wire.body.decode("utf-8", errors="replace")

    def _parts(self, value: str) -> list[str]:
        """A signed value, its comma/semicolon-separated pieces, what follows their ``=`` or last space, and
        the long runs of token characters in it (a stamped body's proof)."""
        parts = [value, *self._PART.findall(value)]
        for piece in re.split(r"[,;]", value):
            piece = piece.strip()
            parts += [piece, piece.partition("=")[2], piece.rpartition(" ")[2]]
        return [part for part in dict.fromkeys(parts) if len(part) >= self.MIN_PART_LENGTH]

    def values(self) -> Iterable[str]:
        signed = (part for value in dict.fromkeys(self._signed()) for part in self._parts(value))
        return (*self._static, *self._tokens, *signed)

    def scrub(self, text: str) -> str:
        return redact(text, self.values())

    def redact(self, error: FlowPlatformError) -> None:
        """Hide these values in ``error`` (the platform's own text may echo a secret)."""
        error.redact(self.values())
