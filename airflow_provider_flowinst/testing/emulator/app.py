"""The emulator's web application: every platform's routes plus a small control API under /_emulator."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from airflow_provider_flowinst.testing.emulator.enos_gateway import Gateway
from airflow_provider_flowinst.testing.emulator.faults import after_action_middleware
from airflow_provider_flowinst.testing.emulator.parts import PlatformEmulator, emulator_modules
from airflow_provider_flowinst.testing.emulator.state import EmulatorState


class Emulator:
    """All platforms, sharing one clock, one fault list and one set of counters.

    Its platforms are the registry's, each mounted from its emulator module; ``emulator.lsf`` (the module's
    name) reaches one platform's emulator, as tests do to look at its state.
    """

    def __init__(self, *, time_scale: float = 1.0, token_lifetime: int = 7200) -> None:
        self.state = EmulatorState(time_scale=time_scale, token_lifetime=token_lifetime)
        #: The EnOS API gateway: the token service and signature check both EnOS platforms sit behind.
        self.gateway = Gateway(self.state)
        mounted = [(entry, module.mount(self)) for entry, module in emulator_modules()]
        #: platform key -> its emulator.
        self.platforms: dict[str, PlatformEmulator] = {entry.key: part for entry, part in mounted}
        self._by_module: dict[str, PlatformEmulator] = {entry.module: part for entry, part in mounted}
        #: Everything that serves calls: the gateway first, then each platform.
        self.parts: list[PlatformEmulator] = [self.gateway, *self.platforms.values()]

    def __getattr__(self, name: str) -> Any:
        try:
            return self.__dict__["_by_module"][name]
        except KeyError:
            raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}") from None

    def platform_of(self, request: web.Request) -> str | None:
        """The key of the platform a request calls (None for the control API)."""
        return next((part.platform for part in self.parts if part.serves(request)), None)

    def app(self) -> web.Application:
        app = web.Application(middlewares=[after_action_middleware(self.state, self.platform_of)])
        for part in self.parts:
            app.add_routes(part.routes())
        app.add_routes(
            [
                web.get("/_emulator/health", self.health),
                web.get("/_emulator/stats", self.stats),
                web.post("/_emulator/faults", self.add_fault),
                web.post("/_emulator/reset", self.reset),
                web.post("/_emulator/expire_tokens", self.expire_tokens),
                web.post("/_emulator/clock", self.advance_clock),
            ]
        )
        return app

    async def health(self, request: web.Request) -> web.Response:
        return web.json_response({"ok": True})

    async def stats(self, request: web.Request) -> web.Response:
        return web.json_response(self.state.stats())

    async def add_fault(self, request: web.Request) -> web.Response:
        specs = await request.json()
        try:
            for spec in specs if isinstance(specs, list) else [specs]:
                self.state.add_fault(spec)
        except ValueError as exc:
            return web.json_response({"error": str(exc)}, status=400)
        return web.json_response({"faults_pending": len(self.state.faults)})

    async def reset(self, request: web.Request) -> web.Response:
        self.state.reset_counters()
        return web.json_response({"ok": True})

    async def advance_clock(self, request: web.Request) -> web.Response:
        """``{"advance": seconds}``: runs due to end within that time end now. Gateway and BPM tokens expire in
        wall time and stay valid; an LSF token counts as idle for the jump (60 emulated minutes drop it)."""
        spec = await request.json()
        try:
            now = self.state.advance(float(spec.get("advance", 0)))
        except (TypeError, ValueError) as exc:
            return web.json_response({"error": str(exc)}, status=400)
        return web.json_response({"now": now})

    async def expire_tokens(self, request: web.Request) -> web.Response:
        """Every token handed out so far stops working (DataWorks signs each request and has none)."""
        for part in self.parts:
            part.expire_tokens()
        return web.json_response({"ok": True})
