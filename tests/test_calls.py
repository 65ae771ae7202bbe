"""The call logic both transports share (``transport._Calls``), driven by hand with a fake clock: no socket,
no sleep. Each test reads as one rule: when a call is sent again, after how long, and when it never is."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pytest

from airflow_provider_flowinst.clock import Clock
from airflow_provider_flowinst.errors import FlowPlatformError, RunOutcomeUnknown
from airflow_provider_flowinst.protocol import (
    AuthenticatorDefaults,
    HttpRequest,
    HttpResponse,
    Operation,
    Sleep,
    Token,
)
from airflow_provider_flowinst.transport import (
    BACKOFF_FIRST,
    TOKEN_RENEWAL_MARGIN_SECONDS,
    SecretsSeen,
    TransientFault,
    TransportSettings,
    _Calls,
    _Exchange,
    _Exclusive,
)

OK = HttpResponse(200, {"content-type": "application/json"}, b'{"ok":true}')
LOGIN_URL = "https://platform.test/login"


class FakeClock:
    """A clock a test moves by hand; its jitter is always a quarter of what it may be."""

    def __init__(self, now: float = 1_700_000_000.0) -> None:
        self.now = now

    def clock(self) -> Clock:
        return Clock(now=lambda: self.now, monotonic=lambda: self.now, uniform=lambda low, high: low + (high - low) / 4)


@dataclass
class TokenAuth(AuthenticatorDefaults):
    """A platform that logs in for an hour-long token and refuses an expired one with 401."""

    platform: str = "toy"
    cache_key: str = field(default_factory=lambda: uuid.uuid4().hex)  # TOKENS is process-wide: a key per test
    clock: FakeClock = field(default_factory=FakeClock)
    logins: int = 0

    def login(self) -> Operation[Token]:
        self.logins += 1
        response = yield HttpRequest("POST", LOGIN_URL, call="Log In", authenticated=False, idempotent=True)
        return Token(value=response.json()["token"], expires_at=self.clock.now + 3600)

    def renew(self, token: Token) -> None:
        return None

    def sign(self, request: HttpRequest, token: Token | None, now_ms: int) -> HttpRequest:
        assert token is not None
        return request.with_headers({"Authorization": f"Bearer {token.value}", "X-Time": str(now_ms)})

    def is_token_expired(self, response: HttpResponse) -> bool:
        return response.status == 401

    def secrets(self) -> tuple[str, ...]:
        return ()


def calls(auth: TokenAuth, **settings: Any) -> _Calls:
    options = {"max_retries": 3, "retry_max_wait": 10.0, **settings}
    transport_settings = TransportSettings(platform="toy", auth=auth, **options)
    return _Calls(transport_settings, SecretsSeen(auth), auth.clock.clock())


def one_call(request: HttpRequest) -> Operation[HttpResponse]:
    response = yield request
    return response


Answer = Callable[[_Exchange], HttpResponse]


@dataclass
class Drive:
    """What an executor saw while carrying out the effects: each request as sent, and each pause."""

    sent: list[HttpRequest] = field(default_factory=list)
    sleeps: list[float] = field(default_factory=list)


def drive(steps: Any, answers: list[HttpResponse | TransientFault], clock: FakeClock, seen: Drive) -> Any:
    """Carry the effects out as an executor does, answering exchanges from ``answers`` in turn (a login's
    exchange gets a token); a pause moves the fake clock instead of sleeping."""
    reply: Any = None
    error: Exception | None = None
    while True:
        try:
            effect = steps.send(reply) if error is None else steps.throw(error)
        except StopIteration as done:
            return done.value
        reply, error = None, None
        if isinstance(effect, Sleep):
            seen.sleeps.append(effect.seconds)
            clock.now += effect.seconds
        elif isinstance(effect, _Exclusive):
            reply = drive(effect.steps, answers, clock, seen)
        else:
            assert isinstance(effect, _Exchange)
            seen.sent.append(effect.wire)
            if effect.wire.url == LOGIN_URL:
                reply = HttpResponse(200, {}, f'{{"token": "t{len(seen.sent)}"}}'.encode())
                continue
            answer = answers.pop(0)
            if isinstance(answer, TransientFault):
                error = answer
            else:
                reply = answer


def get(url: str = "https://platform.test/instances/1") -> HttpRequest:
    return HttpRequest("GET", url, call="Get Instance")


def start() -> HttpRequest:
    return HttpRequest("POST", "https://platform.test/flows/9/start", call="Start Flow", body=b"{}")


def reads(seen: Drive) -> list[HttpRequest]:
    return [request for request in seen.sent if request.url != LOGIN_URL]


def test_a_5xx_is_sent_again_after_an_exponential_backoff_and_each_attempt_is_signed_at_its_own_time():
    auth = TokenAuth()
    seen = Drive()

    answer = drive(calls(auth).run(one_call(get())), [HttpResponse(503, {}, b""), OK], auth.clock, seen)

    assert answer is OK
    assert seen.sleeps == [BACKOFF_FIRST + 0.5 / 4]  # the first backoff and a quarter of the jitter
    first, second = reads(seen)
    assert int(second.headers["X-Time"]) - int(first.headers["X-Time"]) == 625


def test_the_platforms_retry_after_is_honoured_and_capped_by_retry_max_wait():
    auth = TokenAuth()
    seen = Drive()
    slow_down = HttpResponse(429, {"retry-after": "7"}, b"")
    too_slow = HttpResponse(429, {"retry-after": "3600"}, b"")

    drive(calls(auth).run(one_call(get())), [slow_down, too_slow, OK], auth.clock, seen)

    assert seen.sleeps == [7.0, 10.0]


def test_after_max_retries_the_call_fails_naming_the_platform_and_the_call():
    auth = TokenAuth()
    seen = Drive()

    with pytest.raises(FlowPlatformError, match=r"Get Instance.*still failing after 3 attempts") as caught:
        drive(calls(auth, max_retries=2).run(one_call(get())), [HttpResponse(502, {}, b"")] * 3, auth.clock, seen)

    assert len(reads(seen)) == 3
    assert caught.value.retryable


def test_a_start_whose_answer_was_a_5xx_is_never_sent_again():
    auth = TokenAuth()
    seen = Drive()

    with pytest.raises(RunOutcomeUnknown, match="not sent again"):
        drive(calls(auth).run(one_call(start())), [HttpResponse(502, {}, b""), OK], auth.clock, seen)

    assert len(reads(seen)) == 1 and seen.sleeps == []


def test_a_start_the_platform_refused_for_its_rate_or_never_received_is_sent_again():
    auth = TokenAuth()
    seen = Drive()
    refused = TransientFault("connection refused", may_have_acted=False)

    answer = drive(calls(auth).run(one_call(start())), [HttpResponse(429, {}, b""), refused, OK], auth.clock, seen)

    assert answer is OK
    assert len(reads(seen)) == 3


def test_a_lost_answer_to_a_start_is_never_sent_again():
    auth = TokenAuth()
    seen = Drive()
    lost = TransientFault("connection reset", may_have_acted=True)

    with pytest.raises(RunOutcomeUnknown):
        drive(calls(auth).run(one_call(start())), [lost, OK], auth.clock, seen)

    assert len(reads(seen)) == 1


def test_one_login_serves_every_call_until_the_token_nears_its_end():
    auth = TokenAuth()
    seen = Drive()
    logic = calls(auth)

    drive(logic.run(one_call(get())), [OK], auth.clock, seen)
    auth.clock.now += 3600 - TOKEN_RENEWAL_MARGIN_SECONDS - 1
    drive(logic.run(one_call(get())), [OK], auth.clock, seen)
    assert auth.logins == 1
    auth.clock.now += 1  # now within the renewal margin: a new login before the call
    drive(logic.run(one_call(get())), [OK], auth.clock, seen)

    assert auth.logins == 2
    assert [request.url for request in seen.sent].count(LOGIN_URL) == 2


def test_a_call_refused_for_an_expired_token_logs_in_again_and_is_sent_once_more():
    auth = TokenAuth()
    seen = Drive()

    answer = drive(calls(auth).run(one_call(get())), [HttpResponse(401, {}, b""), OK], auth.clock, seen)

    assert answer is OK
    assert auth.logins == 2
    first, second = reads(seen)
    assert first.headers["Authorization"] != second.headers["Authorization"]
    assert seen.sleeps == []  # a renewal is not a retry: no backoff


@dataclass
class CountingAuth(TokenAuth):
    """TokenAuth that counts the answers it judged for an expired token."""

    judged: int = 0

    def is_token_expired(self, response: HttpResponse) -> bool:
        self.judged += 1
        return super().is_token_expired(response)


def test_an_answer_like_the_last_ordinary_one_is_not_judged_again_but_any_other_is():
    auth = CountingAuth()
    logic = calls(auth)
    seen = Drive()

    def running() -> HttpResponse:  # a new answer each poll, byte for byte the same
        return HttpResponse(200, {"content-type": "application/json"}, b'{"state": "running"}')

    for _ in range(3):
        drive(logic.run(one_call(get())), [running()], auth.clock, seen)
    assert auth.judged == 1  # a wait polling a run that goes on: judged once

    damaged = HttpResponse(200, {"content-type": "application/json"}, b'{"state": "runn')
    answer = drive(logic.run(one_call(get())), [damaged, running()], auth.clock, seen)
    assert answer.json() == {"state": "running"}
    assert seen.sleeps == [BACKOFF_FIRST + 0.125]  # the damaged one was judged, and sent again

    ended = HttpResponse(200, {"content-type": "application/json"}, b'{"state": "ended"}')
    assert drive(logic.run(one_call(get())), [ended], auth.clock, seen) is ended
    assert auth.judged == 2
