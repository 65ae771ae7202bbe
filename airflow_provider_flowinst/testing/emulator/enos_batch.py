"""EnOS Batch Processing on both base paths: flows, instances that move through states, search, trigger.

Requests are checked as the docs (EnvisionDoc/api_en ``dataflow_service/``, ``dataflow_service/v2.1/``) write
them: List Flow Instances refuses a body without a Mandatory field, Trigger Flow refuses ``parameters`` (they
belong to Update And Trigger Flow), v2.0 pages count from 0 and v2.1 pages from 1, Get My Flow filters with
``searchValue`` on v2.0 and ``expression`` on v2.1. Where the real service would most likely ignore a wrong
field, this one refuses it (62102), so that a client sending it is caught.

Settings for tests (``POST /_emulator/enos_batch/settings``): ``page_cap`` (rows per page at most, a longer
page asked for is served short), ``max_page_size`` (a larger ``pageSize`` is refused), ``count`` ("total" or
"page": what a search's ``count`` means), ``timezone`` (the deployment's, e.g. "GMT+8": Get Time Zone
answers it and every time the service shows is local to it) and ``require_trigger_time`` (strict, the default:
Trigger Flow without its Mandatory ``triggerTime`` is refused with 62102; false: it is triggered now).
"""

from __future__ import annotations

import datetime as dt
import json
import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from aiohttp import web

from airflow_provider_flowinst.testing.emulator.credentials import (
    ENOS_APP_KEY,
    ENOS_APP_SECRET,
    ENOS_ORG_ID,
    ENOS_USER_ID,
)
from airflow_provider_flowinst.testing.emulator.enos_gateway import BehindGateway, Gateway
from airflow_provider_flowinst.testing.emulator.state import EmulatorState

if TYPE_CHECKING:
    from airflow_provider_flowinst.testing.emulator.app import Emulator

PLATFORM = "enos_batch"
BASES = {"batch-processing-service/v2.1": "code", "dataflow-batch-service/v2.0": "status"}
ORG_ID, USER_ID = ENOS_ORG_ID, ENOS_USER_ID
CODES = {"success": (1, "SUCCESS"), "failed": (-1, "FAIL"), "cancelled": (8, "CANCEL")}
#: List Flow Instances: the Mandatory body fields (``v2.1/list_flow_instances.md``).
SEARCH_MANDATORY = ("type", "expression", "owner", "fromTriggerTime", "toTriggerTime", "status")
SORTER_FIELDS = {"createTime", "updateTime", "startTime", "triggerTime", "endTime"}
DEFAULT_SETTINGS: dict[str, Any] = {
    "page_cap": None,
    "max_page_size": None,
    "count": "total",
    "timezone": "GMT+8",
    "require_trigger_time": True,
}
_GMT = re.compile(r"^GMT(?P<sign>[+-])(?P<hours>\d{1,2})(?::(?P<minutes>\d{2}))?$")


#: The time part of an instance id, by its length: vendor samples show 14, 12 and 10 digits
#: (``2809-20190808093200``, ``2438-201907261239``, ``13774-2022031400``).
STAMP_LENGTHS = {14: "%Y%m%d%H%M%S", 12: "%Y%m%d%H%M", 10: "%Y%m%d%H"}


def stamp_time(stamp: str) -> dt.datetime | None:
    """The trigger time an id's time part writes, or None if it writes none."""
    layout = STAMP_LENGTHS.get(len(stamp))
    if layout is None or not stamp.isdigit():
        return None
    try:
        return dt.datetime.strptime(stamp, layout)
    except ValueError:
        return None


def zone_of(name: str) -> dt.timezone:
    """The fixed offset of a ``GMT+N`` name (Get Time Zone's own format)."""
    if name in ("GMT", "UTC"):
        return dt.timezone.utc
    match = _GMT.match(name)
    if match is None:
        raise ValueError(f"the emulator's timezone must be GMT, or GMT+N / GMT-N, got {name!r}")
    offset = dt.timedelta(hours=int(match["hours"]), minutes=int(match["minutes"] or 0))
    return dt.timezone(offset if match["sign"] == "+" else -offset)


@dataclass
class Flow:
    flow_id: str
    name: str
    cycle: str = "D"
    tasks: list[tuple[str, str]] = field(default_factory=list)  # (task_id, task_name), in run order
    upstream_flows: list[tuple[str, str]] = field(default_factory=list)  # (flow_id, flow_name)
    outcome: str = "success"
    queued_seconds: float = 2.0
    running_seconds: float = 4.0
    periodic: bool = True  # instances of any trigger time exist as soon as they are asked for

    @property
    def type(self) -> int:
        """The scheduling type: 1 periodic, 0 manual."""
        return 1 if self.periodic else 0


@dataclass
class Instance:
    flow: Flow
    instance_id: str
    trigger_time: dt.datetime
    created: float  # emulated seconds
    outcome: str
    queued_seconds: float
    running_seconds: float
    appear_at: float = 0.0
    cancelled_at: float | None = None
    manual: bool = False
    parameters: list[dict[str, Any]] = field(default_factory=list)
    #: The last record served and what it depends on (status code, tasks done, cancel time): a record is
    #: rendered once per state, not per request, so the emulator is never the bottleneck of a benchmark.
    rendered: tuple[tuple[int, int, float | None, str], dict[str, Any]] | None = field(
        default=None, repr=False, compare=False
    )


DEFAULT_FLOWS = [
    Flow(
        "2809",
        "map",
        tasks=[("104890", "tass"), ("104891", "aggregate"), ("104892", "publish")],
        upstream_flows=[("2808", "ingest")],
    ),
    Flow("3318", "reduce_entity", tasks=[("105001", "reduce"), ("105002", "export")]),
    Flow("3257", "shell", tasks=[("105100", "run_shell")], outcome="failed"),
    Flow("2515", "testWorkflow122", tasks=[("105200", "noop")], periodic=False),
    Flow("4000", "long_running", tasks=[("106000", "crunch")], running_seconds=10 * 3600),
    # Flows to start on demand (one start per flow a minute, as the platform allows): 51xx succeed,
    # 52xx fail, 53xx run for hours.
    *(
        Flow(
            f"51{n:02d}",
            f"on_demand_{n}",
            tasks=[(f"51{n:02d}1", "prepare"), (f"51{n:02d}2", "publish")],
            periodic=False,
        )
        for n in range(10)
    ),
    *(
        Flow(
            f"52{n:02d}", f"on_demand_failing_{n}", tasks=[(f"52{n:02d}1", "explode")], outcome="failed", periodic=False
        )
        for n in range(5)
    ),
    *(
        Flow(
            f"53{n:02d}",
            f"on_demand_long_{n}",
            tasks=[(f"53{n:02d}1", "crunch")],
            running_seconds=10 * 3600,
            periodic=False,
        )
        for n in range(10)
    ),
]


def _fmt(moment: dt.datetime) -> str:
    return moment.strftime("%Y-%m-%d %H:%M:%S")


class EnOSBatchEmulator(BehindGateway):
    platform = PLATFORM
    path_prefixes = ("/batch-processing-service/", "/dataflow-batch-service/")

    def __init__(self, state: EmulatorState, gateway: Gateway) -> None:
        super().__init__(state, gateway)
        self.flows = {flow.flow_id: flow for flow in DEFAULT_FLOWS}
        self.instances: dict[str, Instance] = {}
        self.wall_start = dt.datetime.now(dt.timezone.utc).replace(microsecond=0)
        self.settings = dict(DEFAULT_SETTINGS)
        self.zone = zone_of(self.settings["timezone"])

    def local_now(self) -> dt.datetime:
        """The deployment's wall clock, as the service shows times: local, without an offset."""
        return dt.datetime.now(self.zone).replace(tzinfo=None)

    def local(self, moment: dt.datetime) -> dt.datetime:
        return moment.astimezone(self.zone).replace(tzinfo=None)

    def epoch_ms(self, local: dt.datetime) -> int:
        return int(local.replace(tzinfo=self.zone).timestamp() * 1000)

    def expire_tokens(self) -> None:
        """Nothing of its own: the gateway holds the tokens (``Gateway.expire_tokens``)."""

    def routes(self) -> list[web.RouteDef]:
        routes = []
        for base in BASES:
            routes += [
                web.get(f"/{base}/flowInstances", self.handle),
                web.post(f"/{base}/flowInstances", self.handle),
                web.get(f"/{base}/flows", self.handle),
                web.post(f"/{base}/flows", self.handle),
                web.get(f"/{base}/taskInstances", self.handle),
                web.get(f"/{base}/time", self.handle),
            ]
        routes += [
            web.post("/_emulator/enos_batch/instances", self.control_create),
            web.get("/_emulator/enos_batch/instances", self.control_list),
            web.post("/_emulator/enos_batch/settings", self.control_settings),
        ]
        return routes

    # -- control (tests and the demo) ----------------------------------------------------------------

    async def control_create(self, request: web.Request) -> web.Response:
        spec = await request.json()
        flow = self.flows[str(spec["flow_id"])]
        trigger = stamp_time(spec["instance_id"].rsplit("-", 1)[1]) if "instance_id" in spec else None
        if "instance_id" in spec and trigger is None:
            return web.json_response({"error": f"no trigger time in {spec['instance_id']!r}"}, status=400)
        instance = self._create(
            flow,
            trigger or self.local_now().replace(microsecond=0),
            instance_id=spec.get("instance_id"),
            manual=True,
            outcome=spec.get("outcome"),
            appear_after=float(spec.get("appear_after", 0)),
            queued_seconds=spec.get("queued_seconds"),
            running_seconds=spec.get("running_seconds"),
        )
        return web.json_response({"instance_id": instance.instance_id})

    async def control_settings(self, request: web.Request) -> web.Response:
        """Change settings (see the module's doc); ``{"reset": true}`` restores the defaults. Answers them all."""
        spec = await request.json()
        settings = dict(DEFAULT_SETTINGS) if spec.pop("reset", False) else dict(self.settings)
        unknown = set(spec) - set(DEFAULT_SETTINGS)
        if unknown:
            return web.json_response({"error": f"unknown settings {sorted(unknown)}"}, status=400)
        settings.update(spec)
        try:
            zone = zone_of(str(settings["timezone"]))
        except ValueError as exc:
            return web.json_response({"error": str(exc)}, status=400)
        if settings["count"] not in ("total", "page"):
            return web.json_response({"error": "count must be 'total' or 'page'"}, status=400)
        self.settings, self.zone = settings, zone
        return web.json_response(self.settings)

    async def control_list(self, request: web.Request) -> web.Response:
        return web.json_response(
            {iid: self.record(inst) for iid, inst in self.instances.items() if self._visible(inst)}
        )

    def _create(
        self,
        flow: Flow,
        trigger: dt.datetime,
        *,
        instance_id: str | None = None,
        manual: bool,
        outcome: str | None = None,
        appear_after: float = 0.0,
        queued_seconds: float | None = None,
        running_seconds: float | None = None,
        parameters: list[dict[str, Any]] | None = None,
    ) -> Instance:
        now = self.state.now()
        # The id writes the trigger time; a deployment may write it shorter (see STAMP_LENGTHS).
        instance_id = instance_id or f"{flow.flow_id}-{trigger.strftime('%Y%m%d%H%M%S')}"
        instance = Instance(
            flow=flow,
            instance_id=instance_id,
            trigger_time=trigger,
            created=now + appear_after,
            outcome=outcome or flow.outcome,
            queued_seconds=flow.queued_seconds if queued_seconds is None else float(queued_seconds),
            running_seconds=flow.running_seconds if running_seconds is None else float(running_seconds),
            appear_at=now + appear_after,
            manual=manual,
            parameters=parameters or [],
        )
        self.instances[instance_id] = instance
        return instance

    def _visible(self, instance: Instance) -> bool:
        return self.state.now() >= instance.appear_at

    def _lookup(self, instance_id: str) -> Instance | None:
        instance = self.instances.get(instance_id)
        if instance is None:
            flow_id, _, stamp = instance_id.rpartition("-")
            flow = self.flows.get(flow_id)
            trigger = stamp_time(stamp)
            if flow is None or not flow.periodic or trigger is None:
                return None
            instance = self._create(flow, trigger, instance_id=instance_id, manual=False)
        return instance if self._visible(instance) else None

    # -- what an instance looks like at this moment --------------------------------------------------

    def _progress(self, instance: Instance) -> tuple[int, str, float]:
        """(status code, word, seconds into the run)."""
        age = self.state.now() - instance.created
        if instance.cancelled_at is not None:
            return 8, "CANCEL", instance.cancelled_at - instance.created
        if age < instance.queued_seconds:
            return 0, "INIT", age
        if age < instance.queued_seconds + instance.running_seconds:
            return 2, "RUNNING", age
        code, word = CODES[instance.outcome]
        return code, word, age

    def _moment(self, instance: Instance, emulated_offset: float) -> dt.datetime:
        # Wall-clock time of an emulated moment in the instance's life, local to the deployment.
        base = self.wall_start + dt.timedelta(seconds=instance.created * self.state.time_scale)
        return self.local(base + dt.timedelta(seconds=emulated_offset * self.state.time_scale))

    def record(self, instance: Instance) -> dict[str, Any]:
        """The platform's record of ``instance`` now; the same (shared, never mutated) dict while its state holds."""
        code, word, age = self._progress(instance)
        done_tasks = 0
        if code == 2:
            share = (age - instance.queued_seconds) / max(instance.running_seconds, 1e-6)
            done_tasks = int(share * len(instance.flow.tasks))
        key = (code, done_tasks, instance.cancelled_at, self.settings["timezone"])
        if instance.rendered is None or instance.rendered[0] != key:
            instance.rendered = (key, self._render(instance, code, word, done_tasks))
        return instance.rendered[1]

    def _render(self, instance: Instance, code: int, word: str, done_tasks: int) -> dict[str, Any]:
        flow = instance.flow
        started = code != 0
        ended = code in (1, -1, 8)
        end_offset = (
            instance.cancelled_at - instance.created
            if instance.cancelled_at is not None
            else instance.queued_seconds + instance.running_seconds
        )
        tasks = []
        for index, (task_id, task_name) in enumerate(flow.tasks):
            if code == 1 or (code == 2 and index < done_tasks):
                status = "SUCCESS"
            elif code == 2 and index == done_tasks:
                status = "RUNNING"
            elif code == -1:
                status = "FAIL" if index == len(flow.tasks) - 1 else "SUCCESS"
            elif code == 8:
                status = "CANCEL"
            elif code == 0:
                status = "INIT" if index == 0 else "NONE"
            else:
                status = "NONE"
            tasks.append(
                {
                    "task_name": task_name,
                    "task_inst_id": f"{task_id}-{instance.trigger_time:%Y%m%d%H%M%S}",
                    "x": 0.01 * index,
                    "y": 0.005,
                    "task_id": int(task_id),
                    "node_id": f"t_{task_id}",
                    "status": status,
                }
            )
        flows = [
            {
                "flow_id": up_id,
                "flow_name": up_name,
                "node_id": f"f_{up_id}",
                "is_virtual": False,
                "x": 0.0,
                "y": 0.0,
                "flow_inst_id": f"{up_id}-{instance.trigger_time:%Y%m%d%H%M%S}",
                "status": "SUCCESS",
            }
            for up_id, up_name in flow.upstream_flows
        ]
        relations = [
            {"source": f"f_{up_id}", "target": f"t_{flow.tasks[0][0]}", "cycleGap": 0, "rerun": 0}
            for up_id, _ in flow.upstream_flows
            if flow.tasks
        ]
        relations += [
            {"source": f"t_{a[0]}", "target": f"t_{b[0]}", "cycleGap": 0, "rerun": 0}
            for a, b in zip(flow.tasks, flow.tasks[1:], strict=False)
        ]
        graph = {
            "creator": "emulator",
            "freq": "0 0 0 * * ? *",
            "alert_mode": 3,
            "owners": ";emulator;",
            "cycle": flow.cycle,
            "do_as": "data_emulator",
            "flows": flows,
            "alert_to": "",
            "name": flow.name,
            "inst_id": instance.instance_id,
            "id": int(flow.flow_id),
            "relations": relations,
            "parameters": "[]",
            "app_id": "",
            "tasks": tasks,
        }
        return {
            "instanceId": instance.instance_id,
            "flowId": int(flow.flow_id),
            "flowName": flow.name,
            "freq": "0 0 0 * * ? *",
            "cycle": flow.cycle,
            "parameters": json.dumps(instance.parameters),
            "doAs": "data_emulator",
            "graph": json.dumps(graph),
            "status": code,
            "statusDesc": word,
            "triggerTime": _fmt(instance.trigger_time),
            "startTime": _fmt(self._moment(instance, instance.queued_seconds)) if started else "",
            "endTime": _fmt(self._moment(instance, end_offset)) if ended else "",
            "timestamp": _fmt(self._moment(instance, 0)) + ".0",
            "virtual": False,
            "owner": "emulator",
            "alertMode": 3,
            "calDt": (instance.trigger_time - dt.timedelta(days=1)).strftime("%Y-%m-%d"),
            "hasEditPri": True,
            "hasReadPri": True,
        }

    # -- the API -------------------------------------------------------------------------------------

    async def handle(self, request: web.Request) -> web.StreamResponse:
        base = request.path.strip("/").rsplit("/", 1)[0]
        code_key = BASES[base]
        refusal = await self.refusal(request)
        if refusal is not None:
            return refusal
        if request.query.get("orgId") != ORG_ID or request.query.get("userId") != USER_ID:
            return self._envelope(code_key, 62101, "userId or orgId is invalid.")
        resource = request.path.rsplit("/", 1)[1]
        action = request.query.get("action", "")
        handler = getattr(self, f"_{resource}_{action}".lower(), None)
        if handler is None:
            return self._envelope(code_key, 62102, f"Invalid parameter: unknown action {action!r} on {resource}")
        try:
            body = json.loads(await request.read() or b"null")
        except ValueError:
            return self._envelope(code_key, 62102, "Invalid parameter: the body is not JSON")
        code, message, data = handler(request, body)
        return self._envelope(code_key, code, message, data)

    @staticmethod
    def _envelope(code_key: str, code: int, message: str, data: Any = None) -> web.Response:
        return web.json_response({code_key: code, "msg": message, "data": data})

    def _flowinstances_get(self, request: web.Request, body: Any) -> tuple[int, str, Any]:
        instance = self._lookup(request.query.get("flowInstId", ""))
        if instance is None:
            return 62102, "Invalid parameter: the flow instance does not exist.", None
        return 0, "Success", self.record(instance)

    def _flowinstances_search(self, request: web.Request, body: Any) -> tuple[int, str, Any]:
        if not isinstance(body, dict):
            return 62102, "Invalid parameter: the body must be an object", None
        missing = [key for key in SEARCH_MANDATORY if body.get(key) is None]
        if missing:
            return 62102, f"Invalid parameter: {', '.join(missing)} is mandatory", None
        kind, start, end = body["type"], body["fromTriggerTime"], body["toTriggerTime"]
        if kind not in (0, 1, 2) or isinstance(kind, bool):
            return 62102, "Invalid parameter: type must be 0, 1 or 2", None
        if not all(isinstance(value, int) and not isinstance(value, bool) for value in (start, end)):
            return 62102, "Invalid parameter: fromTriggerTime and toTriggerTime are epoch milliseconds", None
        if not isinstance(body["expression"], str) or not isinstance(body["owner"], str):
            return 62102, "Invalid parameter: expression and owner are strings", None
        status_text = str(body["status"])
        statuses = {int(s) for s in status_text.split(",") if s.strip().lstrip("-").isdigit()}
        pagination = body.get("pagination") or {}
        first = 0 if self._v20(request) else 1
        page_no, page_size = pagination.get("pageNo", first), pagination.get("pageSize", 10)
        if not isinstance(page_no, int) or not isinstance(page_size, int) or page_no < first or page_size < 1:
            return 62102, f"Invalid parameter: pageNo starts at {first}, pageSize at 1", None
        limit = self.settings["max_page_size"]
        if limit is not None and page_size > limit:
            return 62102, f"Invalid parameter: pageSize must not exceed {limit}", None
        sorters = pagination.get("sorters") or []
        if any(not isinstance(s, dict) or s.get("field") not in SORTER_FIELDS for s in sorters):
            return 62102, "The sorters field parameter is invalid", None
        expression, owner = body["expression"], body["owner"]
        # Filtered and sorted on the instances themselves; only the page asked for is rendered.
        matching = [
            inst
            for inst in self.instances.values()
            if self._visible(inst)
            and inst.flow.type == kind
            and start <= self.epoch_ms(inst.trigger_time) <= end
            and (not expression or expression in inst.instance_id or expression in inst.flow.name)
            and (not owner or owner == "emulator")
            and (not statuses or self._progress(inst)[0] in statuses)
        ]
        matching.sort(key=lambda inst: inst.instance_id, reverse=True)
        for sorter in reversed(sorters):  # the first sorter decides, later ones break ties
            if sorter["field"] == "triggerTime":
                matching.sort(key=lambda inst: inst.trigger_time, reverse=str(sorter.get("order")).upper() == "DESC")
        served = min(page_size, self.settings["page_cap"] or page_size)  # a capped page is served short
        offset = (page_no - first) * served
        page = [self.record(inst) for inst in matching[offset : offset + served]]
        count = len(matching) if self.settings["count"] == "total" else len(page)
        return 0, "Success", {"flowInsts": page, "count": count}

    def _flowinstances_cancel(self, request: web.Request, body: Any) -> tuple[int, str, Any]:
        instance = self._lookup(str((body or {}).get("flowInstId", "")))
        if instance is None:
            return 62102, "Invalid parameter: the flow instance does not exist.", None
        if self._progress(instance)[0] not in (1, -1, 8):
            instance.cancelled_at = self.state.now()
        return 0, "Success", None

    def _flows_getmyflow(self, request: web.Request, body: Any) -> tuple[int, str, Any]:
        name, wrong = ("searchValue", "expression") if self._v20(request) else ("expression", "searchValue")
        if wrong in request.query:
            return 62102, f"Invalid parameter: {wrong} (this version filters with {name})", None
        expression = request.query.get(name, "")
        return (
            0,
            "OK",
            [
                {"flowId": flow.flow_id, "editable": True, "flowName": flow.name, "cycle": flow.cycle}
                for flow in self.flows.values()
                if not expression or expression in flow.flow_id or expression in flow.name
            ],
        )

    def _flows_get(self, request: web.Request, body: Any) -> tuple[int, str, Any]:
        flow = self.flows.get(request.query.get("flowId", ""))
        if flow is None:
            return 62102, "Invalid parameter: the flow does not exist.", None
        return (
            0,
            "OK",
            {
                "flowId": int(flow.flow_id),
                "flowName": flow.name,
                "type": flow.type,
                "cycle": flow.cycle,
                "active": 1,
                "owner": "emulator",
                "parameters": "[]",
            },
        )

    def _flows_trigger(self, request: web.Request, body: Any) -> tuple[int, str, Any]:
        if isinstance(body, dict) and "parameters" in body:
            return 62102, "Invalid parameter: parameters (Trigger Flow takes flowId and triggerTime)", None
        if self.settings["require_trigger_time"] and (not isinstance(body, dict) or body.get("triggerTime") is None):
            return 62102, "Invalid parameter: flowId and triggerTime are mandatory", None
        return self._trigger(body, None)

    def _flows_updateandtrigger(self, request: web.Request, body: Any) -> tuple[int, str, Any]:
        if not isinstance(body, dict) or body.get("triggerTime") is None or "parameters" not in body:
            return 62102, "Invalid parameter: flowId, triggerTime and parameters are mandatory", None
        parameters = body["parameters"]
        if not isinstance(parameters, list) or not all(
            isinstance(item, dict) and set(item) == {"key", "value"} for item in parameters
        ):
            return 62102, 'Invalid parameter: parameters is a list of {"key": ..., "value": ...}', None
        return self._trigger(body, parameters)

    def _trigger(self, body: Any, parameters: list[dict[str, Any]] | None) -> tuple[int, str, Any]:
        flow = self.flows.get(str((body or {}).get("flowId", "")))
        if flow is None:
            return 62102, "Invalid parameter: the flow does not exist.", None
        if not flow.tasks:
            return 62104, "The flow has no task.", None
        millis = (body or {}).get("triggerTime")
        moment = dt.datetime.fromtimestamp(int(millis) / 1000, dt.timezone.utc) if millis else None
        trigger = (self.local(moment) if moment else self.local_now()).replace(microsecond=0)
        for existing in self.instances.values():
            # A flow triggered less than a (emulated) minute ago is refused, as the platform does.
            if existing.flow is flow and existing.manual and self.state.now() - existing.created < 60:
                return 62102, "Invalid parameter: the flow was triggered less than one minute ago.", None
        if f"{flow.flow_id}-{trigger:%Y%m%d%H%M%S}" in self.instances:
            return 62102, "Invalid parameter: an instance with this trigger time exists already.", None
        instance = self._create(flow, trigger, manual=True, parameters=parameters)
        return 0, "Success", {"flowInstanceId": instance.instance_id}

    def _time_gettimezone(self, request: web.Request, body: Any) -> tuple[int, str, Any]:
        return 0, "OK", {"timezone": self.settings["timezone"]}

    @staticmethod
    def _v20(request: web.Request) -> bool:
        return "/dataflow-batch-service/v2.0/" in request.path

    def _taskinstances_getlog(self, request: web.Request, body: Any) -> tuple[int, str, Any]:
        task_inst_id = request.query.get("taskInstId", "")
        text = f"[emulator] log of task instance {task_inst_id}\nexit code 0\n"
        if self._task_failed(task_inst_id):
            steps = "".join(f"[emulator] step {step} of 30 done\n" for step in range(1, 31))
            text = (
                f"[emulator] log of task instance {task_inst_id}\n{steps}"
                'Traceback (most recent call last):\n  File "job.py", line 42, in <module>\n'
                "ZeroDivisionError: division by zero\nexit code 1\n"
            )
        max_length = request.query.get("maxLength")
        if max_length and max_length.isdigit():
            text = text[: int(max_length)]
        return 0, "Success", {"log": text}

    def _task_failed(self, task_inst_id: str) -> bool:
        """Whether ``<task id>-<trigger time>`` is the task that failed its run (the last task of a failed run)."""
        task_id, _, stamp = task_inst_id.rpartition("-")
        for flow in self.flows.values():
            if flow.tasks and flow.tasks[-1][0] == task_id:
                instance = self._lookup(f"{flow.flow_id}-{stamp}")
                return instance is not None and self._progress(instance)[0] == -1
        return False


def mount(emulator: Emulator) -> EnOSBatchEmulator:
    """This platform inside ``emulator`` (see ``parts.EmulatorModule``)."""
    return EnOSBatchEmulator(emulator.state, emulator.gateway)


def connection(url: str) -> dict[str, Any]:
    """The default connection to an emulator at ``url``."""
    console = url + "/console/batch/instances/{instance_id}"
    extra = {"org_id": ENOS_ORG_ID, "user_id": ENOS_USER_ID, "console_url": console}
    return {"host": url, "login": ENOS_APP_KEY, "password": ENOS_APP_SECRET, "extra": extra}
