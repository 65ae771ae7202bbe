"""EnOS BPM: process instances, read, queried, started and terminated through the EnOS API gateway."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from airflow_provider_flowinst.hooks.base import ConnectionReader, FlowPlatformHook, _mask, require_id
from airflow_provider_flowinst.platforms.enos_bpm import (
    PLATFORM,
    EnOSBPMAuth,
    EnOSBPMClient,
    EnOSBPMSettings,
    PortalVersions,
)
from airflow_provider_flowinst.platforms.enos_gateway import EnOSGatewayAuth
from airflow_provider_flowinst.registry import entry_for

ENTRY = entry_for(PLATFORM)
#: The portal versions each connection's portal was found to serve, kept for the process (the hooks of one
#: connection share them): an older portal's 404 on Log In v2.2 is met once, not at every login.
_PORTAL_VERSIONS: dict[tuple[str, str], PortalVersions] = {}


class EnOSBPMHook(FlowPlatformHook[EnOSBPMClient], entry=ENTRY):
    """Talks to EnOS BPM: every call is gateway-signed (app key and secret) and carries the bearer token of
    an Application Portal login (account and password).

    :param enos_bpm_conn_id: an ``enos_bpm`` connection: host = gateway URL, login = portal account,
        password = its password, extras ``app_key`` and ``app_secret`` (required), ``org_id`` (the
        organization to choose after logging in; may be left out when the account belongs to exactly one),
        ``timezone``, ``verify``, ``console_url``.
    """

    def __init__(self, enos_bpm_conn_id: str = ENTRY.default_conn_name) -> None:
        super().__init__(enos_bpm_conn_id)

    def build(self, reader: ConnectionReader) -> tuple[EnOSBPMClient, EnOSBPMAuth]:
        base_url = reader.base_url()
        settings = EnOSBPMSettings(base_url=base_url, console_url=reader.extra("console_url"))
        gateway = EnOSGatewayAuth(
            platform=PLATFORM,
            base_url=base_url,
            app_key=reader.required_extra("app_key"),
            app_secret=reader.required_extra("app_secret"),
        )
        org_id = reader.extra("org_id")
        auth = EnOSBPMAuth(
            gateway=gateway,
            account=reader.required("login", "the Application Portal account"),
            password=reader.required("password", "the Application Portal password"),
            org_id=None if org_id is None else str(org_id),
            on_secret=_mask,  # the gateway and user tokens, as soon as they are obtained
            versions=_PORTAL_VERSIONS.setdefault((self.conn_id, base_url), PortalVersions()),
        )
        return EnOSBPMClient(settings), auth

    def check_connection(self) -> None:
        self.perform(self.client.query_process_instances_page("inProgress", page_size=1))

    # -- the platform's own calls --------------------------------------------------------------------

    def get_process_instance(self, process_instance_id: str) -> dict[str, Any]:
        """Get Process Instance: the platform's record; FlowInstanceNotFound on code 33404."""
        return self.perform(self.client.get_process_instance(require_id(process_instance_id, PLATFORM)))

    def query_process_instances(self, process_status: str, **filters: Any) -> list[dict[str, Any]]:
        """Query Process Instance, every page.

        :param process_status: ``inProgress``, ``completed`` or ``terminated`` (the API requires one).
        :param filters: ``processName``, ``processInstanceId``, ``startedBefore``, ``startedAfter`` (epoch ms
            or aware datetimes), ``startBy`` (a user id); snake_case spellings work too. ``page_size`` and
            ``sorts`` (``[{"field": "createdTime", "order": "desc"}]``) shape the paging.
        """
        return self.perform(self.client.query_process_instances(process_status, **filters))

    def start_process_instance(
        self, process_definition_id: str, values: Mapping[str, Any] | None = None, name: str | None = None
    ) -> str:
        """Start Process Instance with the start form's ``values``; returns the new instance's id."""
        return self.perform(
            self.client.start_process_instance(
                require_id(process_definition_id, PLATFORM, "process definition id"), values, name
            )
        )

    def terminate_process_instance(self, process_instance_id: str, reason: str) -> None:
        """Terminate Process Instance (errors 33403 no permission, 33404 not found, 33500 internal)."""
        self.perform(self.client.terminate_process_instance(require_id(process_instance_id, PLATFORM), reason))
