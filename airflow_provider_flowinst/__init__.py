"""Apache Airflow provider: wait on, start and look inside workflows that run on other platforms."""

from __future__ import annotations

from typing import Any

__version__ = "0.1.0"

PACKAGE_NAME = "airflow-provider-flowinst"


def _connection_type(
    conn_type: str, hook: str, name: str, relabel: dict[str, str], fields: dict[str, Any], hidden: list[str]
) -> dict[str, Any]:
    return {
        "connection-type": conn_type,
        "hook-class-name": f"airflow_provider_flowinst.hooks.{hook}",
        "hook-name": name,
        "ui-field-behaviour": {"hidden-fields": hidden, "relabeling": relabel, "placeholders": {}},
        "conn-fields": fields,
    }


def _field(label: str, description: str, kind: str | list[str] = "string", **schema: Any) -> dict[str, Any]:
    return {"label": label, "description": description, "schema": {"type": kind, **schema}}


_COMMON_FIELDS = {
    "verify": _field(
        "Verify TLS", "true (default), false, or the path of a CA bundle", ["boolean", "string"], default=True
    ),
    "timezone": _field("Timezone", "IANA name for platform times that carry no offset", default="UTC"),
    "max_retries": _field("Max retries", "Retries of a transient fault (5xx, 429, reset)", "integer", default=5),
    "retry_max_wait": _field("Max retry wait (s)", "Longest wait between two retries", "number", default=60),
}


def get_provider_info() -> dict[str, Any]:
    """What ``airflow providers list`` and the connection form read (entry point ``apache_airflow_provider``)."""
    return {
        "package-name": PACKAGE_NAME,
        "name": "Flow Instances",
        "description": "Wait on, start and inspect flow and process instances on EnOS Batch Processing, "
        "EnOS BPM, IBM Spectrum LSF Process Manager and Alibaba Cloud DataWorks.",
        "versions": [__version__],
        "integrations": [
            {
                "integration-name": "EnOS Batch Processing",
                "external-doc-url": "https://github.com/EnvisionDoc/api_en/tree/master/dataflow_service",
                "tags": ["service"],
            },
        ],
        "hooks": [
            {
                "integration-name": "EnOS Batch Processing",
                "python-modules": ["airflow_provider_flowinst.hooks.enos_batch"],
            },
        ],
        "sensors": [
            {
                "integration-name": "EnOS Batch Processing",
                "python-modules": [
                    "airflow_provider_flowinst.sensors.flow_instance",
                    "airflow_provider_flowinst.sensors.enos_batch",
                ],
            },
        ],
        "operators": [
            {
                "integration-name": "EnOS Batch Processing",
                "python-modules": [
                    "airflow_provider_flowinst.operators.flow_instance",
                    "airflow_provider_flowinst.operators.enos_batch",
                ],
            },
        ],
        "triggers": [
            {
                "integration-name": "EnOS Batch Processing",
                "python-modules": ["airflow_provider_flowinst.triggers.flow_instance"],
            },
        ],
        "extra-links": ["airflow_provider_flowinst.links.FlowInstanceLink"],
        "connection-types": [
            _connection_type(
                "enos_batch",
                "enos_batch.EnOSBatchHook",
                "EnOS Batch Processing",
                {"host": "API gateway URL", "login": "App key", "password": "App secret"},
                {
                    "org_id": _field("Organization ID", "orgId sent with every call"),
                    "user_id": _field("User ID", "userId sent with every call"),
                    "api_version": _field("API version", "v2.1 or v2.0", default="v2.1", enum=["v2.1", "v2.0"]),
                    "console_url": _field(
                        "Console URL", "Link to an instance; {instance_id} and {flow_id} are filled in", format="url"
                    ),
                    **_COMMON_FIELDS,
                },
                [],
            ),
        ],
    }
