"""The async HTTP client, chosen by measurement: aiohttp against httpx on the same signed request loop.

- CPU per request: one client each (``aiohttp.ClientSession``, ``httpx.AsyncClient``), the same signed EnOS
  "Get Flow Instance" to the same emulator URL, sign + GET + read the body; paced (every ``--interval``
  seconds, as polls come) and back to back; taken in turn for ``--rounds`` rounds, median kept. Requests
  are counted by the emulator, CPU is this process's.
- RSS per open client: in a fresh process per library, ``--clients`` clients are opened and each makes one
  request (so each holds its pooled connection): (VmRSS after - VmRSS before) / clients. A triggerer that
  gave each wait its own client (as HttpSensorTrigger gives each poll its own session) pays this per wait.

    .venv/bin/python benchmarks/http_client_choice.py
"""

from __future__ import annotations

import argparse
import asyncio
import gc
from collections.abc import Awaitable, Callable
from pathlib import Path

import _common
import aiohttp
import httpx
import yarl


def aiohttp_loop(get: _common.SignedEnOSGet, interval: float | None) -> Callable[[], Awaitable[None]]:
    url = yarl.URL(get.url, encoded=True)

    async def loop() -> None:
        async with aiohttp.ClientSession() as session:
            while True:
                if interval is not None:
                    await asyncio.sleep(_common.next_tick(interval))
                async with session.get(url, headers=get.headers()) as response:
                    await response.read()
                    response.raise_for_status()

    return loop


def httpx_loop(get: _common.SignedEnOSGet, interval: float | None) -> Callable[[], Awaitable[None]]:
    async def loop() -> None:
        async with httpx.AsyncClient() as client:
            while True:
                if interval is not None:
                    await asyncio.sleep(_common.next_tick(interval))
                response = await client.get(get.url, headers=get.headers())
                response.raise_for_status()

    return loop


async def rss_per_client(library: str, clients: int, url: str) -> None:
    """Child: open ``clients`` clients of ``library``, one request each, and report the RSS they added."""
    get = _common.SignedEnOSGet(url, _common.long_running_ids(1)[0])

    async def open_aiohttp() -> aiohttp.ClientSession:
        session = aiohttp.ClientSession()
        async with session.get(yarl.URL(get.url, encoded=True), headers=get.headers()) as response:
            await response.read()
        return session

    async def open_httpx() -> httpx.AsyncClient:
        client = httpx.AsyncClient()
        (await client.get(get.url, headers=get.headers())).raise_for_status()
        return client

    opener = open_aiohttp if library == "aiohttp" else open_httpx
    first = await opener()  # imports and first-use caches are not per client
    gc.collect()
    before = _common.rss_kb()
    opened = [await opener() for _ in range(clients)]
    gc.collect()
    after = _common.rss_kb()
    for client in [first, *opened]:
        await (client.close() if isinstance(client, aiohttp.ClientSession) else client.aclose())
    _common.report("rss_per_client", library=library, clients=clients, rss_kb_per_client=(after - before) / clients)


async def measure(args: argparse.Namespace) -> None:
    with _common.emulator() as emulator:
        get = _common.SignedEnOSGet(emulator.url, _common.long_running_ids(1)[0])
        paced = await _common.interleaved(
            emulator,
            "enos_batch",
            {"aiohttp": aiohttp_loop(get, args.interval), "httpx": httpx_loop(get, args.interval)},
            rounds=args.rounds,
            seconds=args.seconds,
            warmup=0.5,
        )
        tight = await _common.interleaved(
            emulator,
            "enos_batch",
            {"aiohttp": aiohttp_loop(get, None), "httpx": httpx_loop(get, None)},
            rounds=args.rounds,
            seconds=1.0,
            warmup=0.3,
        )
        rss = {}
        for library in ("aiohttp", "httpx"):
            (row,) = _common.run_child(
                Path(__file__), "--child", library, "--clients", str(args.clients), "--url", emulator.url, timeout=120
            )
            rss[library] = row["rss_kb_per_client"]
    print(f"aiohttp {aiohttp.__version__} vs httpx {httpx.__version__}, same signed EnOS request:")
    print(f"  {'':<8} {f'CPU µs/request, paced {args.interval} s':>32} {'back to back':>14} {'RSS KB/open client':>20}")
    for library in ("aiohttp", "httpx"):
        print(
            f"  {library:<8} {paced[library]['cpu_us']:>32.0f} {tight[library]['cpu_us']:>14.0f} {rss[library]:>20.1f}"
        )
    _common.report(
        "http_client_choice",
        aiohttp_cpu_us=round(paced["aiohttp"]["cpu_us"]),
        httpx_cpu_us=round(paced["httpx"]["cpu_us"]),
        aiohttp_cpu_us_back_to_back=round(tight["aiohttp"]["cpu_us"]),
        httpx_cpu_us_back_to_back=round(tight["httpx"]["cpu_us"]),
        aiohttp_rss_kb_per_client=round(rss["aiohttp"], 1),
        httpx_rss_kb_per_client=round(rss["httpx"], 1),
        interval=args.interval,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--interval", type=float, default=0.1, help="seconds between paced requests")
    parser.add_argument("--seconds", type=float, default=1.5, help="measured seconds per client and round")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--clients", type=int, default=100, help="clients opened for the RSS figure")
    parser.add_argument("--child", choices=("aiohttp", "httpx"), help=argparse.SUPPRESS)
    parser.add_argument("--url", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        asyncio.run(rss_per_client(args.child, args.clients, args.url))
    else:
        asyncio.run(measure(args))


if __name__ == "__main__":
    main()
