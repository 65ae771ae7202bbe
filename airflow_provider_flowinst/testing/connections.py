"""Airflow connections that point at a running emulator, as ``AIRFLOW_CONN_*`` environment variables."""

from __future__ import annotations

import json
from typing import Any

from airflow_provider_flowinst.testing.emulator import credentials as creds


def emulator_connection_specs(url: str) -> dict[str, dict[str, Any]]:
    """conn_id -> connection, for each platform's default connection id."""
    return {
        "enos_batch_default": {
            "conn_type": "enos_batch",
            "host": url,
            "login": creds.ENOS_APP_KEY,
            "password": creds.ENOS_APP_SECRET,
            "extra": {
                "org_id": creds.ENOS_ORG_ID,
                "user_id": creds.ENOS_USER_ID,
                "console_url": url + "/console/batch/instances/{instance_id}",
            },
        },
        "enos_bpm_default": {
            "conn_type": "enos_bpm",
            "host": url,
            "login": creds.BPM_ACCOUNT,
            "password": creds.BPM_PASSWORD,
            "extra": {
                "app_key": creds.ENOS_APP_KEY,
                "app_secret": creds.ENOS_APP_SECRET,
                "org_id": creds.ENOS_ORG_ID,
            },
        },
        "lsf_pm_default": {
            "conn_type": "lsf_pm",
            "host": url,
            "login": creds.LSF_USER,
            "password": creds.LSF_PASSWORD,
        },
        "dataworks_default": {
            "conn_type": "dataworks",
            "login": creds.DATAWORKS_ACCESS_KEY_ID,
            "password": creds.DATAWORKS_ACCESS_KEY_SECRET,
            "extra": {
                "region_id": creds.DATAWORKS_REGION_ID,
                "endpoint": url,
                "project_id": creds.DATAWORKS_PROJECT_ID,
            },
        },
    }


def emulator_connections(url: str) -> dict[str, str]:
    """The environment variables that define every connection of ``emulator_connection_specs``."""
    return {
        f"AIRFLOW_CONN_{conn_id.upper()}": json.dumps(spec) for conn_id, spec in emulator_connection_specs(url).items()
    }
