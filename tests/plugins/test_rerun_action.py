"""The Remote graph tab's "Rerun failed nodes": in Airflow's real api-server app, against the emulator.

Shown and honoured only for users who may edit the DAG's task instances; a two-step POST (a confirmation
page, then the rerun), each refused unless its Origin is the api-server's own; the pages run no script.
"""

from __future__ import annotations

import re
from urllib.parse import quote

import pytest
from airflow.models.dagrun import DagRun
from airflow.utils.session import create_session
from sqlalchemy import select

from airflow_provider_flowinst.plugins.answers import content_security_policy
from airflow_provider_flowinst.plugins.remote_graph import PAGE_STYLE
from tests.dags import dataworks_dags
from tests.helpers import run_dag

PREFIX = "/flowinst/remote-graph"
OWN_ORIGIN = "http://testserver"  # the TestClient's own base URL


@pytest.fixture(scope="module")
def client():
    from airflow.api_fastapi.app import create_app
    from fastapi.testclient import TestClient

    return TestClient(create_app())


def bearer(role: str) -> dict[str, str]:
    from airflow.api_fastapi.app import get_auth_manager
    from airflow.api_fastapi.auth.managers.simple.user import SimpleAuthManagerUser

    return {
        "Authorization": f"Bearer {get_auth_manager().generate_jwt(SimpleAuthManagerUser(username=role, role=role))}"
    }


@pytest.fixture(scope="module")
def failed_wait(emulator):
    """The graph page of a wait that failed on a failed DataWorks run, that run's id and its failed node."""
    dag = dataworks_dags.dataworks_poke_fails
    result = run_dag(dag)
    with create_session() as session:
        run_id = session.scalars(
            select(DagRun.run_id).where(DagRun.dag_id == dag.dag_id, DagRun.logical_date == result.logical_date)
        ).one()
    instance_id = result.xcom("create")
    return f"{PREFIX}/{dag.dag_id}/{quote(run_id, safe='')}/wait", instance_id, f"{instance_id}02"


def reruns_of(emulator, instance_id: str) -> list[list[str]]:
    calls = emulator.control("GET", "/_emulator/dataworks/reruns")
    return [call["ids"] for call in calls if any(i.startswith(instance_id) for i in call["ids"])]


def test_a_viewer_sees_no_button_and_may_not_post(client, failed_wait, emulator):
    page, instance_id, failed_node = failed_wait
    shown = client.get(page, headers=bearer("viewer"))

    assert shown.status_code == 200 and 'data-state="failed"' in shown.text
    assert "rerun-failed" not in shown.text
    headers = {**bearer("viewer"), "Origin": OWN_ORIGIN}
    for url in (page + "/rerun-failed/confirm", page + "/rerun-failed"):
        assert client.post(url, data={"map_index": "-1", "nodes": failed_node}, headers=headers).status_code == 403
    assert reruns_of(emulator, instance_id) == []


@pytest.mark.parametrize("origin", [None, "null", "https://evil.example", "http://testserver.evil.example"])
def test_a_post_from_another_origin_is_refused_even_for_an_editor(client, failed_wait, emulator, origin):
    page, instance_id, failed_node = failed_wait
    headers = {**bearer("op"), **({"Origin": origin} if origin else {})}

    answer = client.post(page + "/rerun-failed", data={"map_index": "-1", "nodes": failed_node}, headers=headers)

    assert answer.status_code == 403
    assert reruns_of(emulator, instance_id) == []


def test_a_get_changes_nothing(client, failed_wait, emulator):
    page, instance_id, _ = failed_wait
    assert client.get(page + "/rerun-failed", headers=bearer("op")).status_code == 405
    assert reruns_of(emulator, instance_id) == []


def test_an_editor_confirms_then_reruns_exactly_the_failed_nodes(client, failed_wait, emulator):
    page, instance_id, failed_node = failed_wait
    editor = {**bearer("op"), "Origin": OWN_ORIGIN}
    shown = client.get(page, headers=editor)
    assert 'id="rerun-failed"' in shown.text and f'action="{page}/rerun-failed/confirm"' in shown.text

    confirm = client.post(page + "/rerun-failed/confirm", data={"map_index": "-1"}, headers=editor)
    assert confirm.status_code == 200
    csp = confirm.headers["Content-Security-Policy"]
    assert csp == content_security_policy([PAGE_STYLE]) and "script" not in csp  # the tab's own policy
    assert f"<style>{PAGE_STYLE}</style>" in confirm.text  # the one style element that policy allows
    assert "<script" not in confirm.text and failed_node in confirm.text
    assert reruns_of(emulator, instance_id) == []  # the confirmation page changes nothing
    nodes = re.search(r'name="nodes" value="([^"]*)"', confirm.text).group(1)

    done = client.post(
        page + "/rerun-failed", data={"map_index": "-1", "nodes": nodes}, headers=editor, follow_redirects=False
    )

    assert done.status_code == 303 and done.headers["location"] == f"{page}?map_index=-1"
    assert reruns_of(emulator, instance_id) == [[failed_node]]
    redrawn = client.get(done.headers["location"], headers=editor).text
    assert f'data-node-id="{failed_node}" data-state="running"' in redrawn
    assert 'id="rerun-failed"' not in redrawn  # running again: nothing to rerun
    # A second confirmation of the same nodes is refused: the run is no longer failed.
    again = client.post(page + "/rerun-failed", data={"map_index": "-1", "nodes": nodes}, headers=editor)
    assert again.status_code == 409
    assert reruns_of(emulator, instance_id) == [[failed_node]]
