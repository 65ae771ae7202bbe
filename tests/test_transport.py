"""The transport against the emulator: retries with backoff, Retry-After, token caching and renewal."""

from __future__ import annotations

import asyncio
import json
import math
import os
import threading
import time
import tracemalloc
from dataclasses import dataclass

import pytest
import requests
from airflow.sdk import Connection

from airflow_provider_flowinst import http1
from airflow_provider_flowinst.errors import FlowInstanceNotFound, FlowPlatformError
from airflow_provider_flowinst.hooks import get_hook
from airflow_provider_flowinst.hooks.enos_batch import EnOSBatchHook
from airflow_provider_flowinst.protocol import (
    AuthenticatorDefaults,
    HttpRequest,
    HttpResponse,
    Operation,
    Together,
    Token,
)
from airflow_provider_flowinst.transport import (
    AsyncTransport,
    SyncTransport,
    TokenCache,
    TransportSettings,
    close_shared_session,
    retry_after_seconds,
)
from airflow_provider_flowinst.triggers.flow_instance import FlowInstanceTrigger
from tests.helpers import (
    ScriptedServer,
    emulator_hook,
    quick_retry_connection,
    read_instance,
    scripted_answer,
    wait_for,
)


def enos_hook(emulator, **extra) -> EnOSBatchHook:
    """An EnOS Batch hook on the emulator, retrying quickly so tests stay fast."""
    return emulator_hook(EnOSBatchHook, emulator, **{"max_retries": 3, "read_timeout": 1, **extra})


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
    # 2 s is longer than any first backoff (0.5 to 1 s): the wait shows the header was read.
    emulator.inject_fault("429", platform="enos_batch", count=1, retry_after=2)

    started = time.monotonic()
    enos_hook(emulator, retry_max_wait=5).get_my_flows()

    assert time.monotonic() - started >= 2.0


def test_the_emulator_never_asks_for_less_than_the_retry_after_it_is_given(emulator):
    # HTTP's Retry-After is whole seconds: 1.2 s is sent as 2, never truncated to 1.
    emulator.inject_fault("429", platform="enos_batch", count=1, retry_after=1.2)

    response = requests.get(emulator.url + "/batch-processing-service/v2.1/flows", timeout=10)

    assert response.status_code == 429
    assert response.headers["Retry-After"] == "2"


def test_a_permanent_refusal_fails_at_once(emulator):
    emulator.inject_fault("403", platform="enos_batch", count=1)

    started = time.monotonic()
    with pytest.raises(FlowPlatformError) as error:
        enos_hook(emulator).get_my_flows()

    # One request is the proof; the clock only shows no backoff was slept (the first is >= 0.5 s), with room
    # for a loaded machine.
    assert time.monotonic() - started < 3.0
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


def test_a_token_refused_again_right_after_a_fresh_login_is_a_permanent_failure(emulator):
    hook = enos_hook(emulator)
    hook.get_my_flows()
    emulator.inject_fault("expired_token", platform="enos_batch", count=2)

    with pytest.raises(FlowPlatformError) as refused:
        hook.get_my_flows("map")

    assert refused.value.permanent
    assert "refused the call again right after a fresh login" in str(refused.value)
    assert emulator.stats()["token_requests"] == {"enos_gateway": 2}  # one fresh login, not more


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
        ({"x-acs-retry-after": "1500"}, None),  # DataWorks' own header: its authenticator reads it
        ({}, None),
        ({"retry-after": "soon"}, None),
    ],
)
def test_retry_after_forms(headers, seconds):
    now = 1445412480.0  # 2015-10-21 07:28:00 UTC
    assert retry_after_seconds(HttpResponse(429, headers, b""), now=now) == seconds


# -- every platform, both paths: answers judged by their real status, bounded in time and size ---------------

#: An instance each platform's emulator serves from the start (EnOS periodic ids exist when asked for).
INSTANCES = {
    "enos_batch": "2809-20360101000000",
    "enos_bpm": "0b7c5e00-e39a-11ea-b667-e2b39eaec001",
    "lsf_pm": "101",
    "dataworks": "700001",
}
PLATFORMS = sorted(INSTANCES)
PATHS = ["sync", "async"]


async def read(conn_id: str, platform: str, path: str):
    """``get_instance`` (requests) or ``aget_instance`` (aiohttp) of the platform's instance."""
    return await read_instance(conn_id, INSTANCES[platform], path)


class MetAnotherWorker(set):
    """The gateway's memory of encryptions, in which the first token request meets another worker's."""

    def __init__(self) -> None:
        super().__init__()
        self.met = False

    def __contains__(self, encryption: object) -> bool:
        if not self.met:
            self.met = True
            return True
        return super().__contains__(encryption)


@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize("platform", ["enos_batch", "enos_bpm"])
async def test_a_token_request_refused_as_a_duplicate_asks_again_at_a_later_millisecond(
    emulator, monkeypatch, platform, path
):
    # Many workers of one app log in at once; two in one millisecond send the same encryption, and the
    # gateway answers the second "Repeated requests with duplicated encryption" (1001), issuing it nothing.
    monkeypatch.setattr(emulator.emulator.gateway, "seen_encryptions", MetAnotherWorker())

    instance = await read(f"{platform}_default", platform, path)

    assert instance.instance_id == INSTANCES[platform]
    assert emulator.stats()["token_requests"]["enos_gateway"] == 2


async def logged_in(monkeypatch, emulator, platform: str, path: str, **extra) -> str:
    """A quick-retry connection of ``platform`` that has read once (so its token is cached); counters reset."""
    conn_id = quick_retry_connection(monkeypatch, emulator.url, f"{platform}_default", **extra)
    await read(conn_id, platform, path)
    emulator.control("POST", "/_emulator/reset")
    return conn_id


@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize("platform", PLATFORMS)
async def test_a_redirect_is_an_error_naming_its_status_and_host_never_not_found(emulator, monkeypatch, platform, path):
    # An LSF read answered with a 302 was reported as "not found (HTTP 404)": a retried start then ran twice.
    conn_id = await logged_in(monkeypatch, emulator, platform, path)
    emulator.inject_fault("redirect", platform=platform, location="https://sso.corp.example/login?next=/api")

    with pytest.raises(FlowPlatformError) as error:
        await read(conn_id, platform, path)

    assert not isinstance(error.value, FlowInstanceNotFound)
    assert error.value.http_status == 302
    assert "answered with a redirect (HTTP 302) to sso.corp.example, which is not followed" in str(error.value)
    assert "not found" not in str(error.value).lower()
    assert not error.value.retryable
    assert emulator.stats()["requests"][f"{platform} fault: redirect"] == 1


@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize("platform", PLATFORMS)
async def test_a_trickling_answer_fails_the_attempt_at_read_timeout(emulator, monkeypatch, platform, path):
    # Headers at once, then one byte every 0.3 s: each byte comes well within read_timeout, the answer never does.
    conn_id = await logged_in(monkeypatch, emulator, platform, path, max_retries=1, read_timeout=1)
    emulator.inject_fault("trickle", platform=platform, delay=0.3, count=10)

    started = time.monotonic()
    with pytest.raises(FlowPlatformError) as error:
        await read(conn_id, platform, path)
    elapsed = time.monotonic() - started

    assert "still failing after 2 attempts: the answer did not arrive in full within read_timeout (1 s)" in str(
        error.value
    )
    assert error.value.retryable
    assert 2.0 <= elapsed < 10.0  # two attempts of about 1 s each and a short wait: bounded, never a hang


@pytest.mark.parametrize("path", PATHS)
async def test_a_trickle_that_passes_is_retried_and_the_read_succeeds(emulator, monkeypatch, path):
    conn_id = await logged_in(monkeypatch, emulator, "enos_batch", path, read_timeout=1)
    emulator.inject_fault("trickle", platform="enos_batch", delay=0.3, count=1)

    instance = await read(conn_id, "enos_batch", path)

    assert instance.instance_id == INSTANCES["enos_batch"]
    assert emulator.stats()["faults_pending"] == 0


@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize("kind", ["oversized", "gzip_bomb"])
async def test_an_answer_past_max_response_bytes_fails_fast_without_being_held(emulator, monkeypatch, kind, path):
    # 512 MiB (the bomb: about 0.5 MB on the wire); the default limit is 64 MiB.
    conn_id = await logged_in(monkeypatch, emulator, "lsf_pm", path, read_timeout=30)
    emulator.inject_fault(kind, platform="lsf_pm", size=512 * 1024**2)

    tracemalloc.start()
    started = time.monotonic()
    try:
        with pytest.raises(FlowPlatformError) as error:
            await read(conn_id, "lsf_pm", path)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()

    assert "the answer is larger than 67108864 bytes (the connection's extra 'max_response_bytes')" in str(error.value)
    assert not error.value.retryable
    assert time.monotonic() - started < 20
    assert peak < 160 * 1024**2  # what was read up to the limit, never the whole answer


@pytest.mark.parametrize("path", PATHS)
async def test_max_response_bytes_is_the_connections_to_choose(emulator, monkeypatch, path):
    conn_id = await logged_in(monkeypatch, emulator, "dataworks", path, max_response_bytes=100_000)
    emulator.inject_fault("oversized", platform="dataworks", size=200_000)

    with pytest.raises(FlowPlatformError, match="larger than 100000 bytes"):
        await read(conn_id, "dataworks", path)
    assert (await read(conn_id, "dataworks", path)).instance_id == INSTANCES["dataworks"]  # a usual answer fits


# -- the extras, checked when the connection is read ---------------------------------------------------------


@pytest.mark.parametrize(
    ("extra", "value", "says"),
    [
        ("read_timeout", 0, "must be above 0"),
        ("read_timeout", "nan", "must be a finite number"),
        ("read_timeout", "inf", "must be a finite number"),
        ("read_timeout", -1, "must be above 0"),
        ("read_timeout", 1e9, "must be at most 3600"),
        ("connect_timeout", "soon", "must be a number"),
        ("connect_timeout", True, "must be a number"),
        ("max_retries", "nan", "must be a finite number"),
        ("max_retries", 2.5, "must be a whole number"),
        ("max_retries", -1, "must be 0 or more"),
        ("max_retries", 1e6, "must be at most 100"),
        ("retry_max_wait", "inf", "must be a finite number"),
        ("retry_max_wait", "1e400", "must be a finite number"),
        ("max_response_bytes", 0, "must be above 0"),
        ("verify", "flase", "must be true, false or the path of a CA bundle file or directory"),
    ],
)
def test_a_transport_extra_out_of_range_is_refused_by_name_when_the_connection_is_read(emulator, extra, value, says):
    with pytest.raises(FlowPlatformError) as error:
        enos_hook(emulator, **{extra: value})

    message = str(error.value)
    assert message.startswith("EnOS Batch Processing: reading connection 'enos_batch_default' failed: ")
    assert f"the connection's extra {extra!r} {says}" in message


def test_transport_extras_in_range_are_taken(emulator, tmp_path):
    hook = enos_hook(
        emulator, read_timeout="2.5", connect_timeout=3, max_retries="4", retry_max_wait=0, verify=str(tmp_path)
    )
    settings = hook._settings
    assert settings is not None
    assert (settings.read_timeout, settings.connect_timeout, settings.max_retries, settings.retry_max_wait) == (
        2.5,
        3.0,
        4,
        0.0,
    )
    assert settings.verify == str(tmp_path)  # a CA directory
    assert settings.max_response_bytes == 64 * 1024**2


# -- the token cache: one token per credential, a login waits only for logins of the same credential ---------


def test_connections_differing_only_in_their_secret_never_share_a_token(emulator):
    good = enos_hook(emulator)
    good.get_my_flows()
    bad = EnOSBatchHook("enos_batch_other")
    bad.use_connection(
        Connection(
            conn_id="enos_batch_other",
            conn_type="enos_batch",
            host=emulator.url,
            login="emulator-app-key",  # the same app key
            password="not-the-app-secret",
            extra=json.dumps({"org_id": "o15000000000001", "user_id": "u15000000000001", "max_retries": 0}),
        )
    )

    with pytest.raises(FlowPlatformError, match="Get Access Token failed: The encryption is not valid"):
        bad.get_my_flows()
    good.get_my_flows()

    assert emulator.stats()["token_requests"] == {"enos_gateway": 2}  # the good token stayed cached


def test_a_stalled_login_holds_up_only_logins_of_the_same_credential(emulator, monkeypatch):
    lsf_conn = quick_retry_connection(monkeypatch, emulator.url, "lsf_pm_default", read_timeout=10)
    emulator.inject_fault("act_then_slow", platform="lsf_pm", call_contains="/logon", delay=4)
    stalled = threading.Thread(target=lambda: get_hook(lsf_conn).get_instance("101"), daemon=True)
    stalled.start()
    # The fault used up: the LSF logon is now under way, held by the emulator.
    wait_for(lambda: not emulator.stats()["faults_pending"], 5, "the LSF logon to reach the emulator")

    started = time.monotonic()
    instance = get_hook("enos_batch_default").get_instance(INSTANCES["enos_batch"])
    elapsed = time.monotonic() - started
    stalled.join(timeout=15)

    assert instance.instance_id == INSTANCES["enos_batch"]
    assert stalled.is_alive() is False
    assert elapsed < 3.5  # it did not wait for the LSF logon (4 s)


# -- a deferred wait: its poll never runs past end_time by more than one attempt -----------------------------


async def test_a_trigger_whose_poll_trickles_ends_by_its_end_time_plus_one_attempt(emulator, monkeypatch):
    # Every answer trickles: each attempt fails at read_timeout, and the retries (5, with pauses) would take
    # about 12 s; end_time is 1 s away, one attempt lasts at most connect_timeout + read_timeout = 3 s.
    conn_id = quick_retry_connection(
        monkeypatch, emulator.url, "lsf_pm_default", max_retries=5, read_timeout=2, connect_timeout=1
    )
    await read(conn_id, "lsf_pm", "async")  # logged in: the trickle meets the poll itself
    emulator.inject_fault("trickle", platform="lsf_pm", delay=0.5, count=100)
    trigger = FlowInstanceTrigger(conn_id=conn_id, instance_id="101", poke_interval=0.2, end_time=time.time() + 1)

    started = time.monotonic()
    try:
        event = await asyncio.wait_for(trigger.run().__anext__(), timeout=30)
    finally:
        await close_shared_session()

    assert event.payload["status"] == "timeout"
    assert time.monotonic() - started < 1 + 3 + 3  # end_time, one attempt, a loaded machine's margin; not 12 s


# -- tokens the process still holds at exit ------------------------------------------------------------------


def test_tokens_this_process_obtained_and_still_holds_are_ended_at_exit_once(caplog):
    cache, ended = TokenCache(), []
    kept, taken, replaced, failing = (Token(name, math.inf) for name in ("kept", "taken", "replaced", "failing"))
    for key, token in (("a", kept), ("b", taken), ("c", replaced), ("d", failing)):
        cache.put(key, token, end_at_exit=ended.append)
    cache.put("d", failing, end_at_exit=lambda token: 1 / 0)
    cache.put("c", Token("newer", math.inf))  # a token needing no end replaced it
    cache.put("e", Token("plain", math.inf))  # never ended: its platform needs no logout

    assert cache.take_own("b") is taken and cache.get("b") is None  # its hook ends it now
    cache.end_at_exit()
    cache.end_at_exit()  # registered twice (a plain fork keeps the parent's handler): nothing twice

    assert ended == [kept]
    assert (cache.get("a"), cache.get("c").value, cache.get("e").value) == (None, "newer", "plain")
    assert "Could not end a session at exit" in caplog.text


def test_a_token_inherited_from_the_parent_process_is_used_but_never_ended(monkeypatch):
    cache, ended = TokenCache(), []
    inherited = Token("parents", math.inf)
    cache.put("a", inherited, end_at_exit=ended.append)
    monkeypatch.setattr(os, "getpid", lambda: -1)  # now in a forked child

    assert cache.get("a") is inherited
    assert cache.take_own("a") is None
    cache.end_at_exit()

    assert ended == [] and cache.get("a") is inherited


async def test_only_requests_that_may_be_sent_twice_take_the_kept_alive_http1_path(emulator, monkeypatch):
    # http1 sends a request once more when its kept-alive connection turns out closed as it is sent: a start
    # (never sent twice blindly) goes over aiohttp on a connection of its own instead.
    over_http1: list[str] = []
    exchange = http1.Pool.exchange

    async def recording(self, target, method, headers, body, **kwargs):
        over_http1.append(f"{method} {target.path.decode()}")
        return await exchange(self, target, method, headers, body, **kwargs)

    monkeypatch.setattr(http1.Pool, "exchange", recording)
    hook = EnOSBatchHook(quick_retry_connection(monkeypatch, emulator.url))
    try:
        instance_id = await hook.astart_run("5303")
        instance = await hook.aget_instance(instance_id, include_graph=False)
    finally:
        await close_shared_session()

    assert instance.instance_id == instance_id
    assert any(request.startswith("GET ") and instance_id in request for request in over_http1)
    assert not any("action=trigger" in request for request in over_http1), over_http1


# -- Together: operations an operation asks for at once ------------------------------------------------------


@dataclass
class Anonymous(AuthenticatorDefaults):
    platform: str = "toy"
    cache_key: str = "anonymous"

    def login(self) -> None:
        return None

    def secrets(self) -> tuple[str, ...]:
        return ()


def get_body(url: str) -> Operation[bytes]:
    response = yield HttpRequest("GET", url, call="Read", authenticated=False)
    if response.status != 200:
        raise FlowPlatformError("toy", "Read", f"HTTP {response.status}")
    return response.body


def reads_together(server: ScriptedServer) -> Operation[list[bytes]]:
    bodies = yield Together(tuple(get_body(f"{server.url}/{name}") for name in ("a", "b", "c")))
    return bodies  # type: ignore[return-value]


async def test_operations_asked_for_together_run_side_by_side_on_the_async_path():
    settings = TransportSettings(platform="toy", auth=Anonymous())
    async with ScriptedServer(lambda n, m, request: scripted_answer(request.split(b" ")[1]), delay=0.2) as server:
        try:
            bodies = await AsyncTransport(settings).run(reads_together(server))
        finally:
            await close_shared_session()

    assert bodies == [b"/a", b"/b", b"/c"]  # each its own answer, in the order asked
    assert server.events[:3] == ["request 1", "request 2", "request 3"]  # all sent before any was answered


def test_operations_asked_for_together_run_in_turn_on_the_sync_path():
    settings = TransportSettings(platform="toy", auth=Anonymous())

    async def serve_and_read() -> tuple[list[bytes], list[str]]:
        async with ScriptedServer(lambda n, m, request: scripted_answer(request.split(b" ")[1])) as server:
            bodies = await asyncio.to_thread(SyncTransport(settings).run, reads_together(server))
        return bodies, server.events

    bodies, events = asyncio.run(serve_and_read())

    assert bodies == [b"/a", b"/b", b"/c"]
    assert events == ["request 1", "answer 1", "request 2", "answer 2", "request 3", "answer 3"]


@pytest.mark.parametrize("path", ["sync", "async"])
def test_the_first_failure_of_operations_asked_for_together_reaches_the_operation(path):
    settings = TransportSettings(platform="toy", auth=Anonymous(), max_retries=0)

    def caught(server: ScriptedServer) -> Operation[str]:
        try:
            yield from reads_together(server)
        except FlowPlatformError as error:
            return str(error)
        return "no error"

    async def serve_and_read() -> str:
        def script(n: int, m: int, request: bytes) -> bytes:
            return scripted_answer(status="404 Not Found" if b"/b " in request else "200 OK")

        async with ScriptedServer(script) as server:
            if path == "sync":
                return await asyncio.to_thread(SyncTransport(settings).run, caught(server))
            try:
                return await AsyncTransport(settings).run(caught(server))
            finally:
                await close_shared_session()

    assert "Read failed" in asyncio.run(serve_and_read())
