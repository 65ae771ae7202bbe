"""No secret ever leaves: the example DAGs run against the emulator, and everything they leave is scanned.

The secrets: every password and secret key in ``testing/emulator/credentials.py`` (and the emulator's STS
pair), every token the emulator handed out (gateway tokens, BPM bearer and refresh tokens, LSF tokens in
both spellings), and every token and signature the emulator received (``apim-signature``, DataWorks'
``Signature=``, the gateway's token ``encryption``). The places: every log record at DEBUG (caplog) and all
printed output (capsys), every XCom value, every trigger's serialised kwargs (as the defer paths build
them, and the example asset watcher's), and the error of every call made with wrong credentials.

The static secrets and the tokens are also registered with Airflow's secret masker (``redact`` hides
them). Signatures are not: each is good for one request and registering every one would grow the masker
without bound (see docs/reliability.md); the scan shows they never reach a log or a message anyway.
"""

from __future__ import annotations

import json
import logging
import secrets
import traceback
from typing import Any

import pytest
from airflow.sdk.log import redact

from airflow_provider_flowinst.errors import FlowPlatformError
from airflow_provider_flowinst.hooks import aget_hook, get_hook
from airflow_provider_flowinst.sensors.flow_instance import FlowInstanceSensor
from airflow_provider_flowinst.testing.connections import emulator_connection_specs
from airflow_provider_flowinst.testing.emulator import credentials
from airflow_provider_flowinst.testing.emulator.dataworks import (
    STS_ACCESS_KEY_ID,
    STS_ACCESS_KEY_SECRET,
    STS_SECURITY_TOKEN,
)
from airflow_provider_flowinst.transport import close_shared_session
from airflow_provider_flowinst.triggers.flow_instance import FlowInstanceEventTrigger, FlowInstanceTrigger
from tests.helpers import run_dag
from tests.test_example_dags import load_example

EXAMPLES = ["example_enos_batch_wait", "example_cross_platform_wait", "example_start_remote_runs"]
#: The secrets the default emulator connections hold (registered with the masker when a hook reads them).
CONNECTION_SECRETS = {
    "EnOS app secret": credentials.ENOS_APP_SECRET,
    "BPM password": credentials.BPM_PASSWORD,
    "LSF password": credentials.LSF_PASSWORD,
    "DataWorks AccessKey secret": credentials.DATAWORKS_ACCESS_KEY_SECRET,
}
STATIC_SECRETS = {
    **CONNECTION_SECRETS,
    "DataWorks STS secret": STS_ACCESS_KEY_SECRET,
    "DataWorks STS token": STS_SECURITY_TOKEN,
}


def tokens_handed_out(server) -> dict[str, str]:
    """Every token the emulator has handed out and still knows, named by kind."""
    emulator = server.emulator
    found: dict[str, str] = {}
    for token in list(emulator.gateway.tokens):
        found[token] = "EnOS gateway token"
    for token in list(emulator.enos_bpm.sessions):
        found[token] = "BPM bearer token"
    for token in list(emulator.enos_bpm.refresh_tokens):
        found[token] = "BPM refresh token"
    for token in list(emulator.lsf.issued):  # logged-out tokens too: the hook logs out when it closes
        found[token] = "LSF token"
        found[token.replace('"', "#quote#")] = "LSF token (cookie form)"
    return found


def credentials_received(server) -> dict[str, str]:
    """Every token and signature callers sent, and the gateway token requests' encryption."""
    state = server.emulator.state
    found = dict.fromkeys(list(state.credentials_seen), "token or signature sent")
    found.update(dict.fromkeys(list(server.emulator.gateway.seen_encryptions), "token request encryption"))
    return found


def connection(base: str, url: str, **changes: Any) -> str:
    """An emulator connection with some fields changed, under its own id."""
    spec = emulator_connection_specs(url)[base]
    extra = {**spec.get("extra", {}), **changes.pop("extra", {})}
    return json.dumps({**spec, **changes, "extra": extra})


def wrong_credential_errors(server, monkeypatch) -> tuple[list[FlowPlatformError], dict[str, str]]:
    """The error of one call per wrong credential, on every platform; and the wrong values used."""
    wrong = {name: f"wrong-{name.replace(' ', '-')}-{secrets.token_hex(8)}" for name in STATIC_SECRETS}
    cases = {
        "bad_enos_secret": connection("enos_batch_default", server.url, password=wrong["EnOS app secret"]),
        "bad_bpm_password": connection("enos_bpm_default", server.url, password=wrong["BPM password"]),
        "bad_bpm_app_secret": connection(
            "enos_bpm_default", server.url, extra={"app_secret": wrong["EnOS app secret"]}
        ),
        "bad_lsf_password": connection("lsf_pm_default", server.url, password=wrong["LSF password"]),
        "bad_dataworks_secret": connection(
            "dataworks_default", server.url, password=wrong["DataWorks AccessKey secret"]
        ),
        "bad_dataworks_sts_token": connection(
            "dataworks_default",
            server.url,
            login=STS_ACCESS_KEY_ID,
            password=STS_ACCESS_KEY_SECRET,
            extra={"security_token": wrong["DataWorks STS token"]},
        ),
    }
    instance_ids = {"enos": "2809-20370101000000", "bpm": "0b7c5e00", "lsf": "101", "dataworks": "700001"}
    errors = []
    for conn_id, spec in cases.items():
        monkeypatch.setenv(f"AIRFLOW_CONN_{conn_id.upper()}", spec)
        instance_id = next(value for key, value in instance_ids.items() if key in conn_id)
        with pytest.raises(FlowPlatformError) as error:
            get_hook(conn_id).get_instance(instance_id)
        errors.append(error.value)
    return errors, wrong


def test_no_secret_reaches_logs_xcom_trigger_kwargs_or_error_messages(emulator, monkeypatch, caplog, capsys):
    caplog.set_level(logging.DEBUG)
    serialised: list[tuple[str, dict[str, Any]]] = []
    original_serialize = FlowInstanceTrigger.serialize

    def recording_serialize(self: FlowInstanceTrigger) -> tuple[str, dict[str, Any]]:
        """The real serialize(); every result is kept (the defer paths call it to store the trigger)."""
        result = original_serialize(self)
        serialised.append(result)
        return result

    monkeypatch.setattr(FlowInstanceTrigger, "serialize", recording_serialize)
    tokens_before = tokens_handed_out(emulator)

    dags = {name: load_example(name) for name in EXAMPLES}
    results = {name: run_dag(dag) for name, dag in dags.items()}
    errors, wrong = wrong_credential_errors(emulator, monkeypatch)
    assert {name: result.state for name, result in results.items()} == dict.fromkeys(EXAMPLES, "success")
    assert serialised  # some waits deferred (those that had not ended at their first look)
    # Every wait's trigger, built as the sensors' defer path builds it, and the example asset watcher's.
    for dag in dags.values():
        for sensor in dag.tasks:
            if isinstance(sensor, FlowInstanceSensor):
                FlowInstanceTrigger(
                    conn_id=sensor.conn_id,
                    instance_id=sensor.instance_id,
                    success_states=[state.value for state in sensor.success_states],
                    failure_states=[state.value for state in sensor.failure_states],
                    include_graph=sensor.include_graph,
                    fail_if_missing=sensor.fail_if_missing,
                    poke_interval=sensor.poke_interval,
                    end_time=1e10,
                ).serialize()
    watcher = FlowInstanceEventTrigger(conn_id="enos_batch_default", flow="5108", poke_interval=2)
    assert len({kwargs["conn_id"] for _, kwargs in serialised}) == 4
    output = capsys.readouterr()
    places = {
        "logs": caplog.text + "\n".join(repr(record.__dict__) for record in caplog.records),
        "printed output": output.out + output.err,
        "XCom": json.dumps([list(result.xcoms.items()) for result in results.values()], default=str),
        "trigger kwargs": json.dumps([*serialised, watcher.serialize()]),
        "error messages": "\n".join(f"{error} | {error.platform_message} | {error.code}" for error in errors),
    }
    tokens_after = tokens_handed_out(emulator)
    received = credentials_received(emulator)
    assert {kind for kind in tokens_after.values()} >= {
        "EnOS gateway token",
        "BPM bearer token",
        "BPM refresh token",
        "LSF token",
    }
    assert sum(kind == "token or signature sent" for kind in received.values()) > 20
    looked_for = {
        **{value: name for name, value in STATIC_SECRETS.items()},
        **{value: f"wrong {name}" for name, value in wrong.items()},
        **tokens_after,
        **received,
    }
    leaks = [
        f"{what} in {place}" for value, what in looked_for.items() for place, text in places.items() if value in text
    ]
    assert leaks == []
    # The scan read real material: logs at DEBUG, instance dicts, and the platforms' own refusals.
    assert "DEBUG" in caplog.text
    assert "The encryption is not valid." in places["error messages"]
    assert "the user name or password is not correct" in places["error messages"]
    assert "SignatureDoesNotMatch" in places["error messages"]

    # Registered with Airflow's secret masker: the connections' secrets and every token obtained here.
    new_tokens = {token: kind for token, kind in tokens_after.items() if token not in tokens_before}
    assert new_tokens
    unmasked = [
        what
        for value, what in {**{v: k for k, v in CONNECTION_SECRETS.items()}, **new_tokens}.items()
        if value in redact(f"before {value} after")
    ]
    assert unmasked == []


# -- error answers that echo the request: the platform's own text is redacted where the error is built -------

#: platform -> (the call the echo answers, connection changes, the secrets the request carried).
ECHOES = {
    "lsf_pm": ("/logon", {}, {"LSF password": credentials.LSF_PASSWORD}),
    "enos_bpm": (
        "/login",
        {},
        {"BPM password": credentials.BPM_PASSWORD, "EnOS app secret": credentials.ENOS_APP_SECRET},
    ),
    "dataworks": (
        "GetWorkflowInstance",
        {
            "login": STS_ACCESS_KEY_ID,
            "password": STS_ACCESS_KEY_SECRET,
            "extra": {"security_token": STS_SECURITY_TOKEN},
        },
        {"DataWorks STS token": STS_SECURITY_TOKEN, "DataWorks STS secret": STS_ACCESS_KEY_SECRET},
    ),
}
ECHO_INSTANCES = {"lsf_pm": "101", "enos_bpm": "0b7c5e00-e39a-11ea-b667-e2b39eaec001", "dataworks": "700001"}


def echo_connection(server, monkeypatch, platform: str) -> str:
    _, changes, _ = ECHOES[platform]
    extra = {"max_retries": 1, "retry_max_wait": 0.05, **changes.get("extra", {})}
    conn_id = f"{platform}_echo"
    spec = connection(f"{platform}_default", server.url, **{**changes, "extra": extra})
    monkeypatch.setenv(f"AIRFLOW_CONN_{conn_id.upper()}", spec)
    return conn_id


def leaks_in(text: str, server, platform: str) -> list[str]:
    looked_for = {**{value: name for name, value in ECHOES[platform][2].items()}, **credentials_received(server)}
    looked_for.update(tokens_handed_out(server))
    return sorted({what for value, what in looked_for.items() if value in text})


@pytest.mark.parametrize("path", ["sync", "async"])
@pytest.mark.parametrize("platform", sorted(ECHOES))
async def test_an_error_answer_that_echoes_the_request_shows_no_secret(emulator, monkeypatch, caplog, platform, path):
    caplog.set_level(logging.DEBUG)
    conn_id = echo_connection(emulator, monkeypatch, platform)
    emulator.inject_fault("echo", platform=platform, call_contains=ECHOES[platform][0], count=10)

    with pytest.raises(FlowPlatformError) as error:
        if path == "sync":
            get_hook(conn_id).get_instance(ECHO_INSTANCES[platform])
        else:
            try:
                await (await aget_hook(conn_id)).aget_instance(ECHO_INSTANCES[platform])
            finally:
                await close_shared_session()

    text = f"{error.value} | {error.value.platform_message} | {error.value.code}"
    assert "Cannot process POST" in text or "Cannot process GET" in text  # the echo reached the message
    assert "***" in text
    assert leaks_in(text, emulator, platform) == []
    assert leaks_in(caplog.text, emulator, platform) == []
    assert leaks_in("".join(traceback.format_exception(error.value)), emulator, platform) == []


async def test_a_trigger_event_carries_no_secret_from_an_echoing_answer(emulator, monkeypatch, caplog):
    # The triggerer never registered these secrets with Airflow's masker: only redaction at the source helps.
    caplog.set_level(logging.DEBUG)
    conn_id = echo_connection(emulator, monkeypatch, "dataworks")
    emulator.inject_fault("echo", platform="dataworks", call_contains="GetWorkflowInstance", count=10)
    trigger = FlowInstanceTrigger(conn_id=conn_id, instance_id="700001", poke_interval=0.1, max_consecutive_failures=1)

    events = []
    async for event in trigger.run():
        events.append(event.payload)
        break

    assert [event["status"] for event in events] == ["error"]
    assert "InvalidParameter" in events[0]["message"] and "***" in events[0]["message"]
    assert leaks_in(json.dumps(events), emulator, "dataworks") == []
    assert leaks_in(caplog.text, emulator, "dataworks") == []
