"""Token requests per 1,000 sync ``get_instance`` calls, counted by the emulator.

On each platform that hands out tokens (EnOS Batch: the gateway's token; LSF: the logon token; EnOS BPM:
the gateway's token and the portal's bearer token; DataWorks signs each request and has none), with the
process-wide token cache emptied first, ``--calls`` sync ``hook.get_instance`` calls are made on one hook,
and on EnOS Batch again with a new hook for every call (as separate operators and sensors in one worker
process do). The emulator counts the token requests. Goal: 1 per credential. EnOS BPM's one login holds two
credentials (the gateway token and the portal's bearer token), so its floor is 2: the figure divides by
the credentials a login holds.

    .venv/bin/python benchmarks/token_requests.py
"""

from __future__ import annotations

import argparse

import _common

from airflow_provider_flowinst.hooks import get_hook
from airflow_provider_flowinst.testing.emulator.process import EmulatorProcess
from airflow_provider_flowinst.transport import TOKENS

#: Credentials one login obtains (each is one token request).
CREDENTIALS_PER_LOGIN = {"enos_bpm_default": 2}


def instance_ids(emulator: EmulatorProcess) -> dict[str, str]:
    return {
        "enos_batch_default": _common.long_running_ids(1)[0],
        "lsf_pm_default": emulator.create_lsf_pm_instance("jsmith:long_flow"),
        "enos_bpm_default": emulator.create_enos_bpm_instance("contractReview"),
    }


def count(emulator: EmulatorProcess, conn_id: str, instance_id: str, calls: int, *, new_hook: bool) -> int:
    TOKENS.clear()
    emulator.control("POST", "/_emulator/reset")
    hook = get_hook(conn_id)
    for _ in range(calls):
        (get_hook(conn_id) if new_hook else hook).get_instance(instance_id)
    return sum(emulator.stats()["token_requests"].values())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--calls", type=int, default=1000)
    args = parser.parse_args()
    print(f"token requests per {args.calls} sync get_instance calls (token cache emptied first):")
    results: dict[str, int] = {}
    with _common.emulator() as emulator:
        for conn_id, instance_id in instance_ids(emulator).items():
            for new_hook in (False, True) if conn_id == "enos_batch_default" else (False,):
                name = f"{conn_id}{', new hook per call' if new_hook else ''}"
                results[name] = count(emulator, conn_id, instance_id, args.calls, new_hook=new_hook)
                print(f"  {name:<45} {results[name]:>4} token requests")
    per_credential = max(tokens / CREDENTIALS_PER_LOGIN.get(name.split(",")[0], 1) for name, tokens in results.items())
    print(f"worst: {per_credential:.0f} token request(s) per credential per {args.calls} calls (goal 1)")
    _common.report(
        "token_requests",
        token_requests_per_1000_calls=round(per_credential * 1000 / args.calls, 1),
        calls=args.calls,
        by_connection=results,
    )


if __name__ == "__main__":
    main()
