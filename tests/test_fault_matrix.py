"""The fault matrix: four platforms x ten faults, each through the real hook against the emulator.

Every cell reads one finished instance with ``get_instance`` (sync, on requests) and ``aget_instance``
(async, on aiohttp) while the emulator misbehaves once in the way the row says, and asserts the outcome:
the same FlowInstance a fault-free read returns, within a bounded time, or a clear FlowPlatformError, fast,
that names the platform, the call, the platform's own message and the HTTP status.

The connections retry quickly (``max_retries`` 2, ``retry_max_wait`` 0.05 s, ``read_timeout`` 1 s) so the
matrix stays fast; the 429 row allows waits of up to 5 s so that ``Retry-After: 2`` is honoured in full
(longer than any first backoff, 0.5 to 1 s, so the row fails if the header is ignored).
``docs/reliability.md`` shows this matrix; ``test_the_documented_matrix_is_this_one`` keeps them equal.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from airflow_provider_flowinst.errors import PLATFORM_TITLES, FlowPlatformError
from airflow_provider_flowinst.hooks import aget_hook, get_hook
from airflow_provider_flowinst.models import FlowInstance
from airflow_provider_flowinst.transport import close_shared_session
from tests.helpers import quick_retry_connection, read_instance

DOC = Path(__file__).resolve().parent.parent / "docs" / "reliability.md"
PLATFORMS = ("enos_batch", "enos_bpm", "lsf_pm", "dataworks")
#: The call get_instance makes first on each platform (the one every fault meets), as errors name it.
FIRST_CALL = {
    "enos_batch": "Get Flow Instance",
    "enos_bpm": "Get Process Instance",
    "lsf_pm": "Get Flow Instances",
    "dataworks": "GetWorkflowInstance",
}
#: Token (login) requests of each platform, as the emulator counts them.
TOKEN_COUNTERS = {
    "enos_batch": ("enos_gateway",),
    "enos_bpm": ("enos_gateway", "enos_bpm_refresh"),  # renewed by the refresh token, not the password
    "lsf_pm": ("lsf_pm",),
    "dataworks": (),
}


@dataclass(frozen=True)
class Fault:
    kind: str
    label: str
    inject: dict[str, Any]
    extras: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Recovers:
    """The call returns the same FlowInstance as a fault-free read, after at least ``min_seconds``."""

    min_seconds: float = 0.0
    max_seconds: float = 8.0
    renews_token: bool = False

    def cell(self) -> str:
        text = "✓ the instance"
        if self.min_seconds:
            text += f", after ≥ {self.min_seconds:g} s"
        if self.renews_token:
            text += ", token renewed once"
        return text


@dataclass(frozen=True)
class FailsFast:
    """A FlowPlatformError within ``max_seconds`` naming the platform, the call and the platform's message."""

    message: str
    http_status: int
    code: str | None = None
    max_seconds: float = 3.0

    def cell(self) -> str:
        return f"✗ error at once, not retried: “{self.message}” (HTTP {self.http_status})"


FAULTS = (
    Fault("503", "503 twice, then success", {"count": 2}),
    Fault("502", "502 twice, then success", {"count": 2}),
    Fault("500", "500 once, then success", {"count": 1}),
    Fault("429", "429 with Retry-After 2 s, then success", {"count": 1, "retry_after": 2}, {"retry_max_wait": 5}),
    Fault("reset", "connection reset twice, then success", {"count": 2}),
    Fault("timeout", "read timeout (answer held 3 s), then success", {"count": 1, "delay": 3}),
    Fault("malformed", "malformed JSON (HTTP 200, cut short), then success", {"count": 1}),
    Fault("html", "HTML error page (HTTP 502), then success", {"count": 1}),
    Fault("expired_token", "expired token", {"count": 1}),
    Fault("403", "permanent 403", {"count": 100}),
)

FORBIDDEN = "emulated: no privilege for this call"
#: What each cell promises; a cell not listed recovers with no delay to speak of.
OUTCOMES: dict[tuple[str, str], Recovers | FailsFast] = {
    **{("429", platform): Recovers(min_seconds=2.0) for platform in PLATFORMS},
    **{("timeout", platform): Recovers(min_seconds=1.0) for platform in PLATFORMS},
    **{("expired_token", platform): Recovers(renews_token=True) for platform in ("enos_batch", "enos_bpm", "lsf_pm")},
    # DataWorks signs each request with the AccessKey: there is no token to renew. The nearest real failure
    # is an expired STS security token, which only new credentials cure: reported at once.
    ("expired_token", "dataworks"): FailsFast(
        "Specified SecurityToken is expired.", 400, code="InvalidSecurityToken.Expired"
    ),
    ("403", "enos_batch"): FailsFast(FORBIDDEN, 403, code="Forbidden"),
    ("403", "enos_bpm"): FailsFast(FORBIDDEN, 403, code="Forbidden"),
    ("403", "lsf_pm"): FailsFast(FORBIDDEN, 403),
    ("403", "dataworks"): FailsFast(FORBIDDEN, 403, code="Forbidden"),
}


def outcome(kind: str, platform: str) -> Recovers | FailsFast:
    return OUTCOMES.get((kind, platform), Recovers())


@pytest.fixture(scope="module")
def finished(emulator) -> dict[str, FlowInstance]:
    """One finished (successful) instance per platform, as a fault-free read returns it."""
    ids = {
        "enos_batch": emulator.create_enos_batch_instance(
            "2809", "2809-20350101000000", queued_seconds=0, running_seconds=0
        ),
        "enos_bpm": emulator.create_enos_bpm_instance("purchaseApproval", seconds_per_task=0),
        "lsf_pm": emulator.create_lsf_pm_instance("jsmith:flow1", running_seconds=0),
        "dataworks": emulator.create_dataworks_instance(1001, queued_seconds=0, running_seconds=0),
    }
    instances = {platform: get_hook(f"{platform}_default").get_instance(ids[platform]) for platform in PLATFORMS}
    assert {platform: instance.state.value for platform, instance in instances.items()} == dict.fromkeys(
        PLATFORMS, "success"
    )
    return instances


@pytest.mark.parametrize("path", ["sync", "async"])
@pytest.mark.parametrize("platform", PLATFORMS)
@pytest.mark.parametrize("fault", FAULTS, ids=[fault.kind for fault in FAULTS])
async def test_fault_matrix(emulator, monkeypatch, finished, fault, platform, path):
    expected = finished[platform]
    conn_id = quick_retry_connection(monkeypatch, emulator.url, f"{platform}_default", **fault.extras)
    # Log in first, so the fault meets the instance call itself (token requests have their own tests).
    await read_instance(conn_id, expected.instance_id, path)
    emulator.control("POST", "/_emulator/reset")
    emulator.inject_fault(fault.kind, platform=platform, **fault.inject)
    promise = outcome(fault.kind, platform)

    started = time.monotonic()
    try:
        got: FlowInstance | FlowPlatformError = await read_instance(conn_id, expected.instance_id, path)
    except FlowPlatformError as error:
        got = error
    elapsed = time.monotonic() - started

    stats = emulator.stats()
    if isinstance(promise, Recovers):
        assert isinstance(got, FlowInstance), f"expected the instance, got {got}"
        assert got.to_dict() == expected.to_dict()
        assert promise.min_seconds <= elapsed < promise.max_seconds
        assert stats["faults_pending"] == 0
        renewals = {counter: stats["token_requests"].get(counter, 0) for counter in TOKEN_COUNTERS[platform]}
        assert renewals == dict.fromkeys(TOKEN_COUNTERS[platform], 1 if promise.renews_token else 0)
    else:
        assert isinstance(got, FlowPlatformError), f"expected a FlowPlatformError, got {got!r}"
        message = str(got)
        assert message.startswith(f"{PLATFORM_TITLES[platform]}: {FIRST_CALL[platform]} failed: ")
        assert promise.message in message
        assert f"HTTP {promise.http_status}" in message
        assert got.platform == platform
        assert got.http_status == promise.http_status
        assert got.code == promise.code
        assert not got.retryable
        assert elapsed < promise.max_seconds
        # Not retried: one request (LSF asks again without username=all when that is refused, see lsf.py).
        assert sum(stats["requests"].values()) == (2 if (platform, fault.kind) == ("lsf_pm", "403") else 1)


@pytest.mark.parametrize("path", ["sync", "async"])
@pytest.mark.parametrize("platform", PLATFORMS)
@pytest.mark.parametrize("kind", ["503", "malformed"])
async def test_a_transient_fault_that_does_not_pass_is_a_clear_error_after_bounded_attempts(
    emulator, monkeypatch, finished, kind, platform, path
):
    conn_id = quick_retry_connection(monkeypatch, emulator.url, f"{platform}_default")
    emulator.inject_fault(kind, platform=platform, count=100)

    started = time.monotonic()
    with pytest.raises(FlowPlatformError) as error:
        await read_instance(conn_id, finished[platform].instance_id, path)

    assert time.monotonic() - started < 3.0
    message = str(error.value)
    assert message.startswith(f"{PLATFORM_TITLES[platform]}: {FIRST_CALL[platform]} failed: still failing after 3 ")
    assert ("emulated HTTP 503" if kind == "503" else "the JSON answer is malformed") in message
    assert error.value.retryable  # a deferred wait polls again rather than giving up
    calls = {key: count for key, count in emulator.stats()["requests"].items() if key.startswith(f"{platform} ")}
    assert sum(calls.values()) == 3, calls


def matrix_markdown() -> str:
    """The matrix as docs/reliability.md shows it."""
    titles = {"enos_batch": "EnOS Batch", "enos_bpm": "EnOS BPM", "lsf_pm": "LSF PM", "dataworks": "DataWorks"}
    lines = [
        "| fault (emulator kind) | " + " | ".join(titles[platform] for platform in PLATFORMS) + " |",
        "|---|" + "---|" * len(PLATFORMS),
    ]
    for fault in FAULTS:
        cells = [outcome(fault.kind, platform).cell() for platform in PLATFORMS]
        lines.append(f"| {fault.label} (`{fault.kind}`) | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def test_the_documented_matrix_is_this_one():
    assert matrix_markdown() in DOC.read_text(encoding="utf-8")


# -- a start acted on, its answer lost: exactly one run ------------------------------------------------------

#: platform -> (the flows to start, one per cell: EnOS refuses a second start of a flow within a minute),
#: and the start call as the emulator's faults match it (path, query or DataWorks action).
STARTS: dict[str, tuple[tuple[str, ...], str]] = {
    "enos_batch": (tuple(f"53{n:02d}" for n in range(3, 9)), "action=trigger"),
    "enos_bpm": (("purchaseApproval:3:5abd9f71-e365-11ea-8a6b-be43f0d99bcd",), "/process-instances "),
    "lsf_pm": (("jsmith:flow1",), "/flow/definitions/submit"),
    "dataworks": (("1001",), "CreateWorkflowInstances"),
}
START_FAULTS = (
    ("act_then_503", "start acted on, answer lost: 503 instead of the answer"),
    ("act_then_reset", "start acted on, answer lost: the connection dropped"),
    ("act_then_slow", "start acted on, answer lost: the answer came after read_timeout"),
)
START_CELLS = [
    (kind, platform, path) for kind, _ in START_FAULTS for platform in PLATFORMS for path in ("sync", "async")
]


def start_flow(kind: str, platform: str, path: str) -> str:
    flows = STARTS[platform][0]
    return flows[START_CELLS.index((kind, platform, path)) % len(flows)] if platform == "enos_batch" else flows[0]


def runs_of(server, platform: str, flow: str) -> set[str]:
    """The ids of every run of ``flow`` the emulator holds (started by a call, not made by the emulator)."""
    emulator = server.emulator
    if platform == "enos_batch":
        return {i.instance_id for i in emulator.enos_batch.instances.values() if i.flow.flow_id == flow and i.manual}
    if platform == "enos_bpm":
        return {i.instance_id for i in emulator.enos_bpm.instances.values() if i.definition.definition_id == flow}
    if platform == "lsf_pm":
        return {str(run.id) for run in emulator.lsf.runs.values() if run.flow.full_name == flow}
    return {str(i.instance_id) for i in emulator.dataworks.instances.values() if str(i.workflow.workflow_id) == flow}


@pytest.mark.parametrize(("kind", "platform", "path"), START_CELLS)
async def test_a_start_acted_on_whose_answer_is_lost_makes_exactly_one_run(emulator, monkeypatch, kind, platform, path):
    flow = start_flow(kind, platform, path)
    conn_id = quick_retry_connection(monkeypatch, emulator.url, f"{platform}_default")
    before = runs_of(emulator, platform, flow)
    emulator.inject_fault(kind, platform=platform, call_contains=STARTS[platform][1], delay=3)

    if path == "sync":
        started = get_hook(conn_id).start_run(flow)
    else:
        try:
            started = await (await aget_hook(conn_id)).astart_run(flow)
        finally:
            await close_shared_session()

    new = runs_of(emulator, platform, flow) - before
    assert emulator.stats()["requests"][f"{platform} acted, answer spoilt: {kind}"] == 1  # the fault did meet it
    assert new == {started}  # exactly one run, and the one the caller now tracks


def start_matrix_markdown() -> str:
    """The start rows as docs/reliability.md shows them."""
    titles = {"enos_batch": "EnOS Batch", "enos_bpm": "EnOS BPM", "lsf_pm": "LSF PM", "dataworks": "DataWorks"}
    lines = [
        "| fault (emulator kind) | " + " | ".join(titles[platform] for platform in PLATFORMS) + " |",
        "|---|" + "---|" * len(PLATFORMS),
    ]
    for kind, label in START_FAULTS:
        lines.append(f"| {label} (`{kind}`) | " + " | ".join("✓ exactly one run" for _ in PLATFORMS) + " |")
    return "\n".join(lines)


def test_the_documented_start_rows_are_these():
    assert start_matrix_markdown() in DOC.read_text(encoding="utf-8")
