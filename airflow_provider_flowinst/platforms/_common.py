"""Small helpers every platform module reads its answers and builds its requests with. No I/O, no clock."""

from __future__ import annotations

import contextlib
from collections import OrderedDict
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any, Generic, TypeVar
from urllib.parse import quote

from airflow_provider_flowinst.errors import FlowInstanceNotFound, FlowPlatformError
from airflow_provider_flowinst.protocol import HttpRequest, json_body

V = TypeVar("V")

#: The web schemes and the port a URL of each means when it names none.
SCHEME_PORTS: Mapping[str, int] = {"http": 80, "https": 443}
JSON = "application/json"
JSON_BODY = "application/json;charset=UTF-8"
#: Batching hints a client keeps at most (the instances most recently read).
MAX_HINTS = 16_384


def epoch_ms(clock: Callable[[], float]) -> int:
    """The time ``clock`` tells (epoch seconds), in epoch milliseconds."""
    return int(clock() * 1000)


def int_or_text(value: Any) -> int | str:
    """An id as the platform takes it: a number when it is ASCII digits (``"²"`` is a digit to
    ``str.isdigit`` but not to ``int``), else the text as it is."""
    text = str(value).strip()
    return int(text) if text.isascii() and text.isdigit() else text


def object_list(value: Any, *, platform: str, call: str, what: str | None = None) -> list[dict[str, Any]]:
    """A list of JSON objects from an answer (None: none); anything else is a FlowPlatformError.

    ``what`` names the field in the message ("the answer's TaskInstances"); without it the message says
    what came instead.
    """
    if value is None:
        return []
    if not isinstance(value, list) or not all(isinstance(item, dict) for item in value):
        message = (
            f"{what} is not a list of objects" if what else f"expected a list of objects, got {type(value).__name__}"
        )
        raise FlowPlatformError(platform, call, message)
    return value


def instance_record(value: Any, *, platform: str, call: str, missing: str) -> dict[str, Any]:
    """The one record a get answers with: None is FlowInstanceNotFound (``missing`` says what is not
    there), anything but an object a FlowPlatformError."""
    if value is None:
        raise FlowInstanceNotFound(platform, call, missing)
    if not isinstance(value, dict):
        raise FlowPlatformError(platform, call, f"expected an object, got {type(value).__name__}")
    return value


@contextlib.contextmanager
def reading_times(platform: str, call: str) -> Iterator[None]:
    """Turns a time the platform wrote that cannot be read into a FlowPlatformError naming the call."""
    try:
        yield
    except (TypeError, ValueError, OverflowError, OSError) as exc:  # OSError: out of the OS's time range
        raise FlowPlatformError(platform, call, f"unreadable time: {exc}") from None


def form_body(fields: Iterable[tuple[str, str]], *, safe: str = "") -> bytes:
    """An ``application/x-www-form-urlencoded`` body, RFC 3986 encoded (a space is ``%20``), except the
    characters in ``safe``, which stay readable."""
    return "&".join(f"{quote(str(key), safe=safe)}={quote(str(value), safe=safe)}" for key, value in fields).encode(
        "ascii"
    )


def json_request(
    method: str,
    url: str,
    *,
    call: str,
    params: Mapping[str, Any] | Iterable[tuple[str, Any]] = (),
    body: Any = None,
    idempotent: bool | None = None,
    authenticated: bool = True,
    headers: Mapping[str, str] | None = None,
) -> HttpRequest:
    """A call to a JSON API: parameters left out where None, ``body`` sent as compact JSON."""
    pairs = params.items() if isinstance(params, Mapping) else params
    return HttpRequest(
        method,
        url,
        call=call,
        params=tuple((key, str(value)) for key, value in pairs if value is not None),
        headers={"Accept": JSON, **({} if body is None else {"Content-Type": JSON_BODY}), **(headers or {})},
        body=None if body is None else json_body(body),
        authenticated=authenticated,
        idempotent=idempotent,
    )


class Hints(Generic[V]):
    """What a client remembers of the instances it read, for its batched reads: the newest ``size`` only,
    so a long-lived client (a triggerer's) stays small whatever comes and goes."""

    def __init__(self, size: int = MAX_HINTS) -> None:
        self.size = size
        self._items: OrderedDict[str, V] = OrderedDict()

    def remember(self, instance_id: str, value: V) -> None:
        self._items[instance_id] = value
        self._items.move_to_end(instance_id)
        while len(self._items) > self.size:
            self._items.popitem(last=False)

    def get(self, instance_id: str) -> V | None:
        return self._items.get(instance_id)

    def __len__(self) -> int:
        return len(self._items)
