"""Starting a remote run exactly once: the transport never resends a start that may have acted, and the
run such a start made is looked for instead of starting another."""

from __future__ import annotations

import pytest

from airflow_provider_flowinst.errors import FlowPlatformError, RunOutcomeUnknown
from airflow_provider_flowinst.protocol import HttpRequest, HttpResponse, Sleep, StartAttempt
from airflow_provider_flowinst.starts import find_after_unclear_start
from airflow_provider_flowinst.transport import AsyncTransport, SyncTransport, TransportSettings
from tests.helpers import drive

UNCLEAR = RunOutcomeUnknown("lsf_pm", "submitting a flow", "HTTP 503: gone")
ATTEMPT = StartAttempt(flow="jsmith:flow1", requested_at_ms=1_700_000_000_000, marker="a" * 32)


class LooksUntilFound:
    """A platform client whose listing shows the new run only from its ``shows_from``-th look on."""

    platform = "lsf_pm"

    def __init__(self, shows_from: int | None) -> None:
        self.shows_from = shows_from
        self.looks = 0

    def find_started_run(self, flow, parameters, attempt):
        self.looks += 1
        assert (flow, attempt) == ("jsmith:flow1", ATTEMPT)
        yield HttpRequest("GET", "https://pac/platform/ws/flow/instances", "listing flow instances")
        return "101" if self.shows_from is not None and self.looks >= self.shows_from else None


def test_the_run_is_taken_at_the_first_look_that_shows_it():
    client = LooksUntilFound(shows_from=2)
    ok = HttpResponse(200, {}, b"")

    steps, found = drive(find_after_unclear_start(client, "jsmith:flow1", None, ATTEMPT, UNCLEAR), ok, Sleep(2.0), ok)

    assert found == "101"
    assert client.looks == 2
    assert [type(step).__name__ for step in steps] == ["HttpRequest", "Sleep", "HttpRequest"]


def test_no_run_after_every_look_fails_without_starting_another():
    client = LooksUntilFound(shows_from=None)
    operation = find_after_unclear_start(client, "jsmith:flow1", None, ATTEMPT, UNCLEAR, delays=(0.0, 1.0))
    next(operation)
    operation.send(HttpResponse(200, {}, b""))  # the pause before the second look

    with pytest.raises(RunOutcomeUnknown) as caught:
        next(operation)
        operation.send(HttpResponse(200, {}, b""))

    assert "No run of jsmith:flow1 made by this attempt showed up after 2 looks" in str(caught.value)
    assert "HTTP 503: gone" in str(caught.value)
    assert client.looks == 2


def test_an_attempt_survives_a_round_trip_through_json():
    attempt = StartAttempt.new("5101", 1_700_000_000_000)

    assert StartAttempt.from_dict(attempt.to_dict()) == attempt
    assert len(attempt.marker) == 32
    assert StartAttempt.new("5101", 0).marker != attempt.marker


class NoAuth:
    platform = "dataworks"
    cache_key = "none"

    def login(self):
        return None

    def renew(self, token):
        return None

    def sign(self, request, token, now_ms):
        return request

    def is_token_expired(self, response):
        return False

    def secrets(self):
        return ()


def settings(**overrides) -> TransportSettings:
    return TransportSettings(
        platform="dataworks", auth=NoAuth(), max_retries=3, retry_max_wait=0.01, read_timeout=0.5, **overrides
    )


def start_call(url: str) -> HttpRequest:
    return HttpRequest("POST", url + "/", "CreateWorkflowInstances", authenticated=False, body=b"x=1")


def one_request(request):
    response = yield request
    return response.status


@pytest.mark.parametrize("fault", ["act_then_503", "act_then_reset", "act_then_slow"])
def test_a_start_whose_answer_is_lost_is_sent_once_sync(fault):
    # A loopback server that carries out every call it gets, then loses the answer: sent exactly once.
    with CountingServer(fault) as server, pytest.raises(RunOutcomeUnknown) as caught:
        SyncTransport(settings()).run(one_request(start_call(server.url)))

    assert server.hits == 1
    assert "may have been carried out" in str(caught.value)


@pytest.mark.parametrize("fault", ["act_then_503", "act_then_reset", "act_then_slow"])
async def test_a_start_whose_answer_is_lost_is_sent_once_async(fault):
    from airflow_provider_flowinst.transport import close_shared_session

    with CountingServer(fault) as server:
        try:
            with pytest.raises(RunOutcomeUnknown):
                await AsyncTransport(settings()).run(one_request(start_call(server.url)))
        finally:
            await close_shared_session()

    assert server.hits == 1


def test_a_start_refused_before_it_was_sent_is_sent_again():
    # Nothing listens on the port: the connection is refused, so the platform cannot have acted.
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]

    with pytest.raises(FlowPlatformError) as caught:
        SyncTransport(settings()).run(one_request(start_call(f"http://127.0.0.1:{port}")))

    assert not isinstance(caught.value, RunOutcomeUnknown)
    assert "still failing after" in str(caught.value)


def test_a_throttled_start_is_sent_again():
    with CountingServer("429_then_ok") as server:
        status = SyncTransport(settings()).run(one_request(start_call(server.url)))

    assert status == 200
    assert server.hits == 2


class CountingServer:
    """A loopback HTTP server that acts on every request (counts it), then answers as ``behaviour`` says."""

    def __init__(self, behaviour: str) -> None:
        self.behaviour = behaviour
        self.hits = 0

    def __enter__(self) -> CountingServer:
        import http.server
        import threading

        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                self.rfile.read(int(self.headers.get("Content-Length") or 0))
                outer.hits += 1
                if outer.behaviour == "act_then_reset":
                    self.connection.shutdown(2)
                    return
                if outer.behaviour == "act_then_slow":
                    import time

                    time.sleep(1.5)
                status = 503 if outer.behaviour == "act_then_503" else 200
                if outer.behaviour == "429_then_ok" and outer.hits == 1:
                    status = 429
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self._server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()
        return self

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()
