"""EnOSFindFlowsOperator: "Get My Flow" in a real dag.test() run."""

from __future__ import annotations

from tests.dags import sensor_dags
from tests.helpers import run_dag


def test_find_flows_returns_the_get_my_flow_list(emulator):
    result = run_dag(sensor_dags.find_flows_dag)

    assert result.state == "success"
    assert result.xcom("find") == [{"flowId": "3257", "editable": True, "flowName": "shell", "cycle": "D"}]
