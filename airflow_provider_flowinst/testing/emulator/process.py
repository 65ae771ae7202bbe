"""The emulator as a separate process, as ``make demo`` and the full-stack tests run it."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path
from typing import IO

from airflow_provider_flowinst.testing.emulator.control import EmulatorControl
from airflow_provider_flowinst.testing.emulator.server import free_port


class EmulatorProcess(EmulatorControl):
    """``with EmulatorProcess() as emulator: emulator.url``; the process is stopped on exit, whatever happens."""

    def __init__(self, port: int = 0, *, log_path: Path | None = None, extra_args: tuple[str, ...] = ()) -> None:
        self.port = port or free_port("127.0.0.1")
        self.log_path = log_path
        self.extra_args = extra_args
        self._process: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> EmulatorProcess:
        self._log = open(self.log_path, "wb") if self.log_path else None  # noqa: SIM115 - closed in stop()
        command = [sys.executable, "-m", "airflow_provider_flowinst.testing.emulator", "--port", str(self.port)]
        self._process = subprocess.Popen(
            [*command, *self.extra_args], stdout=self._log or subprocess.DEVNULL, stderr=subprocess.STDOUT
        )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                raise RuntimeError(f"the emulator exited at start with code {self._process.returncode}")
            try:
                self.control("GET", "/_emulator/health")
                return self
            except OSError:
                time.sleep(0.1)
        self.stop()
        raise RuntimeError("the emulator did not answer within 30 s")

    def stop(self) -> None:
        if self._process is not None and self._process.poll() is None:
            self._process.terminate()
            try:
                self._process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait()
        if self._log is not None:
            self._log.close()

    def __enter__(self) -> EmulatorProcess:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
