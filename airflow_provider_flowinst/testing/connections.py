"""Airflow connections that point at a running emulator, as ``AIRFLOW_CONN_*`` environment variables."""

from __future__ import annotations

import json
from typing import Any

from airflow_provider_flowinst.testing.emulator.enos_batch import ORG_ID, USER_ID
from airflow_provider_flowinst.testing.emulator.enos_gateway import DEFAULT_APPS

EMULATOR_APP_KEY, EMULATOR_APP_SECRET = next(iter(DEFAULT_APPS.items()))


def emulator_connection_specs(url: str) -> dict[str, dict[str, Any]]:
    """conn_id -> connection, for each platform's default connection id."""
    return {
        "enos_batch_default": {
            "conn_type": "enos_batch",
            "host": url,
            "login": EMULATOR_APP_KEY,
            "password": EMULATOR_APP_SECRET,
            "extra": {
                "org_id": ORG_ID,
                "user_id": USER_ID,
                "console_url": url + "/console/batch/instances/{instance_id}",
            },
        },
    }


def emulator_connections(url: str) -> dict[str, str]:
    """The environment variables that define every connection of ``emulator_connection_specs``."""
    return {
        f"AIRFLOW_CONN_{conn_id.upper()}": json.dumps(spec) for conn_id, spec in emulator_connection_specs(url).items()
    }
