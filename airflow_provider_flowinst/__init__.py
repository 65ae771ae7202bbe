"""Apache Airflow provider: wait on, start and look inside workflows that run on other platforms."""

from __future__ import annotations

from typing import Any

from airflow_provider_flowinst.registry import PACKAGE as _PKG
from airflow_provider_flowinst.registry import PLATFORMS

__version__ = "0.1.0"

PACKAGE_NAME = "airflow-provider-flowinst"


def get_provider_info() -> dict[str, Any]:
    """What ``airflow providers list`` and the connection form read (entry point ``apache_airflow_provider``)."""
    generic = "Flow instances (any platform)"
    return {
        "package-name": PACKAGE_NAME,
        "name": "Flow Instances",
        "description": "Wait on, start and inspect flow and process instances on "
        f"{', '.join(entry.integration for entry in PLATFORMS[:-1])} and {PLATFORMS[-1].integration}.",
        "versions": [__version__],
        "integrations": [
            {"integration-name": generic, "external-doc-url": "https://pypi.org/project/airflow-provider-flowinst/"},
            *(
                {"integration-name": entry.integration, "external-doc-url": entry.doc_url, "tags": ["service"]}
                for entry in PLATFORMS
            ),
        ],
        "hooks": [
            {"integration-name": entry.integration, "python-modules": [entry.hook_module]} for entry in PLATFORMS
        ],
        "sensors": [
            {"integration-name": generic, "python-modules": [f"{_PKG}.sensors.flow_instance"]},
            *(
                {"integration-name": entry.integration, "python-modules": [entry.sensor_module]}
                for entry in PLATFORMS
                if entry.sensor
            ),
        ],
        "operators": [
            {
                "integration-name": generic,
                "python-modules": [f"{_PKG}.operators.{module}" for module in ("flow_instance", "trigger", "rerun")],
            },
            *(
                {"integration-name": entry.integration, "python-modules": [entry.operator_module]}
                for entry in PLATFORMS
                if entry.operator
            ),
        ],
        "triggers": [{"integration-name": generic, "python-modules": [f"{_PKG}.triggers.flow_instance"]}],
        "extra-links": [f"{_PKG}.links.FlowInstanceLink"],
        "connection-types": [entry.connection_type() for entry in PLATFORMS],
    }
