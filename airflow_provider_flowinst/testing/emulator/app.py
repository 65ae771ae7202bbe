"""The emulator's web application: every platform's routes plus a small control API under /_emulator."""

from __future__ import annotations

from typing import Protocol

from aiohttp import web

from airflow_provider_flowinst.testing.emulator.dataworks import DataWorksEmulator
from airflow_provider_flowinst.testing.emulator.enos_batch import EnOSBatchEmulator
from airflow_provider_flowinst.testing.emulator.enos_bpm import EnOSBPMEmulator
from airflow_provider_flowinst.testing.emulator.enos_gateway import Gateway
from airflow_provider_flowinst.testing.emulator.faults import after_action_middleware
from airflow_provider_flowinst.testing.emulator.lsf import LSFEmulator
from airflow_provider_flowinst.testing.emulator.state import EmulatorState


class PlatformEmulator(Protocol):
    def routes(self) -> list[web.RouteDef]: ...


class Emulator:
    """All platforms, sharing one clock, one fault list and one set of counters."""

    def __init__(self, *, time_scale: float = 1.0, token_lifetime: int = 7200) -> None:
        self.state = EmulatorState(time_scale=time_scale, token_lifetime=token_lifetime)
        self.gateway = Gateway(self.state)
        self.enos_batch = EnOSBatchEmulator(self.state, self.gateway)
        self.enos_bpm = EnOSBPMEmulator(self.state, self.gateway)
        self.lsf = LSFEmulator(self.state)
        self.dataworks = DataWorksEmulator(self.state)
        #: Every platform module; each offers ``routes()``.
        self.platforms: list[PlatformEmulator] = [self.enos_batch, self.enos_bpm, self.lsf, self.dataworks]

    def app(self) -> web.Application:
        app = web.Application(middlewares=[after_action_middleware(self.state)])
        app.add_routes(self.gateway.routes())
        for platform in self.platforms:
            app.add_routes(platform.routes())
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
        self.gateway.expire_all()
        self.enos_bpm.sessions.clear()
        self.lsf.expire_all()
        return web.json_response({"ok": True})
