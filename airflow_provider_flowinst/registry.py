"""One entry per platform: its key, names, hook and connection form. Provider info, hook lookup, error titles,
hook attributes, the connection form and the emulator all read it, so adding a platform is one entry here.

Import-light on purpose (no Airflow, no platform module): Airflow reads provider info at start.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

PACKAGE = "airflow_provider_flowinst"

FieldSpec = dict[str, Any]


def form_field(label: str, description: str, kind: str | list[str] = "string", **schema: Any) -> FieldSpec:
    """One extra of the connection form, in provider info's ``conn-fields`` shape."""
    return {"label": label, "description": description, "schema": {"type": kind, **schema}}


VERIFY = form_field(
    "Verify TLS", "true (default), false, or the path of a CA bundle", ["boolean", "string"], default=True
)
TIMEZONE = form_field("Timezone", "IANA name for platform times that carry no offset", default="UTC")
RETRIES = {
    "max_retries": form_field("Max retries", "Retries of a transient fault (5xx, 429, reset)", "integer", default=5),
    "retry_max_wait": form_field("Max retry wait (s)", "Longest wait between two retries", "number", default=60),
}
CONSOLE = form_field("Console URL", "Link to an instance; {instance_id} and {flow_id} are filled in", format="url")


@dataclass(frozen=True, eq=False)
class Platform:
    """A platform's identity. ``key`` is also its conn_type and the prefix of its conn id parameter and
    default conn id; ``module`` names its files: ``platforms/``, ``hooks/`` and ``testing/emulator/<module>.py``
    (and ``sensors/`` or ``operators/<module>.py`` when ``sensor`` / ``operator`` say it has one)."""

    key: str
    #: How errors name it ("LSF Process Manager: ... failed: ...").
    title: str
    #: Provider info's integration name, and the hook's ``hook_name`` (the connection type's name in the UI).
    integration: str
    doc_url: str
    module: str
    hook_class_name: str
    relabeling: dict[str, str]
    placeholders: dict[str, str]
    conn_fields: dict[str, FieldSpec]
    hidden_fields: tuple[str, ...] = ()
    sensor: bool = False
    operator: bool = False
    #: The package holding its modules (``<package>.platforms.<module>``, ``.hooks.``, ``.testing.emulator.``):
    #: this provider's for the built-in platforms, a third party's own for one registered by entry point.
    package: str = PACKAGE

    @property
    def conn_type(self) -> str:
        return self.key

    @property
    def conn_name_attr(self) -> str:
        return f"{self.key}_conn_id"

    @property
    def default_conn_name(self) -> str:
        return f"{self.key}_default"

    @property
    def hook_module(self) -> str:
        return f"{self.package}.hooks.{self.module}"

    @property
    def sensor_module(self) -> str:
        return f"{self.package}.sensors.{self.module}"

    @property
    def operator_module(self) -> str:
        return f"{self.package}.operators.{self.module}"

    @property
    def hook_class_path(self) -> str:
        return f"{self.hook_module}.{self.hook_class_name}"

    @property
    def emulator_module(self) -> str:
        return f"{self.package}.testing.emulator.{self.module}"

    def ui_field_behaviour(self) -> dict[str, Any]:
        """The connection form as ``get_ui_field_behaviour`` gives it (Airflow before 3.2)."""
        return {
            "hidden_fields": list(self.hidden_fields),
            "relabeling": dict(self.relabeling),
            "placeholders": dict(self.placeholders),
        }

    def connection_type(self) -> dict[str, Any]:
        """The entry of provider info's ``connection-types`` (Airflow 3.2 and later build the form from it)."""
        return {
            "connection-type": self.conn_type,
            "hook-class-name": self.hook_class_path,
            "hook-name": self.integration,
            "ui-field-behaviour": {
                "hidden-fields": list(self.hidden_fields),
                "relabeling": dict(self.relabeling),
                "placeholders": dict(self.placeholders),
            },
            "conn-fields": dict(self.conn_fields),
        }


ENOS_GATEWAY_HOST = "https://apim-gateway.example.com"

BUILT_IN: tuple[Platform, ...] = (
    Platform(
        key="enos_batch",
        title="EnOS Batch Processing",
        integration="EnOS Batch Processing",
        doc_url="https://github.com/EnvisionDoc/api_en/tree/master/dataflow_service",
        module="enos_batch",
        hook_class_name="EnOSBatchHook",
        relabeling={"host": "API gateway URL", "login": "App key", "password": "App secret"},
        placeholders={
            "host": ENOS_GATEWAY_HOST,
            "extra": '{"org_id": "o15...", "user_id": "u15...", "api_version": "v2.1"}',
        },
        conn_fields={
            "org_id": form_field("Organization ID", "orgId sent with every call"),
            "user_id": form_field("User ID", "userId sent with every call"),
            "api_version": form_field("API version", "v2.1 or v2.0", default="v2.1", enum=["v2.1", "v2.0"]),
            "timezone": TIMEZONE,
            "console_url": CONSOLE,
            "verify": VERIFY,
            **RETRIES,
        },
        sensor=True,
        operator=True,
    ),
    Platform(
        key="enos_bpm",
        title="EnOS BPM",
        integration="EnOS BPM",
        doc_url="https://github.com/EnvisionDoc/api_en/tree/master/bpm",
        module="enos_bpm",
        hook_class_name="EnOSBPMHook",
        relabeling={"host": "API gateway URL", "login": "Application Portal account", "password": "Password"},
        placeholders={
            "host": ENOS_GATEWAY_HOST,
            "extra": '{"app_key": "...", "app_secret": "...", "org_id": "o15...", "timezone": "UTC"}',
        },
        conn_fields={
            "app_key": form_field("App key", "Gateway application key (appKey)"),
            "app_secret": form_field("App secret", "Gateway application secret", format="password"),
            "org_id": form_field("Organization ID", "Organization to act in"),
            "timezone": TIMEZONE,
            "console_url": CONSOLE,
            "verify": VERIFY,
            **RETRIES,
        },
        sensor=True,
    ),
    Platform(
        key="lsf_pm",
        title="LSF Process Manager",
        integration="IBM Spectrum LSF Process Manager",
        doc_url="https://www.ibm.com/docs/en/slac/10.2.0?topic=center-web-services",
        module="lsf",
        hook_class_name="LSFProcessManagerHook",
        relabeling={"host": "Application Center URL", "login": "User name", "password": "Password"},
        placeholders={
            "host": "https://pac.example.com:8443",
            "login": "jsmith",
            "extra": '{"verify": true, "timezone": "UTC"}',
        },
        conn_fields={"timezone": TIMEZONE, "verify": VERIFY, **RETRIES},
        sensor=True,
    ),
    Platform(
        key="dataworks",
        title="DataWorks",
        integration="Alibaba Cloud DataWorks",
        doc_url="https://www.alibabacloud.com/help/en/dataworks/developer-reference/api-dataworks-public-2024-05-18-overview",
        module="dataworks",
        hook_class_name="DataWorksHook",
        relabeling={"login": "AccessKey ID", "password": "AccessKey secret"},
        placeholders={"login": "LTAI5t...", "extra": '{"region_id": "cn-hangzhou", "project_id": 100}'},
        conn_fields={
            "region_id": form_field(
                "Region", "e.g. cn-hangzhou; endpoint dataworks.<region>.aliyuncs.com (some: dataworks.aliyuncs.com)"
            ),
            "endpoint": form_field("Endpoint", "Overrides the region's endpoint; may carry a scheme and port"),
            "security_token": form_field("STS token", "For temporary (STS) credentials", format="password"),
            "project_id": form_field("Workspace ID", "Default DataWorks workspace (ProjectId)", "integer"),
            "timezone": form_field("Timezone", "IANA zone of business dates (BizDate)", default="Asia/Shanghai"),
            "verify": VERIFY,
            **RETRIES,
        },
        hidden_fields=("host", "port", "schema"),
        sensor=True,
    ),
)

#: The entry point group a package registers a platform of its own under: each entry point names a
#: ``Platform`` whose ``package`` holds its platform, hook and emulator modules (docs/architecture.md).
ENTRY_POINT_GROUP = "airflow_provider_flowinst.platforms"


def registered_platforms() -> tuple[Platform, ...]:
    """The platforms other packages register under ``ENTRY_POINT_GROUP``, in name order; a key taken twice is
    refused, naming both."""
    from importlib.metadata import entry_points

    found: list[Platform] = []
    keys = {entry.key for entry in BUILT_IN}
    for point in sorted(entry_points(group=ENTRY_POINT_GROUP), key=lambda point: point.name):
        entry = point.load()
        if not isinstance(entry, Platform):
            raise TypeError(
                f"entry point {point.name!r} ({point.value}) names a {type(entry).__name__}, not a Platform"
            )
        if entry.key in keys:
            raise ValueError(f"entry point {point.name!r} ({point.value}) registers platform {entry.key!r} again")
        keys.add(entry.key)
        found.append(entry)
    return tuple(found)


#: Every platform: the four built in, then those registered by other packages.
PLATFORMS: tuple[Platform, ...] = BUILT_IN + registered_platforms()
BY_KEY: dict[str, Platform] = {entry.key: entry for entry in PLATFORMS}


def entry_for(key: str) -> Platform:
    """The entry of platform ``key`` (KeyError naming the known keys otherwise)."""
    try:
        return BY_KEY[key]
    except KeyError:
        raise KeyError(f"no platform {key!r}; known: {', '.join(BY_KEY)}") from None
