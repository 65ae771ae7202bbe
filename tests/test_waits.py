"""The one wait layer: judging an instance, the trigger's event, the deadline and the count of failed looks."""

from __future__ import annotations

import datetime as dt
import logging
import time

import pytest

from airflow_provider_flowinst._compat import AirflowException
from airflow_provider_flowinst.errors import FlowInstanceNotFound, FlowPlatformError
from airflow_provider_flowinst.models import FlowInstance, FlowState, GraphNode, InstanceGraph, NodeKind
from airflow_provider_flowinst.waits import (
    EVENT_DELIVERY_SECONDS,
    ConsecutiveFailures,
    Verdict,
    WaitEvent,
    Watch,
    deadline,
    describe,
    execution_end,
    failure_message,
    failure_reason,
    judge,
    parse_states,
    past_execution_timeout,
    read_cutoff,
    status_line,
    timeout_message,
)

SUCCESS = (FlowState.SUCCESS,)
FAILURE = (FlowState.FAILED, FlowState.CANCELLED)
LOG = logging.getLogger("tests.waits")


def instance(state: FlowState = FlowState.RUNNING, raw_state: str = "RUNNING", **kwargs: object) -> FlowInstance:
    fields: dict[str, object] = {"platform": "enos_batch", "instance_id": "2809-1", "flow_id": "2809", "name": "21"}
    return FlowInstance(state=state, raw_state=raw_state, **{**fields, **kwargs})  # type: ignore[arg-type]


def fault(retryable: bool = True) -> FlowPlatformError:
    return FlowPlatformError("enos_batch", "Get Flow Instance", "HTTP 503", retryable=retryable)


# -- describing an instance -----------------------------------------------------------------------------


def test_an_instance_is_described_by_platform_id_and_state():
    failed = instance(FlowState.FAILED, "FAIL")

    assert describe(failed) == "enos_batch instance 2809-1"
    assert status_line(failed) == "enos_batch instance 2809-1 is failed (FAIL)"
    assert failure_message(failed) == "enos_batch instance 2809-1 ended in state failed (platform state 'FAIL')"


def test_a_timeout_says_what_was_last_seen():
    assert (
        timeout_message("2809-1", instance()) == "timed out waiting for enos_batch instance 2809-1 (last seen running)"
    )
    assert timeout_message("2809-1", None) == "timed out waiting for instance 2809-1 (never seen)"


# -- judging it -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("state", "status", "message"),
    [
        (FlowState.SUCCESS, "success", "enos_batch instance 2809-1 reached success"),
        (FlowState.FAILED, "failure", "enos_batch instance 2809-1 ended in state failed (platform state 'X')"),
        (FlowState.CANCELLED, "failure", "enos_batch instance 2809-1 ended in state cancelled (platform state 'X')"),
        (FlowState.RUNNING, "waiting", "enos_batch instance 2809-1 is running (X)"),
        (FlowState.SKIPPED, "waiting", "enos_batch instance 2809-1 is skipped (X)"),
    ],
)
def test_judge_decides_done_failed_or_keep_waiting(state, status, message):
    verdict = judge(instance(state, "X"), SUCCESS, FAILURE)

    assert (verdict.status, verdict.message) == (status, message)
    assert verdict.done is (status != "waiting")


def test_the_caller_decides_what_success_means():
    verdict = judge(instance(FlowState.FAILED, "FAIL"), (FlowState.SUCCESS, FlowState.FAILED), ())

    assert verdict.status == "success"


def test_states_that_both_succeed_and_fail_are_refused():
    assert parse_states(["success"], ["failed"]) == ((FlowState.SUCCESS,), (FlowState.FAILED,))
    with pytest.raises(ValueError, match=r"states cannot both succeed and fail: \['failed'\]"):
        parse_states(["success", "failed"], ["failed"])


def test_a_verdict_that_ends_the_wait_is_the_event_the_trigger_sends():
    ended = instance(FlowState.FAILED, "FAIL")

    event = judge(ended, SUCCESS, FAILURE).event()

    assert event == WaitEvent("failure", ended.to_dict(), failure_message(ended))


def test_a_verdict_still_waiting_is_no_event():
    with pytest.raises(ValueError, match="status must be one of"):
        Verdict("waiting", instance(), "still running").event()


# -- the trigger's event --------------------------------------------------------------------------------


def test_an_event_round_trips_through_its_dict_with_the_keys_users_read():
    event = WaitEvent("success", instance(FlowState.SUCCESS, "SUCCESS").to_dict(), "done")

    payload = event.to_dict()

    assert set(payload) == {"status", "instance", "message"}
    assert WaitEvent.from_dict(payload) == event
    assert WaitEvent.from_dict(payload).flow_instance() == instance(FlowState.SUCCESS, "SUCCESS")


def test_an_event_without_message_or_instance_reads_as_empty_and_extra_keys_are_ignored():
    event = WaitEvent.from_dict({"status": "error", "added_later": 1})

    assert event == WaitEvent("error", None, "")
    assert event.flow_instance() is None


def test_a_timeout_event_carries_what_was_last_seen():
    last = instance()

    assert WaitEvent.timed_out("2809-1", last) == WaitEvent(
        "timeout", last.to_dict(), timeout_message("2809-1", last), "timeout"
    )
    assert WaitEvent.timed_out("2809-1", None).instance is None


def test_a_timeout_event_says_which_limit_passed():
    event = WaitEvent.timed_out("2809-1", instance(), "execution_timeout")

    assert event.execution_timed_out
    assert event.to_dict()["limit"] == "execution_timeout"
    assert WaitEvent.from_dict(event.to_dict()) == event
    assert "execution_timeout passed while waiting for" in event.message
    # An event from a trigger of an earlier release has no limit: the task's own timeout.
    assert not WaitEvent.from_dict({"status": "timeout", "message": "timed out"}).execution_timed_out
    with pytest.raises(ValueError, match="limit must be one of"):
        WaitEvent("error", None, "", "execution_timeout")


def test_an_error_event_carries_what_was_last_seen():
    last = instance()

    assert WaitEvent.error("HTTP 503 (3 polls in a row failed)", last).to_dict() == {
        "status": "error",
        "instance": last.to_dict(),
        "message": "HTTP 503 (3 polls in a row failed)",
    }
    assert WaitEvent.error("no connection", None).instance is None


@pytest.mark.parametrize(
    ("payload", "why"),
    [
        (None, "an event is a dict, got NoneType"),
        (["success"], "an event is a dict, got list"),
        ({"message": "hi"}, "it has no status"),
        ({"status": "done"}, "status must be one of success, failure, timeout, error, got 'done'"),
        ({"status": "success", "instance": None}, "a success event must carry its instance"),
        ({"status": "failure"}, "a failure event must carry its instance"),
        ({"status": "error", "instance": "2809-1"}, "instance must be a dict or None, got str"),
        ({"status": "error", "message": 42}, "message must be text, got int"),
    ],
)
def test_a_bad_event_is_refused_saying_why(payload, why):
    with pytest.raises(ValueError) as refused:
        WaitEvent.from_dict(payload)
    assert str(refused.value) == why

    with pytest.raises(AirflowException) as failed:
        WaitEvent.received(payload, "wait")
    assert str(failed.value) == f"wait: the trigger sent no usable event: {payload!r} ({why})"


def test_a_failed_instance_is_explained_by_its_first_failed_node():
    graph = InstanceGraph(nodes=(GraphNode("f1", "upstream", NodeKind.FLOW, FlowState.FAILED, "Exit"),))
    ended = instance(FlowState.FAILED, "Exit", platform="lsf_pm", graph=graph)  # LSF: nothing more to read
    event = judge(ended, SUCCESS, FAILURE).event()

    reason = failure_reason(event, object(), LOG)

    assert reason == (
        "lsf_pm instance 2809-1 ended in state failed (platform state 'Exit'); "
        "first failed node: upstream (failed, platform state 'Exit')"
    )


@pytest.mark.parametrize(
    ("event", "reason"),
    [
        (WaitEvent("timeout", None, "timed out waiting"), "timed out waiting"),
        (WaitEvent("error", None, "HTTP 403"), "HTTP 403"),
        (WaitEvent("error", None, ""), "the wait ended with 'error'"),
    ],
)
def test_a_wait_that_timed_out_or_erred_fails_with_its_events_message(event, reason):
    assert failure_reason(event, object(), LOG) == reason


# -- the deadline ---------------------------------------------------------------------------------------


def test_the_deadline_leaves_the_trigger_its_last_read_and_the_event_time_to_arrive():
    ends = deadline(600.0, 70.0, now=1000.0)

    assert ends.end_time == 1600.0
    assert ends.deferral_timeout == dt.timedelta(seconds=600 + 70 + EVENT_DELIVERY_SECONDS)
    # The trigger's latest read, begun just before end_time, ends before Airflow's deferral timeout.
    latest_read_end = ends.end_time + read_cutoff(ends.end_time, 70.0, now=ends.end_time)
    assert latest_read_end < 1000.0 + ends.deferral_timeout.total_seconds()


@pytest.mark.parametrize(
    ("execution_end", "end_time", "limit"),
    [(1300.0, 1300.0, "execution_timeout"), (1700.0, 1600.0, "timeout"), (None, 1600.0, "timeout")],
)
def test_the_deadline_is_the_sooner_of_timeout_and_the_trys_execution_timeout(execution_end, end_time, limit):
    ends = deadline(600.0, 70.0, now=1000.0, execution_end=execution_end)

    assert (ends.end_time, ends.limit) == (end_time, limit)
    assert ends.deferral_timeout == dt.timedelta(seconds=end_time - 1000.0 + 70 + EVENT_DELIVERY_SECONDS)


def test_a_try_already_past_its_execution_timeout_ends_its_wait_at_once():
    ends = deadline(600.0, 70.0, now=1000.0, execution_end=900.0)

    assert (ends.end_time, ends.limit) == (900.0, "execution_timeout")
    assert ends.deferral_timeout == dt.timedelta(seconds=70 + EVENT_DELIVERY_SECONDS)


def test_execution_timeout_counts_from_the_trys_start_date():
    class Try:
        start_date = dt.datetime(2030, 1, 1, tzinfo=dt.timezone.utc)

    context = {"ti": Try()}

    assert execution_end(context, dt.timedelta(minutes=20)) == Try.start_date.timestamp() + 1200
    assert execution_end(context, None) is None
    assert past_execution_timeout(context, dt.timedelta(minutes=20)) is False  # 2030 is still to come
    Try.start_date = dt.datetime(2020, 1, 1, tzinfo=dt.timezone.utc)
    assert past_execution_timeout(context, dt.timedelta(minutes=20)) is True
    # No start known: nothing is past, and the try counts from now.
    assert past_execution_timeout({}, dt.timedelta(minutes=20)) is False
    assert execution_end({}, dt.timedelta(seconds=5)) == pytest.approx(time.time() + 5, abs=5)


def test_deadline_reads_the_clock_when_not_given_one():
    before = time.time()
    ends = deadline(5.0, 1.0)

    assert before + 5.0 <= ends.end_time <= time.time() + 5.0


@pytest.mark.parametrize(
    ("end_time", "now", "cutoff"),
    [(None, 100.0, None), (110.0, 100.0, 13.0), (100.0, 100.0, 3.0), (90.0, 100.0, 3.0)],
)
def test_a_read_may_last_until_end_time_plus_one_attempt(end_time, now, cutoff):
    assert read_cutoff(end_time, 3.0, now=now) == cutoff


# -- failed looks in a row ------------------------------------------------------------------------------


def test_retryable_failures_are_counted_up_to_the_limit():
    failures = ConsecutiveFailures(3)

    assert failures.give_up(fault()) is None
    assert failures.give_up(fault()) is None
    assert failures.give_up(fault()) is not None
    assert failures.count == 3


def test_the_reason_to_give_up_names_the_fault_and_the_count():
    error = fault()
    failures = ConsecutiveFailures(2)
    failures.give_up(error)

    assert failures.give_up(error) == f"{error} (2 polls in a row failed)"


def test_a_permanent_refusal_gives_up_at_once_with_its_own_message():
    error = fault(retryable=False)

    assert ConsecutiveFailures(10).give_up(error) == str(error)


def test_a_good_look_resets_the_count():
    failures = ConsecutiveFailures(2)
    failures.give_up(fault())
    failures.reset()

    assert failures.give_up(fault()) is None
    assert failures.count == 1


def test_the_sync_waits_raise_the_fault_itself_when_they_give_up():
    error = fault()
    failures = ConsecutiveFailures(2)
    failures.failed(error)

    with pytest.raises(FlowPlatformError) as raised:
        failures.failed(error)
    assert raised.value is error


# -- one look in a worker -------------------------------------------------------------------------------


class Reader:
    """A hook that answers each look with the next of ``answers`` (an instance, or an error to raise)."""

    def __init__(self, *answers: FlowInstance | Exception) -> None:
        self.answers = list(answers)
        self.asked: list[tuple[str, bool]] = []

    def get_instance(self, instance_id: str, *, include_graph: bool = True) -> FlowInstance:
        self.asked.append((instance_id, include_graph))
        answer = self.answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer


def watch(limit: int = 3, **kwargs: bool) -> Watch:
    return Watch("2809-1", SUCCESS, FAILURE, ConsecutiveFailures(limit), **kwargs)


def test_a_look_reads_the_instance_and_judges_it():
    reader = Reader(instance(FlowState.SUCCESS, "SUCCESS"))

    verdict = watch(include_graph=False).look(reader, LOG)

    assert verdict.status == "success"
    assert reader.asked == [("2809-1", False)]


def test_a_missing_instance_is_waited_for_unless_fail_if_missing():
    missing = FlowInstanceNotFound("enos_batch", "Get Flow Instance", "no such instance", code="62102")

    waiting = watch().look(Reader(missing), LOG)
    refused = watch(fail_if_missing=True).look(Reader(missing), LOG)

    assert (waiting.status, waiting.instance) == ("waiting", None)
    assert "does not exist yet" in waiting.message
    assert refused.status == "error"
    assert refused.message.startswith(str(missing)) and "a missing instance ends this wait" in refused.message


def test_failed_looks_are_waited_through_until_one_too_many():
    error = fault()
    looks = watch(limit=2)

    assert looks.look(Reader(error), LOG).status == "waiting"
    with pytest.raises(FlowPlatformError):
        looks.look(Reader(error), LOG)


def test_a_good_look_between_failed_ones_starts_the_count_afresh():
    error = fault()
    looks = watch(limit=2)
    reader = Reader(error, instance(), error, instance(FlowState.FAILED, "FAIL"))

    statuses = [looks.look(reader, LOG).status for _ in range(4)]

    assert statuses == ["waiting", "waiting", "waiting", "failure"]


# -- the sensor and the operator agree on the deadline --------------------------------------------------


def test_the_sensor_and_the_operator_defer_with_the_same_deadline(emulator):
    from airflow.sdk.exceptions import TaskDeferred

    from airflow_provider_flowinst.hooks import get_hook
    from airflow_provider_flowinst.operators.trigger import TriggerFlowOperator
    from airflow_provider_flowinst.sensors.flow_instance import FlowInstanceSensor
    from tests.operators.test_trigger import StateStore, TaskInstanceStub
    from tests.sensors.test_flow_instance import XComSink

    sensor = FlowInstanceSensor(
        task_id="wait", conn_id="enos_batch_default", instance_id="4000-20290101000000", deferrable=True, timeout=900
    )
    operator = TriggerFlowOperator(
        task_id="run", conn_id="lsf_pm_default", flow="jsmith:long_flow", deferrable=True, timeout=900
    )
    before = time.time()
    with pytest.raises(TaskDeferred) as sensor_deferred:
        sensor.execute({"ti": XComSink()})
    with pytest.raises(TaskDeferred) as operator_deferred:
        operator.execute({"ti": TaskInstanceStub(), "task_state_store": StateStore()})
    get_hook("lsf_pm_default").stop_run(operator.instance_id)

    for deferred, conn_id in (
        (sensor_deferred.value, "enos_batch_default"),
        (operator_deferred.value, "lsf_pm_default"),
    ):
        attempt = get_hook(conn_id).attempt_seconds
        assert deferred.timeout == dt.timedelta(seconds=900 + attempt + EVENT_DELIVERY_SECONDS)
        end_time = deferred.trigger.serialize()[1]["end_time"]
        assert before + 900 <= end_time <= time.time() + 900
