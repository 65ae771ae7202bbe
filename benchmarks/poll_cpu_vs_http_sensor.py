"""CPU per poll against what users write today: Airflow's HttpSensorTrigger polling the same URL.

Users who wait on a remote instance without this provider point ``HttpSensor(deferrable=True)`` at the
platform's API; it defers to ``HttpSensorTrigger`` (apache-airflow-providers-http), which opens a new
``aiohttp.ClientSession`` (so a new TCP connection) for every poll. Here it polls the very URL our trigger
polls, EnOS "Get Flow Instance", with the same headers: a valid token and ``apim-signature`` computed with
the provider's own ``platforms/enos_gateway.py`` when the trigger is made. That is generous to it: the
gateway accepts a signature for 5 minutes, so a real HttpSensorTrigger (whose headers are fixed when it is
serialised) could not wait longer than that, and it never pays for signing.

HttpSensorTrigger fires on the first answer that is not a 404, and EnOS answers 200, so each tick drives
one ``run()`` of it; its hook (and the connection lookup) is made once, as in its own 404 loop, so each
poll costs what a poll of that loop costs: a session, a connection, the request. Both triggers poll on the
same aligned ticks (``--interval``), taken in turn for ``--rounds`` rounds; CPU is this process's, requests
are counted by the emulator.

The same is then done with ``--waits`` waits of each kind on distinct instances, polling every
``--many-interval`` seconds: a triggerer's load, where our triggers share one session and their
connection's poller (which may answer many waits with one list call) and each HttpSensorTrigger opens its
own session. There a poll is a wait's poll: CPU / (waits x intervals in the window), however many requests
it took (both figures are printed).

    .venv/bin/python benchmarks/poll_cpu_vs_http_sensor.py
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
from collections.abc import Awaitable, Callable

import _common
from poll_cpu_vs_floor import trigger_loop

HTTP_CONN_ID = "http_flowinst_bench"


def http_sensor_loop(get: _common.SignedEnOSGet, interval: float) -> Callable[[], Awaitable[None]]:
    from airflow.providers.http.triggers.http import HttpSensorTrigger

    endpoint = get.url.split("/", 3)[3]  # the path and query, relative to the connection's host

    async def loop() -> None:
        await asyncio.sleep(random.uniform(0, 0.001))  # many at once: not all in one ready-queue pass
        trigger = HttpSensorTrigger(
            endpoint=endpoint, http_conn_id=HTTP_CONN_ID, method="GET", headers=get.headers(), poke_interval=interval
        )
        hook = trigger._get_async_hook()
        trigger._get_async_hook = lambda: hook  # type: ignore[method-assign]
        while True:
            await asyncio.sleep(_common.next_tick(interval))
            events = trigger.run()
            event = await events.__anext__()
            await events.aclose()
            if event.payload is not True:
                raise RuntimeError(f"HttpSensorTrigger did not fire: {event.payload}")

    return loop


def many(loops: list[Callable[[], Awaitable[None]]]) -> Callable[[], Awaitable[None]]:
    """Every loop at once, each as its own task (as the triggerer runs each trigger)."""

    async def loop() -> None:
        await asyncio.gather(*(asyncio.ensure_future(one()) for one in loops))

    return loop


async def measure(args: argparse.Namespace) -> None:
    ids = _common.long_running_ids(args.waits + 1)
    with _common.emulator() as emulator:
        os.environ[f"AIRFLOW_CONN_{HTTP_CONN_ID.upper()}"] = json.dumps({"conn_type": "http", "host": emulator.url})
        one = await _common.interleaved(
            emulator,
            "enos_batch",
            {
                "FlowInstanceTrigger.run()": trigger_loop(ids[0], args.interval),
                "HttpSensorTrigger.run()": http_sensor_loop(_common.SignedEnOSGet(emulator.url, ids[0]), args.interval),
            },
            rounds=args.rounds,
            seconds=args.seconds,
            warmup=args.warmup,
        )
        gets = [_common.SignedEnOSGet(emulator.url, instance_id) for instance_id in ids[1:]]
        waits = await _common.interleaved(
            emulator,
            "enos_batch",
            {
                f"{args.waits} x FlowInstanceTrigger": many(
                    [trigger_loop(instance_id, args.many_interval) for instance_id in ids[1:]]
                ),
                f"{args.waits} x HttpSensorTrigger": many([http_sensor_loop(get, args.many_interval) for get in gets]),
            },
            rounds=max(1, args.rounds - 1),
            seconds=2 * args.many_interval,
            warmup=args.many_interval + 0.5,
            polls=lambda requests, wall: args.waits * wall / args.many_interval,
        )
    ours = one["FlowInstanceTrigger.run()"]["cpu_us"]
    theirs = one["HttpSensorTrigger.run()"]["cpu_us"]
    ours_many = waits[f"{args.waits} x FlowInstanceTrigger"]["cpu_us"]
    theirs_many = waits[f"{args.waits} x HttpSensorTrigger"]["cpu_us"]
    print(f"CPU per poll, one EnOS wait, polls every {args.interval} s (median of {args.rounds} rounds):")
    _common.print_table(one)
    print(f"FlowInstanceTrigger / HttpSensorTrigger = {ours / theirs:.2f} (goal <= 0.5)")
    print(f"CPU per wait's poll, {args.waits} waits of each kind, polls every {args.many_interval} s:")
    _common.print_table(waits)
    print(f"{args.waits} waits: FlowInstanceTrigger / HttpSensorTrigger = {ours_many / theirs_many:.2f}")
    _common.report(
        "poll_cpu_vs_http_sensor",
        poll_cpu_vs_http_sensor=round(ours / theirs, 2),
        trigger_cpu_us=round(ours),
        http_sensor_cpu_us=round(theirs),
        interval=args.interval,
        poll_cpu_vs_http_sensor_many_waits=round(ours_many / theirs_many, 2),
        many_waits=args.waits,
        trigger_cpu_us_many_waits=round(ours_many),
        http_sensor_cpu_us_many_waits=round(theirs_many),
        trigger_requests_per_interval_many_waits=round(
            waits[f"{args.waits} x FlowInstanceTrigger"]["per_second"] * args.many_interval
        ),
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--interval", type=float, default=0.1, help="seconds between polls (aligned ticks)")
    parser.add_argument("--seconds", type=float, default=2.0, help="measured seconds per loop and round")
    parser.add_argument("--warmup", type=float, default=0.5, help="seconds each loop runs before it is measured")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--waits", type=int, default=200, help="waits of each kind in the many-waits run")
    parser.add_argument("--many-interval", type=float, default=1.0, help="seconds between polls with many waits")
    asyncio.run(measure(parser.parse_args()))


if __name__ == "__main__":
    main()
