"""CPU per poll: FlowInstanceTrigger's poll path against a bare aiohttp loop making the same signed request.

One wait on an EnOS instance that runs for hours (flow 4000), the emulator in its own process. In one run,
taken in turn for ``--rounds`` rounds (median kept), each loop polls on the same ticks (every
``--interval`` seconds, aligned as the triggers align them) for ``--seconds``:

- floor: one ``aiohttp.ClientSession``; per tick, sign (the provider's own ``request_signature``), GET,
  read the body. Nothing else.
- hook: ``hook.aget_instance(id, include_graph=False)`` (what a poll reads while the instance runs).
- trigger: ``FlowInstanceTrigger(poke_interval=interval).run()`` as the triggerer drives it.

CPU is this process's ``time.process_time()``; requests are counted by the emulator (so the trigger's
requests are measured whatever its poller does). Polls are paced rather than back to back because a loop
that sleeps between requests pays for cold caches (about 2x the CPU of a tight loop here) and the trigger
always sleeps between polls; the back-to-back figures of the floor and the hook are printed for reference.

    .venv/bin/python benchmarks/poll_cpu_vs_floor.py
    .venv/bin/python benchmarks/poll_cpu_vs_floor.py --profile 2000   # where a poll's CPU goes (cProfile)
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import pstats
import time
from collections.abc import Awaitable, Callable

import _common
import aiohttp
import yarl

from airflow_provider_flowinst.hooks import aget_hook
from airflow_provider_flowinst.triggers.flow_instance import FlowInstanceTrigger

CONN_ID = "enos_batch_default"


def floor_loop(get: _common.SignedEnOSGet, interval: float | None) -> Callable[[], Awaitable[None]]:
    """Sign, GET, read: the cost of the HTTP request itself."""
    url = yarl.URL(get.url, encoded=True)

    async def loop() -> None:
        async with aiohttp.ClientSession() as session:
            while True:
                if interval is not None:
                    await asyncio.sleep(_common.next_tick(interval))
                async with session.get(url, headers=get.headers()) as response:
                    await response.read()
                    if response.status != 200:
                        raise RuntimeError(f"the emulator answered {response.status}")

    return loop


def hook_loop(instance_id: str, interval: float | None) -> Callable[[], Awaitable[None]]:
    async def loop() -> None:
        hook = await aget_hook(CONN_ID)
        while True:
            if interval is not None:
                await asyncio.sleep(_common.next_tick(interval))
            await hook.aget_instance(instance_id, include_graph=False)

    return loop


def trigger_loop(instance_id: str, interval: float) -> Callable[[], Awaitable[None]]:
    async def loop() -> None:
        trigger = FlowInstanceTrigger(conn_id=CONN_ID, instance_id=instance_id, poke_interval=interval)
        async for event in trigger.run():
            raise RuntimeError(f"the wait ended, but the instance runs for hours: {event.payload}")

    return loop


async def profile(polls: int) -> None:
    """``polls`` paced reads through the hook under cProfile (CPU time): calls a poll, the top frames."""
    instance_id = _common.long_running_ids(1)[0]
    with _common.emulator():
        hook = await aget_hook(CONN_ID)
        for _ in range(50):  # the login and the first reads left out
            await hook.aget_instance(instance_id, include_graph=False)
        profiler = cProfile.Profile(time.process_time)
        profiler.enable()
        for _ in range(polls):
            await asyncio.sleep(0.005)
            await hook.aget_instance(instance_id, include_graph=False)
        profiler.disable()
    stats = pstats.Stats(profiler)
    print(f"{stats.total_calls / polls:.0f} Python calls a poll (hook.aget_instance, paced 5 ms), top frames:")
    stats.sort_stats("tottime").print_stats(20)
    stats.sort_stats("cumulative").print_stats(r"airflow_provider_flowinst", 25)


async def measure(args: argparse.Namespace) -> None:
    instance_id = _common.long_running_ids(1)[0]
    with _common.emulator() as emulator:
        get = _common.SignedEnOSGet(emulator.url, instance_id)
        paced = await _common.interleaved(
            emulator,
            "enos_batch",
            {
                "floor: aiohttp + signing": floor_loop(get, args.interval),
                "hook.aget_instance": hook_loop(instance_id, args.interval),
                "FlowInstanceTrigger.run()": trigger_loop(instance_id, args.interval),
            },
            rounds=args.rounds,
            seconds=args.seconds,
            warmup=args.warmup,
        )
        tight = await _common.interleaved(
            emulator,
            "enos_batch",
            {
                "floor, back to back": floor_loop(get, None),
                "hook.aget_instance, back to back": hook_loop(instance_id, None),
            },
            rounds=args.rounds,
            seconds=1.0,
            warmup=0.3,
        )
    floor = paced["floor: aiohttp + signing"]["cpu_us"]
    trigger = paced["FlowInstanceTrigger.run()"]["cpu_us"]
    hook = paced["hook.aget_instance"]["cpu_us"]
    print(f"CPU per poll, one EnOS wait, polls every {args.interval} s (median of {args.rounds} rounds):")
    _common.print_table(paced)
    print("back to back (hot caches), for reference:")
    _common.print_table(tight)
    tight_ratio = tight["hook.aget_instance, back to back"]["cpu_us"] / tight["floor, back to back"]["cpu_us"]
    print(f"trigger / floor = {trigger / floor:.2f} (goal <= 1.25); hook / floor = {hook / floor:.2f}")
    print(f"back to back: hook / floor = {tight_ratio:.2f}")
    _common.report(
        "poll_cpu_vs_floor",
        poll_cpu_vs_floor=round(trigger / floor, 2),
        hook_cpu_vs_floor=round(hook / floor, 2),
        hook_cpu_vs_floor_back_to_back=round(tight_ratio, 2),
        trigger_cpu_us=round(trigger),
        hook_cpu_us=round(hook),
        floor_cpu_us=round(floor),
        floor_cpu_us_back_to_back=round(tight["floor, back to back"]["cpu_us"]),
        hook_cpu_us_back_to_back=round(tight["hook.aget_instance, back to back"]["cpu_us"]),
        interval=args.interval,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--interval", type=float, default=0.1, help="seconds between polls (aligned ticks)")
    parser.add_argument("--seconds", type=float, default=2.0, help="measured seconds per loop and round")
    parser.add_argument("--warmup", type=float, default=0.5, help="seconds each loop runs before it is measured")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--profile", type=int, metavar="POLLS", help="profile this many polls instead of measuring")
    args = parser.parse_args()
    asyncio.run(profile(args.profile) if args.profile else measure(args))


if __name__ == "__main__":
    main()
