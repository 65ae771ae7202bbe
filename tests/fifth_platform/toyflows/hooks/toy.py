"""The Toy Flows hook: reads its connection, names its client."""

from __future__ import annotations

from airflow_provider_flowinst.hooks.base import ConnectionReader, FlowPlatformHook
from airflow_provider_flowinst.registry import entry_for
from toyflows.platforms.toy import PLATFORM, ToyClient, ToyKeyAuth

ENTRY = entry_for(PLATFORM)


class ToyFlowsHook(FlowPlatformHook[ToyClient], entry=ENTRY):
    def __init__(self, toy_flows_conn_id: str = ENTRY.default_conn_name) -> None:
        super().__init__(toy_flows_conn_id)

    def build(self, reader: ConnectionReader) -> tuple[ToyClient, ToyKeyAuth]:
        return ToyClient(reader.base_url()), ToyKeyAuth(reader.required("password", "the API key"))

    def check_connection(self) -> None:
        self.get_instance("0")
