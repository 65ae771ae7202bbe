"""EnOSBPMHook against the emulator: every call, the composed login, token renewal and refused credentials."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import replace
from typing import Any

import pytest
import requests as http_client
from airflow.sdk.log import redact

from airflow_provider_flowinst.errors import FlowInstanceNotFound, FlowPlatformError
from airflow_provider_flowinst.hooks import get_hook
from airflow_provider_flowinst.hooks.enos_bpm import _PORTAL_VERSIONS, EnOSBPMHook
from airflow_provider_flowinst.models import FlowState
from airflow_provider_flowinst.platforms.enos_bpm import PORTAL_LOGIN_PATH, PortalSession, activity_node_id, marker_tag
from airflow_provider_flowinst.protocol import HttpRequest, StartAttempt, Token
from airflow_provider_flowinst.testing.connections import emulator_connection_specs
from airflow_provider_flowinst.testing.emulator import credentials as creds
from airflow_provider_flowinst.transport import TOKENS, close_shared_session
from tests.helpers import emulator_hook, wait_for

PURCHASE = "purchaseApproval:3:5abd9f71-e365-11ea-8a6b-be43f0d99bcd"  # two tasks, 2 s each, completes
LEAVE = "leaveRequest:1:6c0e1a22-e365-11ea-8a6b-be43f0d99bcd"  # one task, 2 s, completes
EXPENSE = "expenseClaim:2:7d1f2b33-e365-11ea-8a6b-be43f0d99bcd"  # rejected (terminated) after 2 s
CONTRACT = "contractReview:1:8e203c44-e365-11ea-8a6b-be43f0d99bcd"  # runs for ten hours
SEED_COMPLETED = "0b7c5e00-e39a-11ea-b667-e2b39eaec001"
SEED_TERMINATED = "0b7c5e00-e39a-11ea-b667-e2b39eaec002"
SEED_RUNNING = "0b7c5e00-e39a-11ea-b667-e2b39eaec003"
BPM_GET = "enos_bpm GET /enos-bpm-service/v2.0/work/process-instances"
BPM_QUERY = "enos_bpm POST /enos-bpm-service/v2.0/work/process-instances/queryList"
LOGIN_BODY = {"account": creds.BPM_ACCOUNT, "password": creds.BPM_PASSWORD}


def _one(request: HttpRequest) -> Any:
    """An operation of one request, for a request built by hand."""
    return (yield request)


def bpm_hook(emulator, **changes: Any) -> EnOSBPMHook:
    """An EnOS BPM hook on the emulator's connection, with changes; retries kept quick."""
    return emulator_hook(EnOSBPMHook, emulator, **changes)


def in_loop(call: Callable[[], Awaitable[Any]]) -> Any:
    """``await call()`` on a new event loop, closing that loop's shared HTTP session after it."""

    async def run() -> Any:
        try:
            return await call()
        finally:
            await close_shared_session()

    return asyncio.run(run())


def portal_logins(emulator) -> int:
    return int(emulator.stats()["token_requests"].get("enos_bpm_portal", 0))


# -- Get Process Instance ---------------------------------------------------------------------------------


def test_get_process_instance_returns_the_platforms_record(emulator):
    record = bpm_hook(emulator).get_process_instance(SEED_COMPLETED)

    assert record["id"] == SEED_COMPLETED
    assert record["processStatus"] == "completed"
    assert record["processDefinitionId"] == PURCHASE
    assert isinstance(record["completedTime"], int) and record["terminatedTime"] is None


def test_an_unknown_instance_is_flow_instance_not_found(emulator):
    with pytest.raises(FlowInstanceNotFound) as error:
        bpm_hook(emulator).get_process_instance("no-such-instance")

    assert error.value.code == "33404"
    assert str(error.value).startswith("EnOS BPM: Get Process Instance failed: The process instance ID does not exist")


def test_get_instance_of_a_running_instance_has_its_current_task_as_the_graph(emulator):
    instance = bpm_hook(emulator).get_instance(SEED_RUNNING)

    assert (instance.state, instance.raw_state) == (FlowState.RUNNING, "inProgress")
    assert instance.flow_id == CONTRACT
    assert instance.started_at is not None and instance.ended_at is None
    assert instance.to_dict()["graph"]["nodes"] == [
        {
            "id": activity_node_id("Legal review"),
            "name": "Legal review",
            "kind": "activity",
            "state": "running",
            "raw_state": "inProgress",
            "instance_id": None,
        }
    ]
    assert instance.details["assignee"]["fullName"] == "lena.legal"


def test_get_instance_of_a_terminated_instance_is_cancelled_without_graph(emulator):
    instance = bpm_hook(emulator).get_instance(SEED_TERMINATED)

    assert (instance.state, instance.raw_state, instance.graph) == (FlowState.CANCELLED, "terminated", None)
    assert instance.ended_at is not None and instance.ended_at > instance.started_at
    assert instance.details["terminateReason"] == "Rejected by the approver"


def test_aget_instance_runs_on_the_event_loop(emulator):
    instance = in_loop(lambda: bpm_hook(emulator).aget_instance(SEED_COMPLETED))

    assert (instance.instance_id, instance.state) == (SEED_COMPLETED, FlowState.SUCCESS)


# -- Start, its progress, Terminate -----------------------------------------------------------------------


def test_a_started_instance_moves_task_by_task_to_completed(emulator):
    hook = bpm_hook(emulator)
    instance_id = hook.start_process_instance(PURCHASE, {"amount": 1200, "item": "laptop"}, name="Laptop for Ann")

    first = hook.get_instance(instance_id)
    assert (first.state, first.name, first.flow_id) == (FlowState.RUNNING, "Laptop for Ann", PURCHASE)
    assert first.graph is not None and first.graph.nodes[0].name == "Manager approval"
    assert first.details["variables"] == [{"name": "amount", "value": 1200}, {"name": "item", "value": "laptop"}]

    second = wait_for(lambda: hook.get_instance(instance_id).graph.nodes[0].name == "Finance review")
    assert second
    done = wait_for(lambda: (i := hook.get_instance(instance_id)).state.is_terminal and i)
    assert (done.state, done.raw_state, done.graph) == (FlowState.SUCCESS, "completed", None)
    assert done.ended_at >= done.started_at


def test_a_rejected_definition_ends_terminated(emulator):
    hook = bpm_hook(emulator)
    instance_id = hook.start_process_instance(EXPENSE, {"amount": 99})

    done = wait_for(lambda: (i := hook.get_instance(instance_id)).state.is_terminal and i)

    assert (done.state, done.raw_state) == (FlowState.CANCELLED, "terminated")
    assert done.details["terminatedBy"]["fullName"] == "jane.manager"


def test_terminate_stops_a_running_instance_with_the_reason(emulator):
    hook = bpm_hook(emulator)
    instance_id = hook.start_process_instance(CONTRACT)

    hook.terminate_process_instance(instance_id, "no longer needed")

    record = hook.get_process_instance(instance_id)
    assert (record["processStatus"], record["terminateReason"]) == ("terminated", "no longer needed")
    assert record["terminatedBy"]["email"] == creds.BPM_ACCOUNT
    with pytest.raises(FlowPlatformError) as error:  # it has ended: no longer terminable
        hook.terminate_process_instance(instance_id, "again")
    assert error.value.code == "33403"
    with pytest.raises(FlowInstanceNotFound):
        hook.terminate_process_instance("no-such-instance", "r")


def test_starting_an_unknown_definition_is_the_platforms_error(emulator):
    with pytest.raises(FlowPlatformError, match=r"Start Process Instance failed: .*process definition does not exist"):
        bpm_hook(emulator).start_process_instance("nope:1:x")


# -- Query ------------------------------------------------------------------------------------------------


def test_query_filters_by_status_and_name_across_pages(emulator):
    hook = bpm_hook(emulator)
    name = f"leave-{uuid.uuid4().hex[:8]}"
    started = {hook.start_process_instance(LEAVE, {"days": n}, name=f"{name}-{n}") for n in range(3)}

    assert {r["id"] for r in hook.query_process_instances("inProgress", processName=name)} == started
    assert hook.query_process_instances("completed", processName=name) == []
    done = wait_for(lambda: len(hook.query_process_instances("completed", processName=name)) == 3)
    assert done

    emulator.control("POST", "/_emulator/reset")
    found = hook.query_process_instances("completed", process_name=name, page_size=2)
    assert {r["id"] for r in found} == started
    assert emulator.stats()["requests"]["enos_bpm POST /enos-bpm-service/v2.0/work/process-instances/queryList"] == 2


def test_query_by_instance_id_and_starter(emulator):
    hook = bpm_hook(emulator)

    running = hook.query_process_instances("inProgress", processInstanceId=SEED_RUNNING, startBy=creds.ENOS_USER_ID)
    assert [r["id"] for r in running] == [SEED_RUNNING]
    assert hook.query_process_instances("inProgress", processInstanceId=SEED_RUNNING, startBy="u-nobody") == []


def test_query_needs_a_known_status(emulator):
    with pytest.raises(FlowPlatformError, match="processStatus must be one of"):
        bpm_hook(emulator).query_process_instances("running")


def test_query_pages_count_from_0_and_a_negative_page_is_refused(emulator):
    hook = bpm_hook(emulator)
    hook.get_process_instance(SEED_COMPLETED)
    token = TOKENS.get(hook._settings.auth.cache_key)

    def query(current: int) -> dict[str, Any]:
        body = {"processStatus": "completed", "pagination": {"current": current, "pageSize": 1}}
        return raw_call(hook, token, "POST", "process-instances/queryList", body=json.dumps(body).encode())

    first = query(0)
    assert first["code"] == 0 and first["data"]["pagination"]["start"] == 0
    assert query(1)["data"]["processInstances"] != first["data"]["processInstances"]
    assert query(-1)["code"] == 33400


def test_query_records_lack_process_status_and_the_listing_takes_it_from_the_filter(emulator):
    hook = bpm_hook(emulator)
    running = hook.query_process_instances("inProgress", processInstanceId=SEED_RUNNING)

    assert [r["id"] for r in running] == [SEED_RUNNING] and "processStatus" not in running[0]

    found = in_loop(lambda: hook.abatch_instances([SEED_RUNNING, SEED_COMPLETED]))
    assert list(found) == [SEED_RUNNING]  # the completed one is not in progress: read on its own later
    assert (found[SEED_RUNNING].state, found[SEED_RUNNING].raw_state) == (FlowState.RUNNING, "inProgress")


@pytest.fixture
def long_runs(emulator) -> Iterator[Callable[[int], tuple[str, set[str]]]]:
    """``long_runs(n)``: n long process instances under one fresh name, with counters reset after; they are
    terminated after the test, so no other test's listing meets them."""
    hook = bpm_hook(emulator)
    started: set[str] = set()

    def start(count: int) -> tuple[str, set[str]]:
        name = f"long-{uuid.uuid4().hex[:8]}"
        started.update(hook.start_process_instance(CONTRACT, name=f"{name}-{n}") for n in range(count))
        emulator.control("POST", "/_emulator/reset")
        return name, set(started)

    yield start
    for instance_id in started:
        hook.terminate_process_instance(instance_id, "test over")


def test_a_page_cap_loses_no_row(emulator, bpm_settings, long_runs):
    name, started = long_runs(7)
    bpm_settings(page_cap=3)
    hook = bpm_hook(emulator)

    found = hook.query_process_instances("inProgress", processName=name)

    assert {r["id"] for r in found} == started
    assert emulator.stats()["requests"][BPM_QUERY] == 3  # 3 + 3 + 1 rows; the total says when it ends
    assert hook.client.page_size == 3  # remembered for this connection


def test_a_refused_page_size_is_retried_smaller_once_per_connection(emulator, bpm_settings, long_runs):
    name, started = long_runs(5)
    bpm_settings(page_size_limit=4)
    hook = bpm_hook(emulator)

    assert {r["id"] for r in hook.query_process_instances("inProgress", processName=name)} == started
    assert emulator.stats()["requests"][BPM_QUERY] == 3  # refused at 100, then 4 + 1 rows
    assert {r["id"] for r in hook.query_process_instances("inProgress", processName=name)} == started
    assert emulator.stats()["requests"][BPM_QUERY] == 5  # no refusal the second time


# -- a start is never repeated blindly --------------------------------------------------------------------

#: What singles out Start Process Instance among BPM calls: the path with nothing after it (the fault
#: middleware matches "<path?query> <x-acs-action>"; Get and Terminate have a query, queryList a longer path).
START_CALL = "/work/process-instances "
FAULTS = ["act_then_503", "act_then_reset", "act_then_slow"]


def instances_named(emulator, tag: str) -> list[str]:
    return [i.instance_id for i in list(emulator.emulator.enos_bpm.instances.values()) if tag in i.name]


@pytest.mark.parametrize("path", ["sync", "async"])
@pytest.mark.parametrize("fault", FAULTS)
def test_a_start_whose_answer_is_lost_makes_exactly_one_run_and_returns_it(emulator, fault, path):
    hook = bpm_hook(emulator, read_timeout=1)
    hook.get_process_instance(SEED_COMPLETED)  # logged in: the fault meets the start itself
    attempt = StartAttempt.new(LEAVE, int(time.time() * 1000))
    before = len(emulator.emulator.enos_bpm.instances)
    emulator.inject_fault(fault, platform="enos_bpm", call_contains=START_CALL, delay=3)

    if path == "sync":
        instance_id = hook.start_run(LEAVE, {"days": 2}, attempt=attempt)
    else:
        instance_id = in_loop(lambda: hook.astart_run(LEAVE, {"days": 2}, attempt=attempt))

    assert emulator.stats()["requests"][f"enos_bpm acted, answer spoilt: {fault}"] == 1
    assert instances_named(emulator, marker_tag(attempt.marker)) == [instance_id]
    assert len(emulator.emulator.enos_bpm.instances) == before + 1  # exactly one run
    assert hook.get_process_instance(instance_id)["variables"] == [{"name": "days", "value": 2}]


def test_a_task_retry_after_a_crash_mid_start_finds_the_run_instead_of_starting_another(emulator):
    hook = bpm_hook(emulator)
    attempt = StartAttempt.new(LEAVE, int(time.time() * 1000))
    started = hook.start_run(LEAVE, None, attempt=attempt)

    assert bpm_hook(emulator).find_started_run(attempt) == started
    assert bpm_hook(emulator).find_started_run(StartAttempt.new(LEAVE, int(time.time() * 1000))) is None
    # Once it has completed it is still found (queryList in progress first, then completed).
    wait_for(lambda: hook.get_instance(started).state.is_terminal)
    assert bpm_hook(emulator).find_started_run(attempt) == started


# -- authentication ---------------------------------------------------------------------------------------


def test_one_login_serves_many_calls(emulator):
    hook = bpm_hook(emulator)
    for _ in range(3):
        hook.get_process_instance(SEED_COMPLETED)
    bpm_hook(emulator).get_process_instance(SEED_COMPLETED)  # another hook, same credentials

    assert portal_logins(emulator) == 1
    assert emulator.stats()["requests"][BPM_GET] == 4


def refreshes(emulator) -> int:
    return int(emulator.stats()["token_requests"].get("enos_bpm_refresh", 0))


@pytest.fixture
def bpm_settings(emulator) -> Iterator[Callable[..., None]]:
    """Change the emulated portal and queryList for one test (``BPMSettings`` fields); defaults after it."""

    def change(**settings: Any) -> None:
        emulator.control("POST", "/_emulator/enos_bpm/settings", settings)

    yield change
    change()


def test_an_expired_token_fault_is_renewed_with_the_refresh_token_not_the_password(emulator):
    hook = bpm_hook(emulator)
    hook.get_process_instance(SEED_COMPLETED)
    emulator.inject_fault("expired_token", platform="enos_bpm")  # gateway token and user sessions gone

    assert hook.get_process_instance(SEED_COMPLETED)["id"] == SEED_COMPLETED
    assert (portal_logins(emulator), refreshes(emulator)) == (1, 1)
    assert emulator.stats()["requests"][BPM_GET] == 3


@pytest.mark.parametrize("path", ["sync", "async"])
def test_an_expired_user_session_answers_31401_and_is_refreshed_without_logging_in_again(emulator, path):
    hook = bpm_hook(emulator)
    hook.get_process_instance(SEED_COMPLETED)
    emulator.control("POST", "/_emulator/enos_bpm/expire_user_tokens")

    if path == "sync":
        state = hook.get_instance(SEED_COMPLETED).state
    else:
        state = in_loop(lambda: hook.aget_instance(SEED_COMPLETED)).state

    assert state is FlowState.SUCCESS
    assert (portal_logins(emulator), refreshes(emulator)) == (1, 1)  # the password was sent once, at first


def test_a_token_that_ran_out_in_the_cache_is_renewed_by_refresh_too(emulator):
    hook = bpm_hook(emulator)
    hook.get_process_instance(SEED_COMPLETED)
    key = hook._settings.auth.cache_key
    TOKENS.put(key, replace(TOKENS.get(key), expires_at=time.time() - 1))  # its lifetime is over

    assert hook.get_process_instance(SEED_COMPLETED)["id"] == SEED_COMPLETED
    assert (portal_logins(emulator), refreshes(emulator)) == (1, 1)


def test_when_the_refresh_token_is_refused_too_the_password_logs_in_again(emulator):
    hook = bpm_hook(emulator)
    hook.get_process_instance(SEED_COMPLETED)
    emulator.control("POST", "/_emulator/enos_bpm/expire_user_tokens", {"refresh_tokens": True})

    assert hook.get_process_instance(SEED_COMPLETED)["id"] == SEED_COMPLETED
    assert (portal_logins(emulator), refreshes(emulator)) == (2, 1)


def test_the_refresh_token_renews_the_user_token(emulator):
    hook = bpm_hook(emulator)
    hook.get_process_instance(SEED_COMPLETED)
    auth = hook._settings.auth
    token = TOKENS.get(auth.cache_key)

    renewed = hook.perform(auth.refresh(token))

    assert (
        renewed.payload.bearer != token.payload.bearer and renewed.payload.refresh_value != token.payload.refresh_value
    )
    TOKENS.put(auth.cache_key, renewed)
    assert hook.get_process_instance(SEED_COMPLETED)["id"] == SEED_COMPLETED
    assert portal_logins(emulator) == 1


def raw_call(hook: EnOSBPMHook, token: Token, method: str, resource: str, **options: Any) -> dict[str, Any]:
    """One BPM request signed with ``token`` as it is, answered as the platform answers it."""
    request = HttpRequest(
        method, f"{hook._settings.auth.gateway.base_url}/enos-bpm-service/v2.0/work/{resource}", call="raw", **options
    )
    signed = replace(hook._settings.auth.sign(request, token, int(time.time() * 1000)), authenticated=False)

    def send() -> Any:
        return (yield signed)

    return hook.perform(send()).json()


def test_the_login_token_alone_is_refused_by_bpm_and_the_chosen_organizations_token_is_taken(emulator):
    hook = bpm_hook(emulator, org_id=None)
    auth = hook._settings.auth
    gateway = hook.perform(auth.gateway.login())
    login = hook.perform(_one(auth._portal_request("POST", PORTAL_LOGIN_PATH, "Log In", gateway, body=LOGIN_BODY)))
    login_token = login.json()["data"]["accessToken"]
    get = {"params": (("processInstanceId", SEED_COMPLETED),)}

    # What main did without org_id: BPM calls with the login's own token. The platform refuses them.
    refused = raw_call(
        hook, Token(gateway.value, gateway.expires_at, PortalSession(login_token)), "GET", "process-instances", **get
    )
    assert (refused["code"], refused["msg"]) == (31401, "Please login first")

    # Now: the only organization listed is chosen, and its token serves.
    assert hook.get_process_instance(SEED_COMPLETED)["id"] == SEED_COMPLETED
    assert TOKENS.get(auth.cache_key).payload.bearer != login_token


def test_several_organizations_without_org_id_fail_naming_them(emulator, bpm_settings):
    bpm_settings(organizations=[[creds.ENOS_ORG_ID, "Emulated Organization"], ["o15000000000009", "Plant B"]])

    with pytest.raises(FlowPlatformError) as error:
        bpm_hook(emulator, org_id=None).get_process_instance(SEED_COMPLETED)
    assert str(error.value) == (
        "EnOS BPM: Choose Organization failed: the account belongs to 2 organizations "
        f"({creds.ENOS_ORG_ID} (Emulated Organization), o15000000000009 (Plant B)): "
        "set the connection's extra 'org_id' to the one to use"
    )
    assert bpm_hook(emulator).get_process_instance(SEED_COMPLETED)["id"] == SEED_COMPLETED  # org_id chooses


def test_an_unknown_org_id_is_the_portals_refusal(emulator):
    with pytest.raises(FlowPlatformError, match=r"Choose Organization failed: Can not find this organization"):
        bpm_hook(emulator, org_id="o-nowhere").get_process_instance(SEED_COMPLETED)


@pytest.mark.parametrize("versions", [["v2.2"], ["v2.1"]], ids=["v2.2 only", "v2.1 only"])
def test_choose_organization_works_on_a_portal_with_either_version(emulator, bpm_settings, versions):
    bpm_settings(session_set_versions=versions, refresh_versions=["v2.0"])
    hook = bpm_hook(emulator)

    assert hook.get_process_instance(SEED_COMPLETED)["id"] == SEED_COMPLETED
    emulator.control("POST", "/_emulator/enos_bpm/expire_user_tokens")
    assert hook.get_process_instance(SEED_COMPLETED)["id"] == SEED_COMPLETED  # refreshed at v2.0
    assert (portal_logins(emulator), refreshes(emulator)) == (1, 1)


@pytest.fixture
def fresh_portal_versions() -> Iterator[None]:
    """The portal versions a connection learnt stay with the process: each test starts and ends without."""
    _PORTAL_VERSIONS.clear()
    yield
    _PORTAL_VERSIONS.clear()


def test_a_portal_that_serves_only_v20_login_is_logged_into_and_remembered(
    emulator, bpm_settings, fresh_portal_versions
):
    bpm_settings(login_versions=["v2.0"])
    v22, v20 = (f"enos_bpm_portal POST /app-portal-service/{version}/login" for version in ("v2.2", "v2.0"))
    assert http_client.post(emulator.url + "/app-portal-service/v2.2/login", json=LOGIN_BODY).status_code == 404

    assert bpm_hook(emulator).get_process_instance(SEED_COMPLETED)["id"] == SEED_COMPLETED
    assert (emulator.stats()["requests"][v22], emulator.stats()["requests"][v20]) == (2, 1)

    # The session and its refresh token dropped: a password login again, on the same connection, at v2.0 at once.
    emulator.control("POST", "/_emulator/enos_bpm/expire_user_tokens", {"refresh_tokens": True})
    TOKENS.clear()
    assert bpm_hook(emulator).get_process_instance(SEED_COMPLETED)["id"] == SEED_COMPLETED
    assert (emulator.stats()["requests"][v22], emulator.stats()["requests"][v20]) == (2, 2)


def test_a_wrong_password_is_the_portals_error_without_the_password(emulator):
    wrong = "wrong-password-" + uuid.uuid4().hex
    with pytest.raises(FlowPlatformError) as error:
        bpm_hook(emulator, password=wrong).get_process_instance(SEED_COMPLETED)

    message = str(error.value)
    assert message == "EnOS BPM: Log In failed: User password is missing or not valid (code 31400, HTTP 200)"
    assert error.value.platform == "enos_bpm" and error.value.code == "31400"
    assert wrong not in message and creds.ENOS_APP_SECRET not in message


def test_a_wrong_app_secret_is_the_gateways_error_without_the_secret(emulator):
    wrong = "wrong-secret-" + uuid.uuid4().hex
    with pytest.raises(FlowPlatformError) as error:
        bpm_hook(emulator, app_secret=wrong).get_process_instance(SEED_COMPLETED)

    message = str(error.value)
    assert message.startswith("EnOS BPM: Get Access Token failed: The encryption is not valid.")
    assert error.value.code == "1003"
    assert wrong not in message and creds.BPM_PASSWORD not in message


def test_the_app_key_is_required(emulator):
    with pytest.raises(FlowPlatformError, match="the connection's extra 'app_key' is required"):
        bpm_hook(emulator, app_key=None)


def test_secrets_and_tokens_are_masked(emulator):
    hook = bpm_hook(emulator)
    hook.get_process_instance(SEED_COMPLETED)
    token = TOKENS.get(hook._settings.auth.cache_key)

    for secret in (
        creds.BPM_PASSWORD,
        creds.ENOS_APP_SECRET,
        token.value,
        token.payload.bearer,
        token.payload.refresh_value,
    ):
        assert secret not in str(redact(f"before {secret} after"))


def test_get_hook_and_test_connection(emulator):
    hook = get_hook("enos_bpm_default")

    assert isinstance(hook, EnOSBPMHook)
    assert hook.test_connection() == (True, "Connected to EnOS BPM")
    ok, message = bpm_hook(emulator, password="nope").test_connection()
    assert not ok and "User password is missing or not valid" in message


def test_the_connection_form():
    behaviour = EnOSBPMHook.get_ui_field_behaviour()
    assert behaviour["relabeling"]["login"] == "Application Portal account"
    assert "app_secret" in behaviour["placeholders"]["extra"]


# -- batched polling under page caps ----------------------------------------------------------------------

WAITS = 1000
ENDED = 10  # waits whose instance has ended: a listing of those in progress cannot show them


async def poll_interval(conn_id: str, pollers: list[Any], ids: list[str]) -> list[Any]:
    """One interval of ``len(ids)`` waits on one connection: each asks the shared poller for its instance."""
    return await asyncio.gather(*(pollers[0].get(instance_id) for instance_id in ids))


@pytest.mark.parametrize(
    ("limits", "page_rows"),
    [({"page_cap": 20}, 20), ({"page_cap": 100}, 100), ({"page_size_limit": 50}, 50)],
    ids=["capped at 20 rows", "capped at 100 rows", "pageSize above 50 refused"],
)
def test_a_thousand_waits_cost_about_the_fewest_pages_per_interval_under_a_cap(monkeypatch, limits, page_rows):
    from contextlib import AsyncExitStack

    from airflow_provider_flowinst.batching import instance_poller
    from airflow_provider_flowinst.testing.emulator import EmulatorServer

    with EmulatorServer(time_scale=0.1) as server:
        server.control("POST", "/_emulator/enos_bpm/settings", limits)
        create = "/_emulator/enos_bpm/instances"
        ended = server.control(
            "POST", create, {"definition_key": "purchaseApproval", "seconds_per_task": 0, "count": ENDED}
        )
        running = server.control("POST", create, {"definition_key": "contractReview", "count": WAITS - ENDED})
        ids = running["instance_ids"] + ended["instance_ids"]
        spec = emulator_connection_specs(server.url)["enos_bpm_default"]
        monkeypatch.setenv("AIRFLOW_CONN_BPM_CAPPED", json.dumps(spec))

        def bpm_requests() -> int:
            return sum(n for key, n in server.stats()["requests"].items() if key.startswith("enos_bpm "))

        async def two_intervals() -> list[tuple[int, list[Any]]]:
            seen = []
            async with AsyncExitStack() as stack:
                # As many users of the connection's poller as waits, as a triggerer with 1,000 triggers has.
                pollers = [await stack.enter_async_context(instance_poller("bpm_capped")) for _ in ids]
                for _ in range(2):
                    before = bpm_requests()
                    instances = await poll_interval("bpm_capped", pollers, ids)
                    seen.append((bpm_requests() - before, instances))
            await close_shared_session()
            return seen

        intervals = asyncio.run(two_intervals())

    fewest_pages = -(-WAITS // page_rows)
    for requests, instances in intervals:
        assert [i.instance_id for i in instances] == ids
        assert {i.state for i in instances[: WAITS - ENDED]} == {FlowState.RUNNING}
        assert {i.state for i in instances[WAITS - ENDED :]} == {FlowState.SUCCESS}
        assert requests <= 1.2 * fewest_pages + ENDED, (requests, fewest_pages)
