"""Toy Flows: a fifth platform from another package, registered through the entry point group
``airflow_provider_flowinst.platforms`` (see ``../toyflows-0.1.dist-info/entry_points.txt``). Its platform,
hook and emulator modules live here; nothing in airflow_provider_flowinst names it."""

from __future__ import annotations

from airflow_provider_flowinst.registry import VERIFY, Platform

PLATFORM_ENTRY = Platform(
    key="toy_flows",
    title="Toy Flows",
    integration="Toy Flows",
    doc_url="https://toy.example/api",
    module="toy",
    hook_class_name="ToyFlowsHook",
    relabeling={"host": "API URL", "password": "API key"},
    placeholders={"host": "https://toy.example"},
    conn_fields={"verify": VERIFY},
    hidden_fields=("login", "port", "schema"),
    package="toyflows",
)
