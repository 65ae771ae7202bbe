"""The OpenLineage methods the operators and sensors share (Airflow's OpenLineage provider calls them).

OpenLineage is imported only inside them, so without the ``openlineage`` extra nothing is imported and
nothing is paid: Airflow's provider is what calls these, and it is installed only with the extra.
"""

from __future__ import annotations

from typing import Any


class RemoteRunLineage:
    """Reports the remote run the task ended with (see ``lineage``): its instance dict, kept by the task."""

    conn_id: str
    #: The instance dict the task returned or failed on; None until the task knows its run.
    remote_instance: dict[str, Any] | None = None

    def get_openlineage_facets_on_complete(self, task_instance: Any) -> Any:
        from airflow_provider_flowinst.lineage import operator_lineage

        return operator_lineage(task_instance, self.conn_id, self.remote_instance)

    def get_openlineage_facets_on_failure(self, task_instance: Any) -> Any:
        from airflow_provider_flowinst.lineage import operator_lineage

        return operator_lineage(task_instance, self.conn_id, self.remote_instance)
