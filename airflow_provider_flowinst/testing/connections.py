"""Airflow connections that point at a running emulator, as ``AIRFLOW_CONN_*`` environment variables."""

from __future__ import annotations

import json
from typing import Any

from airflow_provider_flowinst.testing.emulator.parts import emulator_modules


def emulator_connection_specs(url: str) -> dict[str, dict[str, Any]]:
    """conn_id -> connection, for each platform's default connection id (each emulator module gives its own)."""
    return {
        entry.default_conn_name: {"conn_type": entry.conn_type, **module.connection(url)}
        for entry, module in emulator_modules()
    }


def emulator_connections(url: str) -> dict[str, str]:
    """The environment variables that define every connection of ``emulator_connection_specs``."""
    return {
        f"AIRFLOW_CONN_{conn_id.upper()}": json.dumps(spec) for conn_id, spec in emulator_connection_specs(url).items()
    }
