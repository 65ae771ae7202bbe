"""The one place platform time formats become aware UTC datetimes."""

from __future__ import annotations

import datetime as dt
import functools
import re
from typing import Any

import pendulum

_GMT_OFFSET = re.compile(r"^(?P<local>.+?)\s*GMT(?P<sign>[+-])(?P<hours>\d{1,2}):?(?P<minutes>\d{2})?$")


def validate_timezone(name: str) -> str:
    """Fail early, with the name, on a timezone pendulum does not know."""
    try:
        pendulum.timezone(name)
    except Exception:
        raise ValueError(f"unknown timezone {name!r}; use an IANA name such as 'Asia/Shanghai'") from None
    return name


def parse_local_time(value: Any, timezone: str) -> dt.datetime | None:
    """A time with no offset ("2019-08-08 09:32:30", maybe ".0"), read in the deployment's timezone."""
    if value is None or str(value).strip() == "":
        return None
    text = str(value).strip()
    zone = _zone(timezone)
    try:  # the platforms' own format, read by the standard library: a poll's hot path
        naive = dt.datetime.fromisoformat(text)
    except ValueError:
        naive = None
    if naive is not None and naive.tzinfo is None:
        return _utc(naive.replace(tzinfo=zone))
    parsed = pendulum.parse(text, tz=zone, strict=False)
    if not isinstance(parsed, dt.datetime):
        raise ValueError(f"not a date and time: {value!r}")
    return _utc(parsed)


@functools.lru_cache(maxsize=64)
def _zone(name: str) -> dt.tzinfo:
    zone: dt.tzinfo = pendulum.timezone(name)
    return zone


def parse_gmt_offset_time(value: Any) -> dt.datetime | None:
    """A time like "2018-08-14 14:11:15 GMT+08:00" (LSF); "" means not yet."""
    if value is None or str(value).strip() == "":
        return None
    text = str(value).strip()
    match = _GMT_OFFSET.match(text)
    if match is None:
        return parse_local_time(text, "UTC")
    offset = dt.timedelta(hours=int(match["hours"]), minutes=int(match["minutes"] or 0))
    zone = dt.timezone(offset if match["sign"] == "+" else -offset)
    local = dt.datetime.fromisoformat(match["local"].strip())
    return _utc(local.replace(tzinfo=zone))


def parse_epoch_ms(value: Any) -> dt.datetime | None:
    """Epoch milliseconds (DataWorks, BPM); None, 0 and "" mean not yet."""
    if value is None or value == "" or value == 0:
        return None
    millis = int(value)
    return dt.datetime.fromtimestamp(millis // 1000, tz=dt.timezone.utc).replace(microsecond=(millis % 1000) * 1000)


def _utc(value: dt.datetime) -> dt.datetime:
    utc = value.astimezone(dt.timezone.utc)
    # A plain datetime, so isoformat() prints "+00:00" the same whatever library parsed it.
    return dt.datetime(
        utc.year, utc.month, utc.day, utc.hour, utc.minute, utc.second, utc.microsecond, tzinfo=dt.timezone.utc
    )
