"""DataWorksHook against the emulator: every call, the signature check, faults and the connection."""

from __future__ import annotations

import json
import time

import pytest
import requests

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
from airflow_provider_flowinst.protocol import HttpResponse
from airflow_provider_flowinst.testing.emulator import credentials as creds
from airflow_provider_flowinst.testing.emulator.dataworks import (
    STS_ACCESS_KEY_ID,
    STS_ACCESS_KEY_SECRET,
    STS_SECURITY_TOKEN,
)
from airflow_provider_flowinst.transport import SyncTransport, TransportSettings

#: A short run: 0.5 emulated s queued, 2 s running; at time scale 0.1 it ends within 0.3 wall s.
QUICK = {"queued_seconds": 0.5, "running_seconds": 2.0}


def wait_until_finished(hook: DataWorksHook, instance_id: str, include_graph: bool = True):
    deadline = time.monotonic() + 10
    while True:
        instance = hook.get_instance(instance_id, include_graph=include_graph)
        if instance.state.is_terminal or time.monotonic() > deadline:
            return instance
        time.sleep(0.05)


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
    instance = wait_until_finished(hook, instance_id)

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

    instance = wait_until_finished(DataWorksHook(), instance_id)

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

    ids = await hook.arun(client.create_workflow_instances(workflow_id="1001", name="async run"))

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


def test_sts_credentials_sign_with_their_security_token(emulator, monkeypatch):
    use_connection(
        monkeypatch,
        "dw_sts",
        login=STS_ACCESS_KEY_ID,
        password=STS_ACCESS_KEY_SECRET,
        extra=emulator_extra(emulator, security_token=STS_SECURITY_TOKEN),
    )
    use_connection(
        monkeypatch,
        "dw_sts_wrong",
        login=STS_ACCESS_KEY_ID,
        password=STS_ACCESS_KEY_SECRET,
        extra=emulator_extra(emulator, security_token="someone-elses-token"),
    )

    assert DataWorksHook("dw_sts").get_workflow_instance("700001")["Id"] == 700001
    with pytest.raises(FlowPlatformError) as caught:
        DataWorksHook("dw_sts_wrong").get_workflow_instance("700001")
    assert caught.value.code == "InvalidSecurityToken.Mismatch"
    assert "someone-elses-token" not in str(caught.value)


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
    emulator.inject_fault("429", platform="dataworks", retry_after=0.3)
    hook = DataWorksHook()

    started = time.monotonic()
    record = hook.get_workflow_instance("700001")

    assert record["Id"] == 700001
    assert time.monotonic() - started >= 0.3


def test_the_429_fault_says_when_to_retry_in_milliseconds(emulator):
    emulator.inject_fault("429", platform="dataworks", retry_after=1.5)

    response = raw_send(emulator, nonce="throttled")

    assert response.status_code == 429
    assert response.json()["Code"] == "Throttling.User"
    assert response.headers["x-acs-retry-after"] == "1500"


def test_a_server_error_is_retried(emulator):
    emulator.inject_fault("503", platform="dataworks")

    assert DataWorksHook().get_workflow_instance("700001")["Id"] == 700001


def test_an_expired_sts_token_is_reported(emulator):
    emulator.inject_fault("expired_token", platform="dataworks")

    with pytest.raises(FlowPlatformError) as caught:
        DataWorksHook().get_workflow_instance("700001")
    assert caught.value.code == "InvalidSecurityToken.Expired"


def test_the_hook_counts_throttling_codes_as_transient():
    hook = DataWorksHook()
    throttled = HttpResponse(400, {}, b'{"Code":"Throttling.User","Message":"Request was denied.","RequestId":"r"}')
    refused = HttpResponse(400, {}, b'{"Code":"InvalidParameter","Message":"bad","RequestId":"r"}')

    assert hook.is_throttled(throttled) and not hook.is_throttled(refused)


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
