"""LSF Process Manager, pure: logon, the token cookie, JSON and XML answers, quirks, states, operations."""

from __future__ import annotations

import json
import math
from pathlib import Path
from urllib.parse import parse_qsl

import pytest

from airflow_provider_flowinst.errors import AmbiguousStart, FlowInstanceNotFound, FlowPlatformError, RunOutcomeUnknown
from airflow_provider_flowinst.models import FlowInstance, FlowState, GraphNode, NodeKind
from airflow_provider_flowinst.platforms.lsf import (
    LSFClient,
    LSFLogonAuth,
    LSFSettings,
    cookie_value,
    decode_answer,
    format_variables,
    map_state,
    newest_instance_id,
    parse_logon_response,
    parse_xml,
    records_of,
    submitted_instance_ids,
)
from airflow_provider_flowinst.protocol import AuthenticatorDefaults, HttpResponse, StartAttempt, Token
from tests.helpers import answer
from tests.helpers import drive as run

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures"
SEED_JSON = (FIXTURES / "lsf_flow_instances.json").read_bytes()
SEED_XML = (FIXTURES / "lsf_flow_instances.xml").read_bytes()
BASE = "https://pac.example.com:8443"
# The shape of a real Application Center token (IBM's curl guide): it holds double quotes.
REAL_TOKEN = 'lsfadmin"2022-05-25T20:53:12Z"cn8FS6/FIXiVZc5vMp+fPdo=="PBNNTKLPN3JlyOpnCqI7cg=='


def client(**overrides) -> LSFClient:
    return LSFClient(LSFSettings(**{"base_url": BASE, **overrides}))


def auth() -> LSFLogonAuth:
    return LSFLogonAuth(base_url=BASE, user="jsmith", password="s3cret<&>")


def error(status: int, message: str) -> HttpResponse:
    return answer({"error": {"message": message}}, status)


def record(instance_id: int = 101, state: str = "Done", **fields) -> dict:
    return {
        "id": instance_id,
        "user": "jsmith",
        "name": "flow1",
        "fullName": f"{instance_id}:jsmith:flow1",
        "state": state,
        "status": 0,
        "workDirectory": "/home/jsmith",
        "lastUpdateTime": "2018-08-14 14:11:15 GMT+08:00",
        "startTime": "2018-08-14 14:01:15 GMT+08:00",
        "endTime": "2018-08-14 14:11:15 GMT+08:00",
        **fields,
    }


def page(*records: dict, total: int | None = None) -> HttpResponse:
    items: object = records[0] if len(records) == 1 else list(records)
    return answer(
        {"pseudoFlowInstances": {"total": len(records) if total is None else total, "pseudoFlowInstance": items}}
    )


def form(request) -> dict[str, str]:
    return dict(parse_qsl(request.body.decode(), strict_parsing=True))


# -- logon and the token cookie ------------------------------------------------------------------------


def test_logon_posts_the_user_as_xml_and_asks_for_json():
    requests, token = run(auth().login(), answer({"csrftoken": "c", "token": REAL_TOKEN}))

    request = requests[0]
    assert (request.method, request.url) == ("POST", f"{BASE}/platform/ws/logon")
    assert request.headers == {"Content-Type": "application/xml", "Accept": "application/json"}
    # XML special characters in the password are escaped, so the body stays well-formed.
    assert request.body == b"<User><name>jsmith</name><pass>s3cret&lt;&amp;&gt;</pass></User>"
    assert request.authenticated is False
    assert token.value == REAL_TOKEN


def test_logon_reads_the_xml_answer_with_its_quot_entities_and_trailing_newline():
    body = b"<User>\n<token>root&quot;2015-12-08T14:35:51Z&quot;57hG+fE/L=&quot;3Y+T==\n</token>\n</User>"
    token = parse_logon_response(answer(body), user="root", base_url=BASE)

    assert token.value == 'root"2015-12-08T14:35:51Z"57hG+fE/L="3Y+T=='


def test_logon_reads_a_json_answer_nested_under_user():
    token = parse_logon_response(answer({"User": {"token": "abc"}}), user="u", base_url=BASE)

    assert token.value == "abc"


def test_the_token_lives_until_the_server_refuses_it():
    # The server drops a token after 60 minutes *unused*: no fixed lifetime, a 401 says when.
    token = parse_logon_response(answer({"token": "abc"}), user="u", base_url=BASE)

    assert math.isinf(token.expires_at)


def test_every_call_carries_the_token_as_a_cookie_with_quotes_written_quote():
    signed = auth().sign(client().query_request([("id", "101")]), Token(REAL_TOKEN, math.inf), 0)

    assert signed.headers["Cookie"] == (
        "platform_token=lsfadmin#quote#2022-05-25T20:53:12Z#quote#cn8FS6/FIXiVZc5vMp+fPdo==#quote#PBNNTKLPN3JlyOpnCqI7cg=="
    )
    assert '"' not in signed.headers["Cookie"]
    assert cookie_value('a"b""c') == "a#quote#b#quote##quote#c"


@pytest.mark.parametrize(
    "body",
    [
        json.dumps({"token": f"platform_token={REAL_TOKEN}"}).encode(),
        b"<User><token>platform_token=" + REAL_TOKEN.replace('"', "&quot;").encode() + b"</token></User>",
    ],
    ids=["json", "xml"],
)
def test_a_token_written_with_its_cookie_prefix_builds_a_cookie_with_the_prefix_once(body):
    # ws_overview shows the logon token as "platform_token=lsfadmin"2010-04-03T09:31:02Z"...".
    token = parse_logon_response(answer(body), user="lsfadmin", base_url=BASE)
    signed = auth().sign(client().query_request([("id", "101")]), token, 0)

    assert token.value == REAL_TOKEN
    assert signed.headers["Cookie"] == f"platform_token={cookie_value(REAL_TOKEN)}"


def test_lsf_tokens_are_ended_by_a_logout_and_other_platforms_need_none():
    # What the token cache ends at exit for a process that never closed its hook (transport.TokenCache).
    assert auth().logout(Token(REAL_TOKEN, math.inf)) is not None
    assert AuthenticatorDefaults().logout(Token(REAL_TOKEN, math.inf)) is None


def test_one_token_per_base_url_and_user_and_no_password_in_the_key():
    first, same = auth(), LSFLogonAuth(base_url=BASE, user="jsmith", password="s3cret<&>")

    assert first.cache_key == same.cache_key
    # A wrong password never borrows the token the right one obtained.
    assert first.cache_key != LSFLogonAuth(base_url=BASE, user="jsmith", password="other").cache_key
    assert first.cache_key != LSFLogonAuth(base_url=BASE, user="alice", password="x").cache_key
    assert first.cache_key != LSFLogonAuth(base_url="http://other:8080", user="jsmith", password="x").cache_key
    assert "s3cret" not in first.cache_key and "s3cret" not in repr(first)
    assert first.secrets() == ("s3cret<&>",)


def test_a_401_means_the_token_expired():
    assert auth().is_token_expired(error(401, "The platform token has expired."))
    assert not auth().is_token_expired(error(403, "Forbidden"))
    assert not auth().is_token_expired(page(record()))


def test_a_409_at_logon_says_the_user_is_already_logged_on():
    with pytest.raises(FlowPlatformError) as caught:
        run(auth().login(), error(409, "User jsmith is already logged on."))

    message = str(caught.value)
    assert caught.value.http_status == 409
    assert "already logged on" in message and "'jsmith'" in message and "no token" in message
    assert "User jsmith is already logged on." in message
    assert "s3cret" not in message


@pytest.mark.parametrize(
    ("status", "platform_message"),
    [(400, "The user is empty."), (403, "Logon failed: the user name or password is not correct.")],
)
def test_logon_refusals_carry_the_platforms_message_and_no_secret(status, platform_message):
    with pytest.raises(FlowPlatformError) as caught:
        run(auth().login(), error(status, platform_message))

    assert caught.value.http_status == status
    assert platform_message in str(caught.value)
    assert "LSF Process Manager: Log On failed" in str(caught.value)
    assert "s3cret" not in str(caught.value)


def test_a_logon_answer_without_a_token_is_an_error():
    with pytest.raises(FlowPlatformError, match="no token"):
        parse_logon_response(answer(b"<User><name>jsmith</name></User>"), user="jsmith", base_url=BASE)


# -- queries: the seed's samples and the quirks --------------------------------------------------------


def test_the_seed_json_sample_with_its_leading_space_key():
    records, total = records_of(decode_answer(answer(SEED_JSON), call="q"))

    assert total == 2
    assert [r["id"] for r in records] == [101, 102]
    assert records[0]["lastUpdateTime"] == "2018-08-14 14:11:15 GMT+08:00"
    assert all(" lastUpdateTime" not in r for r in records)


def test_the_seed_xml_sample_with_its_not_well_formed_spaced_tags():
    json_records, _ = records_of(decode_answer(answer(SEED_JSON), call="q"))
    xml_records, total = records_of(decode_answer(answer(SEED_XML), call="q"))

    assert total == 2
    # The same records whichever format the server chose (ids and status are numbers in both).
    assert xml_records == json_records
    assert xml_records[1]["endTime"] == ""


def test_the_seed_samples_become_the_api_md_dict():
    instances = [client().to_flow_instance(r) for r in records_of(decode_answer(answer(SEED_XML), call="q"))[0]]

    assert instances[0].to_dict() == {
        "platform": "lsf_pm",
        "instance_id": "101",
        "flow_id": "jsmith:flow1",
        "name": "flow1",
        "state": "success",
        "raw_state": "Done",
        "started_at": "2018-08-14T06:01:15+00:00",
        "ended_at": "2018-08-14T06:11:15+00:00",
        "url": None,
        "graph": None,
        "details": {
            "id": 101,
            "user": "jsmith",
            "name": "flow1",
            "fullName": "101:jsmith:flow1",
            "state": "Done",
            "status": 0,
            "workDirectory": "/home/jsmith",
            "lastUpdateTime": "2018-08-14 14:11:15 GMT+08:00",
            "startTime": "2018-08-14 14:01:15 GMT+08:00",
            "endTime": "2018-08-14 14:11:15 GMT+08:00",
        },
    }
    running = instances[1]
    assert (running.state, running.raw_state, running.ended_at) == (FlowState.RUNNING, "Running", None)
    assert running.to_dict()["started_at"] == "2018-08-14T06:13:15+00:00"


def test_a_lone_object_counts_as_a_list_of_one():
    records, total = records_of({"pseudoFlowInstances": {"total": 1, "pseudoFlowInstance": record(7)}})

    assert [r["id"] for r in records] == [7] and total == 1


def test_a_lone_xml_record_counts_as_a_list_of_one():
    body = (
        b'<pseudoFlowInstances total="1">'
        b"<pseudoFlowInstance><id>7</id><state>Exit</state></pseudoFlowInstance>"
        b"</pseudoFlowInstances>"
    )

    records, total = records_of(decode_answer(answer(body), call="q"))

    assert records == [{"id": 7, "state": "Exit"}] and total == 1


def test_leading_spaces_are_stripped_from_every_key():
    payload = {" pseudoFlowInstances": {" total": 1, "pseudoFlowInstance": [{" id": 5, "  state ": "Done"}]}}

    records, total = records_of(decode_answer(answer(payload), call="q"))

    assert records == [{"id": 5, "state": "Done"}] and total == 1


@pytest.mark.parametrize(
    "body",
    [
        # an entity bomb
        b'<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;&lol;">]>'
        b"<pseudoFlowInstances><pseudoFlowInstance><id>&lol2;</id></pseudoFlowInstance></pseudoFlowInstances>",
        # an external entity (XXE)
        b'<!DOCTYPE p [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>'
        b"<pseudoFlowInstances><pseudoFlowInstance><id>&xxe;</id></pseudoFlowInstance></pseudoFlowInstances>",
        # an external parameter entity
        b'<!DOCTYPE p [<!ENTITY % remote SYSTEM "http://127.0.0.1:9/x.dtd"> %remote;]><pseudoFlowInstances/>',
    ],
)
def test_xml_with_entities_is_refused(body):
    with pytest.raises(FlowPlatformError, match="refused") as caught:
        decode_answer(answer(body), call="Get Flow Instances")

    assert "root:" not in str(caught.value)  # nothing of /etc/passwd


def test_xml_that_is_not_well_formed_is_a_platform_error():
    with pytest.raises(FlowPlatformError, match="not well-formed XML"):
        parse_xml(b"<pseudoFlowInstances><oops></pseudoFlowInstances>", call="q")


def test_an_answer_that_is_neither_json_nor_xml_is_a_platform_error():
    with pytest.raises(FlowPlatformError, match="neither JSON nor XML"):
        decode_answer(answer(b"Service temporarily unavailable"), call="q")


def test_an_answer_without_the_instances_object_is_a_platform_error():
    with pytest.raises(FlowPlatformError, match="pseudoFlowInstances"):
        records_of({"something": "else"})
    with pytest.raises(FlowPlatformError, match="list of objects"):
        records_of({"pseudoFlowInstances": {"pseudoFlowInstance": ["101"]}})


def test_an_empty_instances_object_is_no_records():
    assert records_of(decode_answer(answer(b'<pseudoFlowInstances total="0"/>'), call="q")) == ([], 0)
    assert records_of({"pseudoFlowInstances": {"total": 0}}) == ([], 0)


# -- states and times ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("word", "state"),
    [
        ("Running", FlowState.RUNNING),
        ("Suspended", FlowState.SUSPENDED),
        ("Done", FlowState.SUCCESS),
        ("Exit", FlowState.FAILED),
        ("Killed", FlowState.CANCELLED),
        ("Waiting", FlowState.UNKNOWN),
        ("", FlowState.UNKNOWN),
        (None, FlowState.UNKNOWN),
    ],
)
def test_every_row_of_the_state_table(word, state):
    assert map_state(word) is state
    if word:
        instance = client().to_flow_instance(record(state=word))
        assert (instance.state, instance.raw_state) == (state, word)


@pytest.mark.parametrize(
    ("text", "iso"),
    [
        ("2018-08-14 14:11:15 GMT+08:00", "2018-08-14T06:11:15+00:00"),
        ("2018-08-14 01:11:15 GMT-05:30", "2018-08-14T06:41:15+00:00"),
        ("2018-08-14 06:11:15 GMT", "2018-08-14T06:11:15+00:00"),
    ],
)
def test_times_carry_their_gmt_offset(text, iso):
    instance = client(timezone="Asia/Tokyo").to_flow_instance(record(startTime=text, endTime=""))

    assert instance.to_dict()["started_at"] == iso
    assert instance.ended_at is None  # "" = not yet


def test_a_time_without_offset_is_read_in_the_connections_timezone():
    instance = client(timezone="Asia/Shanghai").to_flow_instance(record(startTime="2018-08-14 14:01:15"))

    assert instance.to_dict()["started_at"] == "2018-08-14T06:01:15+00:00"


def test_an_unreadable_time_is_a_platform_error():
    with pytest.raises(FlowPlatformError, match="unreadable time"):
        client().to_flow_instance(record(startTime="yesterday-ish GMT+08:00"))


@pytest.mark.parametrize("missing", ["id", "state"])
def test_a_record_missing_a_field_is_a_platform_error_not_a_key_error(missing):
    broken = {key: value for key, value in record().items() if key != missing}

    with pytest.raises(FlowPlatformError, match=repr(missing)):
        client().to_flow_instance(broken)


def test_flow_id_and_name_come_from_full_name_when_user_and_name_are_missing():
    instance = client().to_flow_instance({"id": "9", "state": "Done", "fullName": "9:alice:nightly:v2"})

    assert (instance.flow_id, instance.name) == ("alice:nightly:v2", "nightly:v2")


# -- query requests, paging, not found ----------------------------------------------------------------


def test_a_query_sends_its_filters_and_reads_json():
    requests, found = run(
        client().list_flow_instances(flowname="flow1", username="all", state="Done", pagesize=100),
        page(record(101), record(102)),
    )

    request = requests[0]
    assert (request.method, request.url) == ("GET", f"{BASE}/platform/ws/flow/instances")
    assert request.params == (("flowname", "flow1"), ("username", "all"), ("state", "Done"), ("pagesize", "100"))
    assert request.headers == {"Accept": "application/json"}
    assert [r["id"] for r in found] == [101, 102]


def test_with_pagesize_the_call_returns_that_one_page():
    requests, found = run(
        client().list_flow_instances(username="jsmith", start=2, pagesize=2), page(record(3), record(4), total=5)
    )

    assert [r["id"] for r in found] == [3, 4]
    assert len(requests) == 1
    assert dict(requests[0].params) == {"username": "jsmith", "start": "2", "pagesize": "2"}


def test_without_pagesize_every_page_is_gathered_and_total_ends_the_walk():
    requests, found = run(
        client().list_flow_instances(username="jsmith"),
        page(*[record(i) for i in range(1, 101)], total=205),
        page(*[record(i) for i in range(101, 201)], total=205),
        page(*[record(i) for i in range(201, 206)], total=205),
    )

    assert [r["id"] for r in found] == list(range(1, 206))
    assert [dict(r.params).get("start") for r in requests] == [None, "100", "200"]
    assert {dict(r.params)["pagesize"] for r in requests} == {"100"}


def test_a_page_capped_below_the_size_asked_does_not_end_the_walk():
    # The server holds pages to 20 rows: every page is "short", and still more rows follow.
    responses = [page(*[record(i) for i in range(start, start + 20)], total=50) for start in (1, 21)]
    requests, found = run(
        client().query_all(username="all", page_size=500),
        *responses,
        page(*[record(i) for i in range(41, 51)], total=50),
    )

    assert [r["id"] for r in found] == list(range(1, 51))
    assert [dict(r.params).get("start") for r in requests] == [None, "20", "40"]


def test_a_total_that_may_count_the_page_only_ends_the_walk_on_an_empty_page():
    # total == the page's length: a grand total of 3, or the page's own count under a cap of 3. Look once more.
    requests, found = run(
        client().query_all(username="all"),
        page(record(1), record(2), record(3), total=3),
        page(record(4), record(5), total=2),
        error(404, "No flow instances that match the specified criteria found."),
    )

    assert [r["id"] for r in found] == [1, 2, 3, 4, 5]
    assert [dict(r.params).get("start") for r in requests] == [None, "3", "5"]


def test_paging_starts_where_asked_and_stops_on_a_404_page():
    requests, found = run(client().list_flow_instances(start=10), page(record(11), total=1), error(404, "No match."))

    assert [r["id"] for r in found] == [11]
    assert [dict(r.params)["start"] for r in requests] == ["10", "11"]


def test_a_one_based_start_loses_no_row():
    # A server counting start from 1 gives the last row of each page again at the top of the next.
    requests, found = run(
        client().query_all(page_size=2),
        page(record(1), record(2), total=5),
        page(record(2), record(3), total=5),
        page(record(4), record(5), total=5),
    )

    assert [r["id"] for r in found] == [1, 2, 3, 4, 5]
    assert [dict(r.params).get("start") for r in requests] == [None, "2", "4"]


def test_a_server_that_ignores_start_cannot_loop_the_paging():
    requests, found = run(
        client().list_flow_instances(),
        page(record(1), record(2), total=9),
        page(record(1), record(2), total=9),
    )

    assert [r["id"] for r in found] == [1, 2]
    assert len(requests) == 2


def test_batched_reads_keep_their_savings_under_a_page_cap():
    # 250 running instances, pages capped at 100 by the server although 500 are asked: 3 pages, and one
    # look at the suspended ones; nothing ends on a short page, nothing is read one by one.
    running = [record(i, "Running", endTime="") for i in range(1000, 1250)]
    pages = [page(*running[start : start + 100], total=250) for start in (0, 100, 200)]
    requests, found = run(
        client().batch_instances([str(i) for i in range(1000, 1250)]),
        *pages,
        error(404, "No flow instances that match the specified criteria found."),
    )

    assert sorted(found) == [str(i) for i in range(1000, 1250)]
    assert [dict(r.params)["state"] for r in requests] == ["Running"] * 3 + ["Suspended"]
    assert {dict(r.params)["pagesize"] for r in requests} == {"500"}


def test_a_404_on_a_query_is_an_empty_list():
    _, found = run(client().list_flow_instances(flowname="nothing"), error(404, "No flow instances found."))

    assert found == []


def test_a_query_refusal_is_a_platform_error_with_its_message():
    with pytest.raises(FlowPlatformError, match="Access restricted by role-based access control") as caught:
        run(client().list_flow_instances(), error(403, "Access restricted by role-based access control"))

    assert caught.value.http_status == 403
    assert not isinstance(caught.value, FlowInstanceNotFound)


def test_an_xml_error_body_gives_its_message():
    body = b"<error>\n  <message>\n     The request is not valid.\n  </message>\n</error>"

    with pytest.raises(FlowPlatformError, match=r"The request is not valid\.") as caught:
        run(client().list_flow_instances(), answer(body, 400))

    assert caught.value.http_status == 400


def test_get_instance_asks_by_id_for_every_user():
    requests, instance = run(client().get_instance("102"), page(record(102, "Running", endTime="")))

    assert requests[0].params == (("id", "102"), ("username", "all"))
    assert instance.instance_id == "102" and instance.state is FlowState.RUNNING
    assert instance.graph is None


def test_get_instance_falls_back_to_the_users_own_when_all_is_refused():
    requests, instance = run(client().get_instance("101"), error(403, "Access restricted"), page(record(101)))

    assert [r.params for r in requests] == [(("id", "101"), ("username", "all")), (("id", "101"),)]
    assert instance.state is FlowState.SUCCESS


def test_get_instance_of_an_unknown_id_is_not_found():
    with pytest.raises(FlowInstanceNotFound, match="No flow instances that match"):
        run(client().get_instance("999"), error(404, "No flow instances that match the specified criteria found."))
    with pytest.raises(FlowInstanceNotFound, match="lists no flow instance '999'") as caught:
        run(client().get_instance("999"), page(record(101)))
    assert caught.value.http_status == 200  # what the server answered, not a made-up 404


@pytest.mark.parametrize("status", [301, 302, 303, 307])
def test_a_redirect_is_an_error_naming_its_status_never_not_found(status):
    redirect = HttpResponse(status, {"location": "https://pac.example.com/login?session=abc"}, b"")

    for operation in (client().get_instance("101"), client().list_flow_instances(pagesize=5)):
        with pytest.raises(FlowPlatformError, match=f"redirect \\(HTTP {status}\\)") as caught:
            run(operation, redirect)
        assert not isinstance(caught.value, FlowInstanceNotFound)
        assert caught.value.http_status == status
        assert "session=abc" not in str(caught.value)


def test_an_empty_answer_to_an_id_query_is_not_taken_for_not_found():
    with pytest.raises(FlowPlatformError, match="the answer is empty") as caught:
        run(client().get_instance("101"), answer(b""))

    assert not isinstance(caught.value, FlowInstanceNotFound)


def test_xml_is_asked_for_when_the_settings_say_so():
    requests, found = run(client(accept="application/xml").list_flow_instances(pagesize=10), answer(SEED_XML))

    assert requests[0].headers == {"Accept": "application/xml"}
    assert len(found) == 2


# -- operations and submit ----------------------------------------------------------------------------


@pytest.mark.parametrize("action", ["kill", "suspend", "resume"])
def test_operations_post_the_ids_as_a_form(action):
    operation = getattr(client(), f"{action}_flow_instances")([101, "102"])

    requests, message = run(operation, answer({"message": {"message": f"Flows 101,102 {action}ed."}}))

    request = requests[0]
    assert (request.method, request.url) == ("POST", f"{BASE}/platform/ws/flow/instances/{action}")
    assert request.headers["Content-Type"] == "application/x-www-form-urlencoded"
    assert request.body == b"ids=101,102"
    assert message == f"Flows 101,102 {action}ed."


def test_rerun_sends_its_variables():
    requests, message = run(
        client().rerun_flow_instances("101", {"a": 1, "b": 3}), answer({"message": {"message": "rerun"}})
    )

    assert form(requests[0]) == {"ids": "101", "variables": "a=1;b=3"}
    assert message == "rerun"


def test_an_operation_on_an_unknown_instance_is_not_found():
    with pytest.raises(FlowInstanceNotFound, match="Flow instance not found: 999"):
        run(client().kill_flow_instances([999]), error(404, "Flow instance not found: 999."))


def test_an_operation_refused_is_a_platform_error_naming_the_call():
    with pytest.raises(FlowPlatformError, match="Suspend Flow Instances failed: Flow 101 is Done") as caught:
        run(client().suspend_flow_instances([101]), error(400, "Flow 101 is Done: cannot suspend it."))

    assert caught.value.http_status == 400


@pytest.mark.parametrize("ids", [[], "", [" "], "101,,102"])
def test_empty_ids_are_refused_before_any_call(ids):
    with pytest.raises(FlowPlatformError, match="non-empty"):
        next(client().kill_flow_instances(ids))


def test_submit_posts_the_flow_name_and_returns_the_answer_as_it_came():
    answer_payload = {"message": {"message": "1 flow(s) submitted."}}

    requests, result = run(client().submit_flow("jsmith:flow1", "a=1;b=3"), answer(answer_payload))

    assert requests[0].url == f"{BASE}/platform/ws/flow/definitions/submit"
    assert requests[0].body == b"flownames=jsmith:flow1&variables=a%3D1%3Bb%3D3"
    assert form(requests[0]) == {"flownames": "jsmith:flow1", "variables": "a=1;b=3"}
    assert result == answer_payload


def test_submit_of_an_unknown_flow_is_not_found():
    with pytest.raises(FlowInstanceNotFound, match="Flow definition not found"):
        run(client().submit_flow("jsmith:nope"), error(404, "Flow definition not found: jsmith:nope."))


def test_variables_that_cannot_be_written_are_refused():
    assert format_variables({"a": 1, "b": None}) == "a=1;b="
    with pytest.raises(ValueError, match="no '='"):
        format_variables({"a;b": 1})
    with pytest.raises(FlowPlatformError, match="values no ';'"):
        next(client().rerun_flow_instances([1], {"a": "x;y"}))


def test_the_newest_instance_of_a_flow_is_found_after_a_submit():
    records = [record(101), record(105), record(103), {**record(110), "name": "other"}, record(104)]

    assert newest_instance_id(records, "jsmith:flow1") == "105"
    assert newest_instance_id(records, "jsmith:flow1", newer_than=105) is None
    assert newest_instance_id(records, "jsmith:flow1", newer_than="102") == "105"
    assert newest_instance_id(records, "jsmith:other") == "110"
    assert newest_instance_id([], "jsmith:flow1") is None


def test_the_instance_has_no_console_link():
    assert client().instance_url("101") is None


# -- logout ---------------------------------------------------------------------------------------------


def test_logout_posts_the_token_cookie_and_never_logs_on_first():
    requests, result = run(auth().logout(Token(REAL_TOKEN, math.inf)), answer({"message": {"message": "Logged out"}}))

    request = requests[0]
    assert (request.method, request.url) == ("POST", f"{BASE}/platform/ws/logout")
    assert request.headers["Cookie"] == f"platform_token={cookie_value(REAL_TOKEN)}"
    assert not request.authenticated and request.repeatable
    assert result is None


def test_a_logout_of_a_token_the_server_dropped_is_fine():
    _, result = run(auth().logout(Token(REAL_TOKEN, math.inf)), error(401, "The platform token has expired."))

    assert result is None


def test_a_logout_refused_otherwise_is_an_error_naming_the_call():
    with pytest.raises(FlowPlatformError, match="Log Out failed: emulated") as caught:
        run(auth().logout(Token(REAL_TOKEN, math.inf)), error(500, "emulated"))

    assert REAL_TOKEN not in str(caught.value)


# -- starting a run exactly once ------------------------------------------------------------------------

ATTEMPT = StartAttempt(flow="jsmith:flow1", requested_at_ms=1_534_226_400_000, marker="a" * 32)  # 14:00 +08:00
SUBMITTED = answer({"message": {"message": "1 flow(s) submitted."}})
#: A listing ends on an empty page (404) where ``total`` may count the page alone.
NO_MORE = error(404, "No flow instances that match the specified criteria found.")


def test_start_run_lists_submits_and_takes_the_one_new_run():
    requests, instance_id = run(
        client().start_run("jsmith:flow1", {"a": 1}, ATTEMPT),
        page(record(101), record(102)),
        NO_MORE,
        SUBMITTED,
        page(record(101), record(102), record(103, "Running")),
        NO_MORE,
    )

    assert instance_id == "103"
    assert [r.method for r in requests] == ["GET", "GET", "POST", "GET", "GET"]
    assert dict(requests[0].params) == {"flowname": "flow1", "username": "jsmith", "pagesize": "100"}
    assert form(requests[2]) == {"flownames": "jsmith:flow1", "variables": "a=1"}
    assert not requests[2].repeatable  # the submit is never sent again blindly


def test_two_new_runs_and_no_word_of_which_is_an_ambiguous_start_naming_both():
    with pytest.raises(AmbiguousStart) as caught:
        run(
            client().start_run("jsmith:flow1", None, ATTEMPT),
            page(record(101)),
            NO_MORE,
            SUBMITTED,
            page(record(101), record(102, "Running"), record(103, "Running")),
            NO_MORE,
        )

    message = str(caught.value)
    assert "102" in message and "103" in message and "pool" in message


def test_a_submit_answer_naming_the_run_tells_it_from_another_start():
    named = answer({"message": {"message": "1 flow(s) submitted: 103:jsmith:flow1."}})

    _, instance_id = run(
        client().start_run("jsmith:flow1", None, ATTEMPT),
        page(record(101)),
        NO_MORE,
        named,
        page(record(101), record(102, "Running"), record(103, "Running")),
        NO_MORE,
    )

    assert instance_id == "103"


@pytest.mark.parametrize(
    ("payload", "strong", "loose"),
    [
        ({"message": {"message": "1 flow(s) submitted."}}, (), ()),
        ({"message": "Flow 107:jsmith:flow1 submitted"}, ("107",), ()),
        ({"pseudoFlowInstance": record(108, "Running")}, ("108",), ()),
        ({"message": {"message": "Submitted flow jsmith:flow1, flow id: 109"}}, (), ("109",)),
        ({"message": "Flow 107:jsmith:flow10 submitted"}, (), ()),  # another flow's full name
    ],
)
def test_ids_a_submit_answer_may_name(payload, strong, loose):
    named = submitted_instance_ids(payload, "jsmith:flow1")

    assert (named.strong, named.loose) == (strong, loose)


def test_a_loose_id_is_taken_only_when_it_is_a_new_run_of_the_flow():
    says = answer({"message": {"message": "Submitted, id 102"}})

    _, instance_id = run(
        client().start_run("jsmith:flow1", None, ATTEMPT),
        page(record(101)),
        NO_MORE,
        says,
        page(record(101), record(102, "Running"), record(103, "Running")),
        NO_MORE,
    )
    assert instance_id == "102"
    with pytest.raises(AmbiguousStart):  # "id 7" is no new run: it cannot settle which one is ours
        run(
            client().start_run("jsmith:flow1", None, ATTEMPT),
            page(record(101)),
            NO_MORE,
            answer({"message": "Submitted, id 7"}),
            page(record(101), record(102, "Running"), record(103, "Running")),
            NO_MORE,
        )


def test_a_submit_whose_run_is_not_listed_yet_has_an_unclear_outcome():
    with pytest.raises(RunOutcomeUnknown, match="no new instance of it is listed yet"):
        run(
            client().start_run("jsmith:flow1", None, ATTEMPT),
            *(page(record(101)), NO_MORE, SUBMITTED, page(record(101)), NO_MORE),
        )


def test_after_an_unclear_submit_the_run_is_found_above_the_ids_listed_before():
    lsf = client()
    operation = lsf.start_run("jsmith:flow1", None, ATTEMPT)
    next(operation)
    operation.send(page(record(101), record(102)))
    operation.send(NO_MORE)  # the listing before; then the submit's answer is lost

    listed = (record(101), record(102))
    _, nothing_yet = run(lsf.find_started_run("jsmith:flow1", None, ATTEMPT), page(*listed), NO_MORE)
    _, found = run(lsf.find_started_run("jsmith:flow1", None, ATTEMPT), page(*listed, record(103)), NO_MORE)

    assert (nothing_yet, found) == (None, "103")


def test_another_process_finds_the_run_by_flow_and_start_time():
    # 101 started at 14:01:15 +08:00; the attempt was made at 14:00 (+08:00): within the window.
    too_early = record(100, startTime="2018-08-14 13:50:00 GMT+08:00")
    _, found = run(client().find_started_run("jsmith:flow1", None, ATTEMPT), page(too_early, record(101)), NO_MORE)

    assert found == "101"


def test_two_runs_in_the_window_of_an_attempt_from_another_process_are_ambiguous():
    with pytest.raises(AmbiguousStart, match="101, 102"):
        run(
            client().find_started_run("jsmith:flow1", None, ATTEMPT),
            page(record(101), record(102, startTime="2018-08-14 14:02:00 GMT+08:00")),
            NO_MORE,
        )


def test_no_run_in_the_window_is_none():
    old = record(100, startTime="2018-08-14 13:00:00 GMT+08:00")

    assert run(client().find_started_run("jsmith:flow1", None, ATTEMPT), page(old), NO_MORE)[1] is None
    assert run(client().find_started_run("jsmith:flow1", None, ATTEMPT), error(404, "No match."))[1] is None


def test_a_failed_flow_has_no_graph_to_read_and_no_log_call_but_a_note_saying_where_to_look():
    lsf = client()
    instance = FlowInstance("lsf_pm", "7", "jsmith:f", None, FlowState.FAILED, "Exit")

    assert lsf.offers_graph is False
    job = GraphNode(id="j", name="j", kind=NodeKind.TASK, state=FlowState.FAILED, raw_state="Exit", instance_id="1")
    assert lsf.node_log(job) is None
    assert "Flow Manager" in lsf.failure_notes(instance).notes[0]
    assert lsf.failure_notes(instance).cause is None
