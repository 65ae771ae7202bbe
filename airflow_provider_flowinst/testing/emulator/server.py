"""Run the emulator in a background thread (tests, benchmarks) or in the foreground (the CLI)."""

from __future__ import annotations

import asyncio
import socket
import ssl
import threading
from typing import Any

from aiohttp import web

from airflow_provider_flowinst.testing.emulator.app import Emulator
from airflow_provider_flowinst.testing.emulator.control import EmulatorControl


class EmulatorServer(EmulatorControl):
    """``with EmulatorServer() as server: server.url`` serves every platform on a free loopback port.

    With ``ssl_context`` it serves HTTPS (TLS tests: a self-signed certificate, verification on and off).
    """

    def __init__(
        self, host: str = "127.0.0.1", port: int = 0, *, ssl_context: ssl.SSLContext | None = None, **options: Any
    ) -> None:
        self.host = host
        self.port = port or free_port(host)
        self.ssl_context = ssl_context
        self.emulator = Emulator(**options)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()
        self._runner: web.AppRunner | None = None

    @property
    def url(self) -> str:
        return f"{'https' if self.ssl_context else 'http'}://{self.host}:{self.port}"

    def start(self) -> EmulatorServer:
        self._thread = threading.Thread(target=self._serve, name="flowinst-emulator", daemon=True)
        self._thread.start()
        if not self._ready.wait(timeout=30):
            raise RuntimeError("the emulator did not start within 30 s")
        return self

    def _serve(self) -> None:
        self._loop = asyncio.new_event_loop()
        asyncio.set_event_loop(self._loop)
        self._runner = web.AppRunner(self.emulator.app(), access_log=None)
        self._loop.run_until_complete(self._runner.setup())
        site = web.TCPSite(self._runner, self.host, self.port, reuse_address=True, ssl_context=self.ssl_context)
        self._loop.run_until_complete(site.start())
        self._ready.set()
        self._loop.run_forever()
        self._loop.run_until_complete(self._runner.cleanup())
        self._loop.close()

    def stop(self) -> None:
        if self._loop is not None and self._thread is not None:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(timeout=30)

    def __enter__(self) -> EmulatorServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def free_port(host: str) -> int:
    with socket.socket() as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


async def serve_forever(host: str, port: int, **options: Any) -> None:
    runner = web.AppRunner(Emulator(**options).app(), access_log=None)
    await runner.setup()
    await web.TCPSite(runner, host, port, reuse_address=True).start()
    print(f"flowinst emulator listening on http://{host}:{port}", flush=True)
    try:
        await asyncio.Event().wait()
    finally:
        await runner.cleanup()
