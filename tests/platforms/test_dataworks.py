"""DataWorks, pure: the ACS3-HMAC-SHA256 signature, requests, answers, errors, states and the graph."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from pathlib import Path
from urllib.parse import parse_qsl

import pytest

from airflow_provider_flowinst.errors import AmbiguousStart, FlowInstanceNotFound, FlowPlatformError
from airflow_provider_flowinst.models import FlowState
from airflow_provider_flowinst.platforms.dataworks import (
    CENTRAL_ENDPOINT_REGIONS,
    EMPTY_SHA256,
    DataWorksClient,
    DataWorksSettings,
    DataWorksSigner,
    authorization,
    build_graph,
    business_date,
    business_day_ms,
    canonical_query,
    canonical_request,
    endpoint_url,
    host_header,
    is_not_found_code,
    is_throttled,
    map_status,
    parse_authorization,
    read_response,
    sign_request,
    signature,
    string_to_sign,
    to_epoch_ms,
)
from airflow_provider_flowinst.protocol import HttpRequest, HttpResponse, Sleep, StartAttempt
from tests.helpers import answer
from tests.helpers import drive as run

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures"
SEED = json.loads((FIXTURES / "dataworks_get_workflow_instance.json").read_text())


def client(project_id: str | None = "100") -> DataWorksClient:
    return DataWorksClient(
        DataWorksSettings(endpoint="https://dataworks.cn-hangzhou.aliyuncs.com", project_id=project_id)
    )


def form(request: HttpRequest) -> dict[str, str]:
    return dict(parse_qsl(request.body.decode(), keep_blank_values=True))


# -- the V3 signature: Alibaba Cloud's worked example, byte for byte ----------------------------------

DOC_CANONICAL_REQUEST = (
    "POST\n"
    "/\n"
    "ImageId=win2019_1809_x64_dtc_zh-cn_40G_alibase_20230811.vhd&RegionId=cn-shanghai\n"
    "host:ecs.cn-shanghai.aliyuncs.com\n"
    "x-acs-action:RunInstances\n"
    "x-acs-content-sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855\n"
    "x-acs-date:2023-10-26T10:22:32Z\n"
    "x-acs-signature-nonce:3156853299f313e23d1673dc12e1703d\n"
    "x-acs-version:2014-05-26\n"
    "\n"
    "host;x-acs-action;x-acs-content-sha256;x-acs-date;x-acs-signature-nonce;x-acs-version\n"
    "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
)
DOC_STRING_TO_SIGN = "ACS3-HMAC-SHA256\n7ea06492da5221eba5297e897ce16e55f964061054b7695beedaac1145b1e259"
DOC_SIGNATURE = "06563a9e1b43f5dfe96b81484da74bceab24a1d853912eee15083a6f0f3283c0"
DOC_AUTHORIZATION = (
    "ACS3-HMAC-SHA256 Credential=YourAccessKeyId,"
    "SignedHeaders=host;x-acs-action;x-acs-content-sha256;x-acs-date;x-acs-signature-nonce;x-acs-version,"
    "Signature=06563a9e1b43f5dfe96b81484da74bceab24a1d853912eee15083a6f0f3283c0"
)
DOC_NOW_MS = int(dt.datetime(2023, 10, 26, 10, 22, 32, tzinfo=dt.timezone.utc).timestamp() * 1000)
DOC_PARAMS = (("ImageId", "win2019_1809_x64_dtc_zh-cn_40G_alibase_20230811.vhd"), ("RegionId", "cn-shanghai"))


def test_the_docs_worked_example_step_by_step():
    headers = [
        ("host", "ecs.cn-shanghai.aliyuncs.com"),
        ("x-acs-action", "RunInstances"),
        ("x-acs-content-sha256", EMPTY_SHA256),
        ("x-acs-date", "2023-10-26T10:22:32Z"),
        ("x-acs-signature-nonce", "3156853299f313e23d1673dc12e1703d"),
        ("x-acs-version", "2014-05-26"),
    ]
    canonical, signed = canonical_request("POST", "/", canonical_query(DOC_PARAMS), headers, EMPTY_SHA256)

    assert canonical == DOC_CANONICAL_REQUEST
    assert string_to_sign(canonical) == DOC_STRING_TO_SIGN
    assert signature("YourAccessKeySecret", DOC_STRING_TO_SIGN) == DOC_SIGNATURE
    assert authorization("YourAccessKeyId", signed, DOC_SIGNATURE) == DOC_AUTHORIZATION


def test_sign_request_reproduces_the_docs_authorization_header():
    request = HttpRequest(
        "POST",
        "https://ecs.cn-shanghai.aliyuncs.com/",
        call="RunInstances",
        params=DOC_PARAMS,
        headers={"x-acs-action": "RunInstances", "x-acs-version": "2014-05-26"},
    )
    signed = sign_request(
        request,
        access_key_id="YourAccessKeyId",
        access_key_secret="YourAccessKeySecret",
        now_ms=DOC_NOW_MS,
        nonce="3156853299f313e23d1673dc12e1703d",
    )

    assert signed.headers["Authorization"] == DOC_AUTHORIZATION
    assert signed.headers["host"] == "ecs.cn-shanghai.aliyuncs.com"
    assert signed.headers["x-acs-date"] == "2023-10-26T10:22:32Z"
    assert signed.headers["x-acs-content-sha256"] == EMPTY_SHA256
    assert "x-acs-security-token" not in signed.headers and "x-acs-accesskey-id" not in signed.headers


def test_the_sdk_encoding_case():
    # aliyun/darabonba-openapi-util python/tests/test_client.py
    assert canonical_query([("test", " ~/*-+")]) == "test=%20~%2F%2A-%2B"


def test_the_sdk_authorization_case_with_merged_duplicate_headers():
    # The SDK's vector: a header sent twice becomes one sorted, comma-joined line. Its canonical query
    # "empty&test=ok" is the Python SDK's quirk for an empty value; the document (and we) write "empty=".
    canonical, signed = canonical_request(
        "GET",
        "",
        "empty&test=ok",
        [("x-acs-test", "http"), ("x-acs-TEST", "https")],
        "55e12e91650d2fec56ec74e1d3e4ddbfce2ef3a65890c2a19ecf88a307e76a23",
    )

    assert canonical.splitlines()[3] == "x-acs-test:http,https"
    assert authorization("acesskey", signed, signature("secret", string_to_sign(canonical))) == (
        "ACS3-HMAC-SHA256 Credential=acesskey,SignedHeaders=x-acs-test,"
        "Signature=da772425f29289d3460d5fc961455d40c5e8c6afd0888b78a910c991e6a14846"
    )
    assert canonical_query([("test", "ok"), ("empty", "")]) == "empty=&test=ok"


def test_canonical_query_sorts_by_name_and_encodes_reserved_characters():
    query = canonical_query([("b", "x y"), ("a", "1&2=3"), ("InstanceId.2", "b"), ("InstanceId.10", "a")])

    assert query == "InstanceId.10=a&InstanceId.2=b&a=1%262%3D3&b=x%20y"


def test_only_host_content_type_and_acs_headers_are_signed():
    request = client().request("POST", "ListTaskInstances", {"ProjectId": 100})
    signed = sign_request(request, access_key_id="AK", access_key_secret="S", now_ms=DOC_NOW_MS, nonce="n1")

    parsed = parse_authorization(signed.headers["Authorization"])
    assert parsed is not None
    assert (
        parsed[1]
        == "content-type;host;x-acs-action;x-acs-content-sha256;x-acs-date;x-acs-signature-nonce;x-acs-version"
    )


def test_the_payload_hash_is_of_the_exact_body_bytes():
    request = client().request("POST", "ListTaskInstances", {"ProjectId": 100, "Bizdate": 1})
    signed = sign_request(request, access_key_id="AK", access_key_secret="S", now_ms=DOC_NOW_MS, nonce="n1")

    assert signed.headers["x-acs-content-sha256"] == hashlib.sha256(request.body).hexdigest()


def test_sts_credentials_add_a_signed_security_token():
    signer = DataWorksSigner("STS.key", "secret", security_token="sts-token", nonce_factory=lambda: "n1")
    signed = signer.sign(client().request("GET", "GetWorkflowInstance", {"Id": 1}), None, DOC_NOW_MS)

    assert signed.headers["x-acs-security-token"] == "sts-token"
    assert "x-acs-security-token" in parse_authorization(signed.headers["Authorization"])[1].split(";")
    # As the tea SDK sends them (alibabacloud_tea_openapi 0.4.6): the AccessKey id beside the token, signed.
    assert signed.headers["x-acs-accesskey-id"] == "STS.key"
    assert parse_authorization(signed.headers["Authorization"])[1] == (
        "host;x-acs-accesskey-id;x-acs-action;x-acs-content-sha256;x-acs-date;x-acs-security-token;"
        "x-acs-signature-nonce;x-acs-version"
    )
    assert signer.secrets() == ("secret", "sts-token")
    assert "secret" not in repr(signer) and "sts-token" not in repr(signer)


def test_each_signature_has_its_own_nonce_and_the_signer_needs_no_login():
    signer = DataWorksSigner("AK", "S")
    request = client().request("GET", "GetWorkflowInstance", {"Id": 1})

    first, second = signer.sign(request, None, DOC_NOW_MS), signer.sign(request, None, DOC_NOW_MS)
    assert first.headers["x-acs-signature-nonce"] != second.headers["x-acs-signature-nonce"]
    assert first.headers["Authorization"] != second.headers["Authorization"]
    assert signer.login() is None
    assert not signer.is_token_expired(answer({"Code": "InvalidSecurityToken.Expired"}, 400))


def test_a_fixed_nonce_makes_signing_deterministic():
    signer = DataWorksSigner("AK", "S", nonce_factory=lambda: "fixed")
    request = client().request("GET", "GetWorkflowInstance", {"Id": 1})

    assert signer.sign(request, None, DOC_NOW_MS) == signer.sign(request, None, DOC_NOW_MS)


# -- endpoint and host -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("region_id", "endpoint", "expected"),
    [
        ("cn-hangzhou", None, "https://dataworks.cn-hangzhou.aliyuncs.com"),
        ("ap-southeast-1", None, "https://dataworks.ap-southeast-1.aliyuncs.com"),
        # The SDK's endpoint map sends these to the central endpoint:
        ("cn-qingdao", None, "https://dataworks.aliyuncs.com"),
        ("cn-wuhan", None, "https://dataworks.aliyuncs.com"),
        ("ap-south-1", None, "https://dataworks.aliyuncs.com"),
        ("cn-huhehaote", None, "https://dataworks.aliyuncs.com"),
        (
            "cn-qingdao",
            "https://dataworks-vpc.cn-qingdao.aliyuncs.com",
            "https://dataworks-vpc.cn-qingdao.aliyuncs.com",
        ),
        ("cn-hangzhou", "http://127.0.0.1:9000", "http://127.0.0.1:9000"),
        (None, "dataworks-vpc.cn-shanghai.aliyuncs.com", "https://dataworks-vpc.cn-shanghai.aliyuncs.com"),
        (None, "https://dataworks.example.com:8443/", "https://dataworks.example.com:8443"),
    ],
)
def test_endpoint_from_region_or_override(region_id, endpoint, expected):
    assert endpoint_url(region_id, endpoint) == expected


@pytest.mark.parametrize("endpoint", ["ftp://host", "http://"])
def test_a_bad_endpoint_is_refused(endpoint):
    with pytest.raises(ValueError, match="endpoint"):
        endpoint_url(None, endpoint)


def test_neither_region_nor_endpoint_is_refused_with_what_to_set():
    with pytest.raises(ValueError, match=r"region_id.*endpoint"):
        endpoint_url(None, "")


@pytest.mark.parametrize(
    ("url", "host"),
    [
        ("https://dataworks.cn-hangzhou.aliyuncs.com/", "dataworks.cn-hangzhou.aliyuncs.com"),
        ("https://dataworks.cn-hangzhou.aliyuncs.com:443/", "dataworks.cn-hangzhou.aliyuncs.com"),
        ("http://127.0.0.1:80/", "127.0.0.1"),
        ("http://127.0.0.1:9000/", "127.0.0.1:9000"),
        ("https://dataworks.example.com:8443/", "dataworks.example.com:8443"),
    ],
)
def test_host_carries_the_port_only_when_not_the_default(url, host):
    assert host_header(url) == host


def test_a_signed_request_to_an_endpoint_with_a_port_signs_that_host():
    api = DataWorksClient(DataWorksSettings(endpoint=endpoint_url(None, "http://127.0.0.1:9000")))
    signed = sign_request(
        api.request("GET", "GetWorkflowInstance", {"Id": 1}),
        access_key_id="AK",
        access_key_secret="S",
        now_ms=DOC_NOW_MS,
        nonce="n",
    )

    assert signed.url == "http://127.0.0.1:9000/"
    assert signed.headers["host"] == "127.0.0.1:9000"


# -- requests built ----------------------------------------------------------------------------------


def test_get_calls_carry_parameters_in_the_query():
    request = client().request("GET", "GetWorkflowInstance", {"Id": 1234, "Unset": None})

    assert request.method == "GET"
    assert request.url == "https://dataworks.cn-hangzhou.aliyuncs.com/"
    assert request.params == (("Id", "1234"),)
    assert request.body is None
    assert request.headers["x-acs-action"] == "GetWorkflowInstance"
    assert request.headers["x-acs-version"] == "2024-05-18"


def test_post_calls_carry_a_form_body_and_arrays_as_json_strings():
    steps, _ = run(client().stop_workflow_instances(["1", "2"], "stop please"), answer({"SuccessInfo": {}}))
    request = steps[0]

    assert request.method == "POST"
    assert request.params == ()
    assert request.headers["Content-Type"] == "application/x-www-form-urlencoded"
    assert request.body == b"Ids=%5B1%2C2%5D&Comment=stop%20please"
    assert form(request) == {"Ids": "[1,2]", "Comment": "stop please"}


def test_list_task_instances_sends_bizdate_with_a_lowercase_d_and_reads_every_page():
    page1 = {"PagingInfo": {"TotalCount": 3, "TaskInstances": [{"Id": 1}, {"Id": 2}]}}
    page2 = {"PagingInfo": {"TotalCount": 3, "TaskInstances": [{"Id": 3}]}}
    operation = client().list_task_instances(workflow_instance_id="77", bizdate=1710239005403, page_size=2)

    steps, tasks = run(operation, answer(page1), answer(page2))

    assert [task["Id"] for task in tasks] == [1, 2, 3]
    assert [form(step) for step in steps] == [
        {
            "ProjectId": "100",
            "Bizdate": "1710239005403",
            "WorkflowInstanceId": "77",
            "PageNumber": "1",
            "PageSize": "2",
        },
        {
            "ProjectId": "100",
            "Bizdate": "1710239005403",
            "WorkflowInstanceId": "77",
            "PageNumber": "2",
            "PageSize": "2",
        },
    ]
    assert "BizDate" not in form(steps[0])


def test_page_size_is_at_most_500():
    with pytest.raises(ValueError, match="500"):
        next(client().list_task_instances(workflow_instance_id="1", bizdate=1, page_size=501))


def test_a_date_bizdate_is_its_midnight_in_the_business_zone_utc_plus_8_by_default():
    steps, _ = run(
        client().list_workflow_instances(bizdate=dt.date(2025, 3, 31)),
        answer({"PagingInfo": {"TotalCount": 0, "WorkflowInstances": []}}),
    )

    # The SDK's own example: 1743350400000 is 2025-03-31 00:00:00 +08:00 (midnight UTC would be 1743379200000).
    assert form(steps[0])["BizDate"] == "1743350400000"


def test_the_business_zone_comes_from_the_connections_timezone():
    utc = DataWorksClient(DataWorksSettings(endpoint="https://dw.example", project_id="1", timezone="UTC"))
    steps, _ = run(
        utc.list_task_instances(workflow_instance_id="1", bizdate=dt.date(2025, 3, 31)),
        answer({"PagingInfo": {"TotalCount": 0, "TaskInstances": []}}),
    )
    assert form(steps[0])["Bizdate"] == "1743379200000"
    assert to_epoch_ms(dt.datetime(2025, 3, 31, 0, 0), "Asia/Shanghai") == 1743350400000  # naive: in the zone
    assert business_day_ms(dt.date(2025, 3, 31)) == 1743350400000
    assert business_date(1743350400000) == dt.date(2025, 3, 31)
    assert business_date(1743350400000, "UTC") == dt.date(2025, 3, 30)
    with pytest.raises(ValueError, match="Mars/Olympus"):
        DataWorksClient(DataWorksSettings(endpoint="https://dw.example", timezone="Mars/Olympus"))


def test_the_project_comes_from_the_call_or_the_connection():
    steps, _ = run(
        client(project_id=None).list_workflow_instances(bizdate=1, project_id=7, ids=["5", "6"]),
        answer({"PagingInfo": {"WorkflowInstances": []}}),
    )
    assert form(steps[0])["ProjectId"] == "7"
    assert form(steps[0])["Ids"] == "[5,6]"
    with pytest.raises(FlowPlatformError, match="ProjectId"):
        next(client(project_id=None).list_task_instances(workflow_instance_id="1", bizdate=1))


def test_list_upstream_task_instances_is_a_paged_get():
    steps, upstream = run(
        client().list_upstream_task_instances("55"),
        answer({"PagingInfo": {"TotalCount": 1, "UpstreamTaskInstances": [{"DependencyType": "Normal"}]}}),
    )

    assert steps[0].method == "GET"
    assert dict(steps[0].params) == {"Id": "55", "PageNumber": "1", "PageSize": "100"}
    assert upstream == [{"DependencyType": "Normal"}]


# -- creating instances: an operation that polls with Sleeps -----------------------------------------


def test_create_workflow_instances_polls_until_created():
    operation = client().create_workflow_instances(
        workflow_id="1001", name="run 1", parameters={"key1": "value 1"}, periods={"BizDates": []}
    )
    creating = answer({"Result": {"Status": "Creating"}})
    created = answer({"Result": {"Status": "Created", "WorkflowInstanceIds": [700009]}})

    steps, ids = run(operation, answer({"OperationId": "op-1"}), creating, None, creating, None, created)

    assert ids == ["700009"]
    assert form(steps[0]) == {
        "ProjectId": "100",
        "WorkflowId": "1001",
        "Name": "run 1",
        "Type": "ManualWorkflow",
        "Periods": '{"BizDates":[]}',
        "WorkflowParameters": '{"key1":"value 1"}',
    }
    assert [type(step).__name__ for step in steps] == [
        "HttpRequest",
        "HttpRequest",
        "Sleep",
        "HttpRequest",
        "Sleep",
        "HttpRequest",
    ]
    assert steps[2] == Sleep(0.5) and steps[4] == Sleep(1.0)
    assert dict(steps[1].params) == {"OperationId": "op-1"}


def test_create_failure_carries_the_failure_message():
    operation = client().create_workflow_instances(workflow_id="9999", name="n")
    failure = answer({"Result": {"Status": "CreateFailure", "FailureMessage": "The workflow 9999 does not exist."}})

    with pytest.raises(FlowPlatformError, match="The workflow 9999 does not exist") as caught:
        run(operation, answer({"OperationId": "op-2"}), failure)
    assert caught.value.code == "CreateFailure"


def test_creation_gives_up_after_its_timeout():
    operation = client().create_workflow_instances(workflow_id="1", name="n", timeout=1.0)
    creating = answer({"Result": {"Status": "Creating"}})

    with pytest.raises(FlowPlatformError, match="still Creating") as caught:
        run(operation, answer({"OperationId": "op"}), creating, None, creating, None, creating)
    assert caught.value.retryable


def test_stop_reports_instances_it_could_not_stop():
    refused = {"SuccessInfo": {"1": {"Success": True}, "2": {"Success": False, "Message": "already finished"}}}

    with pytest.raises(FlowPlatformError, match="2: already finished"):
        run(client().stop_workflow_instances(["1", "2"]), answer(refused))


# -- the seed sample and states ----------------------------------------------------------------------


def test_the_seed_sample_becomes_the_api_md_dict():
    steps, instance = run(client().get_instance("1234", include_graph=False), answer(SEED))

    assert dict(steps[0].params) == {"Id": "1234"}
    assert instance.to_dict() == {
        "platform": "dataworks",
        "instance_id": "1234",
        "flow_id": "1234",
        "name": "WorkInstance1",
        "state": "success",
        "raw_state": "Success",
        "started_at": "2024-03-12T10:23:25.403000+00:00",
        "ended_at": "2024-03-12T10:23:25.403000+00:00",
        "url": None,
        "graph": None,
        "details": SEED["WorkflowInstance"],
    }


@pytest.mark.parametrize(
    ("status", "state"),
    [
        ("NotRun", FlowState.QUEUED),
        ("WaitTime", FlowState.QUEUED),
        ("WaitResource", FlowState.QUEUED),
        ("WaitTrigger", FlowState.QUEUED),
        ("Running", FlowState.RUNNING),
        ("CheckingCondition", FlowState.RUNNING),
        ("Checking", FlowState.RUNNING),
        ("Success", FlowState.SUCCESS),
        ("Failure", FlowState.FAILED),
        ("Frozen", FlowState.UNKNOWN),
        ("success", FlowState.UNKNOWN),
        (None, FlowState.UNKNOWN),
    ],
)
def test_every_status_row(status, state):
    assert map_status(status) is state
    record = {**SEED["WorkflowInstance"], "Status": status}
    instance = client().to_flow_instance(record)
    assert instance.state is state
    assert instance.raw_state == status


def test_times_not_yet_reached_are_none():
    record = {**SEED["WorkflowInstance"], "StartedTime": None, "FinishedTime": 0}

    instance = client().to_flow_instance(record)
    assert instance.started_at is None and instance.ended_at is None


# -- records with missing or odd fields --------------------------------------------------------------


def test_a_record_without_id_is_a_platform_error_not_a_key_error():
    record = {key: value for key, value in SEED["WorkflowInstance"].items() if key != "Id"}

    with pytest.raises(FlowPlatformError, match="'Id'"):
        client().to_flow_instance(record)


def test_an_unreadable_time_is_a_platform_error():
    with pytest.raises(FlowPlatformError, match="unreadable time"):
        client().to_flow_instance({**SEED["WorkflowInstance"], "StartedTime": "yesterday"})


def test_an_answer_without_workflow_instance_is_a_platform_error():
    with pytest.raises(FlowPlatformError, match="no WorkflowInstance"):
        run(client().get_workflow_instance("1"), answer({"RequestId": "r"}))


def test_a_null_workflow_instance_means_not_found():
    with pytest.raises(FlowInstanceNotFound):
        run(client().get_workflow_instance("1"), answer({"RequestId": "r", "WorkflowInstance": None}))


def test_a_page_without_paging_info_is_a_platform_error():
    with pytest.raises(FlowPlatformError, match="PagingInfo"):
        run(client().list_task_instances(workflow_instance_id="1", bizdate=1), answer({"RequestId": "r"}))


def test_a_graph_without_bizdate_is_a_platform_error():
    record = {key: value for key, value in SEED["WorkflowInstance"].items() if key != "BizDate"}

    with pytest.raises(FlowPlatformError, match="'BizDate'"):
        run(client().get_instance("1234"), answer({"WorkflowInstance": record}))


def test_a_body_that_is_not_json_is_a_platform_error():
    with pytest.raises(FlowPlatformError, match="not JSON"):
        read_response(HttpResponse(502, {}, b"<html>Bad Gateway</html>"), call="GetWorkflowInstance")


# -- errors ------------------------------------------------------------------------------------------


def error(code: str, status: int = 400, message: str = "it went wrong") -> HttpResponse:
    return answer({"RequestId": "REQ-1", "HostId": "dataworks.aliyuncs.com", "Code": code, "Message": message}, status)


def test_an_error_names_the_platform_the_call_the_message_and_the_request_id():
    with pytest.raises(FlowPlatformError) as caught:
        read_response(
            error("SignatureDoesNotMatch", 400, "Specified signature does not match."), call="GetWorkflowInstance"
        )

    exc = caught.value
    assert type(exc) is FlowPlatformError
    assert exc.code == "SignatureDoesNotMatch" and exc.http_status == 400 and exc.platform == "dataworks"
    assert str(exc) == (
        "DataWorks: GetWorkflowInstance failed: Specified signature does not match. (RequestId REQ-1)"
        " (code SignatureDoesNotMatch, HTTP 400)"
    )


@pytest.mark.parametrize(
    ("code", "status", "not_found"),
    [
        ("EntityNotExists.WorkflowInstance", 404, True),
        ("EntityNotExists", 400, True),
        ("InvalidWorkflowInstance.NotFound", 400, True),
        ("Workflow.NotExist", 400, True),
        ("InvalidAccessKeyId.NotFound", 404, False),
        ("InvalidSecurityToken.NotFound", 400, False),
        ("InvalidAction.NotFound", 404, False),
        ("Forbidden.RAM", 403, False),
        ("InternalError", 500, False),
    ],
)
def test_error_codes_choose_the_error_class(code, status, not_found):
    assert is_not_found_code(code) is not_found
    with pytest.raises(FlowPlatformError) as caught:
        read_response(error(code, status), call="GetWorkflowInstance")
    assert isinstance(caught.value, FlowInstanceNotFound) is not_found
    assert caught.value.code == code


@pytest.mark.parametrize(
    ("response", "throttled"),
    [
        (error("Throttling.User", 429), True),
        (error("Throttling.User", 400), True),
        (error("Throttling.Api", 503), True),
        (error("Throttling", 400), True),
        (error("InvalidParameter", 400), False),
        (error("EntityNotExists.WorkflowInstance", 404), False),
        (answer({"Code": "Throttling.User"}, 200), False),
        (HttpResponse(503, {}, b"<html>busy</html>"), False),
        (HttpResponse(400, {}, b"{not json"), False),
    ],
)
def test_throttling_is_detected_by_its_code(response, throttled):
    assert is_throttled(response) is throttled


@pytest.mark.parametrize(
    ("headers", "seconds"),
    [
        ({"x-acs-retry-after": "1500"}, 1.5),  # milliseconds, moved here from the transport's own reading
        ({"x-acs-retry-after": "250", "retry-after": "3"}, 0.25),  # DataWorks' own header first
        ({"retry-after": "3"}, 3.0),  # the standard header still counts
        ({"x-acs-retry-after": "\u00b2"}, None),  # a digit to str.isdigit(), not to int()
        ({"x-acs-retry-after": "soon"}, None),
        ({}, None),
    ],
)
def test_the_signer_tells_the_transport_how_long_a_throttled_call_waits(headers, seconds):
    said = DataWorksSigner("AK", "S").throttling(HttpResponse(429, headers, b""), 1445412480.0)
    assert said.throttled and said.retry_after == seconds


def test_a_throttling_error_is_marked_retryable():
    with pytest.raises(FlowPlatformError) as caught:
        read_response(error("Throttling.User", 400), call="ListTaskInstances")
    assert caught.value.retryable


# -- the graph ---------------------------------------------------------------------------------------


def task(task_id: int, name: str, status: str = "Success") -> dict:
    return {"Id": task_id, "TaskName": name, "Status": status, "WorkflowInstanceId": 9}


def upstream_of(*task_ids: int) -> list[dict]:
    return [{"DependencyType": "Normal", "TaskInstance": {"Id": task_id}} for task_id in task_ids]


def test_the_graph_has_task_nodes_and_edges_from_upstream_to_downstream():
    tasks = [task(1, "extract"), task(2, "clean", "Running"), task(3, "load", "NotRun")]
    upstream = {"1": upstream_of(555), "2": upstream_of(1, 1, 2), "3": upstream_of(1, 2)}

    graph = build_graph(tasks, upstream).to_dict()

    assert graph["nodes"] == [
        {"id": "1", "name": "extract", "kind": "task", "state": "success", "raw_state": "Success", "instance_id": "1"},
        {"id": "2", "name": "clean", "kind": "task", "state": "running", "raw_state": "Running", "instance_id": "2"},
        {"id": "3", "name": "load", "kind": "task", "state": "queued", "raw_state": "NotRun", "instance_id": "3"},
    ]
    # 555 belongs to another workflow instance, the repeated 1 -> 2 counts once, 2 -> 2 is no edge.
    assert graph["edges"] == [
        {"source": "1", "target": "2"},
        {"source": "1", "target": "3"},
        {"source": "2", "target": "3"},
    ]


def test_get_instance_assembles_the_graph_from_task_and_upstream_calls():
    record = {**SEED["WorkflowInstance"], "Id": 9, "BizDate": 1710201600000, "ProjectId": 100}
    tasks = {"PagingInfo": {"TotalCount": 2, "TaskInstances": [task(11, "a"), task(12, "b", "Failure")]}}
    none = {"PagingInfo": {"TotalCount": 0, "UpstreamTaskInstances": []}}
    one = {"PagingInfo": {"TotalCount": 1, "UpstreamTaskInstances": upstream_of(11)}}

    steps, instance = run(
        client(project_id=None).get_instance("9"),
        answer({"WorkflowInstance": record}),
        answer(tasks),
        answer(none),
        answer(one),
    )

    assert [step.call for step in steps] == [
        "GetWorkflowInstance",
        "ListTaskInstances",
        "ListUpstreamTaskInstances",
        "ListUpstreamTaskInstances",
    ]
    assert form(steps[1])["Bizdate"] == "1710201600000"
    assert form(steps[1])["ProjectId"] == "100"
    assert form(steps[1])["WorkflowInstanceId"] == "9"
    assert [dict(step.params)["Id"] for step in steps[2:]] == ["11", "12"]
    assert instance.graph is not None
    assert [(node.id, node.state) for node in instance.graph.nodes] == [
        ("11", FlowState.SUCCESS),
        ("12", FlowState.FAILED),
    ]
    assert [(edge.source, edge.target) for edge in instance.graph.edges] == [("11", "12")]


def test_an_upstream_record_without_id_is_a_platform_error():
    with pytest.raises(FlowPlatformError, match="no Id"):
        build_graph([task(1, "a")], {"1": [{"DependencyType": "Normal", "TaskInstance": {}}]})


def test_the_central_endpoint_regions_are_the_sdks():
    # From alibabacloud_dataworks_public20240518's Client._endpoint_map (9.11.0): 36 regions map to the centre.
    assert len(CENTRAL_ENDPOINT_REGIONS) == 36
    assert {"cn-qingdao", "cn-wuhan", "ap-south-1", "ap-southeast-2", "cn-zhangbei"} <= CENTRAL_ENDPOINT_REGIONS
    assert not {"cn-hangzhou", "cn-shanghai", "cn-beijing", "eu-central-1", "us-west-1"} & CENTRAL_ENDPOINT_REGIONS


# -- paging: the listing ends where the platform shows no more rows ----------------------------------


def workflow_page(ids, total=None) -> HttpResponse:
    paging = {"WorkflowInstances": [{"Id": item, "WorkflowId": 1001} for item in ids]}
    if total is not None:
        paging["TotalCount"] = total
    return answer({"PagingInfo": paging})


def page_size_refused(limit: int = 100) -> HttpResponse:
    return error("InvalidParameter", 400, f"The parameter PageSize must be between 1 and {limit}.")


def test_a_refused_page_size_is_tried_smaller_and_kept_for_the_connection():
    dw = client()
    operation = dw.list_workflow_instances(bizdate=1, ids=[str(n) for n in range(150)], page_size=500)

    steps, records = run(
        operation,
        page_size_refused(),
        page_size_refused(),
        workflow_page(range(100), 150),
        workflow_page(range(100, 150), 150),
    )

    assert [form(step)["PageSize"] for step in steps] == ["500", "200", "100", "100"]
    assert [form(step)["PageNumber"] for step in steps] == ["1", "1", "1", "2"]
    assert [record["Id"] for record in records] == list(range(150))
    assert dw.page_size_limits == {"ListWorkflowInstances": 100}

    again, _ = run(dw.list_workflow_instances(bizdate=1, page_size=500), workflow_page([], 0))
    assert form(again[0])["PageSize"] == "100"  # no refusal paid twice


def test_a_refusal_that_is_not_about_the_page_size_is_raised():
    with pytest.raises(FlowPlatformError, match="ProjectId"):
        run(client().list_workflow_instances(bizdate=1), error("InvalidParameter", 400, "ProjectId is wrong"))


def test_a_page_shorter_than_asked_is_not_the_end_while_total_count_says_more():
    dw = client()
    # The server serves 20 rows whatever PageSize asks (a silent cap), and says 45 in all.
    steps, records = run(
        dw.list_workflow_instances(bizdate=1, page_size=100),
        workflow_page(range(20), 45),
        workflow_page(range(20, 40), 45),
        workflow_page(range(40, 45), 45),
    )

    assert [record["Id"] for record in records] == list(range(45))
    assert [(form(step)["PageNumber"], form(step)["PageSize"]) for step in steps] == [
        ("1", "100"),
        ("2", "20"),
        ("3", "20"),
    ]
    assert dw.page_size_limits == {"ListWorkflowInstances": 20}


def test_without_total_count_the_listing_ends_on_an_empty_page():
    steps, records = run(
        client().list_workflow_instances(bizdate=1, page_size=2),
        workflow_page([1, 2]),
        workflow_page([3]),
        workflow_page([]),
    )
    assert [record["Id"] for record in records] == [1, 2, 3]
    assert len(steps) == 3


def test_total_count_reached_ends_the_listing_without_an_empty_page():
    steps, records = run(client().list_workflow_instances(bizdate=1, page_size=2), workflow_page([1, 2], 2))
    assert len(steps) == 1 and len(records) == 2


def test_batched_reads_page_at_the_size_the_platform_takes():
    dw = client()  # it remembers each instance's workspace and data timestamp from its reads
    ids = [dw.to_flow_instance({"Id": n, "ProjectId": 100, "BizDate": 1743350400000}).instance_id for n in range(250)]

    steps, found = run(
        dw.batch_instances(ids),
        page_size_refused(),
        page_size_refused(),
        workflow_page(range(100), 250),
        workflow_page(range(100, 200), 250),
        workflow_page(range(200, 250), 250),
    )

    assert sorted(found, key=int) == [str(n) for n in range(250)]
    assert [form(step)["PageSize"] for step in steps] == ["500", "200", "100", "100", "100"]
    assert all(step.repeatable for step in steps)  # a read, although a POST


# -- starting a run: the workflow's trigger type chooses the instance type ----------------------------

#: 2025-04-01 01:00 at UTC+8 (2025-03-31 17:00 UTC): the business day before it is 2025-03-31.
REQUESTED_AT_MS = 1743440400000
ATTEMPT = StartAttempt(flow="1001", requested_at_ms=REQUESTED_AT_MS, marker="0123456789abcdef0123456789abcdef")


def workflow(trigger: str | None, tasks=(11, 12)) -> HttpResponse:
    record = {"Id": 1001, "ProjectId": 100, "Tasks": [{"Id": task} for task in tasks]}
    if trigger is not None:
        record["Trigger"] = {"Type": trigger}
    return answer({"Workflow": record})


CREATED = answer({"Result": {"Status": "Created", "WorkflowInstanceIds": [700042]}})


def test_a_manual_workflow_is_run_as_a_manual_workflow_instance_with_json_parameters():
    steps, run_id = run(
        client().start_run("1001", {"region": "east", "day": "2025-03-31"}, ATTEMPT),
        workflow("Manual"),
        answer({"OperationId": "op-1"}),
        CREATED,
    )

    assert run_id == "700042"
    get, create, result = steps
    assert (get.method, get.call, dict(get.params)) == ("GET", "GetWorkflow", {"Id": "1001"})
    sent = form(create)
    assert sent["Type"] == "ManualWorkflow"
    assert json.loads(sent["WorkflowParameters"]) == {"region": "east", "day": "2025-03-31"}
    assert "Periods" not in sent and "DefaultRunProperties" not in sent
    assert ATTEMPT.marker in sent["Name"] and sent["Name"].startswith("airflow_1001_")
    assert sent["ProjectId"] == "100"
    assert not create.repeatable  # a create is never sent twice blindly
    assert get.repeatable and result.repeatable and result.call == "GetCreateWorkflowInstancesResult"


def test_a_scheduled_workflow_is_run_as_a_one_day_backfill_with_key_value_parameters():
    steps, run_id = run(
        client().start_run("1001", {"region": "east", "limit": 5}, ATTEMPT),
        workflow("Scheduler"),
        answer({"OperationId": "op-1"}),
        CREATED,
    )

    assert run_id == "700042"
    sent = form(steps[1])
    assert sent["Type"] == "SupplementData"
    assert json.loads(sent["Periods"]) == {"BizDates": [{"StartBizDate": "2025-03-31", "EndBizDate": "2025-03-31"}]}
    assert json.loads(sent["DefaultRunProperties"]) == {
        "Mode": "ManualSelection",
        "RootTaskIds": [11, 12],
        "Parallelism": 1,
        "Analysis": {"Enabled": False, "Blocked": False},
    }
    assert sent["WorkflowParameters"] == "region=east limit=5"


def test_the_backfill_day_follows_the_connections_timezone():
    utc = DataWorksClient(DataWorksSettings(endpoint="https://dw.example", project_id="1", timezone="UTC"))
    steps, _ = run(utc.start_run("1001", None, ATTEMPT), workflow("Scheduler"), answer({"OperationId": "o"}), CREATED)
    assert json.loads(form(steps[1])["Periods"])["BizDates"][0]["StartBizDate"] == "2025-03-30"
    assert "WorkflowParameters" not in form(steps[1])


def test_an_event_triggered_workflow_is_run_as_a_trigger_workflow_instance():
    steps, _ = run(
        client().start_run("1001", {"file": "a.csv"}, ATTEMPT),
        workflow("TriggerWorkflow"),
        answer({"OperationId": "o"}),
        CREATED,
    )
    sent = form(steps[1])
    assert sent["Type"] == "TriggerWorkflow" and sent["WorkflowParameters"] == "file=a.csv"
    assert "Periods" not in sent


@pytest.mark.parametrize("trigger", [None, "Dependency"])
def test_a_workflow_of_unknown_trigger_type_is_not_started(trigger):
    operation = client().start_run("1001", None, ATTEMPT)
    with pytest.raises(FlowPlatformError, match="trigger type") as caught:
        run(operation, workflow(trigger))
    assert caught.value.call == "GetWorkflow"


def test_a_scheduled_workflow_without_tasks_is_not_started():
    with pytest.raises(FlowPlatformError, match="lists no tasks"):
        run(client().start_run("1001", None, ATTEMPT), workflow("Scheduler", tasks=()))


def test_key_value_parameters_cannot_hold_spaces():
    operation = client().create_workflow_instances(
        workflow_id="1", name="n", type="SupplementData", parameters={"note": "two words"}
    )
    with pytest.raises(FlowPlatformError, match=r"'note'.*key=value"):
        next(operation)


# -- finding the run an attempt made: by the marker in the instance's Name ----------------------------


def named(*pairs) -> HttpResponse:
    rows = [{"Id": item, "WorkflowId": 1001, "Name": name} for item, name in pairs]
    return answer({"PagingInfo": {"TotalCount": len(rows), "WorkflowInstances": rows}})


def test_find_started_run_lists_the_business_dates_around_the_request_by_the_marker():
    mine = f"airflow_1001_20250331170000_{ATTEMPT.marker}"
    steps, found = run(
        client().find_started_run("1001", None, ATTEMPT),
        workflow("Manual"),
        named(),
        named((700042, mine), (700042, mine)),  # a listing may return a row twice
    )

    assert found == "700042"
    listings = [form(step) for step in steps[1:]]
    # Requested on 2025-04-01 (UTC+8): that day and the one before, each 00:00 +08:00.
    assert [listing["BizDate"] for listing in listings] == ["1743350400000", "1743436800000"]
    assert all(listing["Name"] == ATTEMPT.marker and listing["WorkflowId"] == "1001" for listing in listings)
    assert all(step.repeatable for step in steps)


def test_find_started_run_is_none_when_no_instance_carries_the_marker():
    _, found = run(
        client().find_started_run("1001", None, ATTEMPT),
        workflow("Manual"),
        named((1, "airflow_1001_20250331170000_ffffffffffffffffffffffffffffffff")),
        named(),
    )
    assert found is None


def test_two_instances_with_the_marker_are_an_ambiguous_start():
    mine = f"x_{ATTEMPT.marker}"
    with pytest.raises(AmbiguousStart, match="700001, 700002"):
        run(
            client().find_started_run("1001", None, ATTEMPT),
            workflow("Manual"),
            named((700001, mine)),
            named((700002, mine)),
        )


# -- the event trigger's listing ---------------------------------------------------------------------


def test_recent_instances_returns_each_instance_once():
    rows = [{"Id": 7, "WorkflowId": 1001, "Status": "Success"}, {"Id": 7, "WorkflowId": 1001, "Status": "Success"}]
    steps, found = run(
        client().recent_instances("1001", [FlowState.SUCCESS], {"bizdates": [dt.date(2025, 3, 31)]}),
        answer({"PagingInfo": {"TotalCount": 3, "WorkflowInstances": rows}}),
        answer({"PagingInfo": {"TotalCount": 3, "WorkflowInstances": rows[:1]}}),
    )
    assert [instance.instance_id for instance in found] == ["7"]
    assert form(steps[0])["BizDate"] == "1743350400000"


def test_recent_instances_list_yesterday_and_today_by_the_clients_clock():
    # 2025-04-01 01:00 at UTC+8 (2025-03-31 17:00 UTC): the business days are 2025-03-31 and 2025-04-01.
    dw = DataWorksClient(DataWorksSettings(endpoint="https://dw", project_id="100"), clock=lambda: 1743440400.0)
    steps, _ = run(dw.recent_instances("1001", [FlowState.SUCCESS], {}), workflow_page([]), workflow_page([]))
    assert [form(step)["BizDate"] for step in steps] == ["1743350400000", "1743436800000"]
