"""The "Remote graph" tab on the task instance page (Airflow 3.1+), registered through ``airflow.plugins``.

Every Airflow process loads plugins, so the FastAPI app (and the api-server's security code it needs) is
built only when the api-server asks for ``fastapi_apps``.
"""

from __future__ import annotations

from typing import Any

from airflow.plugins_manager import AirflowPlugin

URL_PREFIX = "/flowinst"
URL_ROUTE = "remote_graph"
TAB_NAME = "Remote graph"
#: The UI fills in the placeholders for a task instance tab (MAP_INDEX stays literal for unmapped tasks).
PAGE_HREF = URL_PREFIX + "/remote-graph/{DAG_ID}/{RUN_ID}/{TASK_ID}?map_index={MAP_INDEX}"


class FlowInstPlugin(AirflowPlugin):
    """Adds the "Remote graph" tab: the remote run's graph as SVG, for users who may read the task instance."""

    name = "flowinst"
    external_views = [
        {
            "name": TAB_NAME,
            "href": PAGE_HREF,
            "destination": "task_instance",
            "url_route": URL_ROUTE,
            "icon": URL_PREFIX + "/icon.svg",
        }
    ]

    @property
    def fastapi_apps(self) -> list[dict[str, Any]]:  # type: ignore[override]  # built on first use
        from airflow_provider_flowinst.plugins.remote_graph import create_app

        return [{"app": create_app(), "url_prefix": URL_PREFIX, "name": TAB_NAME}]
