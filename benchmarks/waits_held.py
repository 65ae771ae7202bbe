"""Waits held by one triggerer process: N FlowInstanceTriggers in one event loop, loop lag and RSS per wait.

For each N (``--waits``, default 1,000, 5,000 and 10,000) a fresh process (a fresh heap, so RSS is that
N's) with a fresh emulator runs N FlowInstanceTriggers on distinct EnOS instances of flow 4000 (they run for
hours, so no wait ends), each trigger's ``run()`` driven by its own task as Airflow's triggerer does, and
alongside them a task that sleeps 10 ms again and again and records how late it wakes (the loop lag).

The load: N waits at a 60 s interval are N/60 polls a second. To keep the run short the waits poll every
``--interval`` seconds (default 6 s: ten times that load) for one interval of start-up (every wait makes
its first poll; its lag is printed apart) and then ``--intervals`` intervals measured: loop lag p99 over the
measured intervals, RSS per wait ((VmRSS with N waits - VmRSS before any) / N), requests the emulator saw
per interval, this process's CPU share, and whether all N were still held at the end (no wait ended, none
raised). Goals: 10,000 held, lag p99 < 100 ms, <= 30 KB RSS per wait.

    .venv/bin/python benchmarks/waits_held.py [--waits 1000 5000 10000]
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import statistics
import time
from pathlib import Path

import _common

from airflow_provider_flowinst.triggers.flow_instance import FlowInstanceTrigger

CONN_ID = "enos_batch_default"
LAG_SLEEP = 0.01


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))] if ordered else 0.0


async def hold(waits: int, interval: float, intervals: int) -> None:
    with _common.emulator() as emulator:
        ids = _common.long_running_ids(waits)
        lags: list[tuple[float, float]] = []  # (when, lag in ms)
        ended: list[str] = []

        async def sample_lag() -> None:
            while True:
                started = time.perf_counter()
                await asyncio.sleep(LAG_SLEEP)
                now = time.perf_counter()
                lags.append((now, (now - started - LAG_SLEEP) * 1000))

        async def drive(trigger: FlowInstanceTrigger) -> None:
            try:
                async for event in trigger.run():
                    ended.append(f"{trigger.instance_id}: {event.payload.get('status')} {event.payload.get('message')}")
                    return
            except Exception as exc:
                ended.append(f"{trigger.instance_id}: {type(exc).__name__}: {exc}")

        sampler = asyncio.ensure_future(sample_lag())
        await asyncio.sleep(0.2)
        gc.collect()
        rss_before = _common.rss_kb()
        started = time.perf_counter()
        tasks = [
            asyncio.ensure_future(
                drive(FlowInstanceTrigger(conn_id=CONN_ID, instance_id=instance_id, poke_interval=interval))
            )
            for instance_id in ids
        ]
        await asyncio.sleep(interval)  # start-up: every wait makes its first poll
        window_start = time.perf_counter()
        requests0 = emulator.stats()["requests"]
        cpu0, emulator_cpu0 = time.process_time(), _common.emulator_cpu_seconds(emulator)
        rss_peak = _common.rss_kb()
        for _ in range(intervals * 10):
            await asyncio.sleep(interval / 10)
            rss_peak = max(rss_peak, _common.rss_kb())
        cpu, emulator_cpu = time.process_time() - cpu0, _common.emulator_cpu_seconds(emulator) - emulator_cpu0
        window_end = time.perf_counter()
        by_kind = {
            key: count - requests0.get(key, 0)
            for key, count in emulator.stats()["requests"].items()
            if count > requests0.get(key, 0)
        }
        requests = sum(by_kind.values())
        rss_after = _common.rss_kb()
        held = sum(1 for task in tasks if not task.done())
        sampler.cancel()
        for task in tasks:
            task.cancel()
        await asyncio.gather(sampler, *tasks, return_exceptions=True)

    startup = [lag for when, lag in lags if started <= when < window_start]
    steady = [lag for when, lag in lags if window_start <= when <= window_end]
    per_wait = (max(rss_after, rss_peak) - rss_before) / waits
    print(
        f"  {waits:>6} waits: held {held}/{waits}; loop lag p50 {statistics.median(steady):.1f} ms, "
        f"p99 {percentile(steady, 0.99):.1f} ms, max {max(steady):.1f} ms "
        f"(start-up: max {max(startup, default=0):.0f} ms); RSS {per_wait:.1f} KB/wait "
        f"({rss_before / 1024:.0f} -> {rss_peak / 1024:.0f} MB); {requests / intervals:.0f} requests/interval; "
        f"CPU {cpu / (window_end - window_start) * 100:.0f}% of a core "
        f"(the emulator's: {emulator_cpu / (window_end - window_start) * 100:.0f}%)"
    )
    for key, count in sorted(by_kind.items()):
        print(f"    {count / intervals:>8.0f} x {key} per interval")
    for line in ended[:5]:
        print(f"    ended: {line}")
    _common.report(
        "waits_held",
        waits=waits,
        held=held,
        all_held=held == waits and not ended,
        loop_lag_p50_ms=round(statistics.median(steady), 1),
        loop_lag_p99_ms=round(percentile(steady, 0.99), 1),
        loop_lag_max_ms=round(max(steady), 1),
        startup_lag_max_ms=round(max(startup, default=0.0), 1),
        rss_kb_per_wait=round(per_wait, 1),
        rss_before_kb=rss_before,
        rss_peak_kb=rss_peak,
        requests_per_interval=round(requests / intervals),
        cpu_share=round(cpu / (window_end - window_start), 3),
        emulator_cpu_share=round(emulator_cpu / (window_end - window_start), 3),
        requests_by_kind={key: round(count / intervals) for key, count in by_kind.items()},
        interval=interval,
        intervals=intervals,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--waits", type=int, nargs="+", default=[1000, 5000, 10000])
    parser.add_argument("--interval", type=float, default=6.0, help="seconds between a wait's polls")
    parser.add_argument("--intervals", type=int, default=2, help="intervals measured after one of start-up")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        asyncio.run(hold(args.waits[0], args.interval, args.intervals))
        return
    print(
        f"waits held by one event loop: EnOS waits polling every {args.interval:.0f} s "
        f"(= the load of {60 / args.interval:.0f}x as many waits at 60 s), {args.intervals} intervals measured"
    )
    results = []
    for waits in args.waits:
        lines = _common.run_child(
            Path(__file__),
            "--child",
            "--waits",
            str(waits),
            "--interval",
            str(args.interval),
            "--intervals",
            str(args.intervals),
            timeout=120 + args.interval * (args.intervals + 2),
            echo=True,
        )
        results += [line for line in lines if line["figure"] == "waits_held"]
    largest = max(results, key=lambda row: row["waits"])
    _common.report(
        "waits_held_summary",
        waits=largest["waits"],
        all_held=all(row["all_held"] for row in results),
        loop_lag_p99_ms=largest["loop_lag_p99_ms"],
        rss_kb_per_wait=largest["rss_kb_per_wait"],
        by_waits={str(row["waits"]): row for row in results},
    )


if __name__ == "__main__":
    main()
