"""The "Remote instance" button: a link to the instance in its platform's console."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseOperatorLink

from airflow_provider_flowinst.models import XCOM_URL_KEY

if TYPE_CHECKING:
    from airflow.sdk import BaseOperator
    from airflow.sdk.types import TaskInstanceKey


class FlowInstanceLink(BaseOperatorLink):
    """Reads the URL the task pushed (before it deferred, so the link works while it waits)."""

    name = "Remote instance"

    def get_link(self, operator: BaseOperator, *, ti_key: TaskInstanceKey) -> str:
        from airflow.sdk.execution_time.xcom import XCom

        value: Any = XCom.get_value(ti_key=ti_key, key=XCOM_URL_KEY)
        return value if isinstance(value, str) else ""


def push_instance_url(context: Any, url: str | None) -> None:
    """Record the console URL for the link (None when the connection has no ``console_url``)."""
    context["ti"].xcom_push(key=XCOM_URL_KEY, value=url)
