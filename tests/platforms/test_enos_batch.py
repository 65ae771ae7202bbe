"""EnOS Batch Processing, pure: requests, envelopes, the graph inside a string, states and times."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import pytest

from airflow_provider_flowinst.errors import AmbiguousStart, FlowInstanceNotFound, FlowPlatformError, RunOutcomeUnknown
from airflow_provider_flowinst.models import FlowState
from airflow_provider_flowinst.platforms.enos_batch import (
    EnOSBatchClient,
    EnOSBatchSettings,
    map_state,
    parse_graph,
    read_envelope,
    split_instance_id,
    zone_from_answer,
)
from airflow_provider_flowinst.protocol import HttpResponse, StartAttempt, Together
from tests.helpers import answer, camel_cased
from tests.helpers import drive as run

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures"
SEED = json.loads((FIXTURES / "enos_get_flow_instance_v20.json").read_text())


def client(**overrides) -> EnOSBatchClient:
    settings = {"base_url": "https://gw", "org_id": "o1", "user_id": "u1", "timezone": "UTC", **overrides}
    return EnOSBatchClient(EnOSBatchSettings(**settings))


def test_the_seed_sample_becomes_exactly_the_api_md_dict():
    instance = client().to_flow_instance(SEED["data"])

    assert instance.to_dict() == {
        "platform": "enos_batch",
        "instance_id": "2809-20190808093200",
        "flow_id": "2809",
        "name": "21",
        "state": "success",
        "raw_state": "SUCCESS",
        "started_at": "2019-08-08T09:32:30+00:00",
        "ended_at": "2019-08-08T09:32:32+00:00",
        "url": None,
        "graph": {
            "nodes": [
                {
                    "id": "t_104890",
                    "name": "tass",
                    "kind": "task",
                    "state": "success",
                    "raw_state": "SUCCESS",
                    "instance_id": "104890-20190808093200",
                }
            ],
            "edges": [],
        },
        "details": {key: value for key, value in SEED["data"].items() if key != "graph"} | {"parameters": []},
    }
    json.dumps(instance.to_dict())  # the whole dict is JSON-serialisable


def test_naive_times_are_read_in_the_connections_timezone():
    instance = client(timezone="Asia/Shanghai").to_flow_instance(SEED["data"])

    assert instance.to_dict()["started_at"] == "2019-08-08T01:32:30+00:00"
    assert instance.to_dict()["ended_at"] == "2019-08-08T01:32:32+00:00"


def test_empty_times_mean_not_yet():
    record = SEED["data"] | {"startTime": "", "endTime": None, "status": 0, "statusDesc": "INIT"}
    instance = client().to_flow_instance(record)

    assert (instance.started_at, instance.ended_at, instance.state) == (None, None, FlowState.QUEUED)


def test_graph_without_graph_is_none_and_can_be_left_out():
    assert client().to_flow_instance(SEED["data"] | {"graph": ""}).graph is None
    assert client().to_flow_instance(SEED["data"], include_graph=False).graph is None


SNAKE_GRAPH = {
    "tasks": [
        {"task_name": "extract", "task_inst_id": "1-20240101", "task_id": 1, "node_id": "t_1", "status": "SUCCESS"},
        {"task_name": "load", "task_inst_id": "2-20240101", "task_id": 2, "node_id": "t_2", "status": "NONE"},
    ],
    "flows": [
        {
            "flow_id": "77",
            "flow_name": "upstream",
            "node_id": "f_77",
            "is_virtual": False,
            "flow_inst_id": "77-20240101",
            "status": "SUCCESS",
        },
    ],
    "relations": [{"source": "f_77", "target": "t_1", "cycleGap": 0}, {"source": "t_1", "target": "t_2"}],
}
CAMEL_GRAPH = camel_cased(SNAKE_GRAPH)


@pytest.mark.parametrize("graph", [SNAKE_GRAPH, CAMEL_GRAPH], ids=["snake_case", "camelCase"])
def test_both_key_spellings_give_the_same_graph(graph):
    parsed = parse_graph(json.dumps(graph)).to_dict()

    assert parsed["nodes"] == [
        {
            "id": "t_1",
            "name": "extract",
            "kind": "task",
            "state": "success",
            "raw_state": "SUCCESS",
            "instance_id": "1-20240101",
        },
        {
            "id": "t_2",
            "name": "load",
            "kind": "task",
            "state": "queued",
            "raw_state": "NONE",
            "instance_id": "2-20240101",
        },
        {
            "id": "f_77",
            "name": "upstream",
            "kind": "flow",
            "state": "success",
            "raw_state": "SUCCESS",
            "instance_id": "77-20240101",
        },
    ]
    assert parsed["edges"] == [{"source": "f_77", "target": "t_1"}, {"source": "t_1", "target": "t_2"}]


def test_a_task_without_node_id_is_named_after_its_task_id():
    graph = parse_graph(json.dumps({"tasks": [{"task_id": 5, "task_name": "x", "status": "INIT"}]}))
    assert graph.nodes[0].id == "t_5"


@pytest.mark.parametrize(
    ("graph_text", "message"),
    [
        ("{not json", "the graph text is not JSON"),
        ("[1, 2]", "the graph is a list, not an object"),
        (json.dumps({"tasks": "nope"}), "the graph's 'tasks' is not a list of objects"),
        (json.dumps({"tasks": [{"task_name": "x"}]}), "a graph task has neither node_id nor task_id"),
        (json.dumps({"relations": [{"source": "a"}]}), "a graph relation lacks its source or target"),
    ],
)
def test_a_bad_graph_is_a_platform_error_naming_the_call(graph_text, message):
    with pytest.raises(FlowPlatformError) as error:
        client().to_flow_instance(SEED["data"] | {"graph": graph_text})
    assert "EnOS Batch Processing: Get Flow Instance failed:" in str(error.value)
    assert message in str(error.value)


def test_parameters_inside_a_string_are_decoded_into_details():
    record = SEED["data"] | {"parameters": '[{"key": "day", "value": "2024-01-01"}]'}
    assert client().to_flow_instance(record).details["parameters"] == [{"key": "day", "value": "2024-01-01"}]


def test_a_record_without_instance_id_is_a_platform_error_not_a_key_error():
    with pytest.raises(FlowPlatformError, match="the answer has no 'instanceId' field"):
        client().to_flow_instance({"status": 1})


# API.md's EnOS column, row by row: status code, statusDesc word and graph node words.
STATE_ROWS = [
    (0, "INIT", FlowState.QUEUED),
    (5, "WAIT", FlowState.QUEUED),
    (6, "READY", FlowState.QUEUED),
    (2, "RUNNING", FlowState.RUNNING),
    (9, "RERUN", FlowState.RUNNING),
    (3, "SUSPEND", FlowState.SUSPENDED),
    (1, "SUCCESS", FlowState.SUCCESS),
    (-1, "FAIL", FlowState.FAILED),
    (4, "INTERNAL_ERROR", FlowState.FAILED),
    (7, "TIMEOUT", FlowState.FAILED),
    (8, "CANCEL", FlowState.CANCELLED),
    (10, "SKIP", FlowState.SKIPPED),
    (42, "MYSTERY", FlowState.UNKNOWN),
]


@pytest.mark.parametrize(("code", "word", "state"), STATE_ROWS)
def test_state_mapping_by_code_and_by_word(code, word, state):
    assert map_state(code, word) is state
    assert map_state(None, word) is state  # the word alone decides when the code is missing


def test_graph_node_none_is_queued_and_code_wins_over_word():
    assert map_state(None, "NONE") is FlowState.QUEUED
    assert map_state(1, "RUNNING") is FlowState.SUCCESS


def test_unknown_state_keeps_the_raw_word():
    instance = client().to_flow_instance(SEED["data"] | {"status": 42, "statusDesc": "MYSTERY"})
    assert (instance.state, instance.raw_state) == (FlowState.UNKNOWN, "MYSTERY")


@pytest.mark.parametrize(
    "version, path", [("v2.1", "/batch-processing-service/v2.1"), ("v2.0", "/dataflow-batch-service/v2.0")]
)
def test_get_flow_instance_request_on_each_api_version(version, path):
    request = next(client(api_version=version).get_flow_instance("2809-20190808093200"))

    assert request.method == "GET"
    assert request.url == f"https://gw{path}/flowInstances"
    assert dict(request.params) == {"action": "get", "flowInstId": "2809-20190808093200", "userId": "u1", "orgId": "o1"}


def test_polling_an_unchanged_instance_reuses_its_request_and_what_was_read():
    enos = client()
    seen = []
    for status in (2, 2, 1):  # running, running, then succeeded
        request = next(enos.get_instance("2809-20190808093200", include_graph=False))
        _, instance = run(
            enos.get_instance("2809-20190808093200", include_graph=False),
            answer({"code": 0, "data": SEED["data"] | {"status": status}}),
        )
        seen.append((request, instance))

    (first, running), (again, still_running), (last, ended) = seen
    assert again is first and last is first  # the request of each poll is built once per instance
    assert still_running is running  # an equal answer is the instance read before
    assert running.state is FlowState.RUNNING and ended.state is FlowState.SUCCESS  # a changed one is read anew


def test_a_graph_asked_for_after_light_polls_is_read_from_the_answer():
    enos = client()
    response = answer({"code": 0, "data": SEED["data"]})
    _, light = run(enos.get_instance("2809-20190808093200", include_graph=False), response)
    _, full = run(enos.get_instance("2809-20190808093200", include_graph=True), response)

    assert light.graph is None
    assert full.graph is not None and full.graph.nodes


def test_an_unknown_api_version_is_refused():
    with pytest.raises(ValueError, match="api_version must be one of"):
        client(api_version="v3")


@pytest.mark.parametrize("code_key", ["status", "code"])
def test_both_envelopes_unwrap_their_data(code_key):
    assert read_envelope(answer({code_key: 0, "msg": "OK", "data": [1]}), call="X") == [1]


def test_62102_on_a_get_is_instance_not_found():
    operation = client().get_flow_instance("nope")
    with pytest.raises(FlowInstanceNotFound) as error:
        run(operation, answer({"code": 62102, "msg": "Invalid parameter", "data": None}))
    assert error.value.code == "62102"
    assert (
        str(error.value) == "EnOS Batch Processing: Get Flow Instance failed: Invalid parameter (code 62102, HTTP 200)"
    )


def test_a_non_zero_code_is_a_platform_error_with_the_platforms_message():
    with pytest.raises(FlowPlatformError) as error:
        run(client().get_my_flows(), answer({"code": 62103, "msg": "No privilege"}))
    assert not isinstance(error.value, FlowInstanceNotFound)
    assert (error.value.platform, error.value.code) == ("enos_batch", "62103")
    assert "Get My Flow failed: No privilege" in str(error.value)


def test_an_answer_that_is_not_json_is_a_platform_error():
    with pytest.raises(FlowPlatformError, match="Get My Flow failed: the answer is not JSON: '<html>oops</html>'"):
        run(client().get_my_flows(), HttpResponse(200, {}, b"<html>oops</html>"))


def test_get_my_flow_passes_the_expression():
    requests, flows = run(client().get_my_flows("map"), answer({"code": 0, "data": [{"flowId": "2809"}]}))
    assert ("expression", "map") in requests[0].params
    assert flows == [{"flowId": "2809"}]


def test_console_link_fills_in_instance_and_flow():
    link = client(console_url="https://console/flows/{flow_id}/instances/{instance_id}").instance_url("2809-20240101")
    assert link == "https://console/flows/2809/instances/2809-20240101"


# -- List Flow Instances: every Mandatory field, both readings of ``count``, capped and refused pages ---------

NOW_MS = 1_900_000_000_000


def fixed_client(**overrides) -> EnOSBatchClient:
    settings = {"base_url": "https://gw", "org_id": "o1", "user_id": "u1", "timezone": "UTC", **overrides}
    return EnOSBatchClient(EnOSBatchSettings(**settings), clock=lambda: NOW_MS / 1000)


def rows(*ids) -> list[dict]:
    return [{"instanceId": str(instance_id), "flowId": 4000} for instance_id in ids]


def page(ids, count=None, code_key="code") -> HttpResponse:
    return answer({code_key: 0, "data": {"flowInsts": rows(*ids), "count": len(ids) if count is None else count}})


def bodies(requests) -> list[dict]:
    return [json.loads(request.body) for request in requests if request.body]


def test_a_search_sends_every_mandatory_field_and_the_java_samples_names_too():
    requests, found = run(fixed_client().search_flow_instances(type=1, expression="map", status="1,2"), page([]))

    (body,) = bodies(requests)
    assert body == {
        "type": 1,
        "expression": "map",
        "owner": "",
        "fromTriggerTime": 946_684_800_000,
        "toTriggerTime": 4_102_444_800_000,
        "startTriggerTime": 946_684_800_000,
        "endTriggerTime": 4_102_444_800_000,
        "status": "1,2",
        "pagination": {"pageNo": 1, "pageSize": 100},
    }
    assert found == []


def test_a_search_without_type_makes_one_search_per_type():
    requests, found = run(
        fixed_client().search_flow_instances(), page(["a"]), page([]), page([]), page(["b"]), page([])
    )

    assert [body["type"] for body in bodies(requests)] == [0, 0, 1, 2, 2]
    assert [row["instanceId"] for row in found] == ["a", "b"]


def test_count_as_a_total_reads_past_pages_the_server_cut_short_and_remembers_the_cap():
    client = fixed_client()
    requests, found = run(
        client.search_flow_instances(type=1), page(range(20), 45), page(range(20, 40), 45), page(range(40, 45), 45)
    )

    assert len(found) == 45  # the old client stopped after the first, short page: 25 rows lost
    assert [(b["pagination"]["pageNo"], b["pagination"]["pageSize"]) for b in bodies(requests)] == [
        (1, 100),
        (2, 20),
        (3, 20),
    ]
    assert client.page_size == 20  # the next listing asks for 20 rows at once


def paged(total_rows: int, cap: int, count_is_total: bool):
    """A search service with ``total_rows`` rows served ``cap`` a page (whatever ``pageSize`` asks)."""

    def serve(request) -> HttpResponse:
        number = json.loads(request.body)["pagination"]["pageNo"]
        ids = range((number - 1) * cap, min(number * cap, total_rows))
        return page(ids, total_rows if count_is_total else None)

    return serve


def answered(operation, serve):
    """What ``operation`` returns with each of its requests answered by ``serve``."""
    step = next(operation)
    while True:
        try:
            step = operation.send(serve(step))
        except StopIteration as done:
            return done.value


def groups_of_pages(listing, serve) -> tuple[list[int], list]:
    """Drive a listing against ``serve``: how many pages it asked for at each step, and what it returned."""
    groups: list[int] = []
    step = next(listing)
    while True:
        if isinstance(step, Together):
            groups.append(len(step.operations))
            reply = [answered(part, serve) for part in step.operations]
        else:
            groups.append(1)
            reply = serve(step)
        try:
            step = listing.send(reply)
        except StopIteration as done:
            return groups, done.value


@pytest.mark.parametrize(
    ("count_is_total", "rows", "groups"),
    [
        (True, 200, [1, 4, 4, 1]),  # 10 pages: the first, then the nine it still needs, four at a time
        (True, 20, [1, 1]),  # a count equal to the page's length may be either: the empty page after it says
        (False, 95, [1, 1, 2, 4]),  # no total: as many at once as read so far; two pages past the end
        (False, 45, [1, 1, 2]),  # as many requests as one page at a time makes: 20 + 20 + 5 + the empty page
    ],
)
def test_once_the_page_size_is_settled_pages_are_asked_for_several_at_once(count_is_total, rows, groups):
    asked, found = groups_of_pages(fixed_client().search_flow_instances(type=1), paged(rows, 20, count_is_total))

    assert asked == groups
    assert sorted(int(row["instanceId"]) for row in found) == list(range(rows))


def test_count_as_the_pages_length_reads_on_until_an_empty_page():
    requests, found = run(
        fixed_client().search_flow_instances(type=1, page_size=20),
        page(range(20)),
        page(range(20, 40)),
        page(range(40, 45)),
        page([]),
    )

    assert len(found) == 45
    assert [b["pagination"]["pageNo"] for b in bodies(requests)] == [1, 2, 3, 4]


def test_a_short_first_page_that_was_all_there_is_ends_on_the_empty_next_one_and_sets_no_cap():
    client = fixed_client()
    requests, found = run(client.search_flow_instances(type=0), page(range(7)), page([]))

    assert len(found) == 7 and len(requests) == 2
    assert client.page_size == 100


def test_a_server_that_ignores_page_no_does_not_page_forever():
    requests, found = run(fixed_client().search_flow_instances(type=0, page_size=2), page(["a", "b"]), page(["a", "b"]))

    assert [row["instanceId"] for row in found] == ["a", "b"] and len(requests) == 2


def test_a_refused_page_size_is_asked_again_smaller_and_kept_for_the_connection():
    client = fixed_client()
    refused = answer({"code": 62102, "msg": "Invalid parameter: pageSize must not exceed 20"})
    requests, found = run(client.search_flow_instances(type=1), refused, refused, page(range(20), 21), page([20], 21))

    assert [b["pagination"]["pageSize"] for b in bodies(requests)] == [100, 50, 20, 20]
    assert len(found) == 21 and client.page_size == 20
    later, _ = run(client.search_flow_instances(type=1), page([]))
    assert bodies(later)[0]["pagination"]["pageSize"] == 20


def test_another_refusal_is_not_retried_with_smaller_pages():
    with pytest.raises(FlowPlatformError, match="No privilege"):
        run(fixed_client().search_flow_instances(type=1), answer({"code": 62103, "msg": "No privilege"}))


def test_v20_pages_count_from_zero_and_get_my_flow_filters_with_search_value():
    client = fixed_client(api_version="v2.0")
    requests, found = run(
        client.search_flow_instances(type=1, page_size=2), page(["a", "b"], 3, "status"), page(["c"], 3, "status")
    )

    assert [b["pagination"]["pageNo"] for b in bodies(requests)] == [0, 1]
    assert len(found) == 3
    flows_request = next(client.get_my_flows("map"))
    assert ("searchValue", "map") in flows_request.params and "expression" not in dict(flows_request.params)


def test_get_my_flow_on_v21_filters_with_expression():
    requests, flows = run(client().get_my_flows("map"), answer({"code": 0, "data": [{"flowId": "2809"}]}))
    assert ("expression", "map") in requests[0].params
    assert flows == [{"flowId": "2809"}]


# -- Trigger Flow and Update And Trigger Flow -------------------------------------------------------------


def test_trigger_sends_flow_id_and_trigger_time_only():
    requests, instance_id = run(
        client().trigger_flow("2809", trigger_time=1700000000000),
        answer({"code": 0, "data": {"flowInstanceId": "2809-20231114221320"}}),
    )
    assert dict(requests[0].params)["action"] == "trigger"
    assert json.loads(requests[0].body) == {"flowId": 2809, "triggerTime": 1700000000000}
    assert instance_id == "2809-20231114221320"


def test_trigger_without_a_time_sends_now_as_the_mandatory_trigger_time():
    requests, _ = run(
        fixed_client().trigger_flow("2809"),
        answer({"code": 0, "data": {"flowInstanceId": "2809-20300317052000"}}),
    )
    assert dict(requests[0].params)["action"] == "trigger"
    assert json.loads(requests[0].body) == {"flowId": 2809, "triggerTime": NOW_MS}


def test_parameters_go_through_update_and_trigger_as_a_json_array_in_the_body():
    requests, instance_id = run(
        fixed_client().trigger_flow("2809", parameters={"day": "2024-01-01", "n": 3}),
        answer({"code": 0, "data": {"flowInstanceId": "2809-20300317052000"}}),
    )
    assert (requests[0].method, dict(requests[0].params)["action"]) == ("POST", "updateAndTrigger")
    assert json.loads(requests[0].body) == {
        "flowId": 2809,
        "triggerTime": NOW_MS,  # Mandatory there
        "parameters": [{"key": "day", "value": "2024-01-01"}, {"key": "n", "value": "3"}],
    }
    assert not requests[0].repeatable and instance_id == "2809-20300317052000"


def test_triggered_less_than_a_minute_ago_is_an_unknown_outcome_never_not_found():
    refusal = answer({"code": 62102, "msg": "Invalid parameter: the flow was triggered less than one minute ago."})
    with pytest.raises(RunOutcomeUnknown) as error:
        run(client().trigger_flow("2809", trigger_time=1), refusal)
    assert not isinstance(error.value, FlowInstanceNotFound) and error.value.code == "62102"


def test_triggering_a_flow_that_does_not_exist_is_not_found():
    with pytest.raises(FlowInstanceNotFound, match="the flow does not exist"):
        run(client().trigger_flow("1"), answer({"code": 62102, "msg": "Invalid parameter: the flow does not exist."}))


# -- Get Time Zone ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("answered", "zone"),
    [
        ("GMT+8", "Etc/GMT-8"),
        ("GMT-5", "Etc/GMT+5"),
        ("GMT+08:00", "Etc/GMT-8"),
        ("GMT", "UTC"),
        ("GMT+0", "UTC"),
        ("GMT+5:30", "Asia/Kolkata"),
        ("Asia/Shanghai", "Asia/Shanghai"),
    ],
)
def test_get_time_zone_answers_are_read(answered, zone):
    assert zone_from_answer(answered) == zone


def test_without_a_timezone_the_deployments_is_asked_once_and_times_are_read_in_it():
    enos = client(timezone=None)  # the connection names no timezone
    record = SEED["data"]
    requests, instance = run(
        enos.get_instance("2809-20190808093200"),
        answer({"code": 0, "data": record}),
        answer({"code": 0, "msg": "OK", "data": {"timezone": "GMT+8"}}),
    )
    assert [dict(r.params)["action"] for r in requests] == ["get", "getTimeZone"]
    assert requests[1].url == "https://gw/batch-processing-service/v2.1/time"
    assert instance.to_dict()["started_at"] == "2019-08-08T01:32:30+00:00"  # 09:32:30 at GMT+8
    again, _ = run(enos.get_instance("2809-20190808093200"), answer({"code": 0, "data": record}))
    assert [dict(r.params)["action"] for r in again] == ["get"]


def test_a_service_without_get_time_zone_falls_back_to_utc_once():
    enos = client(timezone=None)
    _, instance = run(
        enos.get_instance("2809-20190808093200"),
        answer({"code": 0, "data": SEED["data"]}),
        answer({"code": 404, "msg": "Not Found"}, status=404),
    )
    assert instance.to_dict()["started_at"] == "2019-08-08T09:32:30+00:00" and enos.timezone == "UTC"


# -- finding the run a start made -------------------------------------------------------------------------

ATTEMPT = StartAttempt(flow="5100", requested_at_ms=1_900_000_000_000, marker="m" * 32)  # 2030-03-17 17:46:40Z


def instance_row(instance_id: str, trigger: str) -> dict:
    return {"instanceId": instance_id, "flowId": 5100, "triggerTime": trigger, "status": 2}


def test_find_started_run_matches_the_trigger_time_it_sent():
    listing = answer(
        {
            "code": 0,
            "data": {
                "flowInsts": [
                    instance_row("5100-20300318014710", "2030-03-18 01:47:10"),  # someone else's, later
                    instance_row("5100-20300318014640", "2030-03-18 01:46:40"),  # ours, at GMT+8
                ],
                "count": 2,
            },
        }
    )
    requests, found = run(
        fixed_client(timezone="Asia/Shanghai").find_started_run("5100", None, ATTEMPT),
        answer({"code": 0, "data": {"flowId": 5100, "type": 0}}),
        listing,
        page([]),
    )
    assert found == "5100-20300318014640"
    assert dict(requests[0].params) == {"action": "get", "flowId": "5100", "userId": "u1", "orgId": "o1"}
    body = bodies(requests)[0]
    assert (body["type"], body["expression"], body["status"]) == (0, "5100", "-1,0,1,2,3,4,5,6,7,8,9,10")
    assert (body["fromTriggerTime"], body["toTriggerTime"]) == (
        ATTEMPT.requested_at_ms - 120_000,
        ATTEMPT.requested_at_ms + 120_000,
    )
    assert body["pagination"]["sorters"] == [{"field": "triggerTime", "order": "DESC"}]
    assert all(request.repeatable for request in requests)


def test_find_started_run_finds_nothing_when_no_instance_is_near():
    _, found = run(
        fixed_client().find_started_run("5100", None, ATTEMPT),
        answer({"code": 0, "data": {"flowId": 5100, "type": 0}}),
        page([]),
    )
    assert found is None


def test_an_instance_near_the_attempt_with_another_trigger_time_is_ambiguous_not_taken():
    listing = answer(
        {"code": 0, "data": {"flowInsts": [instance_row("5100-20300317174620", "2030-03-17 17:46:20")], "count": 1}}
    )
    with pytest.raises(AmbiguousStart, match="5100-20300317174620"):
        run(
            fixed_client().find_started_run("5100", None, ATTEMPT),
            answer({"code": 0, "data": {"flowId": 5100, "type": 0}}),
            listing,
            page([]),
        )


# -- batched reads and the event trigger's listing ---------------------------------------------------------


def running(flow: int, *ids: str) -> HttpResponse:
    """A search page of running instances of ``flow``."""
    flow_insts = [{"instanceId": i, "flowId": flow, "status": 2, "statusDesc": "RUNNING"} for i in ids]
    return answer({"code": 0, "data": {"flowInsts": flow_insts, "count": len(ids)}})


def test_batch_learns_the_flows_type_once_and_searches_the_ids_window():
    enos = fixed_client()
    ids = ["4000-20240101000000", "4000-20240101000500", "not-an-enos-id"]
    listing = running(4000, ids[0])
    requests, found = run(
        enos.batch_instances(ids), answer({"code": 0, "data": {"flowId": 4000, "type": 1}}), listing, page([])
    )
    assert list(found) == [ids[0]] and found[ids[0]].state is FlowState.RUNNING
    body = bodies(requests)[0]
    assert (body["type"], body["expression"], body["status"]) == (1, "4000", "0,2,3,5,6,9")
    assert body["fromTriggerTime"] == 1704067200000 - 86_400_000  # 2024-01-01 00:00 UTC, a day wider
    assert body["toTriggerTime"] == 1704067500000 + 86_400_000
    again, _ = run(enos.batch_instances(ids), page([]))
    assert len(again) == 1  # Get Flow is not asked again


@pytest.mark.parametrize(
    ("instance_id", "zone", "trigger_utc"),
    [
        ("2809-20190808093200", "UTC", "2019-08-08T09:32:00+00:00"),
        ("2438-201907261239", "UTC", "2019-07-26T12:39:00+00:00"),  # seed 000's sample: 12 digits
        ("13774-2022031400", "UTC", "2022-03-14T00:00:00+00:00"),  # 10 digits
        ("2438-201907261239", "Etc/GMT-8", "2019-07-26T04:39:00+00:00"),  # the deployment's zone
    ],
)
def test_an_ids_trigger_time_is_read_from_14_12_or_10_digits(instance_id, zone, trigger_utc):
    flow, moment = split_instance_id(instance_id, zone)

    assert flow == instance_id.split("-")[0]
    assert dt.datetime.fromtimestamp(moment / 1000, dt.timezone.utc).isoformat() == trigger_utc


@pytest.mark.parametrize(
    ("instance_id", "expected"),
    [("4000-2024", ("4000", None)), ("4000-20241399", ("4000", None)), ("not-an-enos-id", (None, None))],
)
def test_ids_without_a_readable_time_or_flow(instance_id, expected):
    assert split_instance_id(instance_id, "UTC") == expected


def test_ids_with_12_and_10_digit_times_are_batched_in_their_window_like_14_digit_ones():
    enos = fixed_client()
    ids = ["2438-201907261239", "2438-2019072700", "2438-20190727013000"]
    listing = running(2438, *ids)
    requests, found = run(
        enos.batch_instances(ids), answer({"code": 0, "data": {"flowId": 2438, "type": 1}}), listing, page([])
    )

    assert sorted(found) == sorted(ids)
    body = bodies(requests)[0]
    assert body["fromTriggerTime"] == 1564144740000 - 86_400_000  # 2019-07-26 12:39 UTC, a day wider
    assert body["toTriggerTime"] == 1564191000000 + 86_400_000  # 2019-07-27 01:30 UTC


def test_an_id_whose_time_cannot_be_read_is_searched_over_every_trigger_time_and_others_are_told_once(caplog):
    enos = fixed_client()
    ids = ["4000-20240101000000", "4000-unknown", "not-an-enos-id"]
    requests, _ = run(enos.batch_instances(ids), answer({"code": 0, "data": {"flowId": 4000, "type": 1}}), page([]))
    again, _ = run(enos.batch_instances(ids), page([]))

    body = bodies(requests)[0]
    assert (body["expression"], body["fromTriggerTime"], body["toTriggerTime"]) == (
        "4000",
        946_684_800_000,
        4_102_444_800_000,
    )
    assert len(again) == 1  # still one search for the flow
    assert caplog.text.count("are on ids not of the form <flowId>-<trigger time>") == 1  # once per connection
    assert "'not-an-enos-id'" in caplog.text


def test_recent_instances_asks_one_newest_first_page_of_the_flows_type():
    requests, _ = run(
        fixed_client().recent_instances("5107", [FlowState.SUCCESS], {}),
        answer({"code": 0, "data": {"flowId": 5107, "type": 0}}),
        page([]),
    )
    body = bodies(requests)[0]
    assert (body["type"], body["expression"], body["status"], body["owner"]) == (0, "5107", "1", "")
    assert body["pagination"] == {"pageNo": 1, "pageSize": 100, "sorters": [{"field": "triggerTime", "order": "DESC"}]}
    assert (body["fromTriggerTime"], body["toTriggerTime"]) == (946_684_800_000, 4_102_444_800_000)
