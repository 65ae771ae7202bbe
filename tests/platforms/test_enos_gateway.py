"""The EnOS gateway's token and per-call signature, against the worked sample in EnOS's public docs."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from airflow_provider_flowinst.errors import FlowPlatformError
from airflow_provider_flowinst.platforms.enos_gateway import (
    EnOSGatewayAuth,
    params_data,
    parse_token_response,
    request_signature,
    token_encryption,
)
from airflow_provider_flowinst.protocol import HttpRequest, HttpResponse, Sleep, Token
from airflow_provider_flowinst.testing.emulator import enos_gateway as emulated_gateway
from tests.helpers import drive

# The worked sample of EnvisionDoc/api_en, token/invoke_api_with_access_token.md.
DOC_TOKEN = "xxxxaaaxxxx"
DOC_SECRET = "xxxappSecretxxx"
DOC_TIMESTAMP = 1572574909697
DOC_PARAMS = [("k3", "v3"), ("k1", "v1"), ("k2", "v2")]
# The body as the doc's own Java sample sends it.
DOC_BODY = b'{\n  "count": 20,\n  "page": 1,\n  "desc": "description"\n}'
# The page prints 59828328..., which no reading of its own inputs reproduces (its body lost its
# indentation in rendering); this is what its algorithm gives for the body its Java sample sends.
DOC_BODY_SIGNATURE = "ad6dc6fc97f4290f3724e94eab38168d8613c41c3a4569b4b8b0efbce96a816c"


def test_params_data_sorts_keys_and_appends_the_raw_body():
    assert params_data(DOC_PARAMS, None) == "k1v1k2v2k3v3"
    assert params_data(DOC_PARAMS, b'{"a":1}') == 'k1v1k2v2k3v3{"a":1}'


def test_signature_of_the_docs_worked_sample():
    assert request_signature(DOC_TOKEN, DOC_PARAMS, DOC_BODY, DOC_TIMESTAMP, DOC_SECRET) == DOC_BODY_SIGNATURE


def test_the_emulators_own_check_agrees_with_the_docs_sample_and_refuses_another_order():
    """The emulator's gateway signs from the doc with code of its own: a client mistake is not copied there."""
    stamp = str(DOC_TIMESTAMP)
    assert emulated_gateway.expected_signature(DOC_TOKEN, DOC_PARAMS, DOC_BODY, stamp, DOC_SECRET) == DOC_BODY_SIGNATURE
    unsorted = hashlib.sha256(f"{DOC_TOKEN}k3v3k1v1k2v2{stamp}{DOC_SECRET}".encode()).hexdigest()
    assert emulated_gateway.expected_signature(DOC_TOKEN, DOC_PARAMS, b"", stamp, DOC_SECRET) != unsorted
    assert emulated_gateway.expected_encryption("k", DOC_TIMESTAMP, "s") == token_encryption("k", DOC_TIMESTAMP, "s")
    assert "airflow_provider_flowinst.platforms" not in Path(emulated_gateway.__file__).read_text()


def test_signature_is_sha256_of_token_params_timestamp_secret():
    expected = hashlib.sha256(f"{DOC_TOKEN}k1v1k2v2k3v3{DOC_TIMESTAMP}{DOC_SECRET}".encode()).hexdigest()
    assert request_signature(DOC_TOKEN, DOC_PARAMS, None, DOC_TIMESTAMP, DOC_SECRET) == expected


def test_token_encryption_is_sha256_of_key_timestamp_secret_in_lowercase_hex():
    value = token_encryption("5acb82e7-a11e-4300-9164-c8b20b638e8b", DOC_TIMESTAMP, DOC_SECRET)
    assert (
        value == hashlib.sha256(f"5acb82e7-a11e-4300-9164-c8b20b638e8b{DOC_TIMESTAMP}{DOC_SECRET}".encode()).hexdigest()
    )
    assert value == value.lower()


def test_sign_adds_the_three_gateway_headers_and_signs_the_exact_body():
    auth = EnOSGatewayAuth("enos_batch", "https://gw", "key", "secret")
    request = HttpRequest("POST", "https://gw/x", call="X", params=(("b", "2"), ("a", "1")), body=b'{"q":1}')
    signed = auth.sign(request, Token("tok", 0), 1700000000000)

    assert signed.headers["apim-accesstoken"] == "tok"
    assert signed.headers["apim-timestamp"] == "1700000000000"
    assert signed.headers["apim-signature"] == request_signature(
        "tok", [("a", "1"), ("b", "2")], b'{"q":1}', 1700000000000, "secret"
    )


def test_values_with_reserved_characters_are_signed_raw_and_sent_encoded():
    request = HttpRequest("GET", "https://gw/x", call="X", params=(("expression", "a&b=c/d?e#f g 流"),))
    assert request.query_string == "expression=a%26b%3Dc%2Fd%3Fe%23f%20g%20%E6%B5%81"
    assert params_data(request.params, None) == "expressiona&b=c/d?e#f g 流"


def test_the_login_operation_posts_key_timestamp_and_encryption():
    auth = EnOSGatewayAuth("enos_batch", "https://gw", "key", "secret")
    login = auth.login()
    request = next(login)
    body = json.loads(request.body)

    assert request.url == "https://gw/apim-token-service/v2.0/token/get"
    assert not request.authenticated
    assert body["appKey"] == "key"
    assert body["encryption"] == token_encryption("key", body["timestamp"], "secret")
    with pytest.raises(StopIteration) as done:
        login.send(HttpResponse(200, {}, b'{"status":0,"msg":"SUCCESS","data":{"accessToken":"T","expire":7200}}'))
    assert done.value.value.value == "T"


def test_the_login_stamps_and_dates_its_token_by_the_auths_clock():
    auth = EnOSGatewayAuth("enos_batch", "https://gw", "key", "secret", clock=lambda: 1_700_000_000.5)
    login = auth.login()
    assert json.loads(next(login).body)["timestamp"] == 1_700_000_000_500
    with pytest.raises(StopIteration) as done:
        login.send(HttpResponse(200, {}, b'{"status":0,"data":{"accessToken":"T","expire":100}}'))
    assert done.value.value.expires_at == 1_700_000_100.5


DUPLICATED = HttpResponse(200, {}, b'{"status":1001,"msg":"Repeated requests with duplicated encryption."}')
TOKEN = HttpResponse(200, {}, b'{"status":0,"msg":"SUCCESS","data":{"accessToken":"T","expire":7200}}')


def test_a_token_request_that_met_another_workers_millisecond_asks_again_later():
    # Workers of one app asking in the same millisecond send the same encryption; the gateway refuses all but
    # the first (1001) and has issued them nothing, so the login pauses and asks at a later millisecond.
    now = iter([1_700_000_000.000, 1_700_000_000.020, 1_700_000_000.021])
    drawn: list[tuple[float, float]] = []

    def uniform(low: float, high: float) -> float:  # the caller's randomness, here a recording one
        drawn.append((low, high))
        return 0.017

    auth = EnOSGatewayAuth("enos_batch", "https://gw", "key", "secret", clock=lambda: next(now), uniform=uniform)

    steps, token = drive(auth.login(), DUPLICATED, None, TOKEN)

    first, pause, second = steps
    assert drawn == [(0.005, 0.05)]
    assert pause == Sleep(0.017)
    assert json.loads(first.body)["timestamp"] == 1_700_000_000_000
    assert json.loads(second.body)["timestamp"] == 1_700_000_000_020
    assert json.loads(second.body)["encryption"] == token_encryption("key", 1_700_000_000_020, "secret")
    assert token.value == "T"


def test_a_duplicated_encryption_that_persists_is_reported_after_three_more_requests():
    auth = EnOSGatewayAuth("enos_batch", "https://gw", "key", "secret")

    login = auth.login()
    requests = [next(login)]
    with pytest.raises(FlowPlatformError, match=r"duplicated encryption\. \(code 1001"):
        while True:
            step = login.send(DUPLICATED if isinstance(requests[-1], HttpRequest) else None)
            requests.append(step)

    assert sum(isinstance(step, HttpRequest) for step in requests) == 4


def test_token_lifetime_comes_from_expire():
    token = parse_token_response(
        HttpResponse(200, {}, b'{"status":0,"data":{"accessToken":"tok-secret-value","expire":100}}'),
        platform="enos_batch",
        now=1000,
    )
    assert token.expires_at == 1100
    assert "tok-secret-value" not in repr(token)


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b'{"status":1002,"msg":"The appKey does not exist."}', "The appKey does not exist. (code 1002"),
        (b'{"status":1003,"msg":"The encryption is not valid."}', "The encryption is not valid. (code 1003"),
        (b"<html>gateway down</html>", "the answer is not JSON"),
        (b'{"status":0,"data":{}}', "no accessToken"),
    ],
)
def test_token_refusals_name_the_platform_the_call_and_the_message(body, message):
    with pytest.raises(FlowPlatformError) as error:
        parse_token_response(HttpResponse(200, {}, body), platform="enos_batch", now=0.0)
    assert str(error.value).startswith("EnOS Batch Processing: Get Access Token failed:")
    assert message in str(error.value)


@pytest.mark.parametrize(
    ("status", "body", "expired"),
    [
        (401, b'{"code":"1203","msg":"The access token has expired."}', True),
        (200, b'{"code":1203,"msg":"The access token has expired."}', True),
        (200, b'{"code":0,"data":{}}', False),
        (403, b'{"code":62103,"msg":"no privilege"}', False),
        (502, b"<html>", False),
    ],
)
def test_an_expired_token_is_recognised(status, body, expired):
    auth = EnOSGatewayAuth("enos_batch", "https://gw", "key", "secret")
    assert auth.is_token_expired(HttpResponse(status, {}, body)) is expired


def test_the_secret_is_not_in_the_repr_and_is_reported_for_masking():
    auth = EnOSGatewayAuth("enos_batch", "https://gw", "key", "top-secret")
    assert "top-secret" not in repr(auth)
    assert auth.secrets() == ("top-secret",)
