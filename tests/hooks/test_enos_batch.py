"""EnOSBatchHook: every call of API.md against the emulator, and the connection's fields."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import time

import certifi
import pytest
import requests
from airflow.sdk import Connection

from airflow_provider_flowinst.errors import AmbiguousStart, FlowInstanceNotFound, FlowPlatformError
from airflow_provider_flowinst.hooks import get_hook
from airflow_provider_flowinst.hooks.enos_batch import EnOSBatchHook
from airflow_provider_flowinst.models import FlowState
from airflow_provider_flowinst.protocol import StartAttempt
from airflow_provider_flowinst.testing.connections import emulator_connection_specs
from airflow_provider_flowinst.testing.emulator.credentials import (
    ENOS_APP_KEY,
    ENOS_APP_SECRET,
    ENOS_ORG_ID,
    ENOS_USER_ID,
)
from airflow_provider_flowinst.transport import close_shared_session
from tests.helpers import quick_retry_connection, wait_for


def test_get_hook_picks_the_hook_by_conn_type(emulator):
    hook = get_hook("enos_batch_default")
    assert isinstance(hook, EnOSBatchHook)
    assert hook.enos_batch_conn_id == "enos_batch_default"


def test_get_flow_instance_returns_the_platforms_record(emulator):
    record = EnOSBatchHook().get_flow_instance("2809-20320101000000")

    assert record["instanceId"] == "2809-20320101000000"
    assert isinstance(record["graph"], str)  # the platform's own record, graph still JSON text


def test_get_instance_is_normalised_with_graph_and_link(emulator):
    instance = EnOSBatchHook("enos_batch_default").get_instance("2809-20320101000000")

    assert instance.platform == "enos_batch"
    assert instance.flow_id == "2809"
    assert instance.url == f"{emulator.url}/console/batch/instances/2809-20320101000000"
    assert [node.id for node in instance.graph.nodes] == ["t_104890", "t_104891", "t_104892", "f_2808"]


def test_get_instance_without_graph(emulator):
    assert EnOSBatchHook().get_instance("2809-20320101000000", include_graph=False).graph is None


def test_an_unknown_instance_is_not_found(emulator):
    with pytest.raises(FlowInstanceNotFound) as error:
        EnOSBatchHook().get_instance("9999-20320101000000")
    assert error.value.code == "62102"
    assert "Get Flow Instance failed" in str(error.value)


def test_get_my_flows_matches_by_id_or_name(emulator):
    assert [flow["flowName"] for flow in EnOSBatchHook().get_my_flows("map")] == ["map"]
    assert [flow["flowId"] for flow in EnOSBatchHook().get_my_flows("3318")] == ["3318"]
    assert len(EnOSBatchHook().get_my_flows()) >= 4


def test_trigger_then_search_then_cancel(emulator):
    hook = EnOSBatchHook()
    instance_id = hook.trigger_flow("3318", trigger_time=1893456000000)  # 2030-01-01T00:00:00Z

    assert instance_id == "3318-20300101080000"  # the id's time is the deployment's (the emulator's: GMT+8)
    found = hook.search_flow_instances(expression="reduce_entity", page_size=1)
    assert instance_id in {item["instanceId"] for item in found}

    hook.cancel_flow_instance(instance_id)
    cancelled = hook.get_instance(instance_id)
    assert (cancelled.state, cancelled.raw_state) == (FlowState.CANCELLED, "CANCEL")
    assert {node.state for node in cancelled.graph.nodes} == {FlowState.CANCELLED}


def test_a_second_trigger_within_a_minute_is_refused_by_the_platform(emulator):
    hook = EnOSBatchHook()
    hook.trigger_flow("5109", trigger_time=1893542400000)
    with pytest.raises(FlowPlatformError, match="triggered less than one minute ago"):
        hook.trigger_flow("5109", trigger_time=1893542410000)


def test_triggering_an_unknown_flow_fails_at_once(emulator):
    with pytest.raises(FlowInstanceNotFound, match="Trigger Flow failed: Invalid parameter: the flow does not exist"):
        EnOSBatchHook().trigger_flow("424242")


def test_get_task_instance_log(emulator):
    log = EnOSBatchHook().get_task_instance_log("104890-20320101000000", max_length=20)
    assert log == "[emulator] log of ta"


def test_blank_ids_are_refused_before_any_call(emulator):
    with pytest.raises(FlowPlatformError, match="the instance id is empty"):
        EnOSBatchHook().get_instance("  ")
    assert emulator.stats()["requests"] == {}


def test_ids_with_reserved_characters_travel_as_one_signed_value(emulator):
    with pytest.raises(FlowInstanceNotFound):  # reached the platform, signature accepted, no such instance
        EnOSBatchHook().get_instance("2809-2032&orgId=x/../?#流")


def test_the_v20_base_path_works_too(emulator, monkeypatch):
    assert v20_hook(emulator, monkeypatch).get_instance("2809-20320101000000").flow_id == "2809"
    assert "enos_batch GET /dataflow-batch-service/v2.0/flowInstances" in emulator.stats()["requests"]


def make_hook(**fields) -> EnOSBatchHook:
    extra = fields.pop("extra", {"org_id": "o", "user_id": "u"})
    connection = Connection(
        conn_id="c",
        conn_type="enos_batch",
        **{"host": "gw.example.com", "login": "k", "password": "s", **fields},
        extra=json.dumps(extra),
    )
    hook = EnOSBatchHook("c")
    hook.use_connection(connection)
    return hook


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"extra": {"user_id": "u"}}, "the connection's extra 'org_id' is required"),
        ({"extra": {"org_id": "o"}}, "the connection's extra 'user_id' is required"),
        ({"login": None}, "the connection's login (the application's appKey) is required"),
        ({"host": None}, "the connection's host (the API base URL) is required"),
        ({"extra": {"org_id": "o", "user_id": "u", "api_version": "v9"}}, "api_version must be one of"),
        ({"extra": {"org_id": "o", "user_id": "u", "timezone": "Mars/Base"}}, "unknown timezone 'Mars/Base'"),
        ({"schema": "ftp"}, "schema must be http or https"),
    ],
)
def test_connection_problems_are_clear_platform_errors(fields, message):
    with pytest.raises(FlowPlatformError) as error:
        make_hook(**fields)
    assert "EnOS Batch Processing: reading connection 'c' failed:" in str(error.value)
    assert message in str(error.value)


@pytest.mark.parametrize(
    ("fields", "base_url"),
    [
        ({"host": "gw.example.com"}, "https://gw.example.com"),
        ({"host": "gw.example.com", "schema": "http", "port": 8080}, "http://gw.example.com:8080"),
        ({"host": "http://127.0.0.1:9000/"}, "http://127.0.0.1:9000"),
    ],
)
def test_base_url_from_host_schema_and_port(fields, base_url):
    assert make_hook(**fields).client.settings.base_url == base_url


@pytest.mark.parametrize(
    ("verify", "expected"),
    # A CA bundle path must exist (a typo is refused when the connection is read): certifi's bundle does.
    [(None, True), (False, False), ("false", False), ("true", True), (certifi.where(), certifi.where())],
)
def test_tls_verification_is_on_unless_the_connection_turns_it_off(verify, expected):
    extra = {"org_id": "o", "user_id": "u"} | ({} if verify is None else {"verify": verify})
    assert make_hook(extra=extra)._settings.verify == expected


def test_extras_are_also_read_under_their_ui_prefixed_names():
    hook = make_hook(extra={"extra__enos_batch__org_id": "o9", "extra__enos_batch__user_id": "u9"})
    assert (hook.client.settings.org_id, hook.client.settings.user_id) == ("o9", "u9")


def test_a_connection_of_another_type_is_refused():
    hook = EnOSBatchHook("c")
    with pytest.raises(FlowPlatformError, match="its conn_type is 'http', but EnOSBatchHook needs 'enos_batch'"):
        hook.use_connection(Connection(conn_id="c", conn_type="http", host="h"))


def test_get_hook_refuses_an_unknown_conn_type(monkeypatch):
    monkeypatch.setenv("AIRFLOW_CONN_NOT_A_FLOW", json.dumps({"conn_type": "http", "host": "h"}))
    with pytest.raises(FlowPlatformError, match="conn_type 'http' is not a flow platform; use one of: dataworks"):
        get_hook("not_a_flow")


def test_test_connection_reports_success_and_failure(emulator):
    assert EnOSBatchHook().test_connection() == (True, "Connected to EnOS Batch Processing")
    ok, message = make_hook(host=emulator.url, login="emulator-app-key", password="wrong-secret").test_connection()
    assert not ok and "The encryption is not valid" in message and "wrong-secret" not in message


# -- what the emulator refuses, and the client sends ------------------------------------------------------


@pytest.fixture
def enos_settings(emulator):
    """Changes the emulated service's settings (page caps, count, time zone) for one test."""

    def change(**settings):
        return emulator.control("POST", "/_emulator/enos_batch/settings", settings)

    yield change
    emulator.control("POST", "/_emulator/enos_batch/settings", {"reset": True})


def send(hook: EnOSBatchHook, method: str, resource: str, action: str, body=None, **params):
    """A request built by hand (e.g. as the old client built it), signed and sent by the hook's transport."""
    client = hook.client
    return hook.perform(
        client._call(client._request(method, resource, action, f"{resource}?action={action}", params, body))
    )


FULL_SEARCH = {
    "type": 1,
    "expression": "map",
    "owner": "",
    "fromTriggerTime": 946684800000,
    "toTriggerTime": 4102444800000,
    "status": "1,2",
}


@pytest.mark.parametrize("missing", list(FULL_SEARCH))
def test_the_emulator_refuses_a_search_without_a_mandatory_field(emulator, missing):
    body = {key: value for key, value in FULL_SEARCH.items() if key != missing}
    with pytest.raises(FlowPlatformError, match=f"{missing} is mandatory") as error:
        send(EnOSBatchHook(), "POST", "flowInstances", "search", body)
    assert error.value.code == "62102"


def test_the_emulator_refuses_the_old_clients_search(emulator):
    old = {"expression": "map", "status": "0,2", "pagination": {"pageNo": 1, "pageSize": 100}}
    with pytest.raises(FlowPlatformError, match="type, owner, fromTriggerTime, toTriggerTime is mandatory"):
        send(EnOSBatchHook(), "POST", "flowInstances", "search", old)


def create(emulator, flow_id: str, start: dt.datetime, count: int) -> list[str]:
    return [
        emulator.create_enos_batch_instance(flow_id, f"{flow_id}-{start + dt.timedelta(seconds=n):%Y%m%d%H%M%S}")
        for n in range(count)
    ]


def window(start: dt.datetime) -> dict:
    """The trigger-time filters of the day ``start`` is in, at the emulator's GMT+8."""
    zone = dt.timezone(dt.timedelta(hours=8))
    day = start.replace(hour=0, minute=0, second=0, tzinfo=zone)
    from_ms = int(day.timestamp() * 1000)
    return {"fromTriggerTime": from_ms, "toTriggerTime": from_ms + 86_400_000}


@pytest.mark.parametrize("count_means", ["total", "page"])
def test_no_row_is_lost_when_the_service_caps_its_pages(emulator, enos_settings, count_means):
    start = dt.datetime(2041, 3, 1, 10, 0, 0)
    created = create(emulator, "4000", start, 45)
    enos_settings(page_cap=20, count=count_means)
    hook = EnOSBatchHook()

    found = hook.search_flow_instances(type=1, expression="4000", **window(start))

    assert sorted(row["instanceId"] for row in found) == sorted(created)
    searches = emulator.stats()["requests"]["enos_batch POST /batch-processing-service/v2.1/flowInstances"]
    assert searches == (3 if count_means == "total" else 4)  # 20 + 20 + 5 rows (+ the empty page)
    assert hook.client.page_size == 20


def test_a_page_size_the_service_refuses_is_asked_smaller_and_remembered(emulator, enos_settings):
    start = dt.datetime(2041, 3, 2, 10, 0, 0)
    created = create(emulator, "4000", start, 25)
    enos_settings(max_page_size=20)
    hook = EnOSBatchHook()

    assert len(hook.search_flow_instances(type=1, expression="4000", **window(start))) == len(created)
    assert hook.client.page_size == 20
    emulator.control("POST", "/_emulator/reset")
    assert len(hook.search_flow_instances(type=1, expression="4000", **window(start))) == len(created)
    assert emulator.stats()["requests"]["enos_batch POST /batch-processing-service/v2.1/flowInstances"] == 2


def test_trigger_refuses_parameters_and_update_and_trigger_applies_them(emulator):
    hook = EnOSBatchHook()
    with pytest.raises(FlowPlatformError, match="Invalid parameter: parameters") as error:
        send(hook, "POST", "flows", "trigger", {"flowId": 5101, "parameters": '[{"key":"day","value":"1"}]'})
    assert error.value.code == "62102"

    instance_id = hook.trigger_flow("5101", parameters={"day": "2024-01-01"})

    assert hook.get_instance(instance_id).details["parameters"] == [{"key": "day", "value": "2024-01-01"}]


def test_the_emulator_refuses_a_trigger_without_its_mandatory_trigger_time(emulator, enos_settings):
    with pytest.raises(FlowPlatformError, match="triggerTime are mandatory") as error:
        send(EnOSBatchHook(), "POST", "flows", "trigger", {"flowId": 5102})
    assert error.value.code == "62102"

    enos_settings(require_trigger_time=False)  # a lenient service triggers it now
    assert send(EnOSBatchHook(), "POST", "flows", "trigger", {"flowId": 5102})["flowInstanceId"].startswith("5102-")


def test_a_trigger_without_a_time_is_accepted_by_the_strict_service_and_runs_now(emulator):
    before = dt.datetime.now(dt.timezone(dt.timedelta(hours=8))).replace(tzinfo=None, microsecond=0)
    instance_id = EnOSBatchHook().trigger_flow("5103")

    stamp = dt.datetime.strptime(instance_id.rsplit("-", 1)[1], "%Y%m%d%H%M%S")  # the emulator's GMT+8
    assert before - dt.timedelta(seconds=5) <= stamp <= before + dt.timedelta(seconds=65)


def v20_hook(emulator, monkeypatch) -> EnOSBatchHook:
    spec = {
        "conn_type": "enos_batch",
        "host": emulator.url,
        "login": "emulator-app-key",
        "password": ENOS_APP_SECRET,
        "extra": {"org_id": ENOS_ORG_ID, "user_id": ENOS_USER_ID, "api_version": "v2.0"},
    }
    monkeypatch.setenv("AIRFLOW_CONN_ENOS_V20", json.dumps(spec))
    return EnOSBatchHook("enos_v20")


def test_v20_pages_from_zero_and_get_my_flow_by_search_value(emulator, monkeypatch):
    start = dt.datetime(2041, 3, 3, 10, 0, 0)
    created = create(emulator, "4000", start, 3)
    hook = v20_hook(emulator, monkeypatch)

    found = hook.search_flow_instances(type=1, expression="4000", page_size=1, **window(start))

    assert sorted(row["instanceId"] for row in found) == sorted(created)  # from 1, the first row was lost
    assert [flow["flowName"] for flow in hook.get_my_flows("map")] == ["map"]
    with pytest.raises(FlowPlatformError, match="expression \\(this version filters with searchValue\\)"):
        send(hook, "GET", "flows", "getMyFlow", expression="map")
    with pytest.raises(FlowPlatformError, match="searchValue \\(this version filters with expression\\)"):
        send(EnOSBatchHook(), "GET", "flows", "getMyFlow", searchValue="map")


def test_v21_refuses_page_zero(emulator):
    body = {**FULL_SEARCH, "pagination": {"pageNo": 0, "pageSize": 10}}
    with pytest.raises(FlowPlatformError, match="pageNo starts at 1"):
        send(EnOSBatchHook(), "POST", "flowInstances", "search", body)


# -- the deployment's time zone ---------------------------------------------------------------------------


def started_on_the_emulator(emulator, instance_id: str) -> None:
    """Until the run has a start time (read from the emulator's own state, not through the hook)."""
    wait_for(
        lambda: emulator.control("GET", "/_emulator/enos_batch/instances")[instance_id]["startTime"],
        20,
        f"{instance_id} to start",
    )


@pytest.mark.parametrize("zone", ["GMT+8", "GMT-5"])
def test_without_a_timezone_extra_times_are_read_in_the_zone_the_service_reports(emulator, enos_settings, zone):
    enos_settings(timezone=zone)
    hook = EnOSBatchHook()
    instance_id = emulator.create_enos_batch_instance("5102", queued_seconds=0, running_seconds=1)
    started_on_the_emulator(emulator, instance_id)

    first = hook.get_instance(instance_id)
    hook.get_instance(instance_id)

    started = first.started_at
    assert started is not None and abs((started - dt.datetime.now(dt.timezone.utc)).total_seconds()) < 120
    assert emulator.stats()["requests"]["enos_batch GET /batch-processing-service/v2.1/time"] == 1


def test_a_timezone_extra_is_used_without_asking(emulator, monkeypatch):
    spec = emulator_connection_specs(emulator.url)["enos_batch_default"]
    spec["extra"] = {**spec["extra"], "timezone": "Asia/Shanghai"}
    monkeypatch.setenv("AIRFLOW_CONN_ENOS_SHANGHAI", json.dumps(spec))

    EnOSBatchHook("enos_shanghai").get_instance("2809-20320101000000")

    assert "enos_batch GET /batch-processing-service/v2.1/time" not in emulator.stats()["requests"]


# -- the gateway's own check of signatures ----------------------------------------------------------------


def test_the_gateway_checks_signatures_as_its_doc_writes_them(emulator):
    stamp = int(time.time() * 1000)
    encryption = hashlib.sha256(f"{ENOS_APP_KEY}{stamp}{ENOS_APP_SECRET}".encode()).hexdigest()
    answer = requests.post(
        f"{emulator.url}/apim-token-service/v2.0/token/get",
        json={"appKey": ENOS_APP_KEY, "encryption": encryption, "timestamp": stamp},
        timeout=10,
    )
    token = answer.json()["data"]["accessToken"]
    query = [("action", "get"), ("flowInstId", "2809-20320101000000"), ("userId", ENOS_USER_ID), ("orgId", ENOS_ORG_ID)]

    def call(order):
        stamp = str(int(time.time() * 1000))
        params_data = "".join(key + value for key, value in order)
        signature = hashlib.sha256(f"{token}{params_data}{stamp}{ENOS_APP_SECRET}".encode()).hexdigest()
        headers = {"apim-accesstoken": token, "apim-timestamp": stamp, "apim-signature": signature}
        return requests.get(
            f"{emulator.url}/batch-processing-service/v2.1/flowInstances", params=query, headers=headers
        )

    assert call(sorted(query)).json()["code"] == 0  # sorted by key, joined k1v1k2v2
    unsorted = call(query)
    assert (unsorted.status_code, unsorted.json()["code"]) == (401, "1003")


# -- starting exactly once --------------------------------------------------------------------------------


def instances_of(emulator, flow: str) -> set[str]:
    listed = emulator.control("GET", "/_emulator/enos_batch/instances")
    return {instance_id for instance_id, record in listed.items() if str(record["flowId"]) == flow}


START_CASES = [("act_then_503", "5300"), ("act_then_reset", "5301"), ("act_then_slow", "5302")]


@pytest.mark.parametrize(("fault", "flow"), START_CASES)
def test_a_trigger_whose_answer_is_lost_makes_exactly_one_run(emulator, monkeypatch, fault, flow):
    conn_id = quick_retry_connection(monkeypatch, emulator.url, read_timeout=1)
    before = instances_of(emulator, flow)
    emulator.inject_fault(fault, platform="enos_batch", call_contains="action=trigger", delay=3)

    instance_id = EnOSBatchHook(conn_id).start_run(flow)

    assert instances_of(emulator, flow) - before == {instance_id}
    assert emulator.stats()["requests"][f"enos_batch acted, answer spoilt: {fault}"] == 1


ASYNC_CASES = [
    ("act_then_503", "5303", None, "action=trigger"),
    ("act_then_reset", "5304", {"day": "2024-01-01"}, "action=updateAndTrigger"),
    ("act_then_slow", "5305", None, "action=trigger"),
]


@pytest.mark.parametrize(("fault", "flow", "parameters", "call"), ASYNC_CASES)
async def test_an_async_trigger_whose_answer_is_lost_makes_exactly_one_run(
    emulator, monkeypatch, fault, flow, parameters, call
):
    conn_id = quick_retry_connection(monkeypatch, emulator.url, read_timeout=1)
    before = instances_of(emulator, flow)
    emulator.inject_fault(fault, platform="enos_batch", call_contains=call, delay=3)
    try:
        instance_id = await EnOSBatchHook(conn_id).astart_run(flow, parameters)
    finally:
        await close_shared_session()

    assert instances_of(emulator, flow) - before == {instance_id}
    assert emulator.stats()["requests"][f"enos_batch acted, answer spoilt: {fault}"] == 1


def test_a_second_start_within_a_minute_names_the_first_run_and_starts_none(emulator):
    hook = EnOSBatchHook()
    first = hook.start_run("5306")
    # A second later than the first by the attempt's clock (the instance shows its trigger time to the
    # second), well within the minute the platform refuses a second trigger in.
    a_second_later = StartAttempt.new("5306", int(time.time() * 1000) + 1000)

    with pytest.raises(AmbiguousStart, match=first) as error:
        hook.start_run("5306", attempt=a_second_later)

    assert not isinstance(error.value, FlowInstanceNotFound)
    assert instances_of(emulator, "5306") >= {first} and len(instances_of(emulator, "5306")) == 1


def test_a_crashed_attempt_is_found_again(emulator):
    hook = EnOSBatchHook()
    attempt = StartAttempt.new("5307", int(time.time() * 1000))
    instance_id = hook.start_run("5307", attempt=attempt)

    assert EnOSBatchHook().find_started_run(attempt) == instance_id
    assert EnOSBatchHook().find_started_run(StartAttempt.new("5308", int(time.time() * 1000))) is None


def test_a_caller_with_a_short_budget_holds_the_hooks_calls_to_it(emulator, monkeypatch):
    # The Remote graph tab's live read: its own bounds, never longer than the connection's own.
    conn_id = quick_retry_connection(monkeypatch, emulator.url, read_timeout=2, max_retries=0)
    hook = get_hook(conn_id)

    hook.limit_calls(connect_timeout=3, read_timeout=5, max_retries=1, retry_max_wait=1, max_response_bytes=1024**2)
    emulator.inject_fault("503", platform="enos_batch", count=5)

    assert hook.attempt_seconds == 3 + 2  # the tab's connect timeout, the connection's shorter read timeout
    with pytest.raises(FlowPlatformError, match="HTTP 503"):
        hook.get_instance("2809-20240101000000")
    calls = emulator.stats()["requests"]["enos_batch GET /batch-processing-service/v2.1/flowInstances"]
    assert calls == 1  # the connection's 0 retries held, not the tab's 1
