"""The one clock: wall time in milliseconds (platform clients take the clock their caller passes: see the
EnOS gateway tests)."""

from __future__ import annotations

from airflow_provider_flowinst.clock import SYSTEM, Clock


def test_now_ms_is_the_wall_clock_in_whole_milliseconds():
    assert Clock(now=lambda: 1_700_000_000.9999).now_ms() == 1_700_000_000_999
    assert abs(SYSTEM.now_ms() - SYSTEM.now() * 1000) < 1000
