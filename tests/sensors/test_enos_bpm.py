"""EnOSProcessInstanceSensor in real dag.test() runs against the emulator, in poke, reschedule and deferrable mode."""

from __future__ import annotations

import pytest

from tests.dags import enos_bpm_dags
from tests.helpers import XCOM_KEYS, run_dag


@pytest.mark.parametrize("mode", ["poke", "reschedule", "deferrable"])
def test_a_completed_process_instance_succeeds_with_its_dict(emulator, mode):
    result = run_dag(getattr(enos_bpm_dags, f"enos_bpm_{mode}_completes"))

    assert result.state == "success"
    instance = result.xcom("wait")
    assert set(instance) == XCOM_KEYS
    assert instance["instance_id"] == result.xcom("start")
    assert (instance["platform"], instance["state"], instance["raw_state"]) == ("enos_bpm", "success", "completed")
    assert instance["flow_id"] == enos_bpm_dags.DEFINITIONS["completes"]
    assert instance["name"].startswith("manual__")  # the run id the DAG named the instance after
    assert instance["started_at"].endswith("+00:00") and instance["ended_at"] >= instance["started_at"]
    assert instance["graph"] is None  # no current task once it has completed
    assert instance["details"]["processStatus"] == "completed"
