"""The helpers every platform module shares (platforms/_common.py)."""

from __future__ import annotations

import pytest

from airflow_provider_flowinst.errors import FlowInstanceNotFound, FlowPlatformError
from airflow_provider_flowinst.platforms import _common as common


def test_ids_of_ascii_digits_travel_as_numbers_and_anything_else_as_text():
    assert common.int_or_text(" 1001 ") == 1001
    assert common.int_or_text("²") == "²"  # a digit to str.isdigit(), not to int()
    assert common.int_or_text("wf-7") == "wf-7"


def test_a_list_of_objects_or_an_error_naming_what_came():
    assert common.object_list(None, platform="dataworks", call="c") == []
    assert common.object_list([{"a": 1}], platform="dataworks", call="c") == [{"a": 1}]
    with pytest.raises(FlowPlatformError, match="expected a list of objects, got str"):
        common.object_list("x", platform="dataworks", call="c")
    with pytest.raises(FlowPlatformError, match="the answer's Rows is not a list of objects"):
        common.object_list([1], platform="dataworks", call="c", what="the answer's Rows")


def test_a_get_answers_one_object_none_is_not_found():
    assert common.instance_record({"Id": 1}, platform="enos_bpm", call="c", missing="no x") == {"Id": 1}
    with pytest.raises(FlowInstanceNotFound, match="no x"):
        common.instance_record(None, platform="enos_bpm", call="c", missing="no x")
    with pytest.raises(FlowPlatformError, match="expected an object, got list"):
        common.instance_record([], platform="enos_bpm", call="c", missing="no x")


def test_an_unreadable_time_is_a_platform_error_naming_the_call():
    with (
        pytest.raises(FlowPlatformError, match="Get Flow Instances failed: unreadable time: boom"),
        common.reading_times("lsf_pm", "Get Flow Instances"),
    ):
        raise ValueError("boom")


def test_form_bodies_are_rfc_3986_encoded_except_the_safe_characters():
    fields = [("ids", "101,102"), ("flownames", "jsmith:flow 1")]
    assert common.form_body(fields) == b"ids=101%2C102&flownames=jsmith%3Aflow%201"
    assert common.form_body(fields, safe=",:") == b"ids=101,102&flownames=jsmith:flow%201"


def test_epoch_ms_reads_the_clock_it_is_given():
    assert common.epoch_ms(lambda: 1_700_000_000.1234) == 1_700_000_000_123


def test_hints_keep_the_newest_reads_only():
    hints: common.Hints[int] = common.Hints(size=2)
    hints.remember("a", 1)
    hints.remember("b", 2)
    hints.remember("a", 3)  # read again: the newest
    hints.remember("c", 4)
    assert (hints.get("a"), hints.get("b"), hints.get("c"), len(hints)) == (3, None, 4, 2)
