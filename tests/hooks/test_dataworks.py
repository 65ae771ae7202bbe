"""DataWorksHook against the emulator: every call, the signature check, faults and the connection."""

from __future__ import annotations

import ast
import asyncio
import datetime as dt
import inspect
import json
import time

import pytest
import requests
from aiohttp.test_utils import make_mocked_request

from airflow_provider_flowinst.batching import InstancePoller
from airflow_provider_flowinst.errors import FlowInstanceNotFound, FlowPlatformError
from airflow_provider_flowinst.hooks import get_hook
from airflow_provider_flowinst.hooks.dataworks import DataWorksHook
from airflow_provider_flowinst.models import FlowState
from airflow_provider_flowinst.platforms.dataworks import (
    DataWorksClient,
    DataWorksSettings,
    DataWorksSigner,
    sign_request,
)
from airflow_provider_flowinst.protocol import HttpResponse, StartAttempt
from airflow_provider_flowinst.testing.emulator import credentials as creds
from airflow_provider_flowinst.testing.emulator import dataworks as emulator_dataworks
from airflow_provider_flowinst.testing.emulator.dataworks import (
    STS_ACCESS_KEY_ID,
    STS_ACCESS_KEY_SECRET,
    STS_SECURITY_TOKEN,
)
from airflow_provider_flowinst.transport import SyncTransport, TransportSettings, close_shared_session
from tests.helpers import instance_reaching, quick_retry_connection

#: A short run: 0.5 emulated s queued, 2 s running; at time scale 0.1 it ends within 0.3 wall s.
QUICK = {"queued_seconds": 0.5, "running_seconds": 2.0}


def use_connection(monkeypatch, conn_id: str, **fields) -> None:
    spec = {"conn_type": "dataworks", **fields}
    monkeypatch.setenv(f"AIRFLOW_CONN_{conn_id.upper()}", json.dumps(spec))


def emulator_extra(emulator, **extra) -> dict:
    return {"endpoint": emulator.url, "project_id": creds.DATAWORKS_PROJECT_ID, **extra}


# -- reading instances -------------------------------------------------------------------------------


def test_get_instance_follows_the_run_to_success_with_its_graph(emulator):
    hook = DataWorksHook()
    # Connected before the run starts: on Airflow 3.1 the first connection lookup takes longer than the quick
    # run's queued phase.
    hook.check_connection()
    instance_id = emulator.create_dataworks_instance(1001, **QUICK)

    first = hook.get_instance(instance_id)
    assert first.state in (FlowState.QUEUED, FlowState.RUNNING)
    instance = instance_reaching(hook, instance_id)

    assert instance.state is FlowState.SUCCESS and instance.raw_state == "Success"
    assert instance.platform == "dataworks" and instance.flow_id == "1001" and instance.instance_id == instance_id
    assert instance.started_at is not None and instance.ended_at is not None
    assert instance.started_at <= instance.ended_at
    graph = instance.to_dict()["graph"]
    names = {node["id"]: node["name"] for node in graph["nodes"]}
    assert sorted(names.values()) == ["check_quality", "clean_orders", "extract_orders", "load_mart"]
    assert all(node["state"] == "success" and node["kind"] == "task" for node in graph["nodes"])
    edges = {(names[edge["source"]], names[edge["target"]]) for edge in graph["edges"]}
    assert edges == {
        ("extract_orders", "clean_orders"),
        ("extract_orders", "check_quality"),
        ("clean_orders", "load_mart"),
        ("check_quality", "load_mart"),
    }
    json.dumps(instance.to_dict())


def test_a_failing_workflow_ends_failed_with_its_last_task_failed(emulator):
    instance_id = emulator.create_dataworks_instance(1002, **QUICK)

    instance = instance_reaching(DataWorksHook(), instance_id)

    assert instance.state is FlowState.FAILED and instance.raw_state == "Failure"
    assert {node.name: node.raw_state for node in instance.graph.nodes} == {"ingest": "Success", "compute": "Failure"}


def test_without_graph_no_task_calls_are_made(emulator):
    instance_id = emulator.create_dataworks_instance(1001, **QUICK)

    instance = DataWorksHook().get_instance(instance_id, include_graph=False)

    assert instance.graph is None
    assert emulator.stats()["requests"] == {"dataworks GET /": 1}  # GetWorkflowInstance only


async def test_aget_instance_reads_the_same_instance(emulator):
    instance_id = emulator.create_dataworks_instance(1001, **QUICK)

    instance = await DataWorksHook().aget_instance(instance_id)

    assert instance.instance_id == instance_id
    assert instance.graph is not None and len(instance.graph.nodes) == 4


def test_get_workflow_instance_returns_the_platform_record(emulator):
    instance_id = emulator.create_dataworks_instance(1001, name="nightly", **QUICK)

    record = DataWorksHook().get_workflow_instance(instance_id)

    assert record["Id"] == int(instance_id)
    assert record["Name"] == "nightly"
    assert record["ProjectId"] == creds.DATAWORKS_PROJECT_ID
    assert record["Status"] in ("NotRun", "Running", "Success")


def test_a_missing_instance_is_flow_instance_not_found(emulator):
    with pytest.raises(FlowInstanceNotFound) as caught:
        DataWorksHook().get_instance("123")

    assert caught.value.code == "EntityNotExists.WorkflowInstance"
    assert caught.value.http_status == 404


def test_list_task_instances_reads_every_task_of_the_instance(emulator):
    hook = DataWorksHook()
    instance_id = emulator.create_dataworks_instance(1001, **QUICK)
    bizdate = hook.get_workflow_instance(instance_id)["BizDate"]

    tasks = hook.list_task_instances(workflow_instance_id=instance_id, bizdate=bizdate)
    again = hook.list_task_instances(workflow_instance_id=instance_id, bizdate=bizdate, project_id=100)

    assert sorted(task["TaskName"] for task in tasks) == [
        "check_quality",
        "clean_orders",
        "extract_orders",
        "load_mart",
    ]
    assert {task["WorkflowInstanceId"] for task in tasks} == {int(instance_id)}
    assert [task["Id"] for task in again] == [task["Id"] for task in tasks]


def test_list_upstream_task_instances(emulator):
    hook = DataWorksHook()
    instance_id = emulator.create_dataworks_instance(1001, **QUICK)
    bizdate = hook.get_workflow_instance(instance_id)["BizDate"]
    by_name = {
        t["TaskName"]: t["Id"] for t in hook.list_task_instances(workflow_instance_id=instance_id, bizdate=bizdate)
    }

    upstream = hook.list_upstream_task_instances(str(by_name["load_mart"]))

    assert sorted(entry["TaskInstance"]["TaskName"] for entry in upstream) == ["check_quality", "clean_orders"]
    assert {entry["DependencyType"] for entry in upstream} == {"Normal"}


def test_list_workflow_instances_finds_instances_by_id(emulator):
    hook = DataWorksHook()
    first = emulator.create_dataworks_instance(1001, **QUICK)
    second = emulator.create_dataworks_instance(1002, **QUICK)
    bizdate = hook.get_workflow_instance(first)["BizDate"]

    found = hook.list_workflow_instances(bizdate=bizdate, ids=[first, second])
    only_1002 = hook.list_workflow_instances(bizdate=bizdate, workflow_id=1002, ids=[first, second])

    assert sorted(str(record["Id"]) for record in found) == sorted([first, second])
    assert [str(record["Id"]) for record in only_1002] == [second]


# -- creating and stopping ---------------------------------------------------------------------------


def test_create_workflow_instances_waits_for_the_asynchronous_result(emulator):
    hook = DataWorksHook()

    ids = hook.create_workflow_instances(workflow_id="1001", name="from airflow", parameters={"region": "east 1"})

    assert len(ids) == 1 and ids[0].isdigit()
    record = hook.get_workflow_instance(ids[0])
    assert record["Name"] == "from airflow" and record["Type"] == "ManualWorkflow"
    assert json.loads(record["WorkflowParameters"]) == {"region": "east 1"}
    requests_made = emulator.stats()["requests"]
    assert requests_made["dataworks POST /"] >= 1 and requests_made["dataworks GET /"] >= 2  # polled until Created


async def test_creation_polls_on_the_async_transport_too(emulator):
    hook = DataWorksHook()
    client = await hook.aclient()

    ids = await hook.aperform(client.create_workflow_instances(workflow_id="1001", name="async run"))

    assert (await hook.aget_instance(ids[0], include_graph=False)).name == "async run"


def test_create_failure_carries_the_platforms_failure_message(emulator):
    with pytest.raises(FlowPlatformError) as caught:
        DataWorksHook().create_workflow_instances(workflow_id="9999")

    message = str(caught.value)
    assert message.startswith("DataWorks: GetCreateWorkflowInstancesResult failed")
    assert "The workflow 9999 does not exist in project 100." in message
    assert caught.value.code == "CreateFailure"


def test_stop_workflow_instances_ends_the_instance_in_failure(emulator):
    hook = DataWorksHook()
    instance_id = emulator.create_dataworks_instance(1003, queued_seconds=0.0)

    info = hook.stop_workflow_instances([instance_id])

    assert info == {instance_id: {"Success": True, "Message": ""}}
    instance = hook.get_instance(instance_id)
    assert instance.state is FlowState.FAILED and instance.ended_at is not None
    assert [node.raw_state for node in instance.graph.nodes] == ["Failure"]
    with pytest.raises(FlowPlatformError, match="already finished"):
        hook.stop_workflow_instances(instance_id)


# -- authentication ----------------------------------------------------------------------------------


def test_a_wrong_secret_is_refused_with_the_platforms_message_and_no_secret(emulator, monkeypatch):
    wrong = "not-the-right-secret-4711"
    use_connection(
        monkeypatch,
        "dw_wrong_secret",
        login=creds.DATAWORKS_ACCESS_KEY_ID,
        password=wrong,
        extra=emulator_extra(emulator),
    )

    with pytest.raises(FlowPlatformError) as caught:
        DataWorksHook("dw_wrong_secret").get_instance("700001")

    exc = caught.value
    assert not isinstance(exc, FlowInstanceNotFound)
    assert exc.code == "SignatureDoesNotMatch" and exc.http_status == 400
    assert str(exc).startswith("DataWorks: GetWorkflowInstance failed: Specified signature does not match")
    assert wrong not in str(exc) and creds.DATAWORKS_ACCESS_KEY_SECRET not in str(exc)


def test_an_unknown_access_key_is_not_mistaken_for_a_missing_instance(emulator, monkeypatch):
    use_connection(monkeypatch, "dw_unknown_key", login="LTAI-nobody", password="x", extra=emulator_extra(emulator))

    with pytest.raises(FlowPlatformError) as caught:
        DataWorksHook("dw_unknown_key").get_instance("700001")

    assert not isinstance(caught.value, FlowInstanceNotFound)
    assert caught.value.code == "InvalidAccessKeyId.NotFound"
    assert "Specified access key is not found." in str(caught.value)


def sts_connection(emulator, monkeypatch, conn_id: str, security_token: str) -> None:
    use_connection(
        monkeypatch,
        conn_id,
        login=STS_ACCESS_KEY_ID,
        password=STS_ACCESS_KEY_SECRET,
        extra=emulator_extra(emulator, security_token=security_token),
    )


def test_sts_credentials_sign_with_their_security_token(emulator, monkeypatch):
    sts_connection(emulator, monkeypatch, "dw_sts", STS_SECURITY_TOKEN)
    sts_connection(emulator, monkeypatch, "dw_sts_wrong", "someone-elses-token")

    assert DataWorksHook("dw_sts").get_workflow_instance("700001")["Id"] == 700001
    with pytest.raises(FlowPlatformError) as caught:
        DataWorksHook("dw_sts_wrong").get_workflow_instance("700001")
    assert caught.value.code == "InvalidSecurityToken.Mismatch"
    assert "someone-elses-token" not in str(caught.value)


def test_the_emulator_refuses_sts_credentials_without_the_accesskey_id_header(emulator, monkeypatch):
    sts_connection(emulator, monkeypatch, "dw_sts", STS_SECURITY_TOKEN)
    hook = DataWorksHook("dw_sts")
    # Signed as before the SDK's header was sent: the token alone, signed.
    wire = sign_request(
        hook.client.request("GET", "GetWorkflowInstance", {"Id": 700001}).with_headers(
            {"x-acs-security-token": STS_SECURITY_TOKEN}
        ),
        access_key_id=STS_ACCESS_KEY_ID,
        access_key_secret=STS_ACCESS_KEY_SECRET,
        now_ms=int(time.time() * 1000),
        nonce="sts-without-accesskey-id",
    )
    answer = requests.get(wire.full_url, headers=dict(wire.headers), timeout=10)

    assert (answer.status_code, answer.json()["Code"]) == (400, "InvalidAccessKeyId.Mismatch")
    assert hook.get_workflow_instance("700001")["Id"] == 700001  # the hook sends and signs it


def settings_for(emulator, auth: DataWorksSigner) -> TransportSettings:
    return TransportSettings(platform="dataworks", auth=auth, max_retries=0)


def test_a_reused_nonce_is_refused(emulator):
    auth = DataWorksSigner(
        creds.DATAWORKS_ACCESS_KEY_ID, creds.DATAWORKS_ACCESS_KEY_SECRET, nonce_factory=lambda: "n-once"
    )
    api = DataWorksClient(DataWorksSettings(endpoint=emulator.url, project_id="100"))
    transport = SyncTransport(settings_for(emulator, auth))

    assert transport.run(api.get_workflow_instance("700001"))["Id"] == 700001
    with pytest.raises(FlowPlatformError) as caught:
        transport.run(api.get_workflow_instance("700001"))
    assert caught.value.code == "SignatureNonceUsed"


def raw_send(emulator, now_ms: int | None = None, nonce: str = "raw", **signer) -> requests.Response:
    api = DataWorksClient(DataWorksSettings(endpoint=emulator.url))
    wire = sign_request(
        api.request("GET", "GetWorkflowInstance", {"Id": 700001}),
        access_key_id=creds.DATAWORKS_ACCESS_KEY_ID,
        access_key_secret=creds.DATAWORKS_ACCESS_KEY_SECRET,
        now_ms=int(time.time() * 1000) if now_ms is None else now_ms,
        nonce=nonce,
        **signer,
    )
    return requests.get(wire.full_url, headers=dict(wire.headers), timeout=10)


def test_a_stale_x_acs_date_is_refused(emulator):
    response = raw_send(emulator, now_ms=int((time.time() - 20 * 60) * 1000), nonce="stale")

    assert response.status_code == 400
    assert response.json()["Code"] == "InvalidTimeStamp.Expired"


def test_a_tampered_request_is_refused(emulator):
    api = DataWorksClient(DataWorksSettings(endpoint=emulator.url))
    wire = sign_request(
        api.request("GET", "GetWorkflowInstance", {"Id": 700001}),
        access_key_id=creds.DATAWORKS_ACCESS_KEY_ID,
        access_key_secret=creds.DATAWORKS_ACCESS_KEY_SECRET,
        now_ms=int(time.time() * 1000),
        nonce="tampered",
    )

    response = requests.get(wire.url + "?Id=700002", headers=dict(wire.headers), timeout=10)

    assert response.status_code == 400
    assert response.json()["Code"] == "SignatureDoesNotMatch"
    assert set(response.json()) >= {"Code", "Message", "RequestId"}


# -- faults ------------------------------------------------------------------------------------------


def test_throttling_is_retried_after_the_platforms_delay(emulator):
    # 1750 ms is longer than any first backoff (0.5 to 1 s): the wait shows x-acs-retry-after was read.
    emulator.inject_fault("429", platform="dataworks", retry_after=1.75)
    hook = DataWorksHook()

    started = time.monotonic()
    record = hook.get_workflow_instance("700001")

    assert record["Id"] == 700001
    assert time.monotonic() - started >= 1.75


def test_the_429_fault_says_when_to_retry_in_milliseconds(emulator):
    emulator.inject_fault("429", platform="dataworks", retry_after=1.9999)

    response = raw_send(emulator, nonce="throttled")

    assert response.status_code == 429
    assert response.json()["Code"] == "Throttling.User"
    assert response.headers["x-acs-retry-after"] == "2000"


def test_a_server_error_is_retried(emulator):
    emulator.inject_fault("503", platform="dataworks")

    assert DataWorksHook().get_workflow_instance("700001")["Id"] == 700001


def test_an_expired_sts_token_is_reported(emulator):
    emulator.inject_fault("expired_token", platform="dataworks")

    with pytest.raises(FlowPlatformError) as caught:
        DataWorksHook().get_workflow_instance("700001")
    assert caught.value.code == "InvalidSecurityToken.Expired"


def test_the_hooks_signer_counts_throttling_codes_as_throttling():
    hook = DataWorksHook()
    assert hook.client is not None  # reads the connection, and builds its signer
    signer = hook._settings.auth
    throttled = HttpResponse(400, {}, b'{"Code":"Throttling.User","Message":"Request was denied.","RequestId":"r"}')
    refused = HttpResponse(400, {}, b'{"Code":"InvalidParameter","Message":"bad","RequestId":"r"}')

    assert signer.throttling(throttled, 0.0).throttled and not signer.throttling(refused, 0.0).throttled


# -- the connection ----------------------------------------------------------------------------------


def test_missing_region_and_endpoint_is_a_clear_error(monkeypatch):
    use_connection(monkeypatch, "dw_nowhere", login="AK", password="secret", extra={"project_id": 100})

    with pytest.raises(FlowPlatformError, match=r"region_id.*endpoint") as caught:
        DataWorksHook("dw_nowhere").get_instance("1")
    assert "DataWorks" in str(caught.value) and "dw_nowhere" in str(caught.value)


def test_the_region_gives_the_public_endpoint(monkeypatch):
    use_connection(monkeypatch, "dw_region", login="AK", password="secret", extra={"region_id": "cn-shanghai"})

    hook = DataWorksHook("dw_region")
    assert hook.client.url == "https://dataworks.cn-shanghai.aliyuncs.com/"


def test_get_hook_and_test_connection(emulator):
    hook = get_hook("dataworks_default")

    assert isinstance(hook, DataWorksHook)
    assert hook.test_connection() == (True, "Connected to DataWorks")


def test_the_form_hides_host_port_and_schema():
    behaviour = DataWorksHook.get_ui_field_behaviour()

    assert set(behaviour["hidden_fields"]) == {"host", "port", "schema"}
    assert behaviour["relabeling"] == {"login": "AccessKey ID", "password": "AccessKey secret"}


def test_a_central_region_gives_the_central_endpoint(monkeypatch):
    use_connection(monkeypatch, "dw_qingdao", login="AK", password="secret", extra={"region_id": "cn-qingdao"})
    assert DataWorksHook("dw_qingdao").client.url == "https://dataworks.aliyuncs.com/"


def test_an_unknown_timezone_is_a_clear_connection_error(monkeypatch):
    extra = {"region_id": "cn-hangzhou", "timezone": "Asia/Atlantis"}
    use_connection(monkeypatch, "dw_tz", login="AK", password="s", extra=extra)

    with pytest.raises(FlowPlatformError, match=r"dw_tz.*timezone.*Asia/Atlantis"):
        DataWorksHook("dw_tz").client  # noqa: B018


# -- business dates: 00:00 of the day at UTC+8 --------------------------------------------------------

CHINA = dt.timezone(dt.timedelta(hours=8))


def yesterday_in_china() -> dt.date:
    return dt.datetime.now(CHINA).date() - dt.timedelta(days=1)


def test_a_run_today_carries_yesterdays_business_date_at_midnight_utc_plus_8(emulator):
    hook = DataWorksHook()
    instance_id = emulator.create_dataworks_instance(1001, **QUICK)
    day = yesterday_in_china()

    record = hook.get_workflow_instance(instance_id)
    by_date = hook.list_workflow_instances(bizdate=day, workflow_id=1001)
    midnight_utc = int(dt.datetime(day.year, day.month, day.day, tzinfo=dt.timezone.utc).timestamp() * 1000)
    by_midnight_utc = hook.list_workflow_instances(bizdate=midnight_utc, workflow_id=1001)

    assert record["BizDate"] == int(dt.datetime(day.year, day.month, day.day, tzinfo=CHINA).timestamp() * 1000)
    assert instance_id in {str(row["Id"]) for row in by_date}
    assert by_midnight_utc == []  # the old request: eight hours off, it finds nothing
    tasks = hook.list_task_instances(workflow_instance_id=instance_id, bizdate=day)
    assert len(tasks) == 4


def test_a_connection_in_another_zone_counts_its_business_dates_there(emulator, monkeypatch):
    use_connection(
        monkeypatch,
        "dw_utc",
        login=creds.DATAWORKS_ACCESS_KEY_ID,
        password=creds.DATAWORKS_ACCESS_KEY_SECRET,
        extra=emulator_extra(emulator, timezone="UTC"),
    )
    emulator.create_dataworks_instance(1001, **QUICK)

    # The emulator's business days are China's: a day's midnight in UTC is another moment.
    assert DataWorksHook("dw_utc").list_workflow_instances(bizdate=yesterday_in_china(), workflow_id=1001) == []


# -- starting runs: the trigger type chooses the instance type ----------------------------------------


def test_start_run_runs_a_manual_workflow_with_json_parameters(emulator):
    hook = DataWorksHook()

    run_id = hook.start_run("1001", {"region": "east"})

    record = hook.get_workflow_instance(run_id)
    assert record["Type"] == "ManualWorkflow" and str(record["WorkflowId"]) == "1001"
    assert json.loads(record["WorkflowParameters"]) == {"region": "east"}


def test_start_run_runs_a_scheduled_workflow_as_a_backfill_of_yesterday(emulator):
    hook = DataWorksHook()

    run_id = hook.start_run("1004", {"region": "east", "limit": 5})

    record = hook.get_workflow_instance(run_id)
    day = yesterday_in_china()
    assert record["Type"] == "SupplementData" and str(record["WorkflowId"]) == "1004"
    assert record["BizDate"] == int(dt.datetime(day.year, day.month, day.day, tzinfo=CHINA).timestamp() * 1000)
    assert record["WorkflowParameters"] == "region=east limit=5"
    assert instance_reaching(hook, run_id).state is FlowState.SUCCESS


async def test_astart_run_runs_an_event_triggered_workflow(emulator):
    hook = DataWorksHook()

    run_id = await hook.astart_run("1005", {"file": "a.csv"})

    record = hook.get_workflow_instance(run_id)
    assert record["Type"] == "TriggerWorkflow" and record["WorkflowParameters"] == "file=a.csv"


BACKFILL_PROPERTIES = {
    "Mode": "ManualSelection",
    "RootTaskIds": [2301, 2302],
    "Parallelism": 1,
    "Analysis": {"Enabled": False, "Blocked": False},
}


@pytest.mark.parametrize(
    ("workflow_id", "options", "refusal"),
    [
        ("1004", {}, "triggered by Scheduler: the Type ManualWorkflow is not supported"),  # the old request
        ("1001", {"type": "SupplementData"}, "triggered by Manual"),
        (
            "1004",
            {
                "type": "SupplementData",
                "periods": {"BizDates": [{"StartBizDate": "2025-03-31", "EndBizDate": "2025-03-31"}]},
                "default_run_properties": {"Mode": "General", "RootTaskIds": [2301], "Parallelism": 1},
            },
            "Analysis",
        ),
        ("1004", {"type": "SupplementData", "default_run_properties": BACKFILL_PROPERTIES}, "Periods"),
    ],
)
def test_the_emulator_refuses_a_create_that_does_not_fit_the_workflow(emulator, workflow_id, options, refusal):
    with pytest.raises(FlowPlatformError, match=refusal) as caught:
        DataWorksHook().create_workflow_instances(workflow_id=workflow_id, **options)
    assert caught.value.call == "CreateWorkflowInstances" and caught.value.http_status == 400


def test_the_emulator_refuses_parameters_in_the_wrong_format(emulator):
    hook = DataWorksHook()
    client = hook.client
    backfill = {
        "Type": "SupplementData",
        "Periods": {"BizDates": [{"StartBizDate": "2025-03-31", "EndBizDate": "2025-03-31"}]},
        "DefaultRunProperties": BACKFILL_PROPERTIES,
    }
    for workflow_id, params in [
        ("1004", {**backfill, "WorkflowParameters": '{"region":"east"}'}),  # JSON for a periodic workflow: old
        ("1001", {"Type": "ManualWorkflow", "WorkflowParameters": "region=east"}),  # key=value for a manual one
    ]:
        request = client.request(
            "POST", "CreateWorkflowInstances", {"ProjectId": 100, "WorkflowId": workflow_id, "Name": "n", **params}
        )
        with pytest.raises(FlowPlatformError, match="WorkflowParameters"):
            hook.perform(client._call(request))


# -- a start is never made twice: the run is found by the marker in its Name ---------------------------


def runs_of(hook: DataWorksHook, workflow_id: str) -> set[str]:
    return {
        str(row["Id"]) for row in hook.list_workflow_instances(bizdate=yesterday_in_china(), workflow_id=workflow_id)
    }


@pytest.mark.parametrize("fault", ["act_then_503", "act_then_reset", "act_then_slow"])
@pytest.mark.parametrize("workflow_id", ["1001", "1004"])
def test_a_start_whose_answer_is_lost_makes_exactly_one_run(emulator, monkeypatch, fault, workflow_id):
    hook = DataWorksHook(quick_retry_connection(monkeypatch, emulator.url, base="dataworks_default"))
    before = runs_of(hook, workflow_id)
    creates = emulator.control("GET", "/_emulator/dataworks/actions").get("CreateWorkflowInstances", 0)
    emulator.inject_fault(fault, platform="dataworks", call_contains="CreateWorkflowInstances", delay=3)

    run_id = hook.start_run(workflow_id)

    assert runs_of(hook, workflow_id) - before == {run_id}
    assert emulator.control("GET", "/_emulator/dataworks/actions")["CreateWorkflowInstances"] == creates + 1
    assert emulator.stats()["requests"][f"dataworks acted, answer spoilt: {fault}"] == 1


@pytest.mark.parametrize("fault", ["act_then_503", "act_then_reset", "act_then_slow"])
async def test_an_async_start_whose_answer_is_lost_makes_exactly_one_run(emulator, monkeypatch, fault):
    hook = DataWorksHook(quick_retry_connection(monkeypatch, emulator.url, base="dataworks_default"))
    before = runs_of(DataWorksHook(), "1001")
    emulator.inject_fault(fault, platform="dataworks", call_contains="CreateWorkflowInstances", delay=3)

    try:
        run_id = await hook.astart_run("1001")
    finally:
        await close_shared_session()

    assert runs_of(DataWorksHook(), "1001") - before == {run_id}


def test_find_started_run_finds_the_attempts_run_or_none(emulator):
    hook = DataWorksHook()
    attempt = StartAttempt.new("1004", int(time.time() * 1000))

    assert hook.find_started_run(attempt) is None
    run_id = hook.start_run("1004", attempt=attempt)
    assert hook.find_started_run(attempt) == run_id
    assert hook.find_started_run(StartAttempt.new("1004", int(time.time() * 1000))) is None


# -- paging under a page-size cap --------------------------------------------------------------------


@pytest.fixture
def page_limits(emulator):
    """Set the emulator's PageSize caps for one test; the defaults come back after it."""

    def set_limits(**limits: int) -> None:
        emulator.control("POST", "/_emulator/dataworks/page_limits", limits)

    yield set_limits
    set_limits()


def test_the_emulator_refuses_a_workflow_instance_page_above_100_by_default(emulator):
    hook = DataWorksHook()
    client = hook.client
    params = {"ProjectId": 100, "BizDate": 1743350400000, "PageNumber": 1}
    request = client.request("POST", "ListWorkflowInstances", {**params, "PageSize": 500})  # as main sent it

    with pytest.raises(FlowPlatformError, match="PageSize must be between 1 and 100") as caught:
        hook.perform(client._call(request))
    assert caught.value.http_status == 400
    taken = hook.perform(client._call(client.request("POST", "ListWorkflowInstances", {**params, "PageSize": 100})))
    assert "PagingInfo" in taken


def test_a_capped_listing_is_read_whole_at_the_size_the_platform_takes(emulator, page_limits):
    page_limits(ListWorkflowInstances=20)
    hook = DataWorksHook()
    created = emulator.control("POST", "/_emulator/dataworks/instances", {"workflow_id": 1003, "count": 45})
    actions = lambda: emulator.control("GET", "/_emulator/dataworks/actions").get("ListWorkflowInstances", 0)  # noqa: E731
    before = actions()

    rows = hook.list_workflow_instances(bizdate=yesterday_in_china(), ids=created["instance_ids"])

    assert sorted(str(row["Id"]) for row in rows) == sorted(created["instance_ids"])
    # PageSize 100 refused, 50 refused, 20 taken: 3 pages of 20 rows.
    assert actions() - before == 2 + 3
    assert hook.client.page_size_limits == {"ListWorkflowInstances": 20}


async def test_batched_polling_of_1000_waits_keeps_its_savings_under_a_page_cap(emulator, page_limits):
    """1,000 waits on instances that run for hours: one poll reads them in the fewest pages that hold them."""
    page_limits(ListWorkflowInstances=100)
    ids = emulator.control("POST", "/_emulator/dataworks/instances", {"workflow_id": 1003, "count": 1000})[
        "instance_ids"
    ]
    poller = InstancePoller("dataworks_default")
    poller.users = len(ids)

    def counts() -> dict[str, int]:
        return dict(emulator.control("GET", "/_emulator/dataworks/actions"))

    try:
        await asyncio.gather(*(poller.get(instance_id) for instance_id in ids))  # the first look: one by one
        first = counts()
        await asyncio.gather(*(poller.get(instance_id) for instance_id in ids))  # learns the page size
        second = counts()
        polled = await asyncio.gather(*(poller.get(instance_id) for instance_id in ids))
        third = counts()
    finally:
        await close_shared_session()

    assert [instance.instance_id for instance in polled] == ids
    per_interval = {
        action: third[action] - second.get(action, 0) for action in third if third[action] != second.get(action)
    }
    fewest_pages = 1000 // 100
    assert per_interval == {"ListWorkflowInstances": fewest_pages}  # no single reads: none of them ended
    assert sum(per_interval.values()) <= 1.2 * fewest_pages
    # The interval that met the cap paid for it once (500 and 200 refused), not one read per wait.
    learned = {
        action: second[action] - first.get(action, 0) for action in second if second[action] != first.get(action)
    }
    assert learned["ListWorkflowInstances"] <= fewest_pages + 4 and "GetWorkflowInstance" not in learned


# -- the emulator is a witness: its own signature code ------------------------------------------------


def test_the_emulator_checks_signatures_without_the_clients_code():
    tree = ast.parse(inspect.getsource(emulator_dataworks))
    imported = {node.module or "" for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)}
    imported |= {alias.name for node in ast.walk(tree) if isinstance(node, ast.Import) for alias in node.names}
    client_side = (
        "airflow_provider_flowinst.platforms",
        "airflow_provider_flowinst.transport",
        "airflow_provider_flowinst.protocol",
    )
    assert not [name for name in imported if name.startswith(client_side)]


def test_the_emulators_own_string_to_sign_matches_alibabas_worked_example():
    # "Request syntax and signature method V3", the RunInstances example, byte for byte.
    request = make_mocked_request(
        "POST",
        "/?ImageId=win2019_1809_x64_dtc_zh-cn_40G_alibase_20230811.vhd&RegionId=cn-shanghai",
        headers={
            "host": "ecs.cn-shanghai.aliyuncs.com",
            "x-acs-action": "RunInstances",
            "x-acs-content-sha256": "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
            "x-acs-date": "2023-10-26T10:22:32Z",
            "x-acs-signature-nonce": "3156853299f313e23d1673dc12e1703d",
            "x-acs-version": "2014-05-26",
        },
    )
    signed = ["host", "x-acs-action", "x-acs-content-sha256", "x-acs-date", "x-acs-signature-nonce", "x-acs-version"]

    to_sign = emulator_dataworks._string_to_sign(
        request, signed, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
    )

    assert to_sign == "ACS3-HMAC-SHA256\n7ea06492da5221eba5297e897ce16e55f964061054b7695beedaac1145b1e259"
