"""The transport against the emulator: retries with backoff, Retry-After, token caching and renewal."""

from __future__ import annotations

import asyncio
import json
import time

import pytest
from airflow.sdk import Connection

from airflow_provider_flowinst.errors import FlowPlatformError
from airflow_provider_flowinst.hooks.enos_batch import EnOSBatchHook
from airflow_provider_flowinst.protocol import HttpResponse
from airflow_provider_flowinst.testing.connections import emulator_connection_specs
from airflow_provider_flowinst.transport import close_shared_session, retry_after_seconds


def enos_hook(emulator, **extra) -> EnOSBatchHook:
    """An EnOS Batch hook on the emulator, retrying quickly so tests stay fast."""
    spec = emulator_connection_specs(emulator.url)["enos_batch_default"]
    hook = EnOSBatchHook("enos_batch_default")
    hook.use_connection(
        Connection(
            conn_id="enos_batch_default",
            conn_type="enos_batch",
            host=spec["host"],
            login=spec["login"],
            password=spec["password"],
            extra=json.dumps({**spec["extra"], "retry_max_wait": 0.2, "max_retries": 3, "read_timeout": 1, **extra}),
        )
    )
    return hook


@pytest.mark.parametrize("kind", ["503", "502", "500", "429", "reset", "timeout", "html"])
def test_a_transient_fault_is_retried_and_the_call_succeeds(emulator, kind):
    emulator.inject_fault(kind, platform="enos_batch", count=2, delay=3)

    flows = enos_hook(emulator).get_my_flows("map")

    assert [flow["flowName"] for flow in flows] == ["map"]
    assert emulator.stats()["requests"]["enos_batch GET /batch-processing-service/v2.1/flows"] == 3


def test_a_fault_that_does_not_pass_fails_after_the_bounded_attempts(emulator):
    emulator.inject_fault("503", platform="enos_batch", count=10)

    with pytest.raises(FlowPlatformError) as error:
        enos_hook(emulator).get_my_flows()

    assert "Get My Flow failed: still failing after 4 attempts: HTTP 503" in str(error.value)
    assert error.value.retryable
    assert emulator.stats()["requests"]["enos_batch GET /batch-processing-service/v2.1/flows"] == 4


def test_retry_after_is_honoured(emulator):
    emulator.inject_fault("429", platform="enos_batch", count=1, retry_after=1)

    started = time.monotonic()
    enos_hook(emulator, retry_max_wait=5).get_my_flows()

    assert time.monotonic() - started >= 1.0


def test_a_permanent_refusal_fails_at_once(emulator):
    emulator.inject_fault("403", platform="enos_batch", count=1)

    started = time.monotonic()
    with pytest.raises(FlowPlatformError) as error:
        enos_hook(emulator).get_my_flows()

    assert time.monotonic() - started < 1.0
    assert error.value.http_status == 403
    assert emulator.stats()["requests"]["enos_batch GET /batch-processing-service/v2.1/flows"] == 1


def test_a_malformed_json_answer_is_retried_like_a_5xx(emulator):
    emulator.inject_fault("malformed", platform="enos_batch", count=1)

    assert [flow["flowName"] for flow in enos_hook(emulator).get_my_flows("map")] == ["map"]
    assert emulator.stats()["requests"]["enos_batch GET /batch-processing-service/v2.1/flows"] == 2


def test_a_malformed_json_answer_that_persists_is_a_clear_error(emulator):
    emulator.inject_fault("malformed", platform="enos_batch", count=10)

    with pytest.raises(
        FlowPlatformError,
        match="Get My Flow failed: still failing after 4 attempts: HTTP 200: the JSON answer is malformed",
    ) as error:
        enos_hook(emulator).get_my_flows()

    assert error.value.retryable


def test_a_malformed_answer_to_a_call_that_starts_a_run_is_not_sent_again(emulator):
    # The platform acted on it (it answered 200): sending it again could start a second run.
    emulator.inject_fault("malformed", platform="enos_batch", count=1)

    with pytest.raises(FlowPlatformError, match="Trigger Flow failed: the answer is not JSON") as error:
        enos_hook(emulator).trigger_flow("2809")

    assert not error.value.retryable
    assert emulator.stats()["requests"]["enos_batch POST /batch-processing-service/v2.1/flows"] == 1


def test_reads_and_logins_are_repeatable_and_calls_that_act_are_not():
    from airflow_provider_flowinst.platforms import dataworks, enos_batch, enos_bpm, lsf

    enos = enos_batch.EnOSBatchClient(enos_batch.EnOSBatchSettings(base_url="https://gw", org_id="o", user_id="u"))
    bpm = enos_bpm.EnOSBPMClient(enos_bpm.EnOSBPMSettings(base_url="https://gw"))
    lsf_client = lsf.LSFClient(lsf.LSFSettings(base_url="https://pac:8443"))
    dw = dataworks.DataWorksClient(dataworks.DataWorksSettings(endpoint="https://dw"))
    lsf_logon = next(lsf.LSFLogonAuth(base_url="https://pac:8443", user="u", password="p").login())

    repeatable = {
        "EnOS get": next(enos.get_flow_instance("1-2")),
        "EnOS search": next(enos.search_flow_instances()),
        "BPM get": next(bpm.get_process_instance("p")),
        "BPM queryList": next(bpm.query_process_instances("inProgress")),
        "LSF query": lsf_client.query_request([("id", "101")]),
        "LSF logon": lsf_logon,
        "DataWorks GetWorkflowInstance": dw.request("GET", "GetWorkflowInstance", {"Id": 1}),
        "DataWorks ListTaskInstances (POST)": dw.request("POST", "ListTaskInstances", {}),
    }
    acting = {
        "EnOS trigger": next(enos.trigger_flow("2809")),
        "EnOS cancel": next(enos.cancel_flow_instance("1-2")),
        "BPM start": next(bpm.start_process_instance("d")),
        "LSF kill": next(lsf_client.kill_flow_instances("101")),
        "DataWorks CreateWorkflowInstances": dw.request("POST", "CreateWorkflowInstances", {}),
        "DataWorks StopWorkflowInstances": dw.request("POST", "StopWorkflowInstances", {}),
    }
    assert {name: request.repeatable for name, request in repeatable.items()} == dict.fromkeys(repeatable, True)
    assert {name: request.repeatable for name, request in acting.items()} == dict.fromkeys(acting, False)


def test_one_token_serves_many_calls_and_hooks(emulator):
    for _ in range(20):
        enos_hook(emulator).get_my_flows()

    assert emulator.stats()["token_requests"] == {"enos_gateway": 1}


def test_an_expired_token_is_renewed_and_the_call_retried_once(emulator):
    hook = enos_hook(emulator)
    hook.get_my_flows()
    emulator.inject_fault("expired_token", platform="enos_batch", count=1)

    assert hook.get_my_flows("map")[0]["flowId"] == "2809"
    assert emulator.stats()["token_requests"] == {"enos_gateway": 2}


def test_a_failed_token_request_is_retried_with_a_fresh_timestamp(emulator):
    # The gateway refuses an encryption it has seen (1001), so a resent token request must be rebuilt.
    emulator.inject_fault("503", platform="enos_gateway", count=1)

    assert enos_hook(emulator).get_my_flows("map")[0]["flowId"] == "2809"
    assert emulator.stats()["token_requests"] == {"enos_gateway": 2}


def test_a_wrong_secret_is_refused_by_the_token_service_without_leaking_it(emulator):
    hook = enos_hook(emulator)
    hook.use_connection(
        Connection(
            conn_id="bad",
            conn_type="enos_batch",
            host=emulator.url,
            login="emulator-app-key",
            password="not-the-secret-xyz",
            extra=json.dumps({"org_id": "o", "user_id": "u"}),
        )
    )
    with pytest.raises(FlowPlatformError) as error:
        hook.get_my_flows()

    assert "EnOS Batch Processing: Get Access Token failed: The encryption is not valid. (code 1003" in str(error.value)
    assert "not-the-secret-xyz" not in str(error.value)


async def test_the_async_path_shares_retries_and_tokens(emulator):
    hook = enos_hook(emulator)
    emulator.inject_fault("503", platform="enos_batch", count=1)
    try:
        instances = await asyncio.gather(*(hook.aget_instance(f"2809-2031010{day}000000") for day in range(1, 6)))
    finally:
        await close_shared_session()

    assert {instance.flow_id for instance in instances} == {"2809"}
    assert emulator.stats()["token_requests"] == {"enos_gateway": 1}


@pytest.mark.parametrize(
    ("headers", "seconds"),
    [
        ({"retry-after": "3"}, 3.0),
        ({"retry-after": "Wed, 21 Oct 2015 07:28:10 GMT"}, 10.0),
        ({"x-acs-retry-after": "1500"}, 1.5),
        ({}, None),
        ({"retry-after": "soon"}, None),
    ],
)
def test_retry_after_forms(headers, seconds):
    now = 1445412480.0  # 2015-10-21 07:28:00 UTC
    assert retry_after_seconds(HttpResponse(429, headers, b""), now=now) == seconds
