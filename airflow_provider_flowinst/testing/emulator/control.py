"""A client for the emulator's control API (faults, counters, instances), for tests and the demo."""

from __future__ import annotations

import json
import urllib.request
from typing import Any


class EmulatorControl:
    """Mixin for anything with a ``url``: ``control("POST", "/_emulator/faults", {...})``."""

    @property
    def url(self) -> str:
        raise NotImplementedError

    def control(self, method: str, path: str, payload: Any = None) -> Any:
        data = None if payload is None else json.dumps(payload).encode()
        request = urllib.request.Request(
            self.url + path, data=data, method=method, headers={"Content-Type": "application/json"}
        )
        with urllib.request.urlopen(request, timeout=10) as response:
            return json.loads(response.read())

    def inject_fault(self, kind: str, *, platform: str = "*", count: int = 1, **options: Any) -> None:
        """The next ``count`` calls of ``platform`` meet fault ``kind`` (see ``state.FAULT_KINDS``)."""
        self.control("POST", "/_emulator/faults", {"kind": kind, "platform": platform, "count": count, **options})

    def stats(self) -> dict[str, Any]:
        result: dict[str, Any] = self.control("GET", "/_emulator/stats")
        return result

    def advance_clock(self, seconds: float) -> float:
        """Move the emulated clock ``seconds`` ahead (runs due to end within them end); returns the new now."""
        now: float = self.control("POST", "/_emulator/clock", {"advance": seconds})["now"]
        return now

    def create_enos_batch_instance(self, flow_id: str, instance_id: str | None = None, **options: Any) -> str:
        """A manual instance of ``flow_id``; options: outcome, appear_after, queued_seconds, running_seconds."""
        spec = {"flow_id": flow_id, **({"instance_id": instance_id} if instance_id else {}), **options}
        created: str = self.control("POST", "/_emulator/enos_batch/instances", spec)["instance_id"]
        return created

    def create_dataworks_instance(self, workflow_id: int | str, **options: Any) -> str:
        """A DataWorks workflow instance of ``workflow_id`` (1001 succeeds, 1002 fails, 1003 runs for hours);
        options: outcome ("Success"/"Failure"), appear_after, queued_seconds, running_seconds, name, type,
        rerun_outcome (how a rerun of it ends, default "Success"), rerun_seconds (each rerun task's run)."""
        spec = {"workflow_id": workflow_id, **options}
        created: str = self.control("POST", "/_emulator/dataworks/instances", spec)["instance_id"]
        return created

    def create_lsf_pm_instance(self, flow: str = "jsmith:flow1", **options: Any) -> str:
        """A run of LSF flow ``owner:name`` (jsmith:flow1 ends Done, flow_exit Exit, flow_killed Killed,
        long_flow runs for hours); options: outcome ("Done"/"Exit"/"Killed"), running_seconds, appear_after,
        rerun_outcome (how a rerun of it ends, default "Done")."""
        created: str = self.control("POST", "/_emulator/lsf_pm/instances", {"flow": flow, **options})["instance_id"]
        return created

    def create_enos_bpm_instance(self, definition_key: str = "purchaseApproval", **options: Any) -> str:
        """A BPM process instance started now (purchaseApproval and leaveRequest complete, expenseClaim is
        terminated, contractReview runs for hours); options: seconds_per_task."""
        spec = {"definition_key": definition_key, **options}
        created: str = self.control("POST", "/_emulator/enos_bpm/instances", spec)["instance_id"]
        return created
