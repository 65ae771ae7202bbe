"""EnOSBatchHook: every call of API.md against the emulator, and the connection's fields."""

from __future__ import annotations

import json

import certifi
import pytest
from airflow.sdk import Connection

from airflow_provider_flowinst.errors import FlowInstanceNotFound, FlowPlatformError
from airflow_provider_flowinst.hooks import get_hook
from airflow_provider_flowinst.hooks.enos_batch import EnOSBatchHook
from airflow_provider_flowinst.models import FlowState
from airflow_provider_flowinst.testing.emulator.credentials import ENOS_APP_SECRET, ENOS_ORG_ID, ENOS_USER_ID


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

    assert instance_id == "3318-20300101000000"
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
    spec = {
        "conn_type": "enos_batch",
        "host": emulator.url,
        "login": "emulator-app-key",
        "password": ENOS_APP_SECRET,
        "extra": {"org_id": ENOS_ORG_ID, "user_id": ENOS_USER_ID, "api_version": "v2.0"},
    }
    monkeypatch.setenv("AIRFLOW_CONN_ENOS_V20", json.dumps(spec))
    assert EnOSBatchHook("enos_v20").get_instance("2809-20320101000000").flow_id == "2809"
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
