"""EnOSBPMHook against the emulator: every call, the composed login, token renewal and refused credentials."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import Callable
from typing import Any

import pytest
from airflow.sdk import Connection
from airflow.sdk.log import redact

from airflow_provider_flowinst.errors import FlowInstanceNotFound, FlowPlatformError
from airflow_provider_flowinst.hooks import get_hook
from airflow_provider_flowinst.hooks.enos_bpm import EnOSBPMHook
from airflow_provider_flowinst.models import FlowState
from airflow_provider_flowinst.platforms.enos_bpm import activity_node_id
from airflow_provider_flowinst.testing.connections import emulator_connection_specs
from airflow_provider_flowinst.testing.emulator import credentials as creds
from airflow_provider_flowinst.transport import TOKENS, close_shared_session

PURCHASE = "purchaseApproval:3:5abd9f71-e365-11ea-8a6b-be43f0d99bcd"  # two tasks, 2 s each, completes
LEAVE = "leaveRequest:1:6c0e1a22-e365-11ea-8a6b-be43f0d99bcd"  # one task, 2 s, completes
EXPENSE = "expenseClaim:2:7d1f2b33-e365-11ea-8a6b-be43f0d99bcd"  # rejected (terminated) after 2 s
CONTRACT = "contractReview:1:8e203c44-e365-11ea-8a6b-be43f0d99bcd"  # runs for ten hours
SEED_COMPLETED = "0b7c5e00-e39a-11ea-b667-e2b39eaec001"
SEED_TERMINATED = "0b7c5e00-e39a-11ea-b667-e2b39eaec002"
SEED_RUNNING = "0b7c5e00-e39a-11ea-b667-e2b39eaec003"
BPM_GET = "enos_bpm GET /enos-bpm-service/v2.0/work/process-instances"


def bpm_hook(emulator, *, login: str | None = None, password: str | None = None, **extra: Any) -> EnOSBPMHook:
    """An EnOS BPM hook on the emulator's connection, with changes; retries kept quick."""
    spec = emulator_connection_specs(emulator.url)["enos_bpm_default"]
    extras = {**spec["extra"], "retry_max_wait": 0.2, "max_retries": 2, **extra}
    hook = EnOSBPMHook("enos_bpm_default")
    hook.use_connection(
        Connection(
            conn_id="enos_bpm_default",
            conn_type="enos_bpm",
            host=spec["host"],
            login=spec["login"] if login is None else login,
            password=spec["password"] if password is None else password,
            extra=json.dumps({key: value for key, value in extras.items() if value is not None}),
        )
    )
    return hook


def wait_for(check: Callable[[], Any], timeout: float = 10.0) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(0.05)


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
    async def look() -> Any:
        try:
            return await bpm_hook(emulator).aget_instance(SEED_COMPLETED)
        finally:
            await close_shared_session()

    instance = asyncio.run(look())

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


# -- authentication ---------------------------------------------------------------------------------------


def test_one_login_serves_many_calls(emulator):
    hook = bpm_hook(emulator)
    for _ in range(3):
        hook.get_process_instance(SEED_COMPLETED)
    bpm_hook(emulator).get_process_instance(SEED_COMPLETED)  # another hook, same credentials

    assert portal_logins(emulator) == 1
    assert emulator.stats()["requests"][BPM_GET] == 4


def test_an_expired_token_fault_logs_in_again_and_the_call_succeeds(emulator):
    hook = bpm_hook(emulator)
    hook.get_process_instance(SEED_COMPLETED)
    emulator.inject_fault("expired_token", platform="enos_bpm")

    assert hook.get_process_instance(SEED_COMPLETED)["id"] == SEED_COMPLETED
    assert portal_logins(emulator) == 2
    assert emulator.stats()["requests"][BPM_GET] == 3


def test_an_expired_user_token_alone_is_renewed_too(emulator):
    hook = bpm_hook(emulator)
    hook.get_process_instance(SEED_COMPLETED)
    emulator.control("POST", "/_emulator/enos_bpm/expire_user_tokens")

    assert hook.get_instance(SEED_COMPLETED).state is FlowState.SUCCESS
    assert portal_logins(emulator) == 2


def test_without_org_id_the_login_alone_is_enough(emulator):
    assert bpm_hook(emulator, org_id=None).get_process_instance(SEED_COMPLETED)["id"] == SEED_COMPLETED


def test_the_refresh_token_renews_the_user_token(emulator):
    hook = bpm_hook(emulator)
    hook.get_process_instance(SEED_COMPLETED)
    auth = hook._settings.auth
    token = TOKENS.get(auth.cache_key)

    renewed = hook.run(auth.refresh(token))

    assert renewed.bearer != token.bearer and renewed.refresh_value != token.refresh_value
    TOKENS.put(auth.cache_key, renewed)
    assert hook.get_process_instance(SEED_COMPLETED)["id"] == SEED_COMPLETED
    assert portal_logins(emulator) == 1


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

    for secret in (creds.BPM_PASSWORD, creds.ENOS_APP_SECRET, token.value, token.bearer, token.refresh_value):
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
