"""IBM Spectrum LSF Process Manager, through LSF Application Center web services: flow instances."""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

from airflow_provider_flowinst.hooks.base import ConnectionReader, FlowPlatformHook, _mask, require_id
from airflow_provider_flowinst.platforms.lsf import (
    APPLICATION_CENTER_PORTS,
    PLATFORM,
    WS_PATH,
    InstancesQuery,
    LSFClient,
    LSFLogonAuth,
    LSFSettings,
)
from airflow_provider_flowinst.registry import entry_for

if TYPE_CHECKING:
    from typing_extensions import Unpack

log = logging.getLogger(__name__)

FlowInstanceIds = str | int | Iterable[str | int]


ENTRY = entry_for(PLATFORM)


class LSFProcessManagerHook(FlowPlatformHook[LSFClient], entry=ENTRY):
    """Talks to LSF Process Manager through Application Center's web services (logon token as a cookie).

    One token per (base URL, user) is shared by every hook of the process: the server may refuse a second
    logon while a token is live. ``close`` (``aclose`` in the triggerer) logs out once no other open hook of
    the process uses the token; the provider's sensors, operators and triggers close their hooks when done
    (and when killed). A hook never closed (a user's own task code) leaves no token either: the process
    logs out when it exits, normally or by an exception (not when it is SIGKILLed).

    :param lsf_pm_conn_id: an ``lsf_pm`` connection: host = Application Center URL (``https://pac:8443``; a
        bare host gets port 8080 for ``http``, 8443 for ``https``), login = user name, password = password,
        extras ``verify`` and ``timezone`` (for times that carry no GMT offset).
    """

    can_rerun_failed_nodes = True

    def __init__(self, lsf_pm_conn_id: str = ENTRY.default_conn_name) -> None:
        super().__init__(lsf_pm_conn_id)

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
        self.perform(self.client.query_page(state="Running", pagesize=1))

    # -- the platform's own calls --------------------------------------------------------------------

    def list_flow_instances(
        self, *, pagesize: int | None = None, **query: Unpack[InstancesQuery]
    ) -> list[dict[str, Any]]:
        """GET flow/instances: with ``pagesize``, the one page of up to ``pagesize`` records from ``start``
        (0-based, inferred), as the platform's call returns it; without, every page from ``start`` on.
        The filters (``InstancesQuery``) are ``id``, ``flowname``, ``username``, ``state`` and ``start``.

        ``username="all"`` lists every user's instances; ``state`` is Running, Exit, Killed, Done or
        Suspended. Nothing matching (the platform's 404) is an empty list. Key names come stripped.
        """
        return self.perform(self.client.list_flow_instances(pagesize=pagesize, **query))

    def kill_flow_instances(self, ids: FlowInstanceIds) -> str:
        """Kill the instances (``[101, 102]`` or ``"101,102"``); returns the platform's message."""
        return self.perform(self.client.kill_flow_instances(ids))

    def suspend_flow_instances(self, ids: FlowInstanceIds) -> str:
        return self.perform(self.client.suspend_flow_instances(ids))

    def resume_flow_instances(self, ids: FlowInstanceIds) -> str:
        return self.perform(self.client.resume_flow_instances(ids))

    def rerun_flow_instances(self, ids: FlowInstanceIds, variables: Mapping[str, Any] | str | None = None) -> str:
        """Rerun the instances; ``variables`` as ``{"a": 1, "b": 3}`` or ``"a=1;b=3"``."""
        return self.perform(self.client.rerun_flow_instances(ids, variables))

    def submit_flow(self, flowname: str, variables: Mapping[str, Any] | str | None = None) -> Any:
        """Start a run of ``flowname`` (``owner:name``); returns the platform's answer, decoded.

        The answer does not document the new instance's id: ``start_run`` finds it (and refuses to guess
        when two starts of the flow ran at the same moment).
        """
        return self.perform(self.client.submit_flow(require_id(flowname, PLATFORM, "flow name"), variables))


def application_center_url(reader: ConnectionReader) -> str:
    """The base URL: a bare host gets the scheme's default port (8080 http, 8443 https).

    A host written as a whole URL is taken as written (``https://pac.example.com`` means port 443, e.g.
    behind a proxy). A trailing ``/platform/ws`` (or ``/platform``) is dropped: calls add it themselves.
    """
    scheme = (reader.connection.schema or "https").strip().lower()
    url = reader.base_url(default_port=APPLICATION_CENTER_PORTS.get(scheme))
    for suffix in (WS_PATH, "/platform"):
        if url.endswith(suffix):
            return url[: -len(suffix)]
    return url
