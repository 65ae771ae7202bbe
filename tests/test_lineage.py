"""OpenLineage: real dag.test() runs with Airflow's OpenLineage provider and its file transport, on each platform.

One child process runs every lineage DAG (tests/dags/lineage_dags.py) with OpenLineage switched on (see
tests/lineage_runner.py); the tests read the events it wrote, validate each against the pinned OpenLineage
schemas and check the jobs, parents and states a lineage tool would show.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections import defaultdict
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

from airflow_provider_flowinst.testing.emulator.dataworks import DATAWORKS_PROJECT_ID, DATAWORKS_REGION_ID
from airflow_provider_flowinst.testing.emulator.enos_batch import ENOS_ORG_ID
from tests.conftest import ROOT
from tests.dags.lineage_dags import FLOWS
from tests.lineage_schemas import problems

PLATFORMS = list(FLOWS)
OUTCOMES = ["success", "failure"]
TASKS = ["run", "wait", "status"]
#: The event type that ends the remote run, per outcome (BPM's failing process is terminated: an abort).
REMOTE_END = {"success": "COMPLETE", "failure": "FAIL"}
BPM_FAILURE_END = "ABORT"
#: Where an ended run has a graph: LSF offers no graph call, and a BPM graph is its current task (none at the end).
ENDED_RUN_HAS_NODES = {"enos_batch": True, "dataworks": True, "lsf_pm": False, "enos_bpm": False}
NODE_END = {"success": "COMPLETE", "skipped": "COMPLETE", "failed": "FAIL", "cancelled": "ABORT"}


class Events:
    """The events one DAG run emitted, sorted into the Airflow task's own and the remote jobs'."""

    def __init__(self, dag_id: str, events: list[dict[str, Any]]) -> None:
        self.dag_id = dag_id
        self.all = events
        task_jobs = {f"{dag_id}.{task}" for task in TASKS}
        self.task = defaultdict(list)
        self.remote: list[dict[str, Any]] = []
        for event in events:
            name = event["job"]["name"]
            if name in task_jobs:
                self.task[name.split(".")[-1]].append(event)
            elif event["run"]["facets"].get("parent", {}).get("root", {}).get("job", {}).get("name") == dag_id:
                self.remote.append(event)

    def task_run_id(self, task: str) -> str:
        return self.task[task][0]["run"]["runId"]

    def task_end(self, task: str) -> dict[str, Any]:
        return next(e for e in self.task[task] if e["eventType"] in ("COMPLETE", "FAIL"))

    def remote_runs(self, parent_run_id: str) -> dict[str, list[dict[str, Any]]]:
        """The remote events whose parent is ``parent_run_id``, by their run id."""
        runs: dict[str, list[dict[str, Any]]] = defaultdict(list)
        for event in self.remote:
            if event["run"]["facets"]["parent"]["run"]["runId"] == parent_run_id:
                runs[event["run"]["runId"]].append(event)
        return runs


@pytest.fixture(scope="module")
def lineage(emulator, tmp_path_factory) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Every lineage DAG run once in a child process with OpenLineage on: (outcomes per DAG, events)."""
    events_file = tmp_path_factory.mktemp("openlineage") / "events.jsonl"
    dag_ids = [f"lineage_{platform}_{outcome}" for platform in PLATFORMS for outcome in OUTCOMES]
    done = subprocess.run(
        [sys.executable, "-m", "tests.lineage_runner", str(events_file), *dag_ids],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-5000:]
    outcome = json.loads(Path(f"{events_file}.outcome.json").read_text())
    events = [json.loads(line) for line in events_file.read_text().splitlines() if line.strip()]
    return outcome, events


def expected_namespace(platform: str, emulator) -> str:
    authority = urlsplit(emulator.url).netloc
    return {
        "dataworks": f"dataworks://{DATAWORKS_REGION_ID}/{DATAWORKS_PROJECT_ID}",
        "enos_batch": f"enos-batch://{authority}/{ENOS_ORG_ID}",
        "enos_bpm": f"enos-bpm://{authority}/{ENOS_ORG_ID}",
        "lsf_pm": f"lsf://{authority}",
    }[platform]


def test_every_event_is_valid_openlineage(lineage):
    _, events = lineage
    assert events
    for event in events:
        ours = "flowinst_run" in event["run"]["facets"] and "externalQuery" not in event["run"]["facets"]
        assert problems(event, all_facets_pinned=ours) == [], event


@pytest.mark.parametrize("outcome", OUTCOMES)
@pytest.mark.parametrize("platform", PLATFORMS)
def test_the_remote_run_is_a_child_job_of_each_task_with_its_nodes_below_it(lineage, emulator, platform, outcome):
    outcomes, events = lineage
    dag_id = f"lineage_{platform}_{outcome}"
    ran = outcomes[dag_id]
    states = {"success": "success", "failure": "failed"}[outcome]
    assert ran["task_states"] == dict.fromkeys(TASKS, states)
    seen = Events(dag_id, events)
    _, good, bad = FLOWS[platform]
    flow = good if outcome == "success" else bad
    remote_end = BPM_FAILURE_END if (platform, outcome) == ("enos_bpm", "failure") else REMOTE_END[outcome]

    remote_run_ids = set()
    for task in TASKS:
        # The task's own event names the remote run it saw.
        end = seen.task_end(task)
        assert end["eventType"] == ("COMPLETE" if outcome == "success" else "FAIL")
        assert end["run"]["facets"]["externalQuery"]["externalQueryId"] == ran["instance_id"]
        assert end["run"]["facets"]["externalQuery"]["source"] == expected_namespace(platform, emulator)
        assert end["run"]["facets"]["flowinst_run"]["instanceId"] == ran["instance_id"]

        # The remote run: a job named after the flow, in the platform's namespace, below the task's run.
        runs = seen.remote_runs(seen.task_run_id(task))
        (remote_run_id, remote_events) = next((rid, evs) for rid, evs in runs.items() if evs[0]["job"]["name"] == flow)
        remote_run_ids.add(remote_run_id)
        assert [e["eventType"] for e in remote_events] == ["START", remote_end]
        assert {e["job"]["namespace"] for e in remote_events} == {expected_namespace(platform, emulator)}
        parent = remote_events[0]["run"]["facets"]["parent"]
        assert (parent["job"]["namespace"], parent["job"]["name"]) == ("flowinst-tests", f"{dag_id}.{task}")
        assert (parent["root"]["job"]["namespace"], parent["root"]["job"]["name"]) == ("flowinst-tests", dag_id)
        facet = remote_events[-1]["run"]["facets"]["flowinst_run"]
        assert (facet["platform"], facet["instanceId"], facet["flowId"]) == (platform, ran["instance_id"], flow)
        assert (outcome == "failure") == ("errorMessage" in remote_events[-1]["run"]["facets"])

        # One child job per remote graph node, each below the remote run: a start and its end.
        nodes = seen.remote_runs(remote_run_id)
        assert (facet["nodeCount"] > 0) == ENDED_RUN_HAS_NODES[platform]
        assert len(nodes) == facet["nodeCount"]
        for node_events in nodes.values():
            assert all(e["job"]["name"].startswith(f"{flow}.") for e in node_events)
            node_facet = node_events[-1]["run"]["facets"]["flowinst_run"]
            # Each of the three tasks reports the same run: the same node run, once per task.
            assert [e["eventType"] for e in node_events] == ["START", NODE_END[node_facet["state"]]] * len(TASKS)
        node_states = {evs[-1]["run"]["facets"]["flowinst_run"]["state"] for evs in nodes.values()}
        if ENDED_RUN_HAS_NODES[platform]:
            assert ("failed" in node_states) == (outcome == "failure")
    # Whoever reports it (the task that started it, the sensor, the status operator), it is one remote run.
    assert len(remote_run_ids) == 1


def test_nothing_secret_is_in_any_event(lineage):
    from airflow_provider_flowinst.testing.emulator import dataworks, enos_batch, enos_bpm, lsf

    _, events = lineage
    text = json.dumps(events)
    for secret in (
        dataworks.DATAWORKS_ACCESS_KEY_SECRET,
        enos_batch.ENOS_APP_SECRET,
        enos_bpm.BPM_PASSWORD,
        lsf.LSF_PASSWORD,
    ):
        assert secret not in text


@pytest.mark.parametrize(
    ("platform", "host", "extra", "namespace"),
    [
        ("lsf_pm", "https://jsmith:pw@pac.example.com:8443/", {}, "lsf://pac.example.com:8443"),
        ("lsf_pm", "pac.example.com", {}, "lsf://pac.example.com"),
        ("enos_batch", "https://apim.example.com", {"org_id": "o15"}, "enos-batch://apim.example.com/o15"),
        ("enos_bpm", "https://apim.example.com", {}, "enos-bpm://apim.example.com"),
        ("dataworks", None, {"region_id": "cn-shanghai", "project_id": "42"}, "dataworks://cn-shanghai/42"),
        ("dataworks", None, {"endpoint": "http://u:p@127.0.0.1:9000"}, "dataworks://127.0.0.1:9000"),
    ],
)
def test_a_namespace_names_the_platform_and_where_it_runs_never_a_credential(platform, host, extra, namespace):
    from airflow.sdk import Connection

    from airflow_provider_flowinst.lineage import namespace_of

    connection = Connection(conn_id="c", conn_type=platform, host=host, extra=json.dumps(extra))
    assert namespace_of(platform, connection, {"platform": platform}) == namespace


def test_a_dataworks_namespace_prefers_the_runs_own_project():
    from airflow.sdk import Connection

    from airflow_provider_flowinst.lineage import namespace_of

    connection = Connection(conn_id="c", conn_type="dataworks", extra=json.dumps({"region_id": "cn-hangzhou"}))
    instance = {"platform": "dataworks", "details": {"ProjectId": 7}}
    assert namespace_of("dataworks", connection, instance) == "dataworks://cn-hangzhou/7"


def test_importing_the_operators_and_sensors_imports_no_openlineage():
    # (Airflow itself reads every installed provider's get_provider_info; the OpenLineage client and the
    # provider's listener, extractors and our lineage module are loaded only when a task reports lineage.)
    code = (
        "import sys\n"
        "import airflow_provider_flowinst.operators.trigger, airflow_provider_flowinst.operators.flow_instance\n"
        "import airflow_provider_flowinst.sensors.flow_instance\n"
        "lineage = ('openlineage', 'airflow.providers.openlineage.plugins', 'airflow_provider_flowinst.lineage')\n"
        "loaded = [m for m in sys.modules if m.startswith(lineage)]\n"
        "assert not loaded, loaded\n"
    )
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr[-3000:]


def remote_events(instance: dict[str, Any]) -> list[dict[str, Any]]:
    """The events ``lineage.RemoteRun`` makes of an instance dict, as JSON (below a made-up Airflow task run)."""
    from openlineage.client.facet_v2 import parent_run
    from openlineage.client.serde import Serde

    from airflow_provider_flowinst.lineage import RemoteRun

    parent = parent_run.ParentRunFacet(
        run=parent_run.Run(runId="01b8dbd8-5c80-7ef0-9264-c3adada9af8e"),
        job=parent_run.Job(namespace="airflow", name="dag.task"),
    )
    run = RemoteRun(instance, "enos-batch://gateway:443/o1")
    return [json.loads(Serde.to_json(event)) for event in run.events(parent)]


def graph_instance(state: str, nodes: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "platform": "enos_batch",
        "instance_id": "2809-20300101000000",
        "flow_id": "2809",
        "state": state,
        "raw_state": state.upper(),
        "started_at": "2030-01-01T00:00:30+00:00",
        "ended_at": None,
        "graph": {"nodes": nodes, "edges": []},
    }


def test_a_run_still_going_is_running_and_a_node_not_started_is_one_other_event():
    nodes = [
        {"id": "t_1", "kind": "task", "state": "success", "raw_state": "SUCCESS", "instance_id": "1-x"},
        {"id": "t_2", "kind": "task", "state": "running", "raw_state": "RUNNING", "instance_id": "2-x"},
        {"id": "t_3", "kind": "task", "state": "queued", "raw_state": "NONE", "instance_id": None},
    ]
    events = remote_events(graph_instance("running", nodes))

    by_job = defaultdict(list)
    for event in events:
        assert problems(event, all_facets_pinned=True) == []
        by_job[event["job"]["name"]].append(event["eventType"])
    assert by_job == {
        "2809": ["START", "RUNNING"],
        "2809.t_1": ["START", "COMPLETE"],
        "2809.t_2": ["START", "RUNNING"],
        "2809.t_3": ["OTHER"],
    }
    assert events[0]["eventTime"] == "2030-01-01T00:00:30+00:00"


def test_a_huge_remote_graph_reports_a_bounded_number_of_nodes():
    from airflow_provider_flowinst.lineage import MAX_NODE_EVENTS

    nodes = [{"id": f"t_{n}", "kind": "task", "state": "success"} for n in range(MAX_NODE_EVENTS * 4)]
    events = remote_events(graph_instance("success", nodes))

    assert len({e["run"]["runId"] for e in events}) == 1 + MAX_NODE_EVENTS
    assert events[0]["run"]["facets"]["flowinst_run"]["nodeCount"] == MAX_NODE_EVENTS * 4
