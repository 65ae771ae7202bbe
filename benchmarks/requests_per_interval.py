"""Requests per interval for 1,000 waits on one connection, on each platform.

For each platform (``--platforms``: DataWorks, LSF, EnOS Batch and EnOS BPM by default) ``--waits``
FlowInstanceTriggers on distinct long-running instances (DataWorks workflow 1003, LSF ``jsmith:long_flow``,
EnOS flow 4000, BPM ``contractReview``: none ends during the run) poll every ``--interval`` seconds on the
platform's default connection, each driven by its own task as the triggerer does. After one interval of
start-up, the emulator's counters are read, ``--intervals`` intervals pass, and they are read again: the
requests of that platform the emulator saw (every call: reads, list pages, logons and tokens), divided by
the intervals. It measures whatever the triggers do (one call per wait, or batched list calls): it
assumes nothing. Goal: <= 10 per interval on DataWorks and LSF (one call per wait would be 1,000).

``--enos-page-cap N`` makes the emulated EnOS Batch service serve at most N rows a search page (whatever
``pageSize`` asks), as a real deployment may: batching should then cost about 1,000 / N pages per interval.

    .venv/bin/python benchmarks/requests_per_interval.py
"""

from __future__ import annotations

import argparse
import asyncio
import time
from collections.abc import Callable

import _common

from airflow_provider_flowinst.testing.emulator.process import EmulatorProcess
from airflow_provider_flowinst.triggers.flow_instance import FlowInstanceTrigger

Maker = Callable[[EmulatorProcess, float], str]


def _enos_ids(emulator: EmulatorProcess, waits: int) -> list[str]:
    return _common.long_running_ids(waits)


#: platform -> (connection id, counter keys in the emulator's stats, N long-running instances, one short one)
PLATFORMS: dict[str, tuple[str, tuple[str, ...], Callable[[EmulatorProcess, int], list[str]], Maker]] = {
    "dataworks": (
        "dataworks_default",
        ("dataworks",),
        lambda emulator, waits: [emulator.create_dataworks_instance(1003) for _ in range(waits)],
        lambda emulator, seconds: emulator.create_dataworks_instance(1001, queued_seconds=0.5, running_seconds=seconds),
    ),
    "lsf_pm": (
        "lsf_pm_default",
        ("lsf_pm",),
        lambda emulator, waits: [emulator.create_lsf_pm_instance("jsmith:long_flow") for _ in range(waits)],
        lambda emulator, seconds: emulator.create_lsf_pm_instance("jsmith:flow1", running_seconds=seconds),
    ),
    "enos_batch": (
        "enos_batch_default",
        ("enos_batch", "enos_gateway"),
        _enos_ids,
        lambda emulator, seconds: emulator.create_enos_batch_instance(
            "2809", queued_seconds=0.5, running_seconds=seconds
        ),
    ),
    "enos_bpm": (
        "enos_bpm_default",
        ("enos_bpm", "enos_gateway"),
        lambda emulator, waits: [emulator.create_enos_bpm_instance("contractReview") for _ in range(waits)],
        lambda emulator, seconds: emulator.create_enos_bpm_instance("purchaseApproval", seconds_per_task=seconds / 3),
    ),
}


def platform_requests(stats: dict[str, dict[str, int]], keys: tuple[str, ...]) -> dict[str, int]:
    return {key: count for key, count in stats["requests"].items() if key.split(" ", 1)[0] in keys}


async def count(
    emulator: EmulatorProcess, platform: str, waits: int, interval: float, intervals: int, enos_page_cap: int = 0
) -> dict[str, float]:
    """Requests per interval of ``waits`` waits on ``platform``, and a check that the waits are answered.

    Besides the long waits, one sentinel wait is on an instance that succeeds after about one interval: its
    trigger must fire ``success`` within the counted intervals, or the figure is refused (waits that are
    never answered would make no request at all and look very cheap).
    """
    conn_id, keys, make_long, make_short = PLATFORMS[platform]
    ids = make_long(emulator, waits)
    ended: list[str] = []
    sentinel: dict[str, float | str] = {}

    async def drive(trigger: FlowInstanceTrigger) -> None:
        try:
            async for event in trigger.run():
                ended.append(f"{trigger.instance_id}: {event.payload.get('status')}: {event.payload.get('message')}")
                return
        except Exception as exc:
            ended.append(f"{trigger.instance_id}: {type(exc).__name__}: {exc}")

    async def watch(trigger: FlowInstanceTrigger, started: float) -> None:
        async for event in trigger.run():
            sentinel.update(status=str(event.payload.get("status")), seconds=time.perf_counter() - started)
            return

    emulator.control("POST", "/_emulator/reset")
    if platform == "enos_batch" and enos_page_cap:
        emulator.control("POST", "/_emulator/enos_batch/settings", {"page_cap": enos_page_cap})
    started = time.perf_counter()
    short = make_short(emulator, interval)
    tasks = [
        asyncio.ensure_future(drive(FlowInstanceTrigger(conn_id=conn_id, instance_id=str(iid), poke_interval=interval)))
        for iid in ids
    ]
    tasks.append(
        asyncio.ensure_future(
            watch(FlowInstanceTrigger(conn_id=conn_id, instance_id=short, poke_interval=interval), started)
        )
    )
    try:
        await asyncio.sleep(interval)  # start-up: each wait's first read
        before = platform_requests(emulator.stats(), keys)
        counting = time.perf_counter()
        await asyncio.sleep(interval * intervals)
        elapsed = time.perf_counter() - counting
        after = platform_requests(emulator.stats(), keys)
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
    if ended:
        raise RuntimeError(f"{len(ended)} of the {platform} waits ended, e.g. {ended[:3]}")
    if sentinel.get("status") != "success":
        raise RuntimeError(
            f"the {platform} wait on {short}, which succeeds after {interval} s, did not fire success within "
            f"{interval * (intervals + 1):.0f} s ({sentinel or 'no event'}): the waits are not being answered"
        )
    # Per interval of wall time counted (the sleeps may run a little long on a busy machine).
    by_kind = {
        key: (after[key] - before.get(key, 0)) * interval / elapsed for key in after if after[key] > before.get(key, 0)
    }
    per_interval = sum(by_kind.values())
    print(
        f"  {platform:<11} {per_interval:>7.1f} requests per interval for {waits} waits "
        f"(sentinel wait answered {sentinel['status']} after {float(sentinel['seconds']):.1f} s)"
    )
    for key, value in sorted(by_kind.items()):
        print(f"  {'':<11} {value:>7.1f} x {key}")
    return {"per_interval": per_interval, **{f"by_kind:{key}": value for key, value in by_kind.items()}}


async def measure(args: argparse.Namespace) -> None:
    print(f"requests per interval: {args.waits} waits on one connection, polling every {args.interval:.0f} s")
    results: dict[str, dict[str, float]] = {}
    failures: dict[str, str] = {}
    with _common.emulator() as emulator:
        for platform in args.platforms:
            try:
                results[platform] = await count(
                    emulator, platform, args.waits, args.interval, args.intervals, args.enos_page_cap
                )
            except RuntimeError as exc:  # the other platforms are still measured
                failures[platform] = str(exc)
                print(f"  {platform:<11} FAILED: {exc}")
    goal_platforms = [platform for platform in ("dataworks", "lsf_pm") if platform in args.platforms]
    worst: float | str = (
        "failed"
        if any(platform in failures for platform in goal_platforms)
        else round(max((results[platform]["per_interval"] for platform in goal_platforms), default=float("nan")), 1)
    )
    _common.report(
        "requests_per_interval",
        requests_per_interval=worst,
        waits=args.waits,
        interval=args.interval,
        by_platform={platform: round(row["per_interval"], 1) for platform, row in results.items()},
        failures=failures,
        detail={platform: {k: round(v, 1) for k, v in row.items()} for platform, row in results.items()},
    )
    if failures:
        raise SystemExit(1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--platforms", nargs="+", choices=sorted(PLATFORMS), default=list(PLATFORMS))
    parser.add_argument("--waits", type=int, default=1000)
    parser.add_argument("--interval", type=float, default=3.0, help="seconds between a wait's polls")
    parser.add_argument("--intervals", type=int, default=2, help="intervals counted after one of start-up")
    parser.add_argument("--enos-page-cap", type=int, default=0, help="rows per EnOS search page at most (0: none)")
    asyncio.run(measure(parser.parse_args()))


if __name__ == "__main__":
    main()
