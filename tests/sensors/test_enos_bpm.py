"""EnOSProcessInstanceSensor in real dag.test() runs against the emulator, in poke, reschedule and deferrable mode."""

from __future__ import annotations

import pytest

from tests.dags import enos_bpm_dags
from tests.helpers import run_dag, succeeded_wait


@pytest.mark.parametrize("mode", ["poke", "reschedule", "deferrable"])
def test_a_completed_process_instance_succeeds_with_its_dict(emulator, mode):
    result = run_dag(getattr(enos_bpm_dags, f"enos_bpm_{mode}_completes"))

    instance = succeeded_wait(result, started_by="start", platform="enos_bpm")
    assert (instance["raw_state"], instance["flow_id"]) == ("completed", enos_bpm_dags.DEFINITIONS["completes"])
    assert instance["name"].startswith("manual__")  # the run id the DAG named the instance after
    assert instance["graph"] is None  # no current task once it has completed
    assert instance["details"]["processStatus"] == "completed"
