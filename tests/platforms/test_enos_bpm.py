"""EnOS BPM, pure: the composed login, signing with the bearer header, requests, envelopes, states, graph."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from urllib.parse import parse_qsl, urlsplit

import pytest

from airflow_provider_flowinst.errors import FlowInstanceNotFound, FlowPlatformError
from airflow_provider_flowinst.models import FlowState
from airflow_provider_flowinst.platforms.enos_bpm import (
    EnOSBPMAuth,
    EnOSBPMClient,
    EnOSBPMSettings,
    activity_node_id,
    map_status,
    query_body,
    read_envelope,
    read_portal_envelope,
)
from airflow_provider_flowinst.platforms.enos_gateway import EnOSGatewayAuth, request_signature, token_encryption
from airflow_provider_flowinst.protocol import HttpRequest, HttpResponse, Token
from tests.helpers import drive as run

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures"
SEED = json.loads((FIXTURES / "enos_bpm_get_process_instance.json").read_text())
SERVICE = "https://gw/enos-bpm-service/v2.0/work"


def client(**overrides) -> EnOSBPMClient:
    return EnOSBPMClient(EnOSBPMSettings(**{"base_url": "https://gw", **overrides}))


def auth(org_id: str | None = "o1", **overrides) -> EnOSBPMAuth:
    gateway = EnOSGatewayAuth("enos_bpm", "https://gw", "app-key", "app-secret")
    return EnOSBPMAuth(
        **{"gateway": gateway, "account": "me@example.com", "password": "pw", "org_id": org_id, **overrides}
    )


def answer(payload, status: int = 200) -> HttpResponse:
    return HttpResponse(status, {"content-type": "application/json"}, json.dumps(payload).encode())


def body_of(request: HttpRequest):
    return json.loads(request.body)


def signature_is_valid(request: HttpRequest, secret: str = "app-secret") -> bool:
    headers = request.headers
    expected = request_signature(
        headers["apim-accesstoken"], request.params, request.body, int(headers["apim-timestamp"]), secret
    )
    return headers["apim-signature"] == expected


GATEWAY_OK = answer({"status": 0, "msg": "SUCCESS", "data": {"accessToken": "gw-token", "expire": 7200}})
LOGIN_OK = answer({"code": 0, "message": "", "data": {"accessToken": "user-token", "organizations": [], "user": {}}})
SESSION_OK = answer(
    {
        "code": 0,
        "message": "",
        "data": {"accessToken": "org-token", "refreshToken": "refresh-1", "refreshTokenExpire": 1570018958000},
    }
)
TOKEN = Token("gw-token", 10**10, refresh_value="refresh-1", bearer="user-token")


# -- login: gateway token, then the portal account, then the organization ---------------------------------


def test_login_gets_the_gateway_token_then_logs_in_and_chooses_the_organization():
    seen: list[str] = []
    requests, token = run(auth(on_secret=seen.append).login(), GATEWAY_OK, LOGIN_OK, SESSION_OK)

    token_request, login, session = requests
    assert token_request.url == "https://gw/apim-token-service/v2.0/token/get"
    sent = body_of(token_request)
    assert sent["encryption"] == token_encryption("app-key", sent["timestamp"], "app-secret")

    assert (login.method, login.url, login.call) == ("POST", "https://gw/app-portal-service/v2.2/login", "Log In")
    assert body_of(login) == {"account": "me@example.com", "password": "pw"}
    assert "Authorization" not in login.headers
    assert session.url == "https://gw/app-portal-service/v2.1/session/set"
    assert body_of(session) == {"orgId": "o1"}
    assert session.headers["Authorization"] == "Bearer user-token"
    # The portal calls go through the gateway too: signed with the token this very login obtained.
    for request in (login, session):
        assert request.authenticated is False  # the transport sends them as they are
        assert request.headers["apim-accesstoken"] == "gw-token"
        assert signature_is_valid(request)

    assert (token.value, token.bearer, token.refresh_value) == ("gw-token", "org-token", "refresh-1")
    # Every token is handed over for masking as it arrives (the login's own user token too).
    assert seen == ["gw-token", "user-token", "org-token", "refresh-1"]
    assert "token" not in repr(token).replace("Token(", "")


def test_login_without_org_id_skips_choose_organization():
    requests, token = run(auth(org_id=None).login(), GATEWAY_OK, LOGIN_OK)

    assert len(requests) == 2
    assert (token.bearer, token.refresh_value) == ("user-token", None)


def test_the_v20_portal_success_code_200_is_accepted():
    v20 = answer({"code": 200, "message": "", "data": {"accessToken": "old-style"}})
    _, token = run(auth(org_id=None).login(), GATEWAY_OK, v20)
    assert token.bearer == "old-style"


def test_a_wrong_password_is_the_portals_message_without_the_password():
    refused = answer({"code": 31400, "message": "User password is missing or not valid", "data": None})
    operation = auth(password="hunter2-secret").login()
    next(operation)
    operation.send(GATEWAY_OK)
    with pytest.raises(FlowPlatformError) as error:
        operation.send(refused)

    assert str(error.value) == "EnOS BPM: Log In failed: User password is missing or not valid (code 31400, HTTP 200)"
    assert error.value.code == "31400"
    assert "hunter2-secret" not in str(error.value)


def test_a_wrong_app_secret_fails_at_the_gateway_token_naming_enos_bpm():
    operation = auth().login()
    next(operation)
    with pytest.raises(FlowPlatformError, match=r"^EnOS BPM: Get Access Token failed: The encryption is not valid"):
        operation.send(answer({"status": 1003, "msg": "The encryption is not valid.", "data": None}))


def test_a_portal_success_without_a_token_is_a_platform_error():
    operation = auth(org_id=None).login()
    next(operation)
    operation.send(GATEWAY_OK)
    with pytest.raises(FlowPlatformError, match="Log In failed: the answer has no accessToken"):
        operation.send(answer({"code": 0, "message": "", "data": {"user": {}}}))


def test_refresh_sends_the_refresh_token_signed_and_keeps_the_gateway_token():
    requests, renewed = run(
        auth().refresh(TOKEN),
        answer({"code": 0, "message": "", "data": {"accessToken": "user-2", "refreshToken": "refresh-2"}}),
    )

    (request,) = requests
    assert (request.method, request.url) == ("GET", "https://gw/app-portal-service/v2.2/token/refresh")
    assert request.params == (("refreshToken", "refresh-1"),)
    assert signature_is_valid(request)
    assert (renewed.value, renewed.bearer, renewed.refresh_value) == ("gw-token", "user-2", "refresh-2")


def test_refresh_without_a_refresh_token_says_why():
    with pytest.raises(FlowPlatformError, match="set org_id"):
        next(auth().refresh(Token("gw", 0, bearer="b")))


# -- signing ----------------------------------------------------------------------------------------------


def test_sign_adds_the_gateway_headers_and_the_bearer_token():
    request = HttpRequest(
        "POST", SERVICE + "/process-instances", call="X", params=(("b", "2"), ("a", "1")), body=b'{"q":1}'
    )
    signed = auth().sign(request, TOKEN, 1700000000000)

    assert signed.headers["Authorization"] == "Bearer user-token"
    assert signed.headers["apim-accesstoken"] == "gw-token"
    assert signed.headers["apim-timestamp"] == "1700000000000"
    assert signed.headers["apim-signature"] == request_signature(
        "gw-token", [("a", "1"), ("b", "2")], b'{"q":1}', 1700000000000, "app-secret"
    )


def test_sign_refuses_a_token_without_the_user_token():
    with pytest.raises(ValueError, match="portal user token"):
        auth().sign(HttpRequest("GET", SERVICE, call="X"), Token("gw", 0), 1)


@pytest.mark.parametrize(
    ("response", "expired"),
    [
        (answer({"code": "1203", "msg": "The access token has expired."}, 401), True),
        (answer({"code": "1203", "msg": "expired"}, 200), True),
        (answer({"code": 401, "msg": "Please authentication first"}, 401), True),
        (answer({"code": 410, "message": "cache.token.expired"}, 200), True),
        (answer({"code": 33404, "msg": "not found"}), False),
        (answer({"code": 0, "msg": "", "data": {}}), False),
        (HttpResponse(502, {}, b"<html>bad gateway</html>"), False),
    ],
)
def test_token_expiry_is_http_401_gateway_1203_or_the_portals_codes(response, expired):
    assert auth().is_token_expired(response) is expired


def test_secrets_are_the_password_and_the_app_secret_and_the_cache_key_reveals_neither():
    bpm = auth(password="pw-123")
    assert set(bpm.secrets()) == {"pw-123", "app-secret"}
    assert "pw-123" not in bpm.cache_key and "app-secret" not in bpm.cache_key
    assert bpm.cache_key != auth(password="other").cache_key  # another password never shares a token
    assert bpm.cache_key == auth(password="pw-123").cache_key
    assert "pw-123" not in repr(bpm) and "app-secret" not in repr(bpm)


def test_portal_envelope_errors_quote_the_portals_message():
    with pytest.raises(FlowPlatformError, match=r"Choose Organization failed: The organization\(x\) does not exist"):
        read_portal_envelope(
            answer({"code": 404, "message": "The organization(x) does not exist"}), call="Choose Organization"
        )


# -- calls ------------------------------------------------------------------------------------------------


def test_get_process_instance_request_and_answer():
    requests, record = run(client().get_process_instance("abc-1"), answer(SEED))

    (request,) = requests
    assert (request.method, request.url, request.call) == (
        "GET",
        SERVICE + "/process-instances",
        "Get Process Instance",
    )
    assert request.params == (("processInstanceId", "abc-1"),)
    assert request.body is None and request.authenticated
    assert record == SEED["data"]


def test_code_33404_is_flow_instance_not_found():
    refused = answer({"code": 33404, "msg": "The process instance ID does not exist.", "data": None})
    with pytest.raises(FlowInstanceNotFound) as error:
        run(client().get_process_instance("nope"), refused)
    assert error.value.code == "33404"
    assert str(error.value) == (
        "EnOS BPM: Get Process Instance failed: The process instance ID does not exist. (code 33404, HTTP 200)"
    )


def test_an_empty_data_is_not_found_too():
    with pytest.raises(FlowInstanceNotFound):
        run(client().get_process_instance("nope"), answer({"code": 0, "msg": "", "data": None}))


def test_other_error_codes_are_platform_errors_not_not_found():
    with pytest.raises(FlowPlatformError) as error:
        read_envelope(answer({"code": 33500, "msg": "Internal service error."}), call="X", not_found_code="33404")
    assert not isinstance(error.value, FlowInstanceNotFound)
    assert error.value.code == "33500"


def test_a_non_json_answer_is_a_platform_error_quoting_it():
    with pytest.raises(FlowPlatformError, match="the answer is not JSON: '<html>oops</html>'"):
        run(client().get_process_instance("x"), HttpResponse(200, {}, b"<html>oops</html>"))


def page(records, current, total, page_size=2):
    return answer(
        {
            "code": 0,
            "msg": "",
            "data": {
                "pagination": {"current": current, "pageSize": page_size, "total": total, "sorts": [], "start": 0},
                "processInstances": records,
            },
        }
    )


def test_query_reads_every_page_from_current_0():
    records = [{"id": str(n), "processStatus": "completed"} for n in range(5)]
    operation = client().query_process_instances(
        "completed", processName="Leave", page_size=2, sorts=[{"field": "createdTime", "order": "asc"}]
    )
    requests, found = run(operation, page(records[:2], 0, 5), page(records[2:4], 1, 5), page(records[4:], 2, 5))

    assert found == records
    assert [body_of(r)["pagination"]["current"] for r in requests] == [0, 1, 2]
    assert requests[0].url == SERVICE + "/process-instances/queryList"
    assert body_of(requests[0]) == {
        "processStatus": "completed",
        "processName": "Leave",
        "pagination": {"current": 0, "pageSize": 2, "sorts": [{"field": "createdTime", "order": "asc"}]},
    }


def test_query_stops_when_a_server_counting_from_1_repeats_its_first_page():
    first = [{"id": "a"}, {"id": "b"}]
    requests, found = run(
        client().query_process_instances("inProgress", page_size=2), page(first, 1, 3), page(first, 1, 3)
    )
    assert [r["id"] for r in found] == ["a", "b"]
    assert len(requests) == 2


def test_query_body_takes_snake_case_and_aware_datetimes():
    moment = dt.datetime(2024, 1, 1, tzinfo=dt.timezone.utc)
    body = query_body("inProgress", started_after=moment, start_by="u1", process_instance_id=None)
    assert body == {
        "processStatus": "inProgress",
        "startedAfter": 1704067200000,
        "startBy": "u1",
        "pagination": {"current": 0, "pageSize": 100},
    }


def test_query_refuses_an_unknown_status_before_any_call():
    with pytest.raises(FlowPlatformError, match="processStatus must be one of inProgress, completed, terminated"):
        next(client().query_process_instances("running"))


def test_query_answer_without_a_list_is_a_platform_error():
    with pytest.raises(FlowPlatformError, match="expected a list of objects"):
        run(client().query_process_instances("completed"), answer({"code": 0, "data": {"processInstances": "nope"}}))


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        ({"id": "new-1", "processStatus": "inProgress"}, "new-1"),
        ({"processInstanceId": "new-2"}, "new-2"),
        ("new-3", "new-3"),
    ],
)
def test_start_sends_definition_values_and_name_and_reads_the_new_id(data, expected):
    requests, instance_id = run(
        client().start_process_instance("def:1:x", {"amount": 12}, name="Mine"), answer({"code": 0, "data": data})
    )
    assert (requests[0].method, requests[0].url) == ("POST", SERVICE + "/process-instances")
    assert body_of(requests[0]) == {"processDefinitionId": "def:1:x", "values": {"amount": 12}, "name": "Mine"}
    assert instance_id == expected


def test_start_without_values_sends_an_empty_form_and_needs_an_id_back():
    operation = client().start_process_instance("def:1:x")
    assert body_of(next(operation)) == {"processDefinitionId": "def:1:x", "values": {}}
    with pytest.raises(FlowPlatformError, match="the answer has no process instance id"):
        operation.send(answer({"code": 0, "data": {"name": "no id"}}))


def test_terminate_sends_action_delete_and_both_reason_fields():
    requests, result = run(client().terminate_process_instance("p-1", "not needed"), answer({"code": 0, "data": True}))

    (request,) = requests
    assert (request.method, request.url) == ("POST", SERVICE + "/process-instances")
    assert request.params == (("action", "delete"), ("processInstanceId", "p-1"))
    assert urlsplit(request.full_url).query == "action=delete&processInstanceId=p-1"
    assert dict(parse_qsl(urlsplit(request.full_url).query))["processInstanceId"] == "p-1"
    assert body_of(request) == {"deleteReason": "not needed", "terminateReason": "not needed"}
    assert result is None


@pytest.mark.parametrize(
    ("code", "error_type"), [(33403, FlowPlatformError), (33404, FlowInstanceNotFound), (33500, FlowPlatformError)]
)
def test_terminate_errors(code, error_type):
    with pytest.raises(error_type) as error:
        run(client().terminate_process_instance("p-1", "r"), answer({"code": code, "msg": f"refused {code}"}))
    assert error.value.code == str(code)
    assert f"Terminate Process Instance failed: refused {code}" in str(error.value)


def test_terminate_answered_false_is_an_error():
    with pytest.raises(FlowPlatformError, match="did not terminate"):
        run(client().terminate_process_instance("p-1", "r"), answer({"code": 0, "data": False}))


# -- reading ----------------------------------------------------------------------------------------------


def test_the_seed_sample_becomes_exactly_the_api_md_dict():
    instance = client().to_flow_instance(SEED["data"])

    assert instance.to_dict() == {
        "platform": "enos_bpm",
        "instance_id": "2e0130f7-e39a-11ea-b667-e2b39eaec113",
        "flow_id": "5abd9f71-e365-11ea-8a6b-be43f0d99bcd",
        "name": "0821终止",
        "state": "cancelled",
        "raw_state": "terminated",
        "started_at": "2020-08-21T10:36:32.452000+00:00",
        "ended_at": "2020-08-21T10:37:49.443000+00:00",
        "url": None,
        "graph": None,  # no current task
        "details": SEED["data"],
    }
    json.dumps(instance.to_dict())


# API.md's EnOS BPM column, row by row.
STATE_ROWS = [
    ("inProgress", FlowState.RUNNING),
    ("completed", FlowState.SUCCESS),
    ("terminated", FlowState.CANCELLED),
    ("suspended", FlowState.UNKNOWN),
    ("", FlowState.UNKNOWN),
    (None, FlowState.UNKNOWN),
]


@pytest.mark.parametrize(("status", "state"), STATE_ROWS)
def test_state_mapping(status, state):
    assert map_status(status) is state


def test_an_unknown_status_keeps_the_raw_word():
    instance = client().to_flow_instance(SEED["data"] | {"processStatus": "suspended"})
    assert (instance.state, instance.raw_state) == (FlowState.UNKNOWN, "suspended")


RUNNING = SEED["data"] | {
    "processStatus": "inProgress",
    "terminatedTime": None,
    "terminatedBy": None,
    "taskName": "Manager approval",
    "assignee": {"id": "u2", "fullName": "jane.manager"},
}


def test_the_current_task_is_a_one_node_activity_graph():
    instance = client().to_flow_instance(RUNNING)

    assert instance.state is FlowState.RUNNING
    assert instance.ended_at is None
    assert instance.to_dict()["graph"] == {
        "nodes": [
            {
                "id": activity_node_id("Manager approval"),
                "name": "Manager approval",
                "kind": "activity",
                "state": "running",
                "raw_state": "inProgress",
                "instance_id": None,
            }
        ],
        "edges": [],
    }


def test_the_node_id_is_stable_and_differs_per_task():
    assert activity_node_id("Manager approval") == activity_node_id("Manager approval")
    assert activity_node_id("Manager approval") != activity_node_id("Finance review")
    assert activity_node_id("经理审批").startswith("a_") and len(activity_node_id("经理审批")) == 18


def test_no_task_or_no_graph_asked_is_none():
    assert client().to_flow_instance(RUNNING | {"taskName": None}).graph is None
    assert client().to_flow_instance(RUNNING | {"taskName": "  "}).graph is None
    assert client().to_flow_instance(RUNNING, include_graph=False).graph is None


def test_times_fall_back_to_started_and_ended_and_completed_time_wins():
    record = {"id": "x", "processStatus": "completed", "started": 1000, "ended": 5000, "completedTime": 3000}
    instance = client().to_flow_instance(record)
    assert instance.started_at == dt.datetime(1970, 1, 1, 0, 0, 1, tzinfo=dt.timezone.utc)
    assert instance.ended_at == dt.datetime(1970, 1, 1, 0, 0, 3, tzinfo=dt.timezone.utc)


def test_the_console_link_comes_from_the_connection_else_from_the_record():
    templated = client(console_url="https://portal/bpm/{instance_id}?d={flow_id}")
    assert templated.to_flow_instance(SEED["data"]).url == (
        "https://portal/bpm/2e0130f7-e39a-11ea-b667-e2b39eaec113?d=5abd9f71-e365-11ea-8a6b-be43f0d99bcd"
    )
    assert client().to_flow_instance(SEED["data"] | {"url": "https://bpm/x"}).url == "https://bpm/x"


@pytest.mark.parametrize(
    ("record", "message"),
    [
        ({"processStatus": "completed"}, "the answer has no 'id' field"),
        ({"id": "x"}, "the answer has no 'processStatus' field"),
        ({"id": "x", "processStatus": "completed", "createdTime": "yesterday"}, "unreadable time"),
        ({"id": "x", "processStatus": "completed", "completedTime": {"ms": 1}}, "unreadable time"),
        (["not", "an", "object"], "expected an object, got list"),
    ],
)
def test_records_missing_fields_are_platform_errors_not_key_errors(record, message):
    with pytest.raises(FlowPlatformError) as error:
        client().to_flow_instance(record)
    assert str(error.value).startswith("EnOS BPM: Get Process Instance failed:")
    assert message in str(error.value)


def test_the_id_falls_back_to_process_instance_id_and_the_name_to_process_name():
    instance = client().to_flow_instance({"processInstanceId": "p", "processName": "n", "processStatus": "completed"})
    assert (instance.instance_id, instance.name) == ("p", "n")
