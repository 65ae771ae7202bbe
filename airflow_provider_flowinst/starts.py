"""Starting a remote run exactly once.

A start (trigger, submit, create) is never sent twice blindly: the transport does not retry it after a
fault that may have reached the platform, and raises ``RunOutcomeUnknown`` instead. Then the run this
attempt may have made is looked for, a few times, since a platform may list a new run only a moment after
creating it. Found: that is the run. Not found: the call fails, still as ``RunOutcomeUnknown``, rather than
start a second run; the task's next try looks once more (its attempt was stored before the call) before it
starts anything.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from airflow_provider_flowinst.errors import RunOutcomeUnknown
from airflow_provider_flowinst.protocol import Operation, PlatformClient, Sleep, StartAttempt

log = logging.getLogger(__name__)

#: Seconds to wait before each look for the run an unclear start may have made.
LOOK_DELAYS = (0.0, 2.0, 5.0)


def find_after_unclear_start(
    client: PlatformClient,
    flow: str,
    parameters: Mapping[str, Any] | None,
    attempt: StartAttempt,
    unclear: RunOutcomeUnknown,
    delays: tuple[float, ...] = LOOK_DELAYS,
) -> Operation[str]:
    """The run ``attempt`` made, looked for after ``unclear``; RunOutcomeUnknown when none shows up."""
    for delay in delays:
        if delay > 0:
            yield Sleep(delay)
        found = yield from client.find_started_run(flow, parameters, attempt)
        if found is not None:
            log.warning("The start of %s had an unclear outcome (%s); found the run it made: %s", flow, unclear, found)
            return found
    raise unclear.after_looking(
        f"No run of {flow} made by this attempt showed up after {len(delays)} looks, "
        "so none is started again now; the task's next try looks once more before it starts one"
    )
