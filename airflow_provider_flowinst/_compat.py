"""Imports that moved between Airflow 3.x releases, in one place."""

from __future__ import annotations

__all__ = [
    "AirflowException",
    "AirflowFailException",
    "AirflowSensorTimeout",
    "AirflowSkipException",
    "AirflowTaskTimeout",
    "TaskDeferralTimeout",
]

try:  # Airflow 3.2+: task-authoring exceptions live in the task SDK
    from airflow.sdk.exceptions import (
        AirflowException,
        AirflowFailException,
        AirflowSensorTimeout,
        AirflowSkipException,
        AirflowTaskTimeout,
        TaskDeferralTimeout,
    )
except ImportError:  # pragma: no cover - Airflow 3.1: the same names, from airflow.exceptions
    import airflow.exceptions

    globals().update({name: getattr(airflow.exceptions, name) for name in __all__})
