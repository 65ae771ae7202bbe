"""What the benchmarks share: a private Airflow home, the emulator in its own process, the signed EnOS
request every CPU figure is about, CPU and memory meters, and the machine-readable result line.

Import this module before anything that imports Airflow: it points ``AIRFLOW_HOME`` at a temporary
directory (no user configuration, no database) and sets Airflow's log level (``FLOWINST_BENCH_LOG_LEVEL``,
default WARNING, so a poll's "still running" line is not printed thousands of times).
"""

from __future__ import annotations

import atexit
import contextlib
import datetime as dt
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Iterator
from importlib import metadata
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
_HOME = tempfile.mkdtemp(prefix="flowinst-bench-")
atexit.register(shutil.rmtree, _HOME, ignore_errors=True)
os.environ["AIRFLOW_HOME"] = _HOME
os.environ["AIRFLOW__CORE__LOAD_EXAMPLES"] = "False"
os.environ["AIRFLOW__LOGGING__LOGGING_LEVEL"] = os.environ.get("FLOWINST_BENCH_LOG_LEVEL", "WARNING")

import asyncio  # noqa: E402

from airflow_provider_flowinst.platforms.enos_batch import EnOSBatchClient, EnOSBatchSettings  # noqa: E402
from airflow_provider_flowinst.platforms.enos_gateway import EnOSGatewayAuth, request_signature  # noqa: E402
from airflow_provider_flowinst.protocol import HttpRequest, Token  # noqa: E402
from airflow_provider_flowinst.testing.connections import emulator_connections  # noqa: E402
from airflow_provider_flowinst.testing.emulator import credentials  # noqa: E402
from airflow_provider_flowinst.testing.emulator.process import EmulatorProcess  # noqa: E402
from airflow_provider_flowinst.transport import SyncTransport, TransportSettings  # noqa: E402

#: EnOS flow whose instances run for hours (any ``4000-<yyyyMMddHHmmss>`` exists): a wait on one never ends.
LONG_FLOW = "4000"
RESULT_PREFIX = "BENCH "


# -- the emulator -----------------------------------------------------------------------------------


@contextlib.contextmanager
def emulator(*extra_args: str) -> Iterator[EmulatorProcess]:
    """The emulator in its own process (its CPU is not the client's), emulated time = wall time, and the
    ``AIRFLOW_CONN_*`` variables of every platform's default connection pointing at it."""
    with EmulatorProcess(extra_args=("--time-scale", "1", *extra_args)) as process:
        os.environ.update(emulator_connections(process.url))
        yield process


def emulator_cpu_seconds(process: EmulatorProcess) -> float:
    """User + system CPU the emulator process has used so far (from /proc, in clock ticks)."""
    pid = process._process.pid if process._process is not None else None
    if pid is None:
        return 0.0
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def requests_seen(stats: dict[str, Any], platform_key: str) -> int:
    """API requests the emulator counted for ``platform_key`` (token and logon calls included)."""
    return sum(count for key, count in stats["requests"].items() if key.split(" ", 1)[0] == platform_key)


def long_running_ids(count: int, start: dt.datetime | None = None) -> list[str]:
    """Distinct EnOS instance ids of the long-running flow, one emulated trigger time a second apart."""
    first = start or dt.datetime(2024, 1, 1)
    return [f"{LONG_FLOW}-{first + dt.timedelta(seconds=index):%Y%m%d%H%M%S}" for index in range(count)]


# -- the signed request every CPU figure is about ---------------------------------------------------


class SignedEnOSGet:
    """EnOS "Get Flow Instance" as the hook sends it, built and signed by the provider's own pure modules.

    The floor loops send exactly this (same URL, same headers, a fresh signature per request) with nothing
    of the provider's machinery around it.
    """

    def __init__(self, base_url: str, instance_id: str) -> None:
        self.auth = EnOSGatewayAuth(
            platform="enos_batch",
            base_url=base_url,
            app_key=credentials.ENOS_APP_KEY,
            app_secret=credentials.ENOS_APP_SECRET,
        )
        client = EnOSBatchClient(
            EnOSBatchSettings(base_url=base_url, org_id=credentials.ENOS_ORG_ID, user_id=credentials.ENOS_USER_ID)
        )
        operation = client.get_flow_instance(instance_id)
        request = next(operation)
        operation.close()
        assert isinstance(request, HttpRequest)
        self.request = request
        self.url = request.full_url
        self.token: Token = SyncTransport(TransportSettings("enos_batch", self.auth)).run(self.auth.login())

    def headers(self) -> dict[str, str]:
        """The request's headers, signed now."""
        now_ms = int(time.time() * 1000)
        return {
            **self.request.headers,
            "apim-accesstoken": self.token.value,
            "apim-timestamp": str(now_ms),
            "apim-signature": request_signature(
                self.token.value, self.request.params, None, now_ms, credentials.ENOS_APP_SECRET
            ),
        }


def next_tick(interval: float) -> float:
    """Seconds to the next multiple of ``interval`` (epoch time): every paced loop polls on the same ticks."""
    return interval - (time.time() % interval) if interval > 0 else 0.0


# -- meters -----------------------------------------------------------------------------------------


def rss_kb() -> int:
    """This process's resident set size in KB (VmRSS)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError("no VmRSS in /proc/self/status")


async def cpu_per_poll(
    process: EmulatorProcess,
    platform_key: str,
    loop: Callable[[], Awaitable[None]],
    *,
    seconds: float,
    warmup: float,
    polls: Callable[[int, float], float] | None = None,
) -> tuple[float, int, float]:
    """Run ``loop`` (a coroutine that polls until cancelled) for ``warmup`` + ``seconds``; over the last
    ``seconds``: (client CPU seconds per poll, requests the emulator saw, requests a second).

    A poll is a request the emulator saw, unless ``polls(requests, wall_seconds)`` says how many polls the
    window held (many waits answered by fewer requests). CPU is ``time.process_time()`` of this process
    (every thread), so the emulator's work is never counted; requests are counted by the emulator, so a
    loop's requests are measured, not assumed.
    """
    task = asyncio.ensure_future(loop())
    try:
        await asyncio.sleep(warmup)
        before = requests_seen(process.stats(), platform_key)
        cpu0, wall0 = time.process_time(), time.perf_counter()
        await asyncio.sleep(seconds)
        cpu1, wall1 = time.process_time(), time.perf_counter()
        after = requests_seen(process.stats(), platform_key)
    finally:
        if task.done():
            task.result()  # a loop that died says why
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
    count, wall = after - before, wall1 - wall0
    if count <= 0:
        raise RuntimeError(f"the loop made no request to {platform_key} in {seconds} s")
    return (cpu1 - cpu0) / (count if polls is None else polls(count, wall)), count, count / wall


async def interleaved(
    process: EmulatorProcess,
    platform_key: str,
    loops: dict[str, Callable[[], Awaitable[None]]],
    *,
    rounds: int,
    seconds: float,
    warmup: float,
    polls: Callable[[int, float], float] | None = None,
) -> dict[str, dict[str, float]]:
    """``cpu_per_poll`` of each loop, taken in turn for ``rounds`` rounds (so a burst of load from
    elsewhere on the machine hits every loop alike); per loop the median CPU per poll in µs, its spread
    (min-max), the requests seen and the requests a second."""
    samples: dict[str, list[tuple[float, int, float]]] = {name: [] for name in loops}
    for _ in range(rounds):
        for name, loop in loops.items():
            samples[name].append(
                await cpu_per_poll(process, platform_key, loop, seconds=seconds, warmup=warmup, polls=polls)
            )
    return {
        name: {
            "cpu_us": statistics.median(cpu for cpu, _, _ in runs) * 1e6,
            "cpu_us_min": min(cpu for cpu, _, _ in runs) * 1e6,
            "cpu_us_max": max(cpu for cpu, _, _ in runs) * 1e6,
            "requests": sum(count for _, count, _ in runs),
            "per_second": statistics.median(rate for _, _, rate in runs),
        }
        for name, runs in samples.items()
    }


def print_table(rows: dict[str, dict[str, float]]) -> None:
    print(f"  {'loop':<34} {'CPU µs/poll':>15} {'(min-max)':>17} {'requests':>9} {'req/s':>8}")
    for name, row in rows.items():
        spread = f"({row['cpu_us_min']:.0f}-{row['cpu_us_max']:.0f})"
        print(f"  {name:<34} {row['cpu_us']:>15.0f} {spread:>17} {row['requests']:>9.0f} {row['per_second']:>8.1f}")


# -- results ----------------------------------------------------------------------------------------


def report(figure: str, **values: Any) -> None:
    """The machine-readable line ``run_all.py`` reads: ``BENCH {"figure": ..., ...}``."""
    print(RESULT_PREFIX + json.dumps({"figure": figure, **values}, sort_keys=True), flush=True)


def machine() -> dict[str, str]:
    """What the figures were measured on."""
    model = "unknown"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    versions = {}
    for name in ("apache-airflow", "aiohttp", "httpx", "requests", "uvloop", "apache-airflow-providers-http"):
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = "not installed"
    return {
        "date": dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "nproc": str(os.cpu_count()),
        "cpu": model,
        "python": platform.python_version(),
        "load_average": " ".join(f"{value:.2f}" for value in os.getloadavg()),
        **versions,
    }


def run_child(script: Path, *args: str, timeout: float, echo: bool = False) -> list[dict[str, Any]]:
    """Run a benchmark script in its own process (a fresh heap for memory figures); its result lines.

    With ``echo`` its other output is printed as it was."""
    done = subprocess.run(
        [sys.executable, str(script), *args], capture_output=True, text=True, timeout=timeout, check=False
    )
    if done.returncode != 0:
        raise RuntimeError(f"{script.name} {' '.join(args)} failed ({done.returncode}):\n{done.stderr[-3000:]}")
    results = []
    for line in done.stdout.splitlines():
        if line.startswith(RESULT_PREFIX):
            results.append(json.loads(line[len(RESULT_PREFIX) :]))
        elif echo:
            print(line, flush=True)
    return results
