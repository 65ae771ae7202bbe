"""EnOS Batch Processing operators."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from airflow.sdk import BaseOperator

from airflow_provider_flowinst.hooks.enos_batch import EnOSBatchHook


class EnOSFindFlowsOperator(BaseOperator):
    """Runs "Get My Flow" and returns the matching flows (``flowId``, ``flowName``, ``cycle``, ``editable``).

    :param enos_batch_conn_id: the ``enos_batch`` connection.
    :param expression: fuzzy match on flow id or name (templated); None lists all of the user's flows.
    """

    template_fields: Sequence[str] = ("expression",)

    def __init__(
        self, *, enos_batch_conn_id: str = EnOSBatchHook.default_conn_name, expression: str | None = None, **kwargs: Any
    ) -> None:
        super().__init__(**kwargs)
        self.enos_batch_conn_id = enos_batch_conn_id
        self.expression = expression

    def execute(self, context: Any) -> list[dict[str, Any]]:
        flows = EnOSBatchHook(self.enos_batch_conn_id).get_my_flows(self.expression)
        self.log.info("Get My Flow matched %d flows for %r", len(flows), self.expression)
        return flows
