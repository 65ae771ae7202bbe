"""FlowInstanceSensor(start_from_trigger=True): the wait the scheduler starts in the triggerer (Airflow 3.3+).

Only the first test runs on 3.1 and 3.2 too (tests/compat_tests.txt); the full start, scheduler to triggerer
with no worker, is tests/test_full_stack.py::test_f_a_wait_started_from_the_trigger_takes_no_worker."""

from __future__ import annotations

import datetime as dt

import pytest

from airflow_provider_flowinst.trigger_start import FIRST_RELEASE, airflow_release
from airflow_provider_flowinst.triggers.flow_instance import FlowInstanceTrigger
from tests.triggers.test_flow_instance import first_event_of

TEMPLATED = "{{ dag_run.conf['instance_id'] }}"


def sensor(**kwargs):
    from airflow_provider_flowinst.sensors.flow_instance import FlowInstanceSensor

    return FlowInstanceSensor(
        task_id="wait", conn_id="enos_batch_default", instance_id=TEMPLATED, start_from_trigger=True, **kwargs
    )


def test_the_sensor_hands_the_scheduler_its_trigger_or_refuses_naming_the_release():
    """Airflow 3.3+ starts the trigger; 3.1 and 3.2 (tests/compat_tests.txt) cannot, and the flag says so."""
    version, release = airflow_release()
    if release < FIRST_RELEASE:
        with pytest.raises(
            ValueError, match=rf"start_from_trigger needs Airflow 3.3 or later; this is Airflow {version}"
        ):
            sensor(timeout=600)
        return

    task = sensor(timeout=600, poke_interval=5)

    assert (task.start_from_trigger, task.deferrable) == (True, True)
    args = task.start_trigger_args
    assert args.trigger_cls == "airflow_provider_flowinst.triggers.flow_instance.FlowInstanceTrigger"
    assert args.next_method == "execute_complete"
    # The template stays a template: Airflow 3.3's triggerer renders it (the sensor's template_fields).
    assert args.trigger_kwargs["instance_id"] == TEMPLATED
    assert {key: args.trigger_kwargs[key] for key in ("end_time", "timeout_seconds", "end_time_limit")} == {
        "end_time": None,
        "timeout_seconds": 600.0,
        "end_time_limit": "timeout",
    }
    assert args.trigger_kwargs["end_from_trigger"] is True
    assert args.timeout > dt.timedelta(seconds=600)
    # The kwargs rebuild the trigger (what the triggerer does before rendering).
    assert FlowInstanceTrigger(**args.trigger_kwargs).instance_id == TEMPLATED


def test_a_shorter_execution_timeout_is_the_limit_the_trigger_counts_down():
    kwargs = sensor(timeout=600, execution_timeout=dt.timedelta(seconds=90)).start_trigger_args.trigger_kwargs

    assert (kwargs["timeout_seconds"], kwargs["end_time_limit"]) == (90.0, "execution_timeout")


def test_the_dag_serialises_with_its_trigger_start():
    from airflow.sdk import DAG
    from airflow.serialization.serialized_objects import BaseSerialization, DagSerialization

    with DAG(dag_id="start_from_trigger", schedule=None, start_date=dt.datetime(2024, 1, 1)) as dag:
        sensor(timeout=600)

    task = DagSerialization.from_dict(DagSerialization.to_dict(dag)).get_task("wait")

    assert task.start_from_trigger is True
    # The scheduler makes the Trigger row from these (encoded as Airflow encodes them; the triggerer decodes).
    kwargs = BaseSerialization.deserialize(task.start_trigger_args.trigger_kwargs)
    assert FlowInstanceTrigger(**kwargs).serialize()[1] == kwargs


async def test_a_success_ends_the_task_in_the_triggerer_with_the_same_xcom(emulator):
    trigger = FlowInstanceTrigger(
        conn_id="enos_batch_default", instance_id="2809-20310101000000", poke_interval=0.1, end_from_trigger=True
    )

    event = await first_event_of(trigger)

    assert type(event).__name__ == "TaskSuccessEvent"
    instance = event.xcoms["return_value"]
    assert (instance["instance_id"], instance["state"]) == ("2809-20310101000000", "success")
    assert "flow_instance_url" in event.xcoms


async def test_any_other_end_resumes_the_task_in_a_worker(emulator):
    trigger = FlowInstanceTrigger(
        conn_id="enos_batch_default", instance_id="3257-20310101000000", poke_interval=0.1, end_from_trigger=True
    )

    event = await first_event_of(trigger)

    assert type(event).__name__ == "TriggerEvent"
    assert event.payload["status"] == "failure"


async def test_a_trigger_the_scheduler_started_counts_its_timeout_from_its_start(emulator):
    trigger = FlowInstanceTrigger(
        conn_id="enos_batch_default", instance_id="4000-20310101000000", poke_interval=0.1, timeout_seconds=1.0
    )

    event = await first_event_of(trigger)

    assert (event.payload["status"], event.payload["limit"]) == ("timeout", "timeout")
