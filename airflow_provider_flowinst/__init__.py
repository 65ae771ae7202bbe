"""Apache Airflow provider: wait on, start and look inside workflows that run on other platforms."""

from __future__ import annotations

from typing import Any

__version__ = "0.1.0"

PACKAGE_NAME = "airflow-provider-flowinst"
_PKG = "airflow_provider_flowinst"


def _field(label: str, description: str, kind: str | list[str] = "string", **schema: Any) -> dict[str, Any]:
    return {"label": label, "description": description, "schema": {"type": kind, **schema}}


_VERIFY = _field("Verify TLS", "true (default), false, or the path of a CA bundle", ["boolean", "string"], default=True)
_TIMEZONE = _field("Timezone", "IANA name for platform times that carry no offset", default="UTC")
_RETRIES = {
    "max_retries": _field("Max retries", "Retries of a transient fault (5xx, 429, reset)", "integer", default=5),
    "retry_max_wait": _field("Max retry wait (s)", "Longest wait between two retries", "number", default=60),
}
_CONSOLE = _field("Console URL", "Link to an instance; {instance_id} and {flow_id} are filled in", format="url")

#: platform key -> its integration, module names, hook class and connection form.
PLATFORMS: dict[str, dict[str, Any]] = {
    "enos_batch": {
        "integration": "EnOS Batch Processing",
        "doc": "https://github.com/EnvisionDoc/api_en/tree/master/dataflow_service",
        "module": "enos_batch",
        "hook": "EnOSBatchHook",
        "relabeling": {"host": "API gateway URL", "login": "App key", "password": "App secret"},
        "fields": {
            "org_id": _field("Organization ID", "orgId sent with every call"),
            "user_id": _field("User ID", "userId sent with every call"),
            "api_version": _field("API version", "v2.1 or v2.0", default="v2.1", enum=["v2.1", "v2.0"]),
            "timezone": _TIMEZONE,
            "console_url": _CONSOLE,
            "verify": _VERIFY,
            **_RETRIES,
        },
        "hidden": [],
    },
    "enos_bpm": {
        "integration": "EnOS BPM",
        "doc": "https://github.com/EnvisionDoc/api_en/tree/master/bpm",
        "module": "enos_bpm",
        "hook": "EnOSBPMHook",
        "relabeling": {"host": "API gateway URL", "login": "Application Portal account", "password": "Password"},
        "fields": {
            "app_key": _field("App key", "Gateway application key (appKey)"),
            "app_secret": _field("App secret", "Gateway application secret", format="password"),
            "org_id": _field("Organization ID", "Organization to act in"),
            "timezone": _TIMEZONE,
            "console_url": _CONSOLE,
            "verify": _VERIFY,
            **_RETRIES,
        },
        "hidden": [],
    },
    "lsf_pm": {
        "integration": "IBM Spectrum LSF Process Manager",
        "doc": "https://www.ibm.com/docs/en/slac/10.2.0?topic=center-web-services",
        "module": "lsf",
        "hook": "LSFProcessManagerHook",
        "relabeling": {"host": "Application Center URL", "login": "User name", "password": "Password"},
        "fields": {"timezone": _TIMEZONE, "verify": _VERIFY, **_RETRIES},
        "hidden": [],
    },
    "dataworks": {
        "integration": "Alibaba Cloud DataWorks",
        "doc": "https://www.alibabacloud.com/help/en/dataworks/developer-reference/api-dataworks-public-2024-05-18-overview",
        "module": "dataworks",
        "hook": "DataWorksHook",
        "relabeling": {"login": "AccessKey ID", "password": "AccessKey secret"},
        "fields": {
            "region_id": _field(
                "Region", "e.g. cn-hangzhou; endpoint dataworks.<region>.aliyuncs.com (some: dataworks.aliyuncs.com)"
            ),
            "endpoint": _field("Endpoint", "Overrides the region's endpoint; may carry a scheme and port"),
            "security_token": _field("STS token", "For temporary (STS) credentials", format="password"),
            "project_id": _field("Workspace ID", "Default DataWorks workspace (ProjectId)", "integer"),
            "timezone": _field("Timezone", "IANA zone of business dates (BizDate)", default="Asia/Shanghai"),
            "verify": _VERIFY,
            **_RETRIES,
        },
        "hidden": ["host", "port", "schema"],
    },
}


def get_provider_info() -> dict[str, Any]:
    """What ``airflow providers list`` and the connection form read (entry point ``apache_airflow_provider``)."""
    generic = "Flow instances (any platform)"
    return {
        "package-name": PACKAGE_NAME,
        "name": "Flow Instances",
        "description": "Wait on, start and inspect flow and process instances on EnOS Batch Processing, "
        "EnOS BPM, IBM Spectrum LSF Process Manager and Alibaba Cloud DataWorks.",
        "versions": [__version__],
        "integrations": [
            {"integration-name": generic, "external-doc-url": "https://pypi.org/project/airflow-provider-flowinst/"},
            *(
                {"integration-name": info["integration"], "external-doc-url": info["doc"], "tags": ["service"]}
                for info in PLATFORMS.values()
            ),
        ],
        "hooks": [
            {"integration-name": info["integration"], "python-modules": [f"{_PKG}.hooks.{info['module']}"]}
            for info in PLATFORMS.values()
        ],
        "sensors": [
            {"integration-name": generic, "python-modules": [f"{_PKG}.sensors.flow_instance"]},
            *(
                {"integration-name": info["integration"], "python-modules": [f"{_PKG}.sensors.{info['module']}"]}
                for info in PLATFORMS.values()
            ),
        ],
        "operators": [
            {"integration-name": generic, "python-modules": [f"{_PKG}.operators.flow_instance"]},
            {"integration-name": "EnOS Batch Processing", "python-modules": [f"{_PKG}.operators.enos_batch"]},
        ],
        "triggers": [{"integration-name": generic, "python-modules": [f"{_PKG}.triggers.flow_instance"]}],
        "extra-links": [f"{_PKG}.links.FlowInstanceLink"],
        "connection-types": [
            {
                "connection-type": key,
                "hook-class-name": f"{_PKG}.hooks.{info['module']}.{info['hook']}",
                "hook-name": info["integration"],
                "ui-field-behaviour": {
                    "hidden-fields": info["hidden"],
                    "relabeling": info["relabeling"],
                    "placeholders": {},
                },
                "conn-fields": info["fields"],
            }
            for key, info in PLATFORMS.items()
        ],
    }
