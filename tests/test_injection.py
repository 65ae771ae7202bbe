"""Inputs that could inject: ids, names and expressions holding & = / ? # + % ; spaces or non-ASCII text.

Each travels encoded as one value and still verifies against the platform's signature (EnOS gateway
signature, DataWorks ACS3), so the platform answers about the value itself: "not found", "no match", or
the value echoed back intact, never a signature mismatch or a 401. Empty or blank ids are refused before any
request (the emulator's counters stay at zero).
"""

from __future__ import annotations

import pytest

from airflow_provider_flowinst.errors import FlowInstanceNotFound, FlowPlatformError
from airflow_provider_flowinst.hooks import get_hook
from airflow_provider_flowinst.transport import close_shared_session

AWKWARD = [
    "a&b=c",
    "x/y?z#w",
    "with spaces and+plus",
    "100%25 %2F",
    "semi;colon,comma:colon",
    "ünïcødé-流程-🚀",
    "../../etc/passwd",
    "quote\"'<tag>",
    "line\nbreak\ttab",
]
SIGNATURE_REFUSALS = ("Signature", "signature", "1003", "1202", "IncompleteSignature")


def no_signature_trouble(error: FlowPlatformError) -> None:
    assert error.http_status != 401, str(error)
    assert not any(word in str(error) for word in SIGNATURE_REFUSALS), str(error)


@pytest.mark.parametrize("value", AWKWARD)
def test_enos_batch_ids_and_expressions(emulator, value):
    hook = get_hook("enos_batch_default")

    with pytest.raises(FlowInstanceNotFound) as error:
        hook.get_instance(value)
    assert error.value.code == "62102"
    no_signature_trouble(error.value)
    assert hook.get_my_flows(value) == []  # a query parameter, signed
    assert hook.search_flow_instances(expression=value) == []  # a JSON body, signed byte for byte
    assert [flow["flowId"] for flow in hook.get_my_flows("map")] == ["2809"]


@pytest.mark.parametrize("value", AWKWARD)
def test_enos_bpm_ids_and_names(emulator, value):
    hook = get_hook("enos_bpm_default")
    started = hook.start_process_instance("contractReview:1:8e203c44-e365-11ea-8a6b-be43f0d99bcd", name=value)

    with pytest.raises(FlowInstanceNotFound) as error:
        hook.get_instance(value)
    assert error.value.code == "33404"
    no_signature_trouble(error.value)
    # The name went out in a signed JSON body and comes back intact, and it finds the instance again.
    found = hook.query_process_instances("inProgress", processName=value)
    assert [(record["id"], record["name"]) for record in found] == [(started, value)]


@pytest.mark.parametrize("value", AWKWARD)
def test_lsf_ids_and_flow_names(emulator, value):
    hook = get_hook("lsf_pm_default")

    with pytest.raises(FlowPlatformError) as error:
        hook.get_instance(value)
    # The logon cookie was accepted; the platform read the id, intact, and refused it as not a number.
    assert error.value.http_status == 400
    assert f"id={value!r}" in error.value.platform_message
    assert hook.list_flow_instances(flowname=value, username="all") == []  # "no match" (404)


@pytest.mark.parametrize("value", AWKWARD)
def test_dataworks_ids_and_names(emulator, value):
    hook = get_hook("dataworks_default")

    with pytest.raises(FlowPlatformError) as error:
        hook.get_instance(value)
    assert error.value.code == "InvalidParameter"  # the signature held: the platform read the Id itself
    assert f"not a valid integer: {value!r}" in error.value.platform_message
    no_signature_trouble(error.value)

    created = emulator.create_dataworks_instance(1003, name=value)
    bizdate = hook.get_workflow_instance(created)["BizDate"]
    found = hook.list_workflow_instances(bizdate=bizdate, Name=value)  # a signed form body
    assert [(str(record["Id"]), record["Name"]) for record in found] == [(created, value)]


def test_a_missing_numeric_dataworks_id_is_not_found(emulator):
    with pytest.raises(FlowInstanceNotFound):
        get_hook("dataworks_default").get_instance("999999999")


BLANK = ["", " ", "\t\n", None]
PLATFORM_CALLS = {
    "enos_batch": [
        lambda hook, blank: hook.get_flow_instance(blank),
        lambda hook, blank: hook.cancel_flow_instance(blank),
        lambda hook, blank: hook.trigger_flow(blank),
        lambda hook, blank: hook.get_task_instance_log(blank),
    ],
    "enos_bpm": [
        lambda hook, blank: hook.get_process_instance(blank),
        lambda hook, blank: hook.terminate_process_instance(blank, "reason"),
        lambda hook, blank: hook.start_process_instance(blank),
    ],
    "lsf_pm": [
        lambda hook, blank: hook.kill_flow_instances(blank),
        lambda hook, blank: hook.suspend_flow_instances([blank]),
        lambda hook, blank: hook.rerun_flow_instances(blank),
        lambda hook, blank: hook.submit_flow(blank),
    ],
    "dataworks": [
        lambda hook, blank: hook.get_workflow_instance(blank),
        lambda hook, blank: hook.stop_workflow_instances([blank]),
        lambda hook, blank: hook.list_task_instances(workflow_instance_id=blank, bizdate=0),
        lambda hook, blank: hook.create_workflow_instances(workflow_id=blank),
    ],
}


@pytest.mark.parametrize("platform", sorted(PLATFORM_CALLS))
async def test_blank_ids_are_refused_before_any_request(emulator, platform):
    hook = get_hook(f"{platform}_default")
    refusals = []
    for blank in BLANK:
        calls = [lambda hook, blank: hook.get_instance(blank), *PLATFORM_CALLS[platform]]
        for call in calls:
            with pytest.raises(FlowPlatformError) as error:
                call(hook, blank)
            refusals.append(str(error.value))
        try:
            with pytest.raises(FlowPlatformError) as error:
                await hook.aget_instance(blank)
            refusals.append(str(error.value))
        finally:
            await close_shared_session()

    assert all("is empty" in message or "must be non-empty" in message for message in refusals), refusals
    stats = emulator.stats()
    assert (stats["requests"], stats["token_requests"]) == ({}, {})
