"""Failure diagnosis against the emulator: the failed nodes and their log tails, at no cost on success."""

from __future__ import annotations

import logging

import pytest

from airflow_provider_flowinst.diagnosis import TAIL_CHARS, explain_failure, tail
from airflow_provider_flowinst.hooks import get_hook
from airflow_provider_flowinst.models import FlowInstance
from airflow_provider_flowinst.redaction import REDACTED, connection_secrets, redact
from airflow_provider_flowinst.testing.emulator import credentials as creds
from tests.dags import sensor_dags
from tests.helpers import instance_reaching, quick_retry_connection, run_dag, unique_logical_date


class ListLog:
    """A logger that keeps what it is given (the sensor's own logger is structlog's, checked elsewhere)."""

    def __init__(self) -> None:
        self.lines: list[str] = []

    def error(self, message: str, *args: object) -> None:
        self.lines.append(message % args if args else message)

    exception = warning = info = error

    @property
    def text(self) -> str:
        return "\n".join(self.lines)


def enos_failed_run(emulator, conn_id: str = "enos_batch_default") -> tuple[object, FlowInstance]:
    hook = get_hook(conn_id)
    instance_id = f"3257-{unique_logical_date():%Y%m%d%H%M%S}"
    emulator.create_enos_batch_instance("3257", instance_id)
    return hook, instance_reaching(hook, instance_id)


def log_reads(emulator, what: str) -> int:
    return sum(count for key, count in emulator.stats()["requests"].items() if what in key)


def test_a_failed_enos_run_names_its_failed_task_and_shows_its_log_tail(emulator):
    hook, instance = enos_failed_run(emulator)
    log = ListLog()

    message = explain_failure(hook, instance, "the run failed", log)

    assert message == "the run failed; first failed node: run_shell (failed, platform state 'FAIL')"
    task_instance = f"105100-{instance.instance_id.split('-')[1]}"
    assert f"Remote task run_shell ({task_instance}) failed [platform state FAIL]" in log.text
    assert "ZeroDivisionError: division by zero" in log.text
    assert "step 30 of 30" in log.text
    assert "step 1 of 30" not in log.text  # only the last lines
    assert log_reads(emulator, "taskInstances") == 1


def test_a_wait_without_graph_reads_the_graph_once_on_failure(emulator):
    hook = get_hook("enos_batch_default")
    instance_id = f"3257-{unique_logical_date():%Y%m%d%H%M%S}"
    emulator.create_enos_batch_instance("3257", instance_id)
    instance = instance_reaching(hook, instance_id, include_graph=False)
    assert instance.graph is None

    message = explain_failure(hook, instance, "failed", ListLog())

    assert message.endswith("first failed node: run_shell (failed, platform state 'FAIL')")


def test_a_failing_log_read_never_hides_the_real_error(emulator, monkeypatch):
    conn_id = quick_retry_connection(monkeypatch, emulator.url)
    hook, instance = enos_failed_run(emulator, conn_id)
    emulator.inject_fault("500", platform="enos_batch", count=50, path_contains="taskInstances")
    log = ListLog()

    message = explain_failure(hook, instance, "the run failed", log)

    assert message == "the run failed; first failed node: run_shell (failed, platform state 'FAIL')"
    assert "its log could not be read" in log.text
    assert "Get Task Instance Log" in log.text


def test_the_sensor_fails_with_the_runs_failure_even_when_the_log_read_fails(emulator, monkeypatch):
    from airflow_provider_flowinst._compat import AirflowException
    from airflow_provider_flowinst.sensors.flow_instance import FlowInstanceSensor

    conn_id = quick_retry_connection(monkeypatch, emulator.url)
    _, instance = enos_failed_run(emulator, conn_id)
    emulator.inject_fault("500", platform="enos_batch", count=50, path_contains="taskInstances")
    sensor = FlowInstanceSensor(task_id="wait", conn_id=conn_id, instance_id=instance.instance_id)

    with pytest.raises(AirflowException) as raised:
        sensor._judge(instance)

    assert str(raised.value).startswith(f"enos_batch instance {instance.instance_id}")
    assert "ended in state failed" in str(raised.value)
    assert "first failed node: run_shell" in str(raised.value)


def test_a_failing_wait_in_a_real_dag_run_logs_the_failed_task_and_its_log(emulator, capfd):
    result = run_dag(sensor_dags.sensor_poke_failure)

    assert result.task_states["wait"] == "failed"
    output = capfd.readouterr()
    text = output.out + output.err
    assert "first failed node: run_shell" in text
    assert "ZeroDivisionError: division by zero" in text


@pytest.mark.parametrize("mode", ["poke", "deferrable"])
def test_success_costs_no_log_call(emulator, mode):
    result = run_dag(getattr(sensor_dags, f"sensor_{mode}_success"))

    assert result.task_states["wait"] == "success"
    assert log_reads(emulator, "enos_batch") > 0  # the wait did talk to the platform
    assert log_reads(emulator, "taskInstances") == 0


def test_a_failed_dataworks_run_shows_its_failed_task_log(emulator):
    hook = get_hook("dataworks_default")
    instance = instance_reaching(hook, emulator.create_dataworks_instance(1002))
    log = ListLog()

    message = explain_failure(hook, instance, "failed", log)

    assert message == "failed; first failed node: compute (failed, platform state 'Failure')"
    assert "ODPS-0130071" in log.text
    assert "Current task status: ERROR" in log.text
    assert emulator.stats()["requests"]["dataworks action GetTaskInstanceLog"] == 1


def test_a_successful_dataworks_run_reads_no_log(emulator):
    hook = get_hook("dataworks_default")
    instance_reaching(hook, emulator.create_dataworks_instance(1001))

    assert "dataworks action GetTaskInstanceLog" not in emulator.stats()["requests"]


def test_dataworks_task_instance_log_is_the_platform_call(emulator):
    hook = get_hook("dataworks_default")
    instance = instance_reaching(hook, emulator.create_dataworks_instance(1001))
    task = next(node for node in instance.graph.nodes if node.name == "load_mart")

    text = hook.get_task_instance_log(task.instance_id)

    assert text.rstrip().endswith("Current task status: FINISH")
    with pytest.raises(Exception, match="RunNumber"):
        hook.get_task_instance_log(task.instance_id, run_number=2)


def test_a_terminated_bpm_process_says_who_terminated_it(emulator):
    hook = get_hook("enos_bpm_default")
    instance = hook.get_instance("0b7c5e00-e39a-11ea-b667-e2b39eaec002")
    assert instance.state.value == "cancelled"
    log = ListLog()

    message = explain_failure(hook, instance, "terminated", log)

    assert message == "terminated; terminated by jane.manager: Rejected by the approver"
    assert "current task: -, assignee: -" in log.text  # a terminated process has no current task
    assert "EnOS BPM has no task-log call" in log.text


def test_a_running_bpm_process_names_its_current_task_and_assignee(emulator):
    hook = get_hook("enos_bpm_default")
    instance = hook.get_instance("0b7c5e00-e39a-11ea-b667-e2b39eaec003")  # contractReview, running for hours
    log = ListLog()

    explain_failure(hook, instance, "failed", log)

    task, assignee = instance.details["taskName"], instance.details["assignee"]["fullName"]
    assert f"current task: {task}, assignee: {assignee}" in log.text


def test_lsf_says_it_has_no_log_call(emulator):
    hook = get_hook("lsf_pm_default")
    instance = instance_reaching(hook, emulator.create_lsf_pm_instance("jsmith:flow_exit"))
    assert instance.state.value == "failed"
    log = ListLog()

    assert explain_failure(hook, instance, "failed", log) == "failed"
    assert "no job-log call" in log.text


def test_a_log_tail_is_bounded_and_keeps_the_end():
    text = "\n".join(f"line {n} " + "x" * 500 for n in range(1000)) + "\nthe end\n"

    shown = tail(text)

    assert len(shown) <= TAIL_CHARS
    assert shown.endswith("the end")
    assert "line 0 " not in shown


def test_the_connections_secrets_are_redacted(emulator):
    hook = get_hook("enos_batch_default")
    hook.get_my_flows("2809")  # logs in: the gateway token is a secret too

    secrets = connection_secrets(hook)

    assert creds.ENOS_APP_SECRET in secrets
    shown = redact(f"token={secrets[-1]} secret={creds.ENOS_APP_SECRET}", secrets)
    assert creds.ENOS_APP_SECRET not in shown
    assert shown.count(REDACTED) == 2


def test_a_diagnosis_that_cannot_even_start_keeps_the_message(emulator):
    instance = FlowInstance.from_dict(
        {"platform": "enos_batch", "instance_id": "3257-x", "state": "failed", "raw_state": "FAIL", "graph": None}
    )
    log = ListLog()

    assert explain_failure("no_such_connection", instance, "failed", log) == "failed"
    assert any("Could not diagnose" in line for line in log.lines)


def test_logging_logger_works_too(emulator, caplog):
    hook, instance = enos_failed_run(emulator)
    with caplog.at_level(logging.ERROR, logger="diagnosis-test"):
        explain_failure(hook, instance, "failed", logging.getLogger("diagnosis-test"))
    assert "ZeroDivisionError" in caplog.text


@pytest.mark.parametrize("mode", ["poke", "deferrable"])
def test_a_started_run_that_fails_logs_its_failed_task(emulator, capfd, mode):
    from tests.dags import trigger_dags

    result = run_dag(getattr(trigger_dags, f"trigger_dataworks_{mode}_failure"))

    assert result.task_states["run"] == "failed"
    output = capfd.readouterr()
    text = output.out + output.err
    assert "first failed node: compute (failed, platform state 'Failure')" in text
    assert "ODPS-0130071" in text
