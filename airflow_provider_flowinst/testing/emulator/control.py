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

    def create_enos_batch_instance(self, flow_id: str, instance_id: str | None = None, **options: Any) -> str:
        """A manual instance of ``flow_id``; options: outcome, appear_after, queued_seconds, running_seconds."""
        spec = {"flow_id": flow_id, **({"instance_id": instance_id} if instance_id else {}), **options}
        created: str = self.control("POST", "/_emulator/enos_batch/instances", spec)["instance_id"]
        return created
