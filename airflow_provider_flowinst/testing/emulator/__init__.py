"""A local emulator of every supported platform, checking authentication as each platform does."""

from airflow_provider_flowinst.testing.emulator.app import Emulator
from airflow_provider_flowinst.testing.emulator.server import EmulatorServer

__all__ = ["Emulator", "EmulatorServer"]
