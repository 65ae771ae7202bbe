"""Sync ``get_instance`` CPU against raw ``requests`` with the same signing, in one run.

The sync path is what poke and reschedule sensors and the status operator use. One EnOS instance of flow
4000, the emulator in its own process; taken in turn for ``--rounds`` rounds (median kept):

- raw: one ``requests.Session``; sign (the provider's own ``request_signature``), GET, read the body.
- hook: ``EnOSBatchHook.get_instance(id)`` (its graph included, the default).

Each is measured paced (one call per ``--interval`` seconds, as pokes come: the headline figure, as in
``poll_cpu_vs_floor.py``) and back to back (hot caches). CPU is this process's ``time.process_time()``.

    .venv/bin/python benchmarks/sync_cpu.py
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

import _common
import requests

from airflow_provider_flowinst.hooks import get_hook


def cpu_per_call(call: Callable[[], object], calls: int, interval: float | None) -> float:
    call()  # warm: connection open, token cached
    total = 0.0
    for _ in range(calls):
        if interval is not None:
            time.sleep(_common.next_tick(interval))
        started = time.process_time()
        call()
        total += time.process_time() - started
    return total / calls


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--interval", type=float, default=0.1, help="seconds between paced calls")
    parser.add_argument("--paced-calls", type=int, default=20)
    parser.add_argument("--calls", type=int, default=400, help="back-to-back calls per round")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    instance_id = _common.long_running_ids(1)[0]
    with _common.emulator() as emulator:
        get = _common.SignedEnOSGet(emulator.url, instance_id)
        session = requests.Session()

        def raw() -> object:
            response = session.get(get.url, headers=get.headers(), timeout=10)
            response.raise_for_status()
            return response.content

        hook = get_hook("enos_batch_default")
        loops: dict[str, Callable[[], object]] = {
            "raw requests + signing": raw,
            "hook.get_instance": lambda: hook.get_instance(instance_id),
        }
        samples: dict[str, dict[str, list[float]]] = {name: {"paced": [], "hot": []} for name in loops}
        for _ in range(args.rounds):
            for name, loop in loops.items():
                samples[name]["paced"].append(cpu_per_call(loop, args.paced_calls, args.interval))
                samples[name]["hot"].append(cpu_per_call(loop, args.calls, None))
        session.close()
    median = {
        name: {regime: statistics.median(values) * 1e6 for regime, values in row.items()}
        for name, row in samples.items()
    }
    raw_row, hook_row = median["raw requests + signing"], median["hook.get_instance"]
    print(f"sync CPU per call, one EnOS instance (median of {args.rounds} rounds), µs:")
    print(f"  {'':<26} {f'paced ({args.interval} s)':>16} {'back to back':>14}")
    for name, row in median.items():
        print(f"  {name:<26} {row['paced']:>16.0f} {row['hot']:>14.0f}")
    ratio, ratio_hot = hook_row["paced"] / raw_row["paced"], hook_row["hot"] / raw_row["hot"]
    print(f"hook / raw = {ratio:.2f} paced, {ratio_hot:.2f} back to back (goal <= 1.2)")
    _common.report(
        "sync_cpu",
        sync_cpu_vs_raw=round(ratio, 2),
        sync_cpu_vs_raw_back_to_back=round(ratio_hot, 2),
        hook_cpu_us=round(hook_row["paced"]),
        raw_cpu_us=round(raw_row["paced"]),
        hook_cpu_us_back_to_back=round(hook_row["hot"]),
        raw_cpu_us_back_to_back=round(raw_row["hot"]),
        interval=args.interval,
    )


if __name__ == "__main__":
    main()
