"""Toy Flows emulated: runs that end on a schedule, each step with a log; the key checked on every call."""

from __future__ import annotations

import itertools
import time
from typing import TYPE_CHECKING, Any

from aiohttp import web

if TYPE_CHECKING:
    from airflow_provider_flowinst.testing.emulator.app import Emulator
    from airflow_provider_flowinst.testing.emulator.state import EmulatorState

API_KEY = "toy-key-0123456789abcdef"
PREFIX = "/toy/v1/"
STEPS = ("extract", "transform", "load")


class ToyEmulator:
    platform = "toy_flows"

    def __init__(self, state: EmulatorState) -> None:
        self.state = state
        self.runs: dict[str, dict[str, Any]] = {}
        self._ids = itertools.count(1)

    def routes(self) -> list[web.RouteDef]:
        return [
            web.get(PREFIX + "runs/{run_id}", self.get_run),
            web.get(PREFIX + "runs/{run_id}/steps/{step}/log", self.get_log),
            web.post("/_emulator/toy_flows/runs", self.create_run),
        ]

    def serves(self, request: web.Request) -> bool:
        return request.path.startswith(PREFIX)

    def expire_tokens(self) -> None:
        return None  # a key does not expire

    def _refuse(self, request: web.Request) -> web.Response | None:
        self.state.requests[f"toy_flows {request.path}"] += 1
        if request.headers.get("X-Toy-Key") != API_KEY:
            return web.json_response({"error": "bad key"}, status=401)
        return None

    async def create_run(self, request: web.Request) -> web.Response:
        spec = await request.json()
        run_id = f"toy-{next(self._ids)}"
        self.runs[run_id] = {
            "flow": spec.get("flow", "f1"),
            "outcome": spec.get("outcome", "DONE"),
            "created": self.state.now(),
            "duration": float(spec.get("duration", 1.0)),
            "created_ms": int(time.time() * 1000),
        }
        return web.json_response({"id": run_id})

    def _record(self, run_id: str) -> dict[str, Any]:
        run = self.runs[run_id]
        ended = self.state.now() - run["created"] >= run["duration"]
        status = run["outcome"] if ended else "RUNNING"
        broken = ended and run["outcome"] == "BROKEN"
        steps = [
            {
                "name": name,
                "status": ("BROKEN" if broken and name == "transform" else ("DONE" if ended else "RUNNING")),
                "after": [STEPS[index - 1]] if index else [],
            }
            for index, name in enumerate(STEPS)
        ]
        record = {"id": run_id, "flow": run["flow"], "status": status, "started": run["created_ms"], "steps": steps}
        if broken:
            record["reason"] = "step transform ran out of disk"
        return record

    async def get_run(self, request: web.Request) -> web.Response:
        refused = self._refuse(request)
        if refused is not None:
            return refused
        run_id = request.match_info["run_id"]
        if run_id not in self.runs:
            return web.json_response({"error": "no such run"}, status=404)
        return web.json_response(self._record(run_id))

    async def get_log(self, request: web.Request) -> web.Response:
        refused = self._refuse(request)
        if refused is not None:
            return refused
        run_id, step = request.match_info["run_id"], request.match_info["step"]
        if run_id not in self.runs:
            return web.json_response({"error": "no such run"}, status=404)
        return web.json_response({"log": f"starting {step}\nwriting /data/{step}.out\nERROR: no space left on device"})


def mount(emulator: Emulator) -> ToyEmulator:
    return ToyEmulator(emulator.state)


def connection(url: str) -> dict[str, Any]:
    return {"host": url, "password": API_KEY}
