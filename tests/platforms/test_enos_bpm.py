"""EnOS BPM, pure: the composed login, signing with the bearer header, requests, envelopes, states, graph."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from urllib.parse import parse_qsl, urlsplit

import pytest

from airflow_provider_flowinst.errors import AmbiguousStart, FlowInstanceNotFound, FlowPlatformError
from airflow_provider_flowinst.models import FlowState, GraphNode, NodeKind
from airflow_provider_flowinst.platforms.enos_bpm import (
    EnOSBPMAuth,
    EnOSBPMClient,
    EnOSBPMSettings,
    PortalSession,
    PortalVersions,
    activity_node_id,
    map_status,
    query_body,
    read_envelope,
    read_portal_envelope,
)
from airflow_provider_flowinst.platforms.enos_gateway import EnOSGatewayAuth, request_signature, token_encryption
from airflow_provider_flowinst.protocol import HttpRequest, HttpResponse, StartAttempt, Token
from tests.helpers import answer
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


def body_of(request: HttpRequest):
    return json.loads(request.body)


def signature_is_valid(request: HttpRequest, secret: str = "app-secret") -> bool:
    headers = request.headers
    expected = request_signature(
        headers["apim-accesstoken"], request.params, request.body, int(headers["apim-timestamp"]), secret
    )
    return headers["apim-signature"] == expected


GATEWAY_OK = answer({"status": 0, "msg": "SUCCESS", "data": {"accessToken": "gw-token", "expire": 7200}})
GATEWAY_2 = answer({"status": 0, "msg": "SUCCESS", "data": {"accessToken": "gw-token-2", "expire": 7200}})


def login_ok(*organizations: tuple[str, str]) -> HttpResponse:
    orgs = [{"id": org, "name": name} for org, name in organizations]
    return answer(
        {"code": 0, "message": "OK", "data": {"accessToken": "user-token", "organizations": orgs, "user": {}}}
    )


LOGIN_OK = login_ok(("o1", "Portal Demo"))
NOT_FOUND = HttpResponse(404, {"content-type": "application/json"}, b'{"code":404,"message":"Not Found"}')
SESSION_OK = answer(
    {
        "code": 0,
        "message": "",
        "data": {"accessToken": "org-token", "refreshToken": "refresh-1", "refreshTokenExpire": 1570018958000},
    }
)
TOKEN = Token("gw-token", 10**10, PortalSession("user-token", "refresh-1"))


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
    assert session.url == "https://gw/app-portal-service/v2.2/session/set"
    assert body_of(session) == {"orgId": "o1"}
    assert session.headers["Authorization"] == "Bearer user-token"
    # The portal calls go through the gateway too: signed with the token this very login obtained.
    for request in (login, session):
        assert request.authenticated is False  # the transport sends them as they are
        assert request.headers["apim-accesstoken"] == "gw-token"
        assert signature_is_valid(request)

    assert (token.value, token.payload.bearer, token.payload.refresh_value) == ("gw-token", "org-token", "refresh-1")
    # Every token is handed over for masking as it arrives (the login's own user token too).
    assert seen == ["gw-token", "user-token", "org-token", "refresh-1"]
    assert "token" not in repr(token).replace("Token(", "")


def test_without_org_id_the_only_organization_listed_is_chosen():
    # The login's own token serves Choose Organization only: an organization is chosen whatever happens.
    requests, token = run(auth(org_id=None).login(), GATEWAY_OK, LOGIN_OK, SESSION_OK)

    assert body_of(requests[2]) == {"orgId": "o1"}
    assert (token.payload.bearer, token.payload.refresh_value) == ("org-token", "refresh-1")


def test_several_organizations_and_none_chosen_is_an_error_naming_them():
    operation = auth(org_id=None).login()
    next(operation)
    operation.send(GATEWAY_OK)
    with pytest.raises(FlowPlatformError) as error:
        operation.send(login_ok(("o1", "Portal Demo"), ("o2", "Plant B")))

    assert str(error.value) == (
        "EnOS BPM: Choose Organization failed: the account belongs to 2 organizations (o1 (Portal Demo), "
        "o2 (Plant B)): set the connection's extra 'org_id' to the one to use"
    )


def test_no_organization_listed_and_none_chosen_is_an_error():
    operation = auth(org_id=None).login()
    next(operation)
    operation.send(GATEWAY_OK)
    with pytest.raises(FlowPlatformError, match=r"lists no organization for this account: set .*'org_id'"):
        operation.send(login_ok())


def test_org_id_is_chosen_even_when_the_login_lists_several():
    requests, _ = run(auth(org_id="o2").login(), GATEWAY_OK, login_ok(("o1", "A"), ("o2", "B")), SESSION_OK)
    assert body_of(requests[2]) == {"orgId": "o2"}


def test_choose_organization_falls_back_to_v21_on_404_and_keeps_the_token_it_echoes():
    v21 = answer({"code": 200, "message": "", "data": {"accessToken": "user-token", "refreshToken": "r21"}})
    requests, token = run(auth().login(), GATEWAY_OK, LOGIN_OK, NOT_FOUND, v21)

    assert [r.url.rsplit("/app-portal-service/", 1)[1] for r in requests[2:]] == [
        "v2.2/session/set",
        "v2.1/session/set",
    ]
    assert all(r.headers["Authorization"] == "Bearer user-token" and signature_is_valid(r) for r in requests[2:])
    assert (token.payload.bearer, token.payload.refresh_value) == ("user-token", "r21")


def test_login_falls_back_to_v20_on_404_and_the_next_login_goes_there_first():
    v20_login = answer(
        {"code": 200, "message": "", "data": {"accessToken": "old-user", "organizations": [{"id": "o1"}]}}
    )
    versions = PortalVersions()
    requests, token = run(auth(versions=versions).login(), GATEWAY_OK, NOT_FOUND, v20_login, SESSION_OK)

    assert [r.url.rsplit("/app-portal-service/", 1)[1] for r in requests[1:]] == [
        "v2.2/login",
        "v2.0/login",  # an older portal (api_en app_portal/login.md): same body, success code 200
        "v2.2/session/set",
    ]
    assert body_of(requests[2]) == {"account": "me@example.com", "password": "pw"} and signature_is_valid(requests[2])
    assert requests[3].headers["Authorization"] == "Bearer old-user"
    assert token.payload.bearer == "org-token"

    # Remembered for the connection: a later login (another hook on it) meets no 404.
    requests, _ = run(auth(versions=versions).login(), GATEWAY_OK, v20_login, SESSION_OK)
    assert [r.url.rsplit("/app-portal-service/", 1)[1] for r in requests[1:]] == ["v2.0/login", "v2.2/session/set"]


def test_a_remembered_version_that_disappears_falls_back_to_the_others():
    versions = PortalVersions()
    versions.remember("Log In", "/app-portal-service/v2.0/login")
    requests, _ = run(auth(versions=versions).login(), GATEWAY_OK, NOT_FOUND, LOGIN_OK, SESSION_OK)

    assert [r.url.rsplit("/app-portal-service/", 1)[1] for r in requests[1:3]] == ["v2.0/login", "v2.2/login"]
    assert versions.served("Log In") == "/app-portal-service/v2.2/login"


def test_a_login_refusal_is_not_a_missing_version():
    refused = answer({"code": 31400, "message": "User password is missing or not valid", "data": None}, status=400)
    operation = auth().login()
    operation.send(None)
    operation.send(GATEWAY_OK)
    with pytest.raises(FlowPlatformError, match="Log In failed: User password is missing"):
        operation.send(refused)  # no v2.0 attempt: the portal has v2.2 and said no


def test_choose_organization_at_v22_needs_no_v21():
    requests, _ = run(auth().login(), GATEWAY_OK, LOGIN_OK, SESSION_OK)
    assert [r.url for r in requests].count("https://gw/app-portal-service/v2.1/session/set") == 0


def test_a_refused_organization_is_the_portals_message():
    refused = answer({"code": 31404, "message": "Can not find this organization.", "data": None})
    with pytest.raises(
        FlowPlatformError, match=r"Choose Organization failed: Can not find this organization\. \(code 31404"
    ):
        run(auth().login(), GATEWAY_OK, LOGIN_OK, refused)


def test_the_v20_portal_success_code_200_is_accepted():
    v20 = answer({"code": 200, "message": "", "data": {"accessToken": "old-style"}})
    _, token = run(auth().login(), GATEWAY_OK, v20, v20)
    assert token.payload.bearer == "old-style"


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


REFRESHED = answer({"code": 0, "message": "OK", "data": {"accessToken": "user-2", "refreshToken": "refresh-2"}})
PLEASE_LOGIN = answer({"code": 31401, "message": "Please login first", "data": None})


def test_refresh_sends_the_refresh_token_signed_and_keeps_the_gateway_token():
    requests, renewed = run(auth().refresh(TOKEN), REFRESHED)

    (request,) = requests
    assert (request.method, request.url) == ("GET", "https://gw/app-portal-service/v2.2/token/refresh")
    assert request.params == (("refreshToken", "refresh-1"),)
    assert "Authorization" not in request.headers  # the portal needs no login for a refresh
    assert signature_is_valid(request)
    assert (renewed.value, renewed.payload.bearer, renewed.payload.refresh_value) == ("gw-token", "user-2", "refresh-2")


def test_refresh_falls_back_to_v20_on_404():
    v20 = answer({"code": 200, "message": "", "data": {"accessToken": "user-2", "refreshToken": "refresh-2"}})
    requests, renewed = run(auth().refresh(TOKEN), NOT_FOUND, v20)

    assert [r.url for r in requests] == [
        "https://gw/app-portal-service/v2.2/token/refresh",
        "https://gw/app-portal-service/v2.0/token/refresh",
    ]
    assert renewed.payload.bearer == "user-2"


def test_refresh_without_a_refresh_token_says_why():
    with pytest.raises(FlowPlatformError, match="no refresh token: Choose Organization hands one out"):
        next(auth().refresh(Token("gw", 0, PortalSession("b"))))


def test_renew_uses_the_refresh_token_and_never_the_password():
    seen: list[str] = []
    requests, renewed = run(auth(on_secret=seen.append).renew(TOKEN), GATEWAY_2, REFRESHED)

    token_request, refresh = requests
    assert token_request.url == "https://gw/apim-token-service/v2.0/token/get"  # the refused one may be spent
    assert refresh.url == "https://gw/app-portal-service/v2.2/token/refresh"
    assert refresh.headers["apim-accesstoken"] == "gw-token-2" and signature_is_valid(refresh)
    assert all(b"pw" not in (r.body or b"") for r in requests)
    assert (renewed.value, renewed.payload.bearer, renewed.payload.refresh_value) == (
        "gw-token-2",
        "user-2",
        "refresh-2",
    )
    assert seen == ["gw-token-2", "user-2", "refresh-2"]


def test_renew_logs_in_with_the_password_only_when_the_refresh_is_refused():
    requests, renewed = run(auth().renew(TOKEN), GATEWAY_2, PLEASE_LOGIN, LOGIN_OK, SESSION_OK)

    assert [r.call for r in requests] == ["Get Access Token", "Refresh Access Token", "Log In", "Choose Organization"]
    assert body_of(requests[2]) == {"account": "me@example.com", "password": "pw"}
    assert requests[2].headers["apim-accesstoken"] == "gw-token-2"  # one gateway token for the whole renewal
    assert (renewed.value, renewed.payload.bearer, renewed.payload.refresh_value) == (
        "gw-token-2",
        "org-token",
        "refresh-1",
    )


def test_renew_without_a_refresh_token_logs_in():
    requests, renewed = run(auth().renew(Token("gw", 0, PortalSession("b"))), GATEWAY_2, LOGIN_OK, SESSION_OK)
    assert [r.call for r in requests] == ["Get Access Token", "Log In", "Choose Organization"]
    assert renewed.payload.bearer == "org-token"


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
        (answer({"code": 31401, "msg": "Please login first", "data": None}, 200), True),
        (answer({"code": "31401", "message": "Please login first"}, 401), True),
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


def page_of(count: int, start: int = 0, *, total: int | None = None, page_size: int | None = None) -> HttpResponse:
    pagination: dict = {"current": 0}
    if total is not None:
        pagination["total"] = total
    if page_size is not None:
        pagination["pageSize"] = page_size
    records = [{"id": f"p{n}"} for n in range(start, start + count)]
    return answer({"code": 0, "msg": "", "data": {"pagination": pagination, "processInstances": records}})


def paging_of(requests) -> list[tuple[int, int]]:
    return [(body_of(r)["pagination"]["current"], body_of(r)["pagination"]["pageSize"]) for r in requests]


def test_a_page_shorter_than_asked_is_a_cap_not_the_end_when_the_total_says_more():
    bpm = client()
    requests, found = run(
        bpm.query_process_instances("inProgress"),
        page_of(20, 0, total=45),
        page_of(20, 20, total=45),
        page_of(5, 40, total=45),
    )

    assert [r["id"] for r in found] == [f"p{n}" for n in range(45)]
    # The paging goes on in the platform's own size (so the offsets agree however it counts them) ...
    assert paging_of(requests) == [(0, 100), (1, 20), (2, 20)]
    assert bpm.page_size == 20  # ... and the next listing on this connection starts with it


def test_without_a_total_a_short_page_is_followed_to_an_empty_one():
    requests, found = run(client().query_process_instances("completed"), page_of(30), page_of(30, 30), page_of(0))

    assert len(found) == 60
    assert paging_of(requests) == [(0, 100), (1, 30), (2, 30)]


def test_a_short_last_page_is_not_taken_for_a_cap():
    bpm = client()
    _, found = run(bpm.query_process_instances("completed"), page_of(37), page_of(0))
    assert len(found) == 37
    assert bpm.page_size == 100  # nothing came after it: the size is not learnt from it
    run(bpm.query_process_instances("completed", page_size=2), page_of(2), page_of(2, 2), page_of(0))
    assert bpm.page_size == 100  # nor from a size the caller asked for


def test_the_echoed_page_size_is_the_cap():
    requests, found = run(
        client().query_process_instances("completed"),
        page_of(10, total=25, page_size=10),
        page_of(10, 10, total=25),
        page_of(5, 20, total=25),
    )
    assert len(found) == 25
    assert paging_of(requests) == [(0, 100), (1, 10), (2, 10)]


def test_a_refused_page_size_is_retried_with_the_limit_the_platform_names_and_remembered():
    bpm = client()
    too_large = answer({"code": 33400, "msg": "Invalid parameter: pagination.pageSize must not exceed 50."})
    requests, found = run(
        bpm.query_process_instances("inProgress"), too_large, page_of(50, total=60), page_of(10, 50, total=60)
    )

    assert len(found) == 60
    assert paging_of(requests) == [(0, 100), (0, 50), (1, 50)]
    assert bpm.page_size == 50
    requests, _ = run(bpm.query_process_instances("completed"), page_of(3, total=3))
    assert paging_of(requests) == [(0, 50)]  # remembered: no refusal the second time


def test_a_refusal_naming_no_limit_steps_down_the_usual_sizes():
    refused = answer({"code": 33400, "msg": "Invalid parameter."})
    requests, found = run(client().query_process_instances("inProgress"), refused, refused, page_of(4, total=4))
    assert paging_of(requests) == [(0, 100), (0, 50), (0, 20)]
    assert len(found) == 4


def test_a_refusal_after_the_first_page_is_not_about_the_page_size():
    operation = client().query_process_instances("inProgress")
    next(operation)
    operation.send(page_of(100, total=300))
    with pytest.raises(FlowPlatformError, match="Internal service error") as error:
        operation.send(answer({"code": 33500, "msg": "Internal service error."}))
    assert error.value.code == "33500"


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


# -- batched reads, starts and finding a start's run ------------------------------------------------------


def test_batch_records_without_process_status_take_the_querys_own_filter():
    listed = [{"id": "a", "createdTime": 1000}, {"id": "b", "processStatus": "inProgress"}, {"id": "other"}]
    requests, found = run(client().batch_instances(["a", "b", "gone"]), page(listed, 0, 3, page_size=100))

    assert body_of(requests[0])["processStatus"] == "inProgress"
    assert sorted(found) == ["a", "b"]  # "gone" is missing: it has ended, and is read on its own
    assert {(i.state, i.raw_state) for i in found.values()} == {(FlowState.RUNNING, "inProgress")}


def test_batch_asks_only_for_the_window_the_waits_started_in():
    bpm = client()  # it remembers when each instance it read started
    bpm.to_flow_instance({"id": "a", "processStatus": "inProgress", "createdTime": 1_700_000_000_000})
    bpm.to_flow_instance({"id": "b", "processStatus": "inProgress", "createdTime": 1_700_000_500_000})
    requests, _ = run(bpm.batch_instances(["a", "b"]), page([], 0, 0))
    body = body_of(requests[0])
    assert (body["startedAfter"], body["startedBefore"]) == (1_699_999_999_000, 1_700_000_501_000)
    requests, _ = run(bpm.batch_instances(["a", "b", "new"]), page([], 0, 0))
    assert "startedAfter" not in body_of(requests[0])  # one wait's start is not known yet


def test_recent_instances_take_the_status_from_the_query():
    listed = [{"id": "x", "processDefinitionId": "def:1"}, {"id": "y", "processDefinitionId": "def:2"}]
    requests, found = run(client().recent_instances("def:1", [FlowState.SUCCESS], {}), page(listed, 0, 2, 100))
    assert body_of(requests[0])["processStatus"] == "completed"
    assert [(i.instance_id, i.state) for i in found] == [("x", FlowState.SUCCESS)]


ATTEMPT = StartAttempt("purchaseApproval:3:5abd", requested_at_ms=1_700_000_000_000, marker="0123456789abcdef" * 2)


def test_start_run_names_the_instance_with_the_attempts_marker():
    requests, instance_id = run(
        client().start_run("purchaseApproval:3:5abd", {"amount": 5}, ATTEMPT), answer({"code": 0, "data": {"id": "n1"}})
    )
    assert body_of(requests[0]) == {
        "processDefinitionId": "purchaseApproval:3:5abd",
        "values": {"amount": 5},
        "name": "purchaseApproval [airflow:0123456789ab]",
    }
    assert requests[0].repeatable is False  # a start is never sent twice blindly
    assert instance_id == "n1"


def test_find_started_run_finds_the_instance_carrying_the_marker_among_those_in_progress():
    listed = [
        {"id": "someone-else", "name": "purchaseApproval"},
        {"id": "mine", "name": "purchaseApproval [airflow:0123456789ab]"},
    ]
    requests, found = run(client().find_started_run(ATTEMPT.flow, None, ATTEMPT), page(listed, 0, 2, 100))

    assert found == "mine"
    (request,) = requests  # found among those in progress: nothing more is asked
    assert request.repeatable  # a read, even as a POST
    assert body_of(request) == {
        "processStatus": "inProgress",
        "startedAfter": 1_700_000_000_000 - 120_000,  # a little before: clocks differ
        "pagination": {"current": 0, "pageSize": 100},
    }


def test_find_started_run_looks_at_completed_and_terminated_ones_then_says_none():
    other = [{"id": "x", "name": "purchaseApproval [airflow:ffffffffffff]"}]
    requests, found = run(
        client().find_started_run(ATTEMPT.flow, None, ATTEMPT), page(other, 0, 1), page([], 0, 0), page([], 0, 0)
    )
    assert found is None
    assert [body_of(r)["processStatus"] for r in requests] == ["inProgress", "completed", "terminated"]

    done = [{"id": "ended", "processName": "purchaseApproval [airflow:0123456789ab]"}]
    _, found = run(client().find_started_run(ATTEMPT.flow, None, ATTEMPT), page([], 0, 0), page(done, 0, 1))
    assert found == "ended"


def test_two_instances_carrying_one_marker_are_ambiguous_naming_both():
    twins = [{"id": n, "name": "x [airflow:0123456789ab]"} for n in ("one", "two")]
    with pytest.raises(AmbiguousStart, match="carry this start's marker \\[airflow:0123456789ab\\]: one, two"):
        run(client().find_started_run(ATTEMPT.flow, None, ATTEMPT), page(twins, 0, 2))


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


def test_a_terminated_process_names_who_terminated_it_as_the_cause_of_its_failure():
    record = {**SEED["data"], "terminatedBy": {"firstName": "Jane", "lastName": "Doe"}, "terminateReason": "Wrong"}
    instance = client().to_flow_instance(record)

    told = client().failure_notes(instance)

    assert told.cause == "terminated by Jane Doe: Wrong"
    assert told.cause in told.notes
    assert any("no task-log call" in note for note in told.notes)
    task = GraphNode(id="t", name="t", kind=NodeKind.ACTIVITY, state=FlowState.CANCELLED, raw_state="terminated")
    assert client().node_log(task) is None
