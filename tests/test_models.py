"""The one vocabulary: states, instances and their XCom dict."""

from __future__ import annotations

import datetime as dt
import json

import pytest

from airflow_provider_flowinst.models import (
    TERMINAL_STATES,
    FlowInstance,
    FlowState,
    GraphEdge,
    GraphNode,
    InstanceGraph,
    NodeKind,
)


def sample() -> FlowInstance:
    return FlowInstance(
        platform="dataworks",
        instance_id="1234",
        flow_id="99",
        name="nightly",
        state=FlowState.RUNNING,
        raw_state="Running",
        started_at=dt.datetime(2024, 3, 12, 10, 23, 25, 403000, tzinfo=dt.timezone.utc),
        ended_at=None,
        url="https://console/1234",
        graph=InstanceGraph(
            nodes=(GraphNode("1", "extract", NodeKind.TASK, FlowState.SUCCESS, "Success", "1"),),
            edges=(GraphEdge("0", "1"),),
        ),
        details={"Owner": "1000", "Tags": [{"Key": "k", "Value": "v"}]},
    )


def test_flow_state_values_and_terminal_set():
    assert [state.value for state in FlowState] == [
        "queued",
        "running",
        "suspended",
        "success",
        "failed",
        "cancelled",
        "skipped",
        "unknown",
    ]
    assert {FlowState.SUCCESS, FlowState.FAILED, FlowState.CANCELLED, FlowState.SKIPPED} == TERMINAL_STATES
    assert not FlowState.UNKNOWN.is_terminal and FlowState.SKIPPED.is_terminal
    assert FlowState("success") == "success"  # a str enum: compares equal to its value


def test_parse_many_accepts_strings_states_and_any_case():
    assert FlowState.parse_many("SUCCESS", argument="x") == (FlowState.SUCCESS,)
    assert FlowState.parse_many(["failed", FlowState.CANCELLED], argument="x") == (
        FlowState.FAILED,
        FlowState.CANCELLED,
    )
    with pytest.raises(ValueError, match="x must hold states among"):
        FlowState.parse_many(["done"], argument="x")


def test_to_dict_is_json_safe_with_utc_times_keeping_fractions():
    data = sample().to_dict()

    assert data["started_at"] == "2024-03-12T10:23:25.403000+00:00"
    assert data["ended_at"] is None
    assert data["graph"] == {
        "nodes": [
            {
                "id": "1",
                "name": "extract",
                "kind": "task",
                "state": "success",
                "raw_state": "Success",
                "instance_id": "1",
            }
        ],
        "edges": [{"source": "0", "target": "1"}],
    }
    assert json.loads(json.dumps(data)) == data


def test_times_in_other_zones_are_written_in_utc():
    shanghai = dt.timezone(dt.timedelta(hours=8))
    instance = FlowInstance(
        "lsf_pm",
        "1",
        None,
        None,
        FlowState.SUCCESS,
        "Done",
        started_at=dt.datetime(2018, 8, 14, 14, 1, 15, tzinfo=shanghai),
    )
    assert instance.to_dict()["started_at"] == "2018-08-14T06:01:15+00:00"


def test_to_dict_copies_details_so_xcom_cannot_change_the_instance():
    instance = sample()
    instance.to_dict()["details"]["Tags"].append("changed")
    assert instance.details["Tags"] == [{"Key": "k", "Value": "v"}]


def test_from_dict_round_trips():
    instance = sample()
    assert FlowInstance.from_dict(instance.to_dict()).to_dict() == instance.to_dict()
    restored = FlowInstance.from_dict(instance.to_dict())
    assert (restored.started_at, restored.ended_at) == (instance.started_at, instance.ended_at)


def test_instances_are_immutable():
    with pytest.raises(AttributeError):
        sample().state = FlowState.SUCCESS  # type: ignore[misc]
