"""IBM Spectrum LSF Process Manager, through LSF Application Center web services: flow instances."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, ClassVar

from airflow_provider_flowinst.hooks.base import ConnectionReader, FlowPlatformHook, _mask, require_id
from airflow_provider_flowinst.platforms.lsf import (
    DEFAULT_PORTS,
    PLATFORM,
    WS_PATH,
    LSFClient,
    LSFLogonAuth,
    LSFSettings,
)

FlowInstanceIds = str | int | Iterable[str | int]


class LSFProcessManagerHook(FlowPlatformHook[LSFClient]):
    """Talks to LSF Process Manager through Application Center's web services (logon token as a cookie).

    One token per (base URL, user) is shared by every hook of the process: the server may refuse a second
    logon while a token is live.

    :param lsf_pm_conn_id: an ``lsf_pm`` connection: host = Application Center URL (``https://pac:8443``; a
        bare host gets port 8080 for ``http``, 8443 for ``https``), login = user name, password = password,
        extras ``verify`` and ``timezone`` (for times that carry no GMT offset).
    """

    platform: ClassVar[str] = PLATFORM
    conn_name_attr: ClassVar[str] = "lsf_pm_conn_id"
    default_conn_name: ClassVar[str] = "lsf_pm_default"
    conn_type: ClassVar[str] = "lsf_pm"
    hook_name: ClassVar[str] = "IBM Spectrum LSF Process Manager"

    def __init__(self, lsf_pm_conn_id: str = default_conn_name) -> None:
        super().__init__(lsf_pm_conn_id)

    @classmethod
    def get_ui_field_behaviour(cls) -> dict[str, Any]:
        """The connection form on Airflow before 3.2 (later ones read provider info)."""
        return {
            "hidden_fields": [],
            "relabeling": {"host": "Application Center URL", "login": "User name", "password": "Password"},
            "placeholders": {
                "host": "https://pac.example.com:8443",
                "login": "jsmith",
                "extra": '{"verify": true, "timezone": "UTC"}',
            },
        }

    def build(self, reader: ConnectionReader) -> tuple[LSFClient, LSFLogonAuth]:
        base_url = application_center_url(reader)
        settings = LSFSettings(base_url=base_url, timezone=reader.timezone())
        auth = LSFLogonAuth(
            base_url=base_url,
            user=reader.required("login", "the LSF user name"),
            password=reader.required("password", "the user's password"),
            on_secret=_mask,  # the logon token, as soon as it is obtained
        )
        return LSFClient(settings), auth

    def check_connection(self) -> None:
        # Logs on, then one cheap query (a 404 "nothing matches" is fine).
        self.run(self.client.query_page(state="Running", pagesize=1))

    # -- the platform's own calls --------------------------------------------------------------------

    def list_flow_instances(
        self,
        *,
        id: str | int | None = None,  # the API's own parameter name
        flowname: str | None = None,
        username: str | None = None,
        state: str | None = None,
        start: int | None = None,
        pagesize: int | None = None,
    ) -> list[dict[str, Any]]:
        """GET flow/instances, every page from ``start`` on in pages of ``pagesize``, as one list.

        ``username="all"`` lists every user's instances; ``state`` is Running, Exit, Killed, Done or
        Suspended. Nothing matching (the platform's 404) is an empty list. Key names come stripped.
        """
        return self.run(
            self.client.list_flow_instances(
                id=id, flowname=flowname, username=username, state=state, start=start, pagesize=pagesize
            )
        )

    def kill_flow_instances(self, ids: FlowInstanceIds) -> str:
        """Kill the instances (``[101, 102]`` or ``"101,102"``); returns the platform's message."""
        return self.run(self.client.kill_flow_instances(ids))

    def suspend_flow_instances(self, ids: FlowInstanceIds) -> str:
        return self.run(self.client.suspend_flow_instances(ids))

    def resume_flow_instances(self, ids: FlowInstanceIds) -> str:
        return self.run(self.client.resume_flow_instances(ids))

    def rerun_flow_instances(self, ids: FlowInstanceIds, variables: Mapping[str, Any] | str | None = None) -> str:
        """Rerun the instances; ``variables`` as ``{"a": 1, "b": 3}`` or ``"a=1;b=3"``."""
        return self.run(self.client.rerun_flow_instances(ids, variables))

    def submit_flow(self, flowname: str, variables: Mapping[str, Any] | str | None = None) -> Any:
        """Start a run of ``flowname`` (``owner:name``); returns the platform's answer, decoded.

        The answer does not document the new instance's id: see ``platforms.lsf.newest_instance_id``.
        """
        return self.run(self.client.submit_flow(require_id(flowname, PLATFORM, "flow name"), variables))


def application_center_url(reader: ConnectionReader) -> str:
    """The base URL: a bare host gets the scheme's default port (8080 http, 8443 https).

    A host written as a whole URL is taken as written (``https://pac.example.com`` means port 443, e.g.
    behind a proxy). A trailing ``/platform/ws`` (or ``/platform``) is dropped: calls add it themselves.
    """
    scheme = (reader.connection.schema or "https").strip().lower()
    url = reader.base_url(default_port=DEFAULT_PORTS.get(scheme))
    for suffix in (WS_PATH, "/platform"):
        if url.endswith(suffix):
            return url[: -len(suffix)]
    return url
