"""How the emulator finds its platforms: the registry names one emulator module per platform
(``testing/emulator/<module>.py``); each offers ``mount`` and ``connection``, and what ``mount`` returns is a
``PlatformEmulator``. Adding a platform adds its module and nothing here."""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any, Protocol, cast

from aiohttp import web

from airflow_provider_flowinst.registry import PLATFORMS, Platform

if TYPE_CHECKING:
    from airflow_provider_flowinst.testing.emulator.app import Emulator


class PlatformEmulator(Protocol):
    """One emulated platform (or a piece several share, as the EnOS API gateway) inside the emulator."""

    @property
    def platform(self) -> str:
        """The key faults are injected under (``enos_gateway`` for the gateway's token calls)."""
        ...

    def routes(self) -> list[web.RouteDef]: ...

    def serves(self, request: web.Request) -> bool:
        """Whether ``request`` is one of its calls (the fault middleware asks, to match faults by platform)."""
        ...

    def expire_tokens(self) -> None:
        """Every token it handed out stops working (``POST /_emulator/expire_tokens``)."""
        ...


class EmulatorModule(Protocol):
    """What each ``testing/emulator/<module>.py`` offers at module level."""

    def mount(self, emulator: Emulator) -> PlatformEmulator:
        """The platform's emulator, on the emulator's shared state (and gateway, if it signs as EnOS does)."""
        ...

    def connection(self, url: str) -> dict[str, Any]:
        """The default connection to an emulator at ``url`` (every field but conn_type)."""
        ...


def emulator_module(entry: Platform) -> EmulatorModule:
    return cast(EmulatorModule, importlib.import_module(entry.emulator_module))


def emulator_modules() -> list[tuple[Platform, EmulatorModule]]:
    """Every registry entry with its emulator module, in the registry's order."""
    return [(entry, emulator_module(entry)) for entry in PLATFORMS]
