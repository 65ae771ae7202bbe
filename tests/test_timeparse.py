"""The one time parser: each platform's format to an aware UTC datetime."""

from __future__ import annotations

import datetime as dt

import pytest

from airflow_provider_flowinst.timeparse import (
    parse_epoch_ms,
    parse_gmt_offset_time,
    parse_local_time,
    validate_timezone,
)

UTC = dt.timezone.utc


@pytest.mark.parametrize(
    ("text", "zone", "expected"),
    [
        ("2019-08-08 09:32:30", "UTC", dt.datetime(2019, 8, 8, 9, 32, 30, tzinfo=UTC)),
        ("2019-08-08 09:32:30", "Asia/Shanghai", dt.datetime(2019, 8, 8, 1, 32, 30, tzinfo=UTC)),
        ("2019-08-08 09:34:36.0", "UTC", dt.datetime(2019, 8, 8, 9, 34, 36, tzinfo=UTC)),
        ("2024-07-01 12:00:00", "Europe/Berlin", dt.datetime(2024, 7, 1, 10, 0, tzinfo=UTC)),  # summer time
        ("2024-01-01 12:00:00", "Europe/Berlin", dt.datetime(2024, 1, 1, 11, 0, tzinfo=UTC)),
        ("2024-01-01T12:00:00Z", "Asia/Shanghai", dt.datetime(2024, 1, 1, 12, 0, tzinfo=UTC)),  # an offset wins
    ],
)
def test_local_times_are_read_in_the_given_zone(text, zone, expected):
    assert parse_local_time(text, zone) == expected


@pytest.mark.parametrize("empty", [None, "", "  "])
def test_empty_means_not_yet(empty):
    assert parse_local_time(empty, "UTC") is None
    assert parse_gmt_offset_time(empty) is None


def test_lsf_gmt_offsets():
    assert parse_gmt_offset_time("2018-08-14 14:11:15 GMT+08:00") == dt.datetime(2018, 8, 14, 6, 11, 15, tzinfo=UTC)
    assert parse_gmt_offset_time("2018-08-14 14:11:15 GMT-05:30") == dt.datetime(2018, 8, 14, 19, 41, 15, tzinfo=UTC)


def test_epoch_milliseconds_keep_their_fraction():
    assert parse_epoch_ms(1710239005403) == dt.datetime(2024, 3, 12, 10, 23, 25, 403000, tzinfo=UTC)
    assert parse_epoch_ms(0) is None


def test_results_print_plus_zero_hours():
    assert parse_local_time("2019-08-08 09:32:30", "Asia/Shanghai").isoformat() == "2019-08-08T01:32:30+00:00"


def test_unknown_zones_are_named():
    with pytest.raises(ValueError, match="unknown timezone 'Mars/Base'"):
        validate_timezone("Mars/Base")
