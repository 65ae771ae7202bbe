"""EnOS Batch Processing, pure: requests, envelopes, the graph inside a string, states and times."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from airflow_provider_flowinst.errors import FlowInstanceNotFound, FlowPlatformError
from airflow_provider_flowinst.models import FlowState
from airflow_provider_flowinst.platforms.enos_batch import (
    EnOSBatchClient,
    EnOSBatchSettings,
    map_state,
    parse_graph,
    read_envelope,
)
from airflow_provider_flowinst.protocol import HttpResponse
from tests.helpers import drive as run

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures"
SEED = json.loads((FIXTURES / "enos_get_flow_instance_v20.json").read_text())


def client(**overrides) -> EnOSBatchClient:
    settings = {"base_url": "https://gw", "org_id": "o1", "user_id": "u1", **overrides}
    return EnOSBatchClient(EnOSBatchSettings(**settings))


def answer(payload, status: int = 200) -> HttpResponse:
    return HttpResponse(status, {"content-type": "application/json"}, json.dumps(payload).encode())


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
CAMEL_GRAPH = {
    "tasks": [
        {"taskName": "extract", "taskInstId": "1-20240101", "taskId": 1, "nodeId": "t_1", "status": "SUCCESS"},
        {"taskName": "load", "taskInstId": "2-20240101", "taskId": 2, "nodeId": "t_2", "status": "NONE"},
    ],
    "flows": [
        {
            "flowId": "77",
            "flowName": "upstream",
            "nodeId": "f_77",
            "isVirtual": False,
            "flowInstId": "77-20240101",
            "status": "SUCCESS",
        },
    ],
    "relations": [{"source": "f_77", "target": "t_1"}, {"source": "t_1", "target": "t_2"}],
}


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


def test_search_gathers_every_page():
    operation = client().search_flow_instances(expression="map", status="1,2", page_size=2)
    requests, found = run(
        operation,
        answer({"code": 0, "data": {"flowInsts": [{"instanceId": "a"}, {"instanceId": "b"}], "count": 3}}),
        answer({"code": 0, "data": {"flowInsts": [{"instanceId": "c"}], "count": 3}}),
    )
    assert [item["instanceId"] for item in found] == ["a", "b", "c"]
    bodies = [json.loads(request.body) for request in requests]
    assert [body["pagination"]["pageNo"] for body in bodies] == [1, 2]
    assert bodies[0]["expression"] == "map" and bodies[0]["status"] == "1,2"


def test_trigger_sends_flow_id_and_time_and_returns_the_new_id():
    requests, instance_id = run(
        client().trigger_flow("2809", trigger_time=1700000000000, parameters={"day": "1"}),
        answer({"code": 0, "data": {"flowInstanceId": "2809-20231114221320"}}),
    )
    body = json.loads(requests[0].body)
    assert body["flowId"] == 2809 and body["triggerTime"] == 1700000000000
    assert json.loads(body["parameters"]) == [{"key": "day", "value": "1"}]
    assert instance_id == "2809-20231114221320"


def test_console_link_fills_in_instance_and_flow():
    link = client(console_url="https://console/flows/{flow_id}/instances/{instance_id}").instance_url("2809-20240101")
    assert link == "https://console/flows/2809/instances/2809-20240101"
