"""Emulator capacity: signed EnOS "Get Flow Instance" requests a second it serves to a concurrent client.

Measured first, so that no other figure is really a figure of the emulator. A concurrent aiohttp client
(one session, ``--concurrency`` requests in flight, a fresh signature on each) runs against the emulator
in its own process for ``--seconds``; the emulator's own CPU per request (from /proc) gives the rate one
core could serve, whatever the client and the rest of the machine take. Bounded: at most
``--max-requests`` requests, loopback only.

    .venv/bin/python benchmarks/emulator_capacity.py
"""

from __future__ import annotations

import argparse
import asyncio
import time

import _common
import aiohttp
import yarl


async def hammer(
    get: _common.SignedEnOSGet, *, concurrency: int, seconds: float, max_requests: int
) -> tuple[int, float]:
    """Requests sent (all answered 200) and the wall seconds they took."""
    url = yarl.URL(get.url, encoded=True)
    sent = 0
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=concurrency)) as session:

        async def worker(deadline: float) -> None:
            nonlocal sent
            while time.perf_counter() < deadline and sent < max_requests:
                sent += 1
                async with session.get(url, headers=get.headers()) as response:
                    body = await response.read()
                    if response.status != 200 or b'"code": 0' not in body:
                        raise RuntimeError(f"the emulator answered {response.status}: {body[:200]!r}")

        started = time.perf_counter()
        await asyncio.gather(*(worker(started + seconds) for _ in range(concurrency)))
        return sent, time.perf_counter() - started


def measure(concurrency: int, seconds: float, max_requests: int) -> dict[str, float]:
    with _common.emulator() as emulator:
        get = _common.SignedEnOSGet(emulator.url, _common.long_running_ids(1)[0])
        asyncio.run(hammer(get, concurrency=concurrency, seconds=0.5, max_requests=max_requests))  # warm up
        cpu0 = _common.emulator_cpu_seconds(emulator)
        sent, wall = asyncio.run(hammer(get, concurrency=concurrency, seconds=seconds, max_requests=max_requests))
        cpu = _common.emulator_cpu_seconds(emulator) - cpu0
    return {"rps": sent / wall, "cpu_us": cpu / sent * 1e6, "core_rps": sent / cpu if cpu else 0.0, "requests": sent}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--seconds", type=float, default=4.0)
    parser.add_argument("--max-requests", type=int, default=60_000)
    args = parser.parse_args()
    row = measure(args.concurrency, args.seconds, args.max_requests)
    print(f"emulator capacity: signed EnOS Get Flow Instance, {args.concurrency} in flight, {args.seconds:.0f} s")
    print(
        f"  {row['rps']:.0f} requests/s served ({row['requests']:.0f} requests, all answered); emulator CPU "
        f"{row['cpu_us']:.0f} µs/request = {row['core_rps']:.0f} requests/s per core"
    )
    _common.report(
        "emulator_capacity",
        emulator_rps=round(row["rps"]),
        emulator_cpu_us_per_request=round(row["cpu_us"]),
        emulator_core_rps=round(row["core_rps"]),
        concurrency=args.concurrency,
    )


if __name__ == "__main__":
    main()
