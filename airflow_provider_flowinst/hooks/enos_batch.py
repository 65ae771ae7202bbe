"""EnOS Batch Processing (Dataflow): flow instances, "Get My Flow", trigger and cancel."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from airflow_provider_flowinst.hooks.base import ConnectionReader, FlowPlatformHook, require_id
from airflow_provider_flowinst.platforms.enos_batch import PLATFORM, EnOSBatchClient, EnOSBatchSettings
from airflow_provider_flowinst.platforms.enos_gateway import EnOSGatewayAuth
from airflow_provider_flowinst.registry import entry_for

ENTRY = entry_for(PLATFORM)


class EnOSBatchHook(FlowPlatformHook[EnOSBatchClient], entry=ENTRY):
    """Talks to EnOS Batch Processing through the EnOS API gateway (token plus per-call signature).

    :param enos_batch_conn_id: an ``enos_batch`` connection: host = gateway URL, login = appKey,
        password = appSecret, extras ``org_id`` and ``user_id`` (required), ``api_version``, ``timezone``
        (default: the zone the service reports through Get Time Zone), ``verify``, ``console_url``.
    """

    def __init__(self, enos_batch_conn_id: str = ENTRY.default_conn_name) -> None:
        super().__init__(enos_batch_conn_id)

    def build(self, reader: ConnectionReader) -> tuple[EnOSBatchClient, EnOSGatewayAuth]:
        base_url = reader.base_url()
        try:
            settings = EnOSBatchSettings(
                base_url=base_url,
                org_id=reader.required_extra("org_id"),
                user_id=reader.required_extra("user_id"),
                api_version=str(reader.extra("api_version", "v2.1")),
                # None: the deployment's zone is read from the service (Get Time Zone), once per hook.
                timezone=reader.timezone() if reader.extra("timezone") is not None else None,
                console_url=reader.extra("console_url"),
            )
        except ValueError as exc:
            raise reader.error(str(exc)) from None
        auth = EnOSGatewayAuth(
            platform=PLATFORM,
            base_url=base_url,
            app_key=reader.required("login", "the application's appKey"),
            app_secret=reader.required("password", "the application's appSecret"),
        )
        return EnOSBatchClient(settings), auth

    def check_connection(self) -> None:
        self.get_my_flows("__connection_test__")

    # -- the platform's own calls --------------------------------------------------------------------

    def get_flow_instance(self, flow_inst_id: str) -> dict[str, Any]:
        """Get Flow Instance: the platform's record (its ``graph`` still JSON text)."""
        return self.perform(self.client.get_flow_instance(require_id(flow_inst_id, PLATFORM)))

    def get_my_flows(self, expression: str | None = None) -> list[dict[str, Any]]:
        """Get My Flow: the flows whose id or name matches ``expression`` (all of the user's if None)."""
        return self.perform(self.client.get_my_flows(expression))

    def search_flow_instances(self, **filters: Any) -> list[dict[str, Any]]:
        """List Flow Instances, every page; ``filters`` are the API's own keys (type, expression, status,
        fromTriggerTime, toTriggerTime...). Mandatory keys left out are filled in (see the client)."""
        return self.perform(self.client.search_flow_instances(**filters))

    def trigger_flow(
        self, flow_id: str, trigger_time: int | None = None, parameters: Mapping[str, Any] | None = None
    ) -> str:
        """Trigger Flow; returns the new instance's id. ``trigger_time`` is epoch milliseconds."""
        return self.perform(
            self.client.trigger_flow(require_id(flow_id, PLATFORM, "flow id"), trigger_time, parameters)
        )

    def cancel_flow_instance(self, flow_inst_id: str) -> None:
        self.perform(self.client.cancel_flow_instance(require_id(flow_inst_id, PLATFORM)))

    def get_task_instance_log(self, task_inst_id: str, max_length: int | None = None) -> str:
        return self.perform(
            self.client.get_task_instance_log(require_id(task_inst_id, PLATFORM, "task instance id"), max_length)
        )
