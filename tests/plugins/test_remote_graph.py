"""The "Remote graph" tab's routes inside Airflow's real api-server app: who may see them, and what they show."""

from __future__ import annotations

import re

import pytest
from airflow.models.dagrun import DagRun
from airflow.utils.session import create_session
from sqlalchemy import select

from tests.dags import sensor_dags
from tests.helpers import run_dag
from tests.test_secrets import STATIC_SECRETS, credentials_received, tokens_handed_out

PREFIX = "/flowinst/remote-graph"


@pytest.fixture(scope="module")
def client():
    from airflow.api_fastapi.app import create_app
    from fastapi.testclient import TestClient

    return TestClient(create_app())


@pytest.fixture(scope="module")
def token(client):
    from airflow.api_fastapi.app import get_auth_manager
    from airflow.api_fastapi.auth.managers.simple.user import SimpleAuthManagerUser

    return get_auth_manager().generate_jwt(SimpleAuthManagerUser(username="viewer", role="viewer"))


def run_id_of(dag_id: str, result) -> str:
    with create_session() as session:
        return session.scalars(
            select(DagRun.run_id).where(DagRun.dag_id == dag_id, DagRun.logical_date == result.logical_date)
        ).one()


@pytest.fixture(scope="module")
def finished(emulator):
    dag = sensor_dags.sensor_poke_success
    result = run_dag(dag)
    return f"{PREFIX}/{dag.dag_id}/{run_id_of(dag.dag_id, result)}/wait", result.xcom("wait")


def secrets_in(page: str, emulator) -> list[str]:
    """The connection secrets, tokens and signatures (named by kind) that appear in ``page``."""
    known = {secret: what for what, secret in STATIC_SECRETS.items()}
    known |= tokens_handed_out(emulator) | credentials_received(emulator)
    return [what for secret, what in known.items() if secret and secret in page]


def drawn(page: str) -> tuple[dict[str, str], set[tuple[str, str]]]:
    nodes = dict(re.findall(r'class="node" data-node-id="([^"]+)" data-state="([^"]+)"', page))
    edges = set(re.findall(r'class="edge" data-source="([^"]+)" data-target="([^"]+)"', page))
    return nodes, edges


def test_anonymous_requests_are_refused(client, finished):
    url, _ = finished
    assert client.get(url).status_code == 401
    assert client.get(url + "/graph.svg").status_code == 401


def test_a_forged_token_is_refused(client, finished):
    url, _ = finished
    assert client.get(url, headers={"Authorization": "Bearer not-a-jwt"}).status_code == 403


def test_the_auth_manager_decides_on_the_dags_task_instances(client, token, finished, monkeypatch):
    from airflow.api_fastapi.app import get_auth_manager

    asked = []

    def refuse(*, method, access_entity=None, details=None, user=None):
        asked.append((method, access_entity, details.id))
        return False

    monkeypatch.setattr(get_auth_manager(), "is_authorized_dag", refuse)
    url, _ = finished

    assert client.get(url, headers={"Authorization": f"Bearer {token}"}).status_code == 403
    from airflow.api_fastapi.auth.managers.models.resource_details import DagAccessEntity

    assert asked == [("GET", DagAccessEntity.TASK_INSTANCE, "sensor_poke_success")]


def test_a_finished_task_shows_its_xcom_graph_every_node_and_edge(client, token, finished):
    url, instance = finished

    response = client.get(url, headers={"Authorization": f"Bearer {token}"}, params={"map_index": "{MAP_INDEX}"})

    assert response.status_code == 200
    assert 'data-source="xcom"' in response.text
    nodes, edges = drawn(response.text)
    assert nodes == {node["id"]: node["state"] for node in instance["graph"]["nodes"]}
    assert edges == {(edge["source"], edge["target"]) for edge in instance["graph"]["edges"]}
    assert "<title>tass\nstate: success" in response.text  # the hover text
    assert f'href="{instance["url"]}"' in response.text  # the console link


def test_the_svg_alone_is_served_too(client, token, finished):
    url, _ = finished

    response = client.get(url + "/graph.svg", cookies={"_token": token})  # the UI's session cookie

    assert response.status_code == 200
    assert response.headers["content-type"].startswith("image/svg+xml")
    assert response.text.startswith("<svg")


def test_a_failed_wait_is_read_live_from_the_platform(client, token, emulator):
    dag = sensor_dags.sensor_poke_failure
    result = run_dag(dag)
    assert result.task_states["wait"] == "failed"
    url = f"{PREFIX}/{dag.dag_id}/{run_id_of(dag.dag_id, result)}/wait"

    response = client.get(url, headers={"Authorization": f"Bearer {token}"})

    assert response.status_code == 200
    assert 'data-source="live"' in response.text
    nodes, _ = drawn(response.text)
    assert nodes["t_105100"] == "failed"
    # Nothing from the connection: its secrets, and no token or signature the live read used.
    assert not secrets_in(response.text, emulator)


def test_a_script_loads_a_task_run_the_way_the_tab_does(emulator):
    from airflow_provider_flowinst.plugins.instance_source import load_task_run

    dag = sensor_dags.sensor_poke_failure
    result = run_dag(dag)
    with create_session() as session:
        run = load_task_run(session, dag.dag_id, run_id_of(dag.dag_id, result), "wait", -1)

    assert run.source == "live"
    assert run.task_state == "failed"
    assert run.instance["state"] == "failed"


def test_nothing_from_the_connection_reaches_a_finished_tasks_page(client, token, finished, emulator):
    url, _ = finished

    page = client.get(url, headers={"Authorization": f"Bearer {token}"}).text

    assert not secrets_in(page, emulator)


def test_an_unknown_task_instance_is_404(client, token, emulator):
    response = client.get(f"{PREFIX}/no_dag/no_run/no_task", headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 404


def test_the_plugin_is_registered_through_its_entry_point():
    from airflow import plugins_manager

    views, _ = plugins_manager._get_ui_plugins()
    view = next(view for view in views if view["name"] == "Remote graph")
    assert view["destination"] == "task_instance"
    assert view["url_route"] == "remote_graph"
    apps, _ = plugins_manager.get_fastapi_plugins()
    assert any(app["url_prefix"] == "/flowinst" for app in apps)


SECURITY_HEADERS = ("Content-Security-Policy", "X-Content-Type-Options", "Cache-Control")


def assert_secured(response) -> None:
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert response.headers["Cache-Control"] == "no-store"
    policy = response.headers["Content-Security-Policy"]
    assert "default-src 'none'" in policy
    assert "frame-ancestors 'self'" in policy
    assert "form-action 'self'" in policy
    assert "script-src" not in policy  # nothing but default-src 'none' for scripts


def test_every_answer_carries_the_security_headers(client, token, finished):
    url, _ = finished
    signed_in = {"Authorization": f"Bearer {token}"}
    answers = {
        "page": client.get(url, headers=signed_in),
        "svg": client.get(url + "/graph.svg", headers=signed_in),
        "icon": client.get("/flowinst/icon.svg"),
        "anonymous": client.get(url),
        "unknown task": client.get(f"{PREFIX}/no_dag/no_run/no_task", headers=signed_in),
        "bad map index": client.get(url, headers=signed_in, params={"map_index": "x"}),
        "unknown route": client.get("/flowinst/nothing-here"),
    }

    assert {name: answer.status_code for name, answer in answers.items()} == {
        "page": 200,
        "svg": 200,
        "icon": 200,
        "anonymous": 401,
        "unknown task": 404,
        "bad map index": 422,
        "unknown route": 404,
    }
    for answer in answers.values():
        assert_secured(answer)


def test_the_policy_allows_the_pages_one_style_element_and_nothing_else(client, token, finished):
    import base64
    import hashlib

    url, _ = finished
    response = client.get(url, headers={"Authorization": f"Bearer {token}"})

    styles = re.findall(r"<style>(.*?)</style>", response.text, flags=re.S)
    assert len(styles) == 1
    digest = base64.b64encode(hashlib.sha256(styles[0].encode()).digest()).decode()
    assert f"style-src 'sha256-{digest}';" in response.headers["Content-Security-Policy"]
    assert "<script" not in response.text
    assert " style=" not in response.text  # no inline style attribute (the policy would block it)


@pytest.mark.parametrize("map_index", ["²", "9" * 5000, str(10**30), "1.5", "-2", "abc", "0x10"])
def test_a_bad_map_index_is_422_with_a_plain_message(client, token, finished, map_index):
    url, _ = finished

    for target in (url, url + "/graph.svg"):
        response = client.get(target, headers={"Authorization": f"Bearer {token}"}, params={"map_index": map_index})

        assert response.status_code == 422
        assert response.headers["content-type"].startswith("text/plain")
        assert response.text == "map_index must be a whole number from -1 to 2147483647, or omitted."


def test_a_platform_that_cannot_be_read_gives_a_plain_note_and_the_details_go_to_the_log(
    client, token, emulator, caplog
):
    import logging

    from airflow_provider_flowinst.plugins.live_reads import LIVE_READS

    dag = sensor_dags.sensor_poke_failure
    result = run_dag(dag)
    url = f"{PREFIX}/{dag.dag_id}/{run_id_of(dag.dag_id, result)}/wait"
    LIVE_READS.clear()
    emulator.inject_fault("503", platform="enos_batch", count=10)

    with caplog.at_level(logging.WARNING, logger="airflow_provider_flowinst"):
        response = client.get(url, headers={"Authorization": f"Bearer {token}"})

    assert response.status_code == 200
    assert "The platform could not be read just now" in response.text
    host_port = emulator.url.split("://", 1)[1].rstrip("/")
    assert host_port not in response.text
    assert "503" not in response.text
    assert "could not read remote run" in caplog.text  # the details, for whoever runs the api-server
    assert host_port in caplog.text
    LIVE_READS.clear()


def test_hostile_remote_text_still_gives_a_page_and_a_valid_svg():
    import defusedxml.ElementTree as ET

    from airflow_provider_flowinst.plugins.instance_source import TaskRun
    from airflow_provider_flowinst.plugins.remote_graph import page_html

    hostile = "\ud800\x00\x1b\x0b\ufffe\u202e<b>"
    instance = {
        "platform": "enos_batch",
        "instance_id": hostile,
        "name": hostile * 10_000,
        "state": "failed",
        "graph": {"nodes": [{"id": hostile, "name": hostile, "state": hostile}], "edges": []},
    }

    page = page_html(hostile, hostile, TaskRun(instance=instance, source="xcom", task_state=hostile))

    page.encode("utf-8")
    assert "\u202e" not in page
    assert "&lt;b&gt;" in page  # the remote "<b>" is text, not markup
    svg = page[page.index("<svg") : page.index("</svg>") + 6]
    ET.fromstring(svg)
    assert len(page) < 20_000


def test_a_large_graph_says_on_the_page_what_is_not_drawn():
    from airflow_provider_flowinst.plugins.instance_source import TaskRun
    from airflow_provider_flowinst.plugins.remote_graph import page_html

    nodes = [{"id": f"n{i}", "state": "failed" if i == 10 else "success"} for i in range(1000)]
    instance = {"platform": "enos_batch", "instance_id": "1", "state": "failed", "graph": {"nodes": nodes}}

    page = page_html("d", "t", TaskRun(instance=instance, source="xcom", task_state="failed"))

    assert '<p class="note reduced">Drawn: 400 of 1,000 nodes' in page
    assert "not drawn: 600 success." in page


def test_even_an_unexpected_failure_answers_with_the_security_headers(token, finished, monkeypatch):
    from airflow.api_fastapi.app import create_app
    from fastapi.testclient import TestClient

    from airflow_provider_flowinst.plugins import remote_graph

    def broken(*args, **kwargs):
        raise RuntimeError("a bug")

    monkeypatch.setattr(remote_graph, "locate_task_run", broken)
    url, _ = finished

    response = TestClient(create_app(), raise_server_exceptions=False).get(
        url, headers={"Authorization": f"Bearer {token}"}
    )

    assert response.status_code == 500
    assert "a bug" not in response.text
    assert_secured(response)
