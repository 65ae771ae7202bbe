"""LSFProcessManagerHook against the emulator: every call, the shared logon token, expiry, 409, refusals."""

from __future__ import annotations

import asyncio
import atexit
import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from typing import Any

import pytest
import requests
from airflow.sdk import Connection
from airflow.sdk.log import redact

from airflow_provider_flowinst.errors import AmbiguousStart, FlowInstanceNotFound, FlowPlatformError
from airflow_provider_flowinst.hooks import get_hook
from airflow_provider_flowinst.hooks.lsf import LSFProcessManagerHook
from airflow_provider_flowinst.models import FlowState
from airflow_provider_flowinst.platforms.lsf import XML, LSFClient, cookie_value, newest_instance_id
from airflow_provider_flowinst.testing.emulator import credentials as creds
from airflow_provider_flowinst.transport import TOKENS, close_shared_session
from tests.helpers import emulator_hook, instance_reaching

QUERY = "lsf_pm GET /platform/ws/flow/instances"
DEFAULT_SETTINGS = {"single_session": False, "page_cap": 100, "submit_names_instance": False}


@pytest.fixture(autouse=True)
def _default_sessions(emulator) -> Iterator[None]:
    """Each test starts with no live LSF token and leaves the emulator in its default (reissuing) mode."""
    emulator.control("POST", "/_emulator/lsf_pm/settings", DEFAULT_SETTINGS)
    emulator.control("POST", "/_emulator/lsf_pm/tokens", {"drop": True})
    TOKENS.clear()  # hooks earlier tests left open hold no token of this one's
    yield
    emulator.control("POST", "/_emulator/lsf_pm/settings", DEFAULT_SETTINGS)


def lsf_hook(emulator, **changes: Any) -> LSFProcessManagerHook:
    """An LSF hook on the emulator's connection, with changes; retries kept quick."""
    return emulator_hook(LSFProcessManagerHook, emulator, **changes)


def logons(emulator) -> int:
    return int(emulator.stats()["token_requests"].get("lsf_pm", 0))


def queries(emulator) -> int:
    return int(emulator.stats()["requests"].get(QUERY, 0))


def raw_logon(emulator, accept: str = "application/json") -> requests.Response:
    body = f"<User><name>{creds.LSF_USER}</name><pass>{creds.LSF_PASSWORD}</pass></User>"
    return requests.post(
        emulator.url + "/platform/ws/logon",
        data=body,
        headers={"Content-Type": "application/xml", "Accept": accept},
        timeout=10,
    )


# -- queries ---------------------------------------------------------------------------------------------


def test_list_flow_instances_returns_the_users_records_with_clean_keys(emulator):
    records = lsf_hook(emulator).list_flow_instances(flowname="flow1", username="jsmith")

    by_id = {record["id"]: record for record in records}
    assert {101, 102} <= set(by_id)
    assert by_id[101]["state"] == "Done" and by_id[101]["fullName"] == "101:jsmith:flow1"
    # The emulator sends " lastUpdateTime" on even ids, as the vendor's sample does.
    assert by_id[102]["lastUpdateTime"].endswith("GMT+08:00")
    assert not [key for record in records for key in record if key != key.strip()]


def test_one_match_is_a_list_of_one(emulator):
    records = lsf_hook(emulator).list_flow_instances(id=101)

    assert [record["id"] for record in records] == [101]


def test_no_match_is_an_empty_list(emulator):
    assert lsf_hook(emulator).list_flow_instances(flowname="no_such_flow") == []


def test_username_all_lists_other_users_instances(emulator):
    hook = lsf_hook(emulator)
    instance_id = emulator.create_lsf_pm_instance("alice:nightly")

    assert int(instance_id) in {r["id"] for r in hook.list_flow_instances(username="all", flowname="nightly")}
    assert hook.list_flow_instances(flowname="nightly") == []  # the logged-on user's own by default
    # get_instance finds it by id whoever owns it.
    assert hook.get_instance(instance_id).flow_id == "alice:nightly"


def test_state_filter(emulator):
    hook = lsf_hook(emulator)
    running = emulator.create_lsf_pm_instance("jsmith:long_flow")

    assert {r["state"] for r in hook.list_flow_instances(state="Done")} == {"Done"}
    assert int(running) in {r["id"] for r in hook.list_flow_instances(state="Running")}


def test_without_pagesize_every_page_is_gathered_under_the_servers_page_cap(emulator):
    hook = lsf_hook(emulator)
    emulator.create_lsf_pm_instance("jsmith:flow1", count=5)
    emulator.control("POST", "/_emulator/lsf_pm/settings", {"page_cap": 2})
    before = queries(emulator)

    everything = [r["id"] for r in hook.list_flow_instances(username="all")]

    listed = emulator.control("GET", "/_emulator/lsf_pm/instances")
    assert everything == sorted(int(i) for i in listed) and len(everything) >= 7
    # Pages of 2 (the cap, although 100 were asked): ``total`` (larger than a page) ends the walk.
    assert queries(emulator) - before == -(-len(everything) // 2)


def test_with_pagesize_the_call_returns_that_one_page(emulator):
    hook = lsf_hook(emulator)
    emulator.create_lsf_pm_instance("jsmith:flow1", count=3)
    everything = [r["id"] for r in hook.list_flow_instances(username="all")]
    before = queries(emulator)

    assert [r["id"] for r in hook.list_flow_instances(username="all", pagesize=2)] == everything[:2]
    assert [r["id"] for r in hook.list_flow_instances(username="all", start=2, pagesize=2)] == everything[2:4]
    assert queries(emulator) - before == 2
    assert [r["id"] for r in hook.list_flow_instances(username="all", start=2)] == everything[2:]


def test_xml_answers_read_as_the_json_ones(emulator):
    hook = lsf_hook(emulator)
    xml_client = LSFClient(replace(hook.client.settings, accept=XML))

    from_xml = hook.perform(xml_client.list_flow_instances(username="all"))
    from_json = hook.list_flow_instances(username="all")

    assert [r["id"] for r in from_xml] == [r["id"] for r in from_json]
    assert from_xml[0] == from_json[0]  # instance 101, done: nothing moves between the two reads
    assert hook.perform(xml_client.list_flow_instances(id=101)) == [from_json[0]]  # a lone XML record
    assert hook.perform(xml_client.list_flow_instances(flowname="no_such_flow")) == []
    assert hook.perform(xml_client.get_instance("101")).state is FlowState.SUCCESS


def test_the_emulator_serves_the_documented_quirks_and_checks_the_quoting(emulator):
    token = raw_logon(emulator).json()["token"]
    assert '"' in token  # so clients must quote it
    cookie = {"Cookie": f"platform_token={cookie_value(token)}"}
    url = emulator.url + "/platform/ws/flow/instances"

    lone = requests.get(url, params={"id": 102}, headers={**cookie, "Accept": "application/json"}, timeout=10)
    xml = requests.get(url, params={"id": 101}, headers={**cookie, "Accept": "application/xml"}, timeout=10)
    missing = requests.get(url, params={"id": 9999}, headers={**cookie, "Accept": "application/json"}, timeout=10)
    raw_quotes = requests.get(url, headers={"Cookie": f"platform_token={token}"}, timeout=10)

    assert isinstance(lone.json()["pseudoFlowInstances"]["pseudoFlowInstance"], dict)
    assert " lastUpdateTime" in lone.json()["pseudoFlowInstances"]["pseudoFlowInstance"]
    assert "< lastUpdateTime>" in xml.text and xml.headers["Content-Type"].startswith("application/xml")
    assert missing.status_code == 404 and "message" in missing.json()["error"]
    assert raw_quotes.status_code == 401 and "#quote#" in raw_quotes.json()["error"]["message"]


# -- get_instance, states on the emulated clock ----------------------------------------------------------


def test_get_instance_of_a_done_instance(emulator):
    instance = lsf_hook(emulator).get_instance("101")

    assert (instance.platform, instance.instance_id, instance.flow_id, instance.name) == (
        "lsf_pm",
        "101",
        "jsmith:flow1",
        "flow1",
    )
    assert (instance.state, instance.raw_state, instance.graph, instance.url) == (FlowState.SUCCESS, "Done", None, None)
    assert instance.started_at is not None and instance.ended_at is not None
    assert instance.to_dict()["started_at"].endswith("+00:00")
    assert instance.details["workDirectory"] == "/home/jsmith"


@pytest.mark.parametrize(
    ("flow", "state", "raw_state"),
    [
        ("jsmith:flow1", FlowState.SUCCESS, "Done"),
        ("jsmith:flow_exit", FlowState.FAILED, "Exit"),
        ("jsmith:flow_killed", FlowState.CANCELLED, "Killed"),
    ],
)
def test_instances_run_and_end_as_their_flow_says(emulator, flow, state, raw_state):
    hook = lsf_hook(emulator)
    # Logged on before the run starts, and 2 wall seconds of running: the first look must see it running
    # also on a loaded machine or a slow first connection lookup (Airflow 3.1).
    hook.check_connection()
    instance_id = emulator.create_lsf_pm_instance(flow, running_seconds=20)

    first = hook.get_instance(instance_id)
    assert (first.state, first.ended_at) == (FlowState.RUNNING, None)
    assert instance_reaching(hook, instance_id, state).state is state
    last = hook.get_instance(instance_id)
    assert last.raw_state == raw_state
    assert last.ended_at is not None and last.ended_at >= last.started_at


def test_an_unknown_instance_is_not_found(emulator):
    with pytest.raises(FlowInstanceNotFound) as caught:
        lsf_hook(emulator).get_instance("99999")

    assert caught.value.http_status == 404
    assert "No flow instances that match" in str(caught.value)


def test_aget_instance_runs_on_the_event_loop(emulator):
    async def look() -> Any:
        try:
            return await lsf_hook(emulator).aget_instance("101")
        finally:
            await close_shared_session()

    instance = asyncio.run(look())

    assert (instance.instance_id, instance.state) == ("101", FlowState.SUCCESS)


# -- operations and submit -------------------------------------------------------------------------------


def test_submit_starts_a_run_found_as_the_newest_instance(emulator):
    hook = lsf_hook(emulator)
    before = newest_instance_id(hook.list_flow_instances(flowname="flow1"), "jsmith:flow1")

    answer = hook.submit_flow("jsmith:flow1", {"a": 1, "b": 3})

    assert answer == {"message": {"message": "1 flow(s) submitted."}}
    instance_id = newest_instance_id(hook.list_flow_instances(flowname="flow1"), "jsmith:flow1", newer_than=before)
    assert instance_id is not None and int(instance_id) > int(before)
    assert instance_reaching(hook, instance_id, FlowState.SUCCESS).state is FlowState.SUCCESS


def test_submit_of_an_unknown_flow_is_not_found(emulator):
    with pytest.raises(FlowInstanceNotFound, match="Flow definition not found: jsmith:nope"):
        lsf_hook(emulator).submit_flow("jsmith:nope")


def test_suspend_resume_and_kill(emulator):
    hook = lsf_hook(emulator)
    first, second = (
        emulator.create_lsf_pm_instance("jsmith:long_flow"),
        emulator.create_lsf_pm_instance("jsmith:long_flow"),
    )

    assert hook.suspend_flow_instances([first, second]) == f"Flow instance(s) {first},{second} suspended."
    assert {hook.get_instance(i).state for i in (first, second)} == {FlowState.SUSPENDED}
    assert "resumed" in hook.resume_flow_instances(f"{first},{second}")
    assert hook.get_instance(first).state is FlowState.RUNNING
    assert "killed" in hook.kill_flow_instances(int(first))
    killed = hook.get_instance(first)
    assert (killed.state, killed.raw_state) == (FlowState.CANCELLED, "Killed")
    assert killed.ended_at is not None
    assert hook.get_instance(second).state is FlowState.RUNNING


def test_rerun_of_a_failed_instance_runs_it_again(emulator):
    hook = lsf_hook(emulator)
    instance_id = emulator.create_lsf_pm_instance("jsmith:flow_exit")
    assert instance_reaching(hook, instance_id, FlowState.FAILED).state is FlowState.FAILED

    assert "rerun" in hook.rerun_flow_instances([instance_id], {"retry": "yes"})

    assert hook.get_instance(instance_id).state is FlowState.RUNNING
    assert instance_reaching(hook, instance_id, FlowState.SUCCESS).state is FlowState.SUCCESS  # the fix made it pass


def test_an_operation_the_state_forbids_is_the_platforms_error(emulator):
    with pytest.raises(FlowPlatformError, match="Flow 101 is Done: cannot suspend it") as caught:
        lsf_hook(emulator).suspend_flow_instances(["101"])

    assert caught.value.http_status == 400


def test_an_operation_on_an_unknown_instance_is_not_found(emulator):
    with pytest.raises(FlowInstanceNotFound, match="Flow instance not found: 99999"):
        lsf_hook(emulator).kill_flow_instances([99999])


# -- the logon token -------------------------------------------------------------------------------------


def test_one_logon_serves_every_hook_of_the_process(emulator):
    first, second = lsf_hook(emulator), lsf_hook(emulator)

    first.get_instance("101")
    second.list_flow_instances(id=101)
    get_hook("lsf_pm_default").get_instance("101")

    assert logons(emulator) == 1


def test_a_token_used_within_the_hour_stays_live(emulator):
    hook = lsf_hook(emulator)
    hook.get_instance("101")
    for _ in range(2):
        emulator.control("POST", "/_emulator/lsf_pm/tokens", {"idle_seconds": 1800})
        hook.get_instance("101")

    assert logons(emulator) == 1


def test_a_token_dropped_after_an_hour_unused_is_replaced_by_a_new_logon(emulator):
    hook = lsf_hook(emulator)
    hook.get_instance("101")
    emulator.control("POST", "/_emulator/lsf_pm/tokens", {"idle_seconds": 3601})

    assert lsf_hook(emulator).get_instance("101").state is FlowState.SUCCESS
    assert logons(emulator) == 2


def test_an_expired_token_fault_logs_on_again_and_the_call_succeeds(emulator):
    hook = lsf_hook(emulator)
    hook.get_instance("101")
    emulator.inject_fault("expired_token", platform="lsf_pm")

    assert hook.list_flow_instances(id=101)[0]["id"] == 101
    assert logons(emulator) == 2


def test_the_token_is_shared_even_where_a_second_logon_is_refused(emulator):
    emulator.control("POST", "/_emulator/lsf_pm/settings", {"single_session": True})

    lsf_hook(emulator).get_instance("101")
    lsf_hook(emulator).kill_flow_instances([emulator.create_lsf_pm_instance("jsmith:long_flow")])

    assert logons(emulator) == 1


def test_a_409_at_logon_without_a_token_at_hand_says_so(emulator):
    emulator.control("POST", "/_emulator/lsf_pm/settings", {"single_session": True})
    lsf_hook(emulator).get_instance("101")
    TOKENS.clear()  # as if another process held the live token

    with pytest.raises(FlowPlatformError) as caught:
        lsf_hook(emulator).get_instance("101")

    message = str(caught.value)
    assert caught.value.http_status == 409
    assert "already logged on" in message and "no token" in message
    assert "User jsmith is already logged on." in message
    assert creds.LSF_PASSWORD not in message

    # Once the other session's token has gone unused for an hour, logon works again.
    emulator.control("POST", "/_emulator/lsf_pm/tokens", {"idle_seconds": 3601})
    assert lsf_hook(emulator).get_instance("101").state is FlowState.SUCCESS


def test_a_wrong_password_is_the_platforms_error_without_the_password(emulator):
    with pytest.raises(FlowPlatformError) as caught:
        lsf_hook(emulator, password="not-the-password").get_instance("101")

    assert caught.value.http_status == 403
    assert "the user name or password is not correct" in str(caught.value)
    assert "not-the-password" not in str(caught.value) and creds.LSF_PASSWORD not in str(caught.value)
    assert not isinstance(caught.value, FlowInstanceNotFound)


def test_a_wrong_password_never_borrows_the_token_of_the_right_one(emulator):
    lsf_hook(emulator).get_instance("101")

    with pytest.raises(FlowPlatformError, match="the user name or password is not correct"):
        lsf_hook(emulator, password="not-the-password").get_instance("101")


def test_an_unknown_user_is_refused_too(emulator):
    with pytest.raises(FlowPlatformError, match="Logon failed for user nobody"):
        lsf_hook(emulator, login="nobody").list_flow_instances()


def test_user_and_password_are_required(emulator):
    with pytest.raises(FlowPlatformError, match="login"):
        lsf_hook(emulator, login=None)
    with pytest.raises(FlowPlatformError, match="password"):
        lsf_hook(emulator, password="")


def test_the_password_and_the_token_are_masked(emulator):
    hook = lsf_hook(emulator)
    hook.get_instance("101")
    token = TOKENS.get(hook._settings.auth.cache_key)

    for secret in (creds.LSF_PASSWORD, token.value, cookie_value(token.value)):
        assert secret not in str(redact(f"before {secret} after"))


def test_a_transient_fault_is_retried(emulator):
    hook = lsf_hook(emulator)
    emulator.inject_fault("503", platform="lsf_pm")

    assert hook.list_flow_instances(id=101)[0]["id"] == 101


# -- connection ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("host", "schema", "port", "base_url"),
    [
        ("pac.example.com", "http", None, "http://pac.example.com:8080"),
        ("pac.example.com", "https", None, "https://pac.example.com:8443"),
        ("pac.example.com", None, None, "https://pac.example.com:8443"),
        ("pac.example.com", "https", 9443, "https://pac.example.com:9443"),
        ("https://pac.example.com", None, None, "https://pac.example.com"),
        ("https://pac.example.com:8443/platform/ws/", None, None, "https://pac.example.com:8443"),
    ],
)
def test_the_base_url_gets_the_default_port_of_its_scheme(host, schema, port, base_url):
    hook = LSFProcessManagerHook("lsf_pm_x")
    hook.use_connection(
        Connection(conn_id="lsf_pm_x", conn_type="lsf_pm", host=host, schema=schema, port=port, login="u", password="p")
    )

    assert hook.client.settings.base_url == base_url


def test_get_hook_and_test_connection(emulator):
    hook = get_hook("lsf_pm_default")

    assert isinstance(hook, LSFProcessManagerHook)
    assert hook.lsf_pm_conn_id == "lsf_pm_default"
    assert hook.test_connection() == (True, "Connected to LSF Process Manager")
    ok, message = lsf_hook(emulator, password="nope").test_connection()
    assert not ok and "the user name or password is not correct" in message


def test_the_connection_form():
    behaviour = LSFProcessManagerHook.get_ui_field_behaviour()

    assert behaviour["relabeling"] == {"host": "Application Center URL", "login": "User name", "password": "Password"}
    assert "timezone" in behaviour["placeholders"]["extra"]


# -- logout: a process done with its token frees it -----------------------------------------------------


def sessions(emulator) -> dict[str, int]:
    result: dict[str, int] = emulator.control("GET", "/_emulator/lsf_pm/sessions")
    return result


def test_close_logs_out_and_the_next_hook_logs_on_again(emulator):
    hook = lsf_hook(emulator)
    hook.get_instance("101")
    assert sessions(emulator) == {"live": 1, "logouts": 0}

    hook.close()

    assert sessions(emulator) == {"live": 0, "logouts": 1}
    assert TOKENS.get(hook._settings.auth.cache_key) is None
    assert lsf_hook(emulator).get_instance("101").state is FlowState.SUCCESS
    assert logons(emulator) == 2


def test_a_hook_never_used_logs_nothing_out(emulator):
    lsf_hook(emulator).close()

    assert sessions(emulator)["logouts"] == 0


def test_the_token_is_logged_out_only_when_its_last_hook_closes(emulator):
    first, second = lsf_hook(emulator), lsf_hook(emulator)
    first.get_instance("101")
    second.get_instance("101")

    first.close()
    assert sessions(emulator) == {"live": 1, "logouts": 0}
    assert second.get_instance("101").state is FlowState.SUCCESS  # its token still works
    second.close()

    assert sessions(emulator) == {"live": 0, "logouts": 1}
    assert logons(emulator) == 1


def test_in_single_session_mode_the_next_task_logs_on_because_the_last_one_logged_out(emulator):
    emulator.control("POST", "/_emulator/lsf_pm/settings", {"single_session": True})
    first = lsf_hook(emulator)
    first.get_instance("101")
    first.close()
    TOKENS.clear()  # the next task is another process: it has no token at hand

    assert lsf_hook(emulator).get_instance("101").state is FlowState.SUCCESS  # no 409


def test_a_logout_that_fails_is_a_warning_not_an_error(emulator, caplog):
    hook = lsf_hook(emulator)
    hook.get_instance("101")
    emulator.inject_fault("500", platform="lsf_pm", path_contains="/logout", count=5)

    hook.close()  # does not raise

    assert "Could not end the LSF Process Manager session" in caplog.text
    assert sessions(emulator)["logouts"] == 0
    token_seen = emulator.stats()  # the warning names no secret
    assert creds.LSF_PASSWORD not in caplog.text and token_seen


def test_aclose_logs_out_on_the_event_loop(emulator):
    async def use_then_close() -> None:
        hook = lsf_hook(emulator)
        try:
            await hook.aget_instance("101")
            await hook.aclose()
        finally:
            await close_shared_session()

    asyncio.run(use_then_close())

    assert sessions(emulator) == {"live": 0, "logouts": 1}


def test_the_triggerer_logs_out_when_the_last_wait_on_the_connection_ends(emulator):
    from airflow_provider_flowinst.triggers.flow_instance import FlowInstanceTrigger

    soon = emulator.create_lsf_pm_instance("jsmith:flow1", running_seconds=2)
    later = emulator.create_lsf_pm_instance("jsmith:flow1", running_seconds=10)
    logouts_seen: list[int] = []

    async def wait(instance_id: str) -> dict[str, Any]:
        trigger = FlowInstanceTrigger(conn_id="lsf_pm_default", instance_id=instance_id, poke_interval=0.1)
        async for event in trigger.run():
            logouts_seen.append(sessions(emulator)["logouts"])
            return dict(event.payload)
        raise AssertionError("no event")

    async def both() -> list[dict[str, Any]]:
        async with asyncio.timeout(30):
            return list(await asyncio.gather(wait(soon), wait(later)))

    events = asyncio.run(both())

    assert [event["status"] for event in events] == ["success", "success"]
    assert logouts_seen == [0, 0]  # neither wait's end freed the token while the other still waited...
    assert sessions(emulator) == {"live": 0, "logouts": 1}  # ...and the last one's did
    assert logons(emulator) == 1


# -- starting a run exactly once ------------------------------------------------------------------------


def runs_of(emulator, flow: str = "jsmith:flow1") -> set[str]:
    listed = emulator.control("GET", "/_emulator/lsf_pm/instances")
    return {instance_id for instance_id, record in listed.items() if f"{record['user']}:{record['name']}" == flow}


@pytest.mark.parametrize("fault", ["act_then_503", "act_then_reset", "act_then_slow"])
@pytest.mark.parametrize("path", ["sync", "async"])
def test_a_submit_carried_out_whose_answer_is_lost_starts_exactly_one_run(emulator, fault, path):
    hook = lsf_hook(emulator, read_timeout=1)
    before = runs_of(emulator)
    emulator.inject_fault(fault, platform="lsf_pm", call_contains="/submit", delay=2)

    if path == "sync":
        instance_id = hook.start_run("jsmith:flow1", {"a": 1})
    else:

        async def start() -> str:
            try:
                return await hook.astart_run("jsmith:flow1", {"a": 1})
            finally:
                await close_shared_session()

        instance_id = asyncio.run(start())

    assert runs_of(emulator) - before == {instance_id}
    assert emulator.stats()["requests"][f"lsf_pm acted, answer spoilt: {fault}"] == 1
    assert emulator.stats()["requests"]["lsf_pm POST /platform/ws/flow/definitions/submit"] == 1


def test_another_process_finds_the_run_of_an_attempt_it_did_not_make(emulator):
    from airflow_provider_flowinst.protocol import StartAttempt

    attempt = StartAttempt.new("jsmith:flow_once", int(time.time() * 1000))
    started = lsf_hook(emulator).start_run("jsmith:flow_once", attempt=attempt)

    assert lsf_hook(emulator).find_started_run(attempt) == started  # a fresh client: by flow and start time


def outcomes_of_concurrent_starts(emulator, starts: int) -> list[str | AmbiguousStart]:
    barrier = threading.Barrier(starts)

    def start() -> str | AmbiguousStart:
        hook = lsf_hook(emulator)
        hook.list_flow_instances(id=101)  # logged on before the race
        barrier.wait()
        try:
            return hook.start_run("jsmith:flow1")
        except AmbiguousStart as exc:
            return exc

    with ThreadPoolExecutor(starts) as pool:
        return list(pool.map(lambda _: start(), range(starts)))


def test_concurrent_starts_never_share_a_run(emulator):
    for _ in range(4):
        before = runs_of(emulator)
        outcomes = outcomes_of_concurrent_starts(emulator, 2)

        made = runs_of(emulator) - before
        claimed = [outcome for outcome in outcomes if isinstance(outcome, str)]
        assert len(made) == 2
        assert len(set(claimed)) == len(claimed) and set(claimed) <= made  # never the same run twice
        for outcome in outcomes:
            if isinstance(outcome, AmbiguousStart):
                assert all(instance_id in str(outcome) for instance_id in made)  # names both runs
                assert "pool" in str(outcome)


def test_concurrent_async_starts_never_share_a_run(emulator):
    async def starts() -> list[Any]:
        hooks = [lsf_hook(emulator) for _ in range(3)]
        try:
            return list(
                await asyncio.gather(*(hook.astart_run("jsmith:flow1") for hook in hooks), return_exceptions=True)
            )
        finally:
            await close_shared_session()

    before = runs_of(emulator)
    outcomes = asyncio.run(starts())

    claimed = [outcome for outcome in outcomes if isinstance(outcome, str)]
    assert all(isinstance(outcome, str | AmbiguousStart) for outcome in outcomes), outcomes
    assert len(set(claimed)) == len(claimed) and set(claimed) <= runs_of(emulator) - before


def test_a_submit_answer_that_names_its_run_settles_concurrent_starts(emulator):
    emulator.control("POST", "/_emulator/lsf_pm/settings", {"submit_names_instance": True})
    before = runs_of(emulator)

    outcomes = outcomes_of_concurrent_starts(emulator, 3)

    assert all(isinstance(outcome, str) for outcome in outcomes)
    assert set(outcomes) == runs_of(emulator) - before and len(set(outcomes)) == 3


# -- batched polling under a page cap -------------------------------------------------------------------


def test_batched_polling_keeps_its_savings_under_a_page_cap(emulator):
    from airflow_provider_flowinst.batching import instance_poller

    ids = emulator.control("POST", "/_emulator/lsf_pm/instances", {"flow": "jsmith:long_flow", "count": 300})[
        "instance_ids"
    ]
    emulator.control("POST", "/_emulator/lsf_pm/settings", {"page_cap": 20})
    running = len(lsf_hook(emulator).list_flow_instances(username="all", state="Running"))
    emulator.control("POST", "/_emulator/reset")

    async def poll_all() -> list[Any]:
        try:
            async with instance_poller("lsf_pm_default") as poller:
                poller.users = len(ids)  # as many waits as ids share this poller
                return list(await asyncio.gather(*(poller.get(instance_id) for instance_id in ids)))
        finally:
            await close_shared_session()

    instances = asyncio.run(poll_all())

    assert [instance.instance_id for instance in instances] == ids
    assert {instance.state for instance in instances} == {FlowState.RUNNING}
    fewest_pages = -(-running // 20) + 1  # the running ones, and one look at the suspended ones
    assert queries(emulator) <= 1.2 * fewest_pages, emulator.stats()["requests"]


@pytest.mark.parametrize("mode", ["poke", "deferrable"])
def test_trigger_flow_operator_logs_out_so_the_next_task_can_log_on_in_single_session_mode(emulator, mode):
    from tests.dags import trigger_dags
    from tests.helpers import run_dag

    emulator.control("POST", "/_emulator/lsf_pm/settings", {"single_session": True})
    dag = getattr(trigger_dags, f"trigger_lsf_pm_{mode}_success")

    first = run_dag(dag)
    assert sessions(emulator)["live"] == 0
    TOKENS.clear()  # the next task is a new process with no token at hand
    second = run_dag(dag)

    assert (first.state, second.state) == ("success", "success")
    assert sessions(emulator)["live"] == 0


def test_a_trigger_that_stops_its_run_on_kill_logs_out_after(emulator):
    from airflow_provider_flowinst.triggers.flow_instance import FlowInstanceTrigger

    instance_id = emulator.create_lsf_pm_instance("jsmith:long_flow")
    trigger = FlowInstanceTrigger(conn_id="lsf_pm_default", instance_id=instance_id, cancel_on_kill=True)

    asyncio.run(trigger.on_kill())

    assert lsf_hook(emulator).get_instance(instance_id).state is FlowState.CANCELLED
    assert sessions(emulator)["logouts"] == 1


# -- a process that never closes its hook still logs out --------------------------------------------------

#: A user's own task code: it reads an instance through a bare hook and never calls close().
TASK_PROCESS = """
import sys
from airflow_provider_flowinst.hooks.lsf import LSFProcessManagerHook

print("state:", LSFProcessManagerHook().get_instance(sys.argv[1]).state.value, flush=True)
if sys.argv[2] == "raise":
    raise RuntimeError("the task's own code fails after the read")
"""


def state_printed(process: subprocess.CompletedProcess[str]) -> str | None:
    """The state the task process printed (Airflow may log to stdout too: 3.1 does while it loads)."""
    return next((line[len("state: ") :] for line in process.stdout.splitlines() if line.startswith("state: ")), None)


def run_task_process(instance_id: str, ending: str) -> subprocess.CompletedProcess[str]:
    """A task process of its own (the emulator's connections come with the environment)."""
    return subprocess.run(
        [sys.executable, "-c", TASK_PROCESS, instance_id, ending],
        capture_output=True,
        text=True,
        timeout=120,
        env=os.environ.copy(),
    )


def test_two_task_processes_in_a_row_with_bare_hooks_both_log_on_where_a_second_logon_is_refused(emulator):
    emulator.control("POST", "/_emulator/lsf_pm/settings", {"single_session": True})

    first = run_task_process("101", "raise")  # ends by an exception
    assert (first.returncode, state_printed(first)) == (1, "success"), first.stderr
    assert "the task's own code fails" in first.stderr
    assert sessions(emulator) == {"live": 0, "logouts": 1}  # it logged out on its way out

    second = run_task_process("101", "return")  # ends normally; without that logout it met a 409
    assert (second.returncode, state_printed(second)) == (0, "success"), second.stderr
    assert sessions(emulator) == {"live": 0, "logouts": 2}
    assert logons(emulator) == 2


def forked(child: Callable[[], None], *, as_airflow_does: bool = True) -> int:
    """Run ``child`` in a forked process that exits as Airflow's forked task and trigger runners do: the
    parent's exit handlers dropped at the fork, those registered after it run, then ``os._exit``. Without
    ``as_airflow_does``, the parent's exit handlers stay and run in the child too (a plain fork)."""
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        code = 1
        try:
            if as_airflow_does:
                atexit._clear()  # type: ignore[attr-defined]
            child()
            code = 0
        finally:
            atexit._run_exitfuncs()
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(status)


@pytest.mark.parametrize("as_airflow_does", [True, False], ids=["airflow fork", "plain fork"])
def test_a_forked_child_uses_its_parents_token_but_never_logs_it_out(emulator, as_airflow_does):
    emulator.control("POST", "/_emulator/lsf_pm/settings", {"single_session": True})
    parent = lsf_hook(emulator)
    parent.get_instance("101")  # the parent holds the live token

    def child() -> None:
        assert TOKENS.users(parent._settings.auth.cache_key) == 0  # the parent's open hook is not the child's
        hook = lsf_hook(emulator)
        hook.get_instance("101")  # with the inherited token: a logon would be refused (409)
        hook.close()  # the last user of it in this process, yet not the process that obtained it

    assert forked(child, as_airflow_does=as_airflow_does) == 0

    assert sessions(emulator) == {"live": 1, "logouts": 0}
    assert parent.get_instance("101").state is FlowState.SUCCESS and logons(emulator) == 1
    parent.close()
    assert sessions(emulator) == {"live": 0, "logouts": 1}


def test_a_forked_child_logs_out_the_token_it_obtained_when_it_exits(emulator):
    emulator.control("POST", "/_emulator/lsf_pm/settings", {"single_session": True})

    assert forked(lambda: print(lsf_hook(emulator).get_instance("101").state)) == 0  # no close()

    assert sessions(emulator) == {"live": 0, "logouts": 1}
    assert lsf_hook(emulator).get_instance("101").state is FlowState.SUCCESS  # no 409 for the next one


def test_a_token_written_with_the_cookie_prefix_works(emulator):
    emulator.control("POST", "/_emulator/lsf_pm/settings", {"token_prefix": True})
    answer = requests.post(
        f"{emulator.url}/platform/ws/logon",
        data=f"<User><name>{creds.LSF_USER}</name><pass>{creds.LSF_PASSWORD}</pass></User>",
        headers={"Content-Type": XML, "Accept": "application/json"},
        timeout=10,
    ).json()
    assert answer["token"].startswith("platform_token=")  # as ws_overview writes it
    doubled = requests.get(
        f"{emulator.url}/platform/ws/flow/instances",
        params={"id": "101"},
        headers={"Cookie": f"platform_token={cookie_value(answer['token'])}"},
        timeout=10,
    )
    assert doubled.status_code == 401  # the emulator reads no cookie with the prefix twice

    hook = lsf_hook(emulator)
    assert hook.get_instance("101").state is FlowState.SUCCESS
    assert logons(emulator) == 2  # the test's own, and the hook's one: its cookie was read at once
    hook.close()
    assert sessions(emulator)["logouts"] == 1


def test_a_killed_sensor_closes_its_hook_so_lsf_logs_out_before_a_sigkill(emulator):
    from airflow_provider_flowinst.sensors.flow_instance import FlowInstanceSensor

    sensor = FlowInstanceSensor(task_id="wait", conn_id="lsf_pm_default", instance_id="101")
    sensor.hook().get_instance("101")  # a poke in progress holds the token

    sensor.on_kill()  # Airflow's SIGTERM handler

    assert sessions(emulator) == {"live": 0, "logouts": 1}


def test_a_killed_status_operator_closes_its_hook(emulator):
    from airflow_provider_flowinst.operators.flow_instance import FlowInstanceStatusOperator

    operator = FlowInstanceStatusOperator(task_id="status", conn_id="lsf_pm_default", instance_id="101")
    operator._hook = get_hook("lsf_pm_default")
    operator._hook.get_instance("101")  # killed while execute reads

    operator.on_kill()

    assert sessions(emulator) == {"live": 0, "logouts": 1}


def test_a_killed_trigger_flow_operator_stops_its_run_then_closes_its_hook(emulator):
    from airflow_provider_flowinst.operators.trigger import TriggerFlowOperator

    operator = TriggerFlowOperator(task_id="start", conn_id="lsf_pm_default", flow="jsmith:long_flow")
    operator._hook = get_hook("lsf_pm_default")
    operator.instance_id = emulator.create_lsf_pm_instance("jsmith:long_flow")  # started, now waited on
    operator._hook.get_instance(operator.instance_id)

    operator.on_kill()

    assert sessions(emulator) == {"live": 0, "logouts": 1}  # one token for both calls, ended once
    assert lsf_hook(emulator).get_instance(operator.instance_id).state is FlowState.CANCELLED
    assert logons(emulator) == 2
