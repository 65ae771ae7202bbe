"""LSFFlowInstanceSensor in real dag.test() runs against the emulator, in poke, reschedule and deferrable mode."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from airflow_provider_flowinst.transport import TOKENS
from tests.dags import lsf_dags
from tests.helpers import run_dag, succeeded_wait


@pytest.fixture
def lsf_sessions(emulator) -> Iterator[None]:
    """No live LSF token and no token user left over from other tests; the default (reissuing) mode after."""
    emulator.control("POST", "/_emulator/lsf_pm/tokens", {"drop": True})
    TOKENS.clear()
    yield
    emulator.control("POST", "/_emulator/lsf_pm/settings", {"single_session": False})


@pytest.mark.parametrize("mode", ["poke", "deferrable"])
def test_every_task_logs_out_so_the_next_process_can_log_on_in_single_session_mode(emulator, lsf_sessions, mode):
    emulator.control("POST", "/_emulator/lsf_pm/settings", {"single_session": True})
    dag = getattr(lsf_dags, f"lsf_{mode}_done")

    first = run_dag(dag)
    assert emulator.control("GET", "/_emulator/lsf_pm/sessions")["live"] == 0  # every task logged out
    TOKENS.clear()  # the next run's tasks are new processes: no token at hand, a logon each
    second = run_dag(dag)

    assert (first.state, second.state) == ("success", "success")
    assert emulator.control("GET", "/_emulator/lsf_pm/sessions")["live"] == 0


@pytest.mark.parametrize("mode", ["poke", "reschedule", "deferrable"])
def test_a_done_flow_instance_succeeds_with_its_dict(emulator, mode):
    result = run_dag(getattr(lsf_dags, f"lsf_{mode}_done"))

    instance = succeeded_wait(result, started_by="submit", platform="lsf_pm")
    assert instance["instance_id"].isdigit() and instance["raw_state"] == "Done"
    assert (instance["flow_id"], instance["name"]) == ("jsmith:flow1", "flow1")
    assert (instance["graph"], instance["url"]) == (None, None)
    assert instance["details"]["fullName"] == f"{instance['instance_id']}:jsmith:flow1"
    assert instance["details"]["id"] == int(instance["instance_id"])
    assert "lastUpdateTime" in instance["details"]
