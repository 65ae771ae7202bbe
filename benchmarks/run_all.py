"""Every benchmark, one after the other, each in its own process; ends with the one summary line:

    bench: poll_cpu_vs_floor=X poll_cpu_vs_http_sensor=Y rss_kb_per_wait=Z loop_lag_p99_ms=W
           requests_per_interval_1000_waits=V token_requests_per_1000_calls=U   (on one line)

A figure whose script failed reads ``failed`` (and the exit status is 1). About four minutes on two cores.
``--json PATH`` also writes every script's result lines and the machine they ran on.

    .venv/bin/python benchmarks/run_all.py
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import _common

HERE = Path(__file__).resolve().parent
#: In this order: the emulator's capacity first, so every later figure is known not to be the emulator's.
SCRIPTS = (
    "emulator_capacity.py",
    "poll_cpu_vs_floor.py",
    "poll_cpu_vs_http_sensor.py",
    "waits_held.py",
    "requests_per_interval.py",
    "token_requests.py",
    "sync_cpu.py",
    "http_client_choice.py",
)
#: Summary field -> (figure, key) in the scripts' result lines.
SUMMARY = {
    "poll_cpu_vs_floor": ("poll_cpu_vs_floor", "poll_cpu_vs_floor"),
    "poll_cpu_vs_http_sensor": ("poll_cpu_vs_http_sensor", "poll_cpu_vs_http_sensor"),
    "rss_kb_per_wait": ("waits_held_summary", "rss_kb_per_wait"),
    "loop_lag_p99_ms": ("waits_held_summary", "loop_lag_p99_ms"),
    "requests_per_interval_1000_waits": ("requests_per_interval", "requests_per_interval"),
    "token_requests_per_1000_calls": ("token_requests", "token_requests_per_1000_calls"),
}
TIMEOUT_SECONDS = 300


def run(script: str) -> tuple[list[dict[str, Any]], bool]:
    """Run one script, showing its output as it comes; its result lines and whether it succeeded."""
    print(f"\n=== {script} ===", flush=True)
    started = time.monotonic()
    results: list[dict[str, Any]] = []
    with subprocess.Popen(
        [sys.executable, str(HERE / script)], stdout=subprocess.PIPE, text=True, bufsize=1
    ) as process:
        watchdog = threading.Timer(TIMEOUT_SECONDS, process.kill)  # a script that hangs is stopped
        watchdog.start()
        assert process.stdout is not None
        try:
            for line in process.stdout:
                if line.startswith(_common.RESULT_PREFIX):
                    results.append(json.loads(line[len(_common.RESULT_PREFIX) :]))
                else:
                    print(line, end="", flush=True)
            process.wait()
        finally:
            watchdog.cancel()
    ok = process.returncode == 0
    print(f"--- {script}: {'done' if ok else f'FAILED ({process.returncode})'} in {time.monotonic() - started:.0f} s")
    return results, ok


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--json", type=Path, help="also write every result line here")
    parser.add_argument("--only", nargs="+", choices=SCRIPTS, help="run only these scripts")
    args = parser.parse_args()
    info = _common.machine()
    print("machine: " + "; ".join(f"{key} {value}" for key, value in info.items()), flush=True)
    results: list[dict[str, Any]] = []
    failed: list[str] = []
    for script in args.only or SCRIPTS:
        lines, ok = run(script)
        results += lines
        if not ok:
            failed.append(script)
    by_figure = {line["figure"]: line for line in results}
    summary = {
        field: by_figure.get(figure, {}).get(key, "failed") if figure in by_figure else "failed"
        for field, (figure, key) in SUMMARY.items()
    }
    if args.json:
        args.json.write_text(json.dumps({"machine": info, "results": results, "failed": failed}, indent=1) + "\n")
    if failed:
        print(f"\nfailed: {', '.join(failed)}")
    print("bench: " + " ".join(f"{field}={value}" for field, value in summary.items()), flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
