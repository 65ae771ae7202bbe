"""DataWorks OpenAPI 2024-05-18 (RPC style on ``/``): the ACS3 signature check, workflow instances that
move NotRun -> Running -> Success/Failure, their task instances and dependencies, asynchronous creation.

The signature is checked with this module's own code, written from Alibaba Cloud's "Request syntax and
signature method V3", never with the client's. Business dates (BizDate, Bizdate) are 00:00:00 of the day in
China Standard Time (UTC+8), as the SDK's example 1743350400000 (2025-03-31 00:00 +08:00) shows: a listing
for midnight UTC finds nothing. Workflows are triggered by hand (``Manual``), by their schedule
(``Scheduler``) or by events (``TriggerWorkflow``), and CreateWorkflowInstances takes only the instance type
and the ``WorkflowParameters`` format that fit (the SDK model's rules).

Choices of this emulator, where the documentation says nothing (inferred):
- A CreateWorkflowInstances that does not fit the workflow (ManualWorkflow for a scheduled one, JSON
  parameters for a periodic one, a backfill without Periods...) is refused at once with HTTP 400
  ``InvalidParameter``, rather than failing later in GetCreateWorkflowInstancesResult.
- ListWorkflowInstances refuses a ``PageSize`` above 100 (configurable: ``/_emulator/dataworks/page_limits``;
  the real cap is not documented); ListTaskInstances above 500 (its documented maximum).
- ``key=value`` WorkflowParameters are pairs separated by white space.
- StopWorkflowInstances ends the instance in ``Failure`` (DataWorks has no cancelled status); its running
  task instance fails too, the ones not yet run stay ``NotRun``. Stopping a finished instance is refused
  in ``SuccessInfo``.
- The ``expired_token`` fault answers HTTP 400 ``InvalidSecurityToken.Expired``: signed requests carry no
  session token, so an expired STS token is the nearest real failure.
- A 429 fault answers ``Throttling.User`` with ``x-acs-retry-after`` in milliseconds when it has a retry_after.
- A request signed with STS credentials must carry ``x-acs-accesskey-id`` (the signature's AccessKey id) beside
  ``x-acs-security-token``, both signed, as the tea SDK sends them; without it: HTTP 400
  ``InvalidAccessKeyId.Mismatch``.
- RerunTaskInstances (POST, form ``Ids`` as a JSON array, ``Comment``, optional ``UseLatestConfig``) reruns
  task instances of a finished workflow instance, answering ``SuccessInfo`` per id. A task instance of a
  workflow instance still running, or one that does not exist, is refused in ``SuccessInfo`` (inferred: the
  documentation names no states). A rerun task instance's ``RunNumber`` goes up by one and
  GetTaskInstanceLog serves each of its runs. The tasks rerun run again one after another, followed by the
  ones that never ran after the first of them (DataWorks runs a task once all its upstream tasks have
  succeeded); the workflow instance is ``Running`` meanwhile, then ends ``Success``, or ``Failure`` when the
  workflow's (or the instance's) ``rerun_outcome`` says so: then the first task rerun fails again.
  Every rerun call is recorded (``GET /_emulator/dataworks/reruns``).
"""

from __future__ import annotations

import collections
import datetime as dt
import hashlib
import hmac
import itertools
import json
import secrets
import time
import uuid
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl, quote

from aiohttp import web

from airflow_provider_flowinst.testing.emulator.credentials import (
    DATAWORKS_ACCESS_KEY_ID,
    DATAWORKS_ACCESS_KEY_SECRET,
    DATAWORKS_PROJECT_ID,
    DATAWORKS_REGION_ID,
)
from airflow_provider_flowinst.testing.emulator.faults import fault_response, take
from airflow_provider_flowinst.testing.emulator.state import EmulatorState

if TYPE_CHECKING:
    from airflow_provider_flowinst.testing.emulator.app import Emulator

PLATFORM = "dataworks"
API_VERSION = "2024-05-18"
#: Business days are counted in China Standard Time.
BUSINESS_ZONE = dt.timezone(dt.timedelta(hours=8), "CST")
#: The largest PageSize each listing takes (ListTaskInstances: documented; the others: not documented).
DEFAULT_PAGE_LIMITS = {"ListWorkflowInstances": 100, "ListTaskInstances": 500, "ListUpstreamTaskInstances": 500}
#: CreateWorkflowInstances Type that each trigger type of a workflow takes (the SDK model's descriptions).
TYPE_FOR_TRIGGER = {"Manual": "ManualWorkflow", "Scheduler": "SupplementData", "TriggerWorkflow": "TriggerWorkflow"}
#: Temporary (STS) credentials the emulator also accepts: the key, its secret and its session token.
STS_ACCESS_KEY_ID = "STS.EmulatorTemporaryKeyId"
STS_ACCESS_KEY_SECRET = "emulator-sts-secret"
STS_SECURITY_TOKEN = "emulator-sts-security-token"
ACCESS_KEYS = {DATAWORKS_ACCESS_KEY_ID: DATAWORKS_ACCESS_KEY_SECRET, STS_ACCESS_KEY_ID: STS_ACCESS_KEY_SECRET}
DATE_TOLERANCE_SECONDS = 15 * 60  # x-acs-date must be within 15 minutes of the server's clock
REQUIRED_HEADERS = ("x-acs-action", "x-acs-version", "x-acs-date", "x-acs-signature-nonce", "x-acs-content-sha256")
CREATE_SECONDS = 2.0  # emulated seconds an asynchronous CreateWorkflowInstances stays Creating
FINISHED = ("Success", "Failure")


@dataclass
class Workflow:
    workflow_id: int
    name: str
    tasks: list[tuple[int, str]]  # (task id, task name) in run order (a topological order)
    dependencies: list[tuple[int, int]]  # (upstream task id, downstream task id)
    outcome: str = "Success"  # or "Failure": the last task fails
    queued_seconds: float = 2.0
    running_seconds: float = 4.0
    trigger: str = "Manual"  # GetWorkflow Trigger.Type: Manual, Scheduler or TriggerWorkflow
    rerun_outcome: str = "Success"  # a rerun is the run after a fix


@dataclass(frozen=True)
class RerunSegment:
    """One RerunTaskInstances on a workflow instance: ``order`` (task indexes) run one after another."""

    started: float  # emulated seconds
    order: tuple[int, ...]
    seconds_each: float
    outcome: str  # "Failure": the first task rerun fails again, the ones after it do not run

    def end(self) -> float:
        ran = 1 if self.outcome == "Failure" else len(self.order)
        return self.started + ran * self.seconds_each


@dataclass
class WorkflowInstance:
    instance_id: int
    workflow: Workflow
    name: str
    type: str
    bizdate: int  # epoch ms
    created: float  # emulated seconds; the run's clock starts here
    outcome: str
    queued_seconds: float
    running_seconds: float
    parameters: str = ""
    stopped_at: float | None = None
    rerun_outcome: str = "Success"
    rerun_seconds: float | None = None  # each task's run in a rerun; None: its share of running_seconds
    reruns: list[RerunSegment] = field(default_factory=list)
    #: How each earlier run of a task instance (by index) ended, oldest first: its RunNumber is one more.
    run_history: dict[int, list[str]] = field(default_factory=dict)

    def task_instance_id(self, index: int) -> int:
        return self.instance_id * 100 + index + 1


@dataclass
class CreateOperation:
    operation_id: str
    ready_at: float
    instance_ids: list[int] = field(default_factory=list)
    failure: str | None = None


DEFAULT_WORKFLOWS = [
    Workflow(
        1001,
        "daily_sales",
        tasks=[(2001, "extract_orders"), (2002, "clean_orders"), (2003, "check_quality"), (2004, "load_mart")],
        dependencies=[(2001, 2002), (2001, 2003), (2002, 2004), (2003, 2004)],
    ),
    Workflow(
        1002, "failing_etl", tasks=[(2101, "ingest"), (2102, "compute")], dependencies=[(2101, 2102)], outcome="Failure"
    ),
    Workflow(1003, "long_running", tasks=[(2201, "crunch")], dependencies=[], running_seconds=10 * 3600),
    Workflow(
        1004,
        "hourly_orders",
        tasks=[(2301, "sync_orders"), (2302, "aggregate_orders")],
        dependencies=[(2301, 2302)],
        trigger="Scheduler",
    ),
    Workflow(1005, "on_file_arrival", tasks=[(2401, "load_file")], dependencies=[], trigger="TriggerWorkflow"),
]


def acs_error(status: int, code: str, message: str) -> web.Response:
    """Alibaba Cloud's error shape."""
    request_id = str(uuid.uuid4()).upper()
    return web.json_response(
        {
            "RequestId": request_id,
            "HostId": "dataworks.emulator.aliyuncs.com",
            "Code": code,
            "Message": message,
            "Recommend": f"https://api.aliyun.com/troubleshoot?q={code}&product=dataworks-public",
        },
        status=status,
    )


class DataWorksEmulator:
    platform = PLATFORM

    def __init__(self, state: EmulatorState) -> None:
        self.state = state
        self.workflows = {workflow.workflow_id: workflow for workflow in DEFAULT_WORKFLOWS}
        self.instances: dict[int, WorkflowInstance] = {}
        self.operations: dict[str, CreateOperation] = {}
        self.nonces: dict[str, float] = {}
        self._ids = itertools.count(700001)
        self.wall_start_ms = int(time.time() * 1000)
        self.page_limits = dict(DEFAULT_PAGE_LIMITS)
        #: Signed calls per action, for tests that count what a listing costs.
        self.action_counts: collections.Counter[str] = collections.Counter()
        self.rerun_calls: list[dict[str, Any]] = []
        for workflow in self.workflows.values():  # one instance of each, started with the emulator
            self._create(workflow, name=f"{workflow.name}_seed", type="Normal")

    def serves(self, request: web.Request) -> bool:
        """Every action is served on "/": a DataWorks call is known by its ``x-acs-action`` header."""
        return "x-acs-action" in request.headers

    def expire_tokens(self) -> None:
        """Nothing to expire: every request is signed, no token is handed out."""

    def routes(self) -> list[web.RouteDef]:
        return [
            web.get("/", self.handle),
            web.post("/", self.handle),
            web.post("/_emulator/dataworks/instances", self.control_create),
            web.post("/_emulator/dataworks/page_limits", self.control_page_limits),
            web.get("/_emulator/dataworks/actions", self.control_actions),
            web.get("/_emulator/dataworks/reruns", self.control_reruns),
        ]

    # -- control (tests and the demo) ----------------------------------------------------------------

    async def control_create(self, request: web.Request) -> web.Response:
        """One instance (``instance_id``), or with ``count`` that many (``instance_ids``)."""
        spec = await request.json()
        workflow = self.workflows[int(spec["workflow_id"])]
        made = [
            self._create(
                workflow,
                name=str(spec.get("name") or f"{workflow.name}_manual"),
                type=str(spec.get("type") or TYPE_FOR_TRIGGER.get(workflow.trigger, "ManualWorkflow")),
                outcome=spec.get("outcome"),
                delay=float(spec.get("appear_after", 0.0)),
                queued_seconds=spec.get("queued_seconds"),
                running_seconds=spec.get("running_seconds"),
                rerun_outcome=spec.get("rerun_outcome"),
                rerun_seconds=spec.get("rerun_seconds"),
            )
            for _ in range(int(spec.get("count", 1)))
        ]
        ids = [str(instance.instance_id) for instance in made]
        return web.json_response({"instance_id": ids[0], "instance_ids": ids})

    async def control_page_limits(self, request: web.Request) -> web.Response:
        """Set the largest PageSize of some listings (``{"ListWorkflowInstances": 20}``; ``{}`` restores)."""
        spec = await request.json()
        self.page_limits = {**DEFAULT_PAGE_LIMITS, **{str(key): int(value) for key, value in spec.items()}}
        return web.json_response(self.page_limits)

    async def control_actions(self, request: web.Request) -> web.Response:
        return web.json_response(dict(self.action_counts))

    async def control_reruns(self, request: web.Request) -> web.Response:
        """Every rerun call so far: ``[{"action", "ids", "comment", "use_latest_config"}]``."""
        return web.json_response(self.rerun_calls)

    def _create(
        self,
        workflow: Workflow,
        *,
        name: str,
        type: str,
        outcome: str | None = None,
        delay: float = 0.0,
        queued_seconds: float | None = None,
        running_seconds: float | None = None,
        bizdate: int | None = None,
        parameters: str = "",
        rerun_outcome: str | None = None,
        rerun_seconds: float | None = None,
    ) -> WorkflowInstance:
        outcome = None if outcome is None else _status_word(outcome)
        instance = WorkflowInstance(
            instance_id=next(self._ids),
            workflow=workflow,
            name=name,
            type=type,
            bizdate=self._default_bizdate() if bizdate is None else bizdate,
            created=self.state.now() + delay,
            outcome=outcome or workflow.outcome,
            queued_seconds=workflow.queued_seconds if queued_seconds is None else float(queued_seconds),
            running_seconds=workflow.running_seconds if running_seconds is None else float(running_seconds),
            parameters=parameters,
            rerun_outcome=_status_word(rerun_outcome or workflow.rerun_outcome),
            rerun_seconds=None if rerun_seconds is None else float(rerun_seconds),
        )
        self.instances[instance.instance_id] = instance
        return instance

    @staticmethod
    def _default_bizdate() -> int:
        """Yesterday's business date, as DataWorks' data timestamp of a run today: 00:00 in UTC+8."""
        return _business_day_ms(dt.datetime.now(BUSINESS_ZONE).date() - dt.timedelta(days=1))

    def _visible(self, instance: WorkflowInstance) -> bool:
        return self.state.now() >= instance.created

    # -- what an instance looks like now -------------------------------------------------------------

    def _wall_ms(self, emulated: float) -> int:
        return self.wall_start_ms + int(emulated * self.state.time_scale * 1000)

    def _statuses(self, instance: WorkflowInstance) -> tuple[str, list[str]]:
        """(the instance's Status, each task instance's Status) at this moment."""
        status, task_statuses = self._first_run(instance)
        if not instance.reruns:
            return status, task_statuses
        now = self.state.now()
        for segment in instance.reruns:
            for position, index in enumerate(segment.order):
                begins = segment.started + position * segment.seconds_each
                if now < begins:
                    task_statuses[index] = "NotRun"
                elif now < begins + segment.seconds_each:
                    task_statuses[index] = "Running"
                elif segment.outcome == "Failure" and position == 0:
                    task_statuses[index] = "Failure"
                    for later in segment.order[1:]:
                        task_statuses[later] = "NotRun"
                    break
                else:
                    task_statuses[index] = "Success"
        if now < instance.reruns[-1].end():
            return "Running", task_statuses
        return ("Failure" if "Failure" in task_statuses else "Success"), task_statuses

    def _first_run(self, instance: WorkflowInstance) -> tuple[str, list[str]]:
        """(Status, task statuses) of the run the instance was created for, reruns left aside."""
        tasks = instance.workflow.tasks
        now = self.state.now() if instance.stopped_at is None else instance.stopped_at
        age = now - instance.created
        if age < instance.queued_seconds:
            status, done, current = "NotRun", 0, None
        elif age < instance.queued_seconds + instance.running_seconds:
            share = (age - instance.queued_seconds) / max(instance.running_seconds, 1e-6)
            done = min(int(share * len(tasks)), len(tasks) - 1)
            status, current = "Running", done
        else:
            status = instance.outcome
            task_statuses = ["Success"] * len(tasks)
            if status == "Failure" and tasks:
                task_statuses[-1] = "Failure"
            return status, task_statuses
        task_statuses = ["Success" if i < done else "Running" if i == current else "NotRun" for i in range(len(tasks))]
        if instance.stopped_at is not None:
            status = "Failure"
            task_statuses = ["Failure" if s == "Running" else s for s in task_statuses]
        return status, task_statuses

    def _times(self, instance: WorkflowInstance, index: int | None = None) -> tuple[int | None, int | None]:
        """(StartedTime, FinishedTime) of the instance, or of its task ``index``, in epoch ms."""
        status, task_statuses = self._statuses(instance)
        start = instance.created + instance.queued_seconds
        end = instance.stopped_at if instance.stopped_at is not None else start + instance.running_seconds
        if instance.reruns:
            end = instance.reruns[-1].end()
        if index is not None:
            share = instance.running_seconds / max(len(instance.workflow.tasks), 1)
            task_start, task_end = start + index * share, min(start + (index + 1) * share, end)
            for segment in instance.reruns:  # the latest run of the task, if a rerun ran it
                if index in segment.order:
                    task_start = segment.started + segment.order.index(index) * segment.seconds_each
                    task_end = task_start + segment.seconds_each
            state = task_statuses[index]
            started = None if state == "NotRun" else self._wall_ms(task_start)
            return started, self._wall_ms(task_end) if state in FINISHED else None
        started = None if status == "NotRun" else self._wall_ms(start)
        return started, self._wall_ms(end) if status in FINISHED else None

    def rerun(self, instance: WorkflowInstance, indexes: list[int]) -> None:
        """Run the task instances ``indexes`` again, then the ones after the first of them that never ran."""
        _, task_statuses = self._statuses(instance)
        first = min(indexes)
        never_ran = [i for i in range(first, len(task_statuses)) if task_statuses[i] == "NotRun"]
        order = tuple(sorted(set(indexes) | set(never_ran)))
        for index in indexes:
            instance.run_history.setdefault(index, []).append(task_statuses[index])
        share = instance.rerun_seconds or instance.running_seconds / max(len(instance.workflow.tasks), 1)
        instance.reruns.append(RerunSegment(self.state.now(), order, share, instance.rerun_outcome))

    def record(self, instance: WorkflowInstance) -> dict[str, Any]:
        status, _ = self._statuses(instance)
        started, finished = self._times(instance)
        created = self._wall_ms(instance.created)
        return {
            "Id": instance.instance_id,
            "WorkflowId": instance.workflow.workflow_id,
            "WorkflowTaskInstanceId": instance.instance_id * 100,
            "UnifiedWorkflowInstanceId": instance.instance_id,
            "Name": instance.name,
            "Type": instance.type,
            "Status": status,
            "BizDate": instance.bizdate,
            "StartedTime": started,
            "FinishedTime": finished,
            "ProjectId": DATAWORKS_PROJECT_ID,
            "EnvType": "Prod",
            "Owner": "1000",
            "CreateTime": created,
            "ModifyTime": finished or started or created,
            "CreateUser": "1000",
            "ModifyUser": "1000",
            "WorkflowParameters": instance.parameters,
            "Tags": [],
        }

    def task_record(self, instance: WorkflowInstance, index: int) -> dict[str, Any]:
        _, task_statuses = self._statuses(instance)
        started, finished = self._times(instance, index)
        task_id, task_name = instance.workflow.tasks[index]
        created = self._wall_ms(instance.created)
        return {
            "Id": instance.task_instance_id(index),
            "TaskId": task_id,
            "TaskName": task_name,
            "TaskType": "ODPS_SQL",
            "Status": task_statuses[index],
            "Bizdate": instance.bizdate,
            "WorkflowId": instance.workflow.workflow_id,
            "WorkflowName": instance.workflow.name,
            "WorkflowInstanceId": instance.instance_id,
            "WorkflowInstanceType": instance.type,
            "ProjectId": DATAWORKS_PROJECT_ID,
            "ProjectEnv": "Prod",
            "Owner": "1000",
            "RunNumber": 1 + len(instance.run_history.get(index, ())),
            "TriggerType": "Scheduler",
            "StartedTime": started,
            "FinishedTime": finished,
            "CreateTime": created,
            "ModifyTime": finished or started or created,
        }

    def _find_task(self, task_instance_id: int) -> tuple[WorkflowInstance, int] | None:
        instance = self.instances.get(task_instance_id // 100)
        index = task_instance_id % 100 - 1
        if instance is None or not self._visible(instance) or not 0 <= index < len(instance.workflow.tasks):
            return None
        return instance, index

    # -- the signature check -------------------------------------------------------------------------

    def _authenticate(self, request: web.Request, body: bytes) -> web.Response | None:
        """None when the request is signed as Alibaba Cloud checks it; otherwise its refusal."""
        parsed = _parse_authorization(request.headers.get("Authorization", ""))
        if parsed is None:
            return acs_error(400, "IncompleteSignature", "The request signature does not conform to Aliyun standards.")
        access_key_id, signed_headers, given = parsed
        missing = [name for name in (*REQUIRED_HEADERS, "host") if name not in request.headers]
        if missing:
            return acs_error(400, "MissingParameter", f"The required header {missing[0]} is not provided.")
        secret = ACCESS_KEYS.get(access_key_id)
        if secret is None:
            return acs_error(404, "InvalidAccessKeyId.NotFound", "Specified access key is not found.")
        signed = signed_headers.split(";")
        unsigned = [name for name in request.headers if _must_sign(name) and name.lower() not in signed]
        if unsigned or "host" not in signed:
            return acs_error(400, "IncompleteSignature", f"Header {(unsigned or ['host'])[0].lower()} must be signed.")
        try:
            sent = dt.datetime.strptime(request.headers["x-acs-date"], "%Y-%m-%dT%H:%M:%SZ")
        except ValueError:
            return acs_error(
                400, "InvalidTimeStamp.Format", "Specified time stamp or date value is not well formatted."
            )
        if abs(sent.replace(tzinfo=dt.timezone.utc).timestamp() - time.time()) > DATE_TOLERANCE_SECONDS:
            return acs_error(400, "InvalidTimeStamp.Expired", "Specified time stamp or date value is expired.")
        payload_hash = request.headers["x-acs-content-sha256"]
        if payload_hash != hashlib.sha256(body).hexdigest():
            return acs_error(400, "SignatureDoesNotMatch", "The x-acs-content-sha256 header does not match the body.")
        to_sign = _string_to_sign(request, signed, payload_hash)
        expected = hmac.new(secret.encode(), to_sign.encode(), hashlib.sha256).hexdigest()
        if not secrets.compare_digest(expected, given):
            return acs_error(
                400,
                "SignatureDoesNotMatch",
                f"Specified signature does not match our calculation. The string to sign on the server is: {to_sign}",
            )
        nonce = request.headers["x-acs-signature-nonce"]
        if nonce in self.nonces:
            return acs_error(400, "SignatureNonceUsed", "Specified signature nonce was used already.")
        self._remember(nonce)
        token = request.headers.get("x-acs-security-token")
        if access_key_id.startswith("STS."):
            if token is None:
                return acs_error(400, "InvalidSecurityToken.Missing", "The security token is missing.")
            if token != STS_SECURITY_TOKEN:
                return acs_error(
                    400, "InvalidSecurityToken.Mismatch", "Specified SecurityToken mismatch with the AccessKey."
                )
            # The SDK sends the AccessKey id beside an STS token (signed, as every x-acs- header must be).
            if request.headers.get("x-acs-accesskey-id") != access_key_id:
                return acs_error(
                    400,
                    "InvalidAccessKeyId.Mismatch",
                    "The x-acs-accesskey-id header is missing or differs from the AccessKey of the signature.",
                )
        if request.headers["x-acs-version"] != API_VERSION:
            return acs_error(400, "InvalidVersion", "Specified parameter Version is not valid for DataWorks.")
        return None

    def _remember(self, nonce: str) -> None:
        now = time.time()
        if len(self.nonces) > 10000:
            self.nonces = {key: seen for key, seen in self.nonces.items() if now - seen < DATE_TOLERANCE_SECONDS}
        self.nonces[nonce] = now

    # -- the API -------------------------------------------------------------------------------------

    async def handle(self, request: web.Request) -> web.StreamResponse:
        fault = take(self.state, PLATFORM, request)
        if fault is not None:
            faulted = await fault_response(fault, request, error=acs_error, expired_token=_expired_token)
            if faulted is not None:
                if fault.kind == "429" and fault.retry_after is not None:
                    faulted.headers.popall("Retry-After", None)
                    faulted.headers["x-acs-retry-after"] = str(round(fault.retry_after * 1000))
                return faulted
        body = await request.read()
        refusal = self._authenticate(request, body)
        if refusal is not None:
            return refusal
        params = dict(request.query)
        if request.method == "POST" and body:
            params.update(parse_qsl(body.decode("utf-8"), keep_blank_values=True))
        action = request.headers["x-acs-action"]
        self.action_counts[action] += 1
        handler = getattr(self, f"_action_{action}", None)
        if handler is None:
            return acs_error(404, "InvalidAction.NotFound", f"Specified api {action} is not found.")
        try:
            answer = handler(params)
        except _Refused as refused:
            return refused.response
        if isinstance(answer, web.Response):
            return answer
        return web.json_response({"RequestId": str(uuid.uuid4()).upper(), **answer})

    def _instance(self, value: str | None) -> WorkflowInstance:
        instance = self.instances.get(_integer(value, "Id"))
        if instance is None or not self._visible(instance):
            raise _Refused(acs_error(404, "EntityNotExists.WorkflowInstance", "The workflow instance does not exist."))
        return instance

    def _page(self, params: dict[str, str], records: list[dict[str, Any]], key: str, action: str) -> dict[str, Any]:
        number = _integer(params.get("PageNumber", "1"), "PageNumber")
        size = _integer(params.get("PageSize", "10"), "PageSize")
        limit = self.page_limits.get(action, 500)
        if number < 1:
            raise _Refused(acs_error(400, "InvalidParameter", "The parameter PageNumber must be at least 1."))
        if not 1 <= size <= limit:
            raise _Refused(acs_error(400, "InvalidParameter", f"The parameter PageSize must be between 1 and {limit}."))
        return {
            "TotalCount": len(records),
            "PageNumber": number,
            "PageSize": size,
            key: records[(number - 1) * size : number * size],
        }

    def _action_GetWorkflow(self, params: dict[str, str]) -> dict[str, Any]:
        workflow_id = _integer(_required(params, "Id"), "Id")
        workflow = self.workflows.get(workflow_id)
        if workflow is None:
            raise _Refused(acs_error(404, "EntityNotExists.Workflow", f"The workflow {workflow_id} does not exist."))
        trigger: dict[str, Any] = {"Type": workflow.trigger}
        if workflow.trigger == "Scheduler":
            trigger.update(Cron="00 00 * * * ?", Recurrence="Normal", StartTime="1970-01-01 00:00:00")
        return {
            "Workflow": {
                "Id": workflow.workflow_id,
                "Name": workflow.name,
                "ProjectId": DATAWORKS_PROJECT_ID,
                "EnvType": params.get("EnvType", "Prod"),
                "Owner": "1000",
                "Trigger": trigger,
                "Tasks": [
                    {"Id": task_id, "Name": name, "Type": "ODPS_SQL", "WorkflowId": workflow.workflow_id}
                    for task_id, name in workflow.tasks
                ],
                "Dependencies": [
                    {"Type": "Normal", "UpstreamTaskId": up, "DownstreamTaskId": down}
                    for up, down in workflow.dependencies
                ],
            }
        }

    def _action_GetWorkflowInstance(self, params: dict[str, str]) -> dict[str, Any]:
        return {"WorkflowInstance": self.record(self._instance(_required(params, "Id")))}

    def _action_ListWorkflowInstances(self, params: dict[str, str]) -> dict[str, Any]:
        _project(params)
        bizdate = _integer(_required(params, "BizDate"), "BizDate")
        wanted_ids = set(_json_list(params, "Ids")) if "Ids" in params else None
        records = [
            self.record(instance)
            for instance in self.instances.values()
            if self._visible(instance)
            and instance.bizdate == bizdate
            and ("WorkflowId" not in params or str(instance.workflow.workflow_id) == params["WorkflowId"])
            and ("Type" not in params or instance.type == params["Type"])
            and ("Name" not in params or params["Name"] in instance.name)
            and (wanted_ids is None or instance.instance_id in wanted_ids)
        ]
        return {"PagingInfo": self._page(params, records, "WorkflowInstances", "ListWorkflowInstances")}

    def _action_ListTaskInstances(self, params: dict[str, str]) -> dict[str, Any]:
        _project(params)
        bizdate = _integer(_required(params, "Bizdate"), "Bizdate")  # with a lower-case d
        workflow_instance_id = params.get("WorkflowInstanceId")
        records = [
            self.task_record(instance, index)
            for instance in self.instances.values()
            if self._visible(instance)
            and instance.bizdate == bizdate
            and (workflow_instance_id is None or str(instance.instance_id) == workflow_instance_id)
            for index in range(len(instance.workflow.tasks))
        ]
        return {"PagingInfo": self._page(params, records, "TaskInstances", "ListTaskInstances")}

    def _action_ListUpstreamTaskInstances(self, params: dict[str, str]) -> dict[str, Any]:
        found = self._find_task(_integer(_required(params, "Id"), "Id"))
        if found is None:
            raise _Refused(acs_error(404, "EntityNotExists.TaskInstance", "The task instance does not exist."))
        instance, index = found
        task_id = instance.workflow.tasks[index][0]
        positions = {tid: i for i, (tid, _) in enumerate(instance.workflow.tasks)}
        records = [
            {"DependencyType": "Normal", "TaskInstance": self.task_record(instance, positions[up])}
            for up, down in instance.workflow.dependencies
            if down == task_id
        ]
        return {"PagingInfo": self._page(params, records, "UpstreamTaskInstances", "ListUpstreamTaskInstances")}

    def _action_CreateWorkflowInstances(self, params: dict[str, str]) -> dict[str, Any]:
        _project(params)
        for name in ("WorkflowId", "Name", "Type"):
            _required(params, name)
        operation = CreateOperation(operation_id=uuid.uuid4().hex, ready_at=self.state.now() + CREATE_SECONDS)
        workflow = self.workflows.get(int(params["WorkflowId"])) if params["WorkflowId"].isdigit() else None
        if workflow is None:
            operation.failure = f"The workflow {params['WorkflowId']} does not exist in project {DATAWORKS_PROJECT_ID}."
        else:
            for bizdate in self._creation_bizdates(workflow, params):
                instance = self._create(
                    workflow,
                    name=params["Name"],
                    type=params["Type"],
                    delay=CREATE_SECONDS,
                    bizdate=bizdate,
                    parameters=params.get("WorkflowParameters", ""),
                )
                operation.instance_ids.append(instance.instance_id)
        self.operations[operation.operation_id] = operation
        return {"OperationId": operation.operation_id}

    def _creation_bizdates(self, workflow: Workflow, params: dict[str, str]) -> list[int | None]:
        """The business date of each instance the create makes (None: the default), or its refusal: the Type
        must fit how the workflow is triggered, and WorkflowParameters the format that Type takes."""
        kind = params["Type"]
        wanted = TYPE_FOR_TRIGGER[workflow.trigger]
        if kind != wanted:
            raise _Refused(
                acs_error(
                    400,
                    "InvalidParameter",
                    f"The workflow {workflow.workflow_id} is triggered by {workflow.trigger}: "
                    f"the Type {kind} is not supported for it, use {wanted}.",
                )
            )
        _check_workflow_parameters(params.get("WorkflowParameters"), json_object=kind == "ManualWorkflow")
        if kind != "SupplementData":
            return [None]
        _check_run_properties(params.get("DefaultRunProperties"), {task_id for task_id, _ in workflow.tasks})
        return [_business_day_ms(day) for day in _period_days(params.get("Periods"))]

    def _action_GetCreateWorkflowInstancesResult(self, params: dict[str, str]) -> dict[str, Any]:
        operation = self.operations.get(_required(params, "OperationId"))
        if operation is None:
            raise _Refused(acs_error(404, "EntityNotExists.Operation", "The operation does not exist."))
        if self.state.now() < operation.ready_at:
            result: dict[str, Any] = {"Status": "Creating", "WorkflowInstanceIds": []}
        elif operation.failure is not None:
            result = {"Status": "CreateFailure", "FailureMessage": operation.failure, "WorkflowInstanceIds": []}
        else:
            result = {"Status": "Created", "WorkflowInstanceIds": list(operation.instance_ids)}
        return {"Result": result}

    def _action_StopWorkflowInstances(self, params: dict[str, str]) -> dict[str, Any]:
        info: dict[str, Any] = {}
        for value in _json_list(params, "Ids", required=True):
            instance = self.instances.get(value) if isinstance(value, int) else None
            if instance is None or not self._visible(instance):
                info[str(value)] = {"Success": False, "Message": "The instance does not exist."}
            elif self._statuses(instance)[0] in FINISHED:
                info[str(value)] = {"Success": False, "Message": "The instance has already finished."}
            else:
                instance.stopped_at = self.state.now()
                info[str(value)] = {"Success": True, "Message": ""}
        return {"SuccessInfo": info}

    def _action_RerunTaskInstances(self, params: dict[str, str]) -> dict[str, Any]:
        """Rerun task instances of finished workflow instances; ``SuccessInfo`` says, per id, whether it was."""
        ids = _json_list(params, "Ids", required=True)
        use_latest = params.get("UseLatestConfig")
        if use_latest is not None and use_latest not in ("true", "false"):
            raise _invalid("UseLatestConfig", "give true or false")
        self.rerun_calls.append(
            {
                "action": "RerunTaskInstances",
                "ids": [str(value) for value in ids],
                "comment": params.get("Comment"),
                "use_latest_config": use_latest,
            }
        )
        info: dict[str, Any] = {}
        chosen: dict[int, list[int]] = {}
        for value in ids:
            found = self._find_task(value) if isinstance(value, int) else None
            if found is None:
                info[str(value)] = {"Success": False, "Message": "The instance does not exist."}
                continue
            instance, index = found
            if self._statuses(instance)[0] not in FINISHED:
                info[str(value)] = {"Success": False, "Message": "The workflow instance is still running."}
                continue
            chosen.setdefault(instance.instance_id, []).append(index)
            info[str(value)] = {"Success": True, "Message": ""}
        for instance_id, indexes in chosen.items():
            self.rerun(self.instances[instance_id], indexes)
        return {"SuccessInfo": info}

    def _action_GetTaskInstanceLog(self, params: dict[str, str]) -> dict[str, Any]:
        """The log of one run of a task instance: ``Id`` required, ``RunNumber`` from 1 (default: the latest)."""
        self.state.requests["dataworks action GetTaskInstanceLog"] += 1  # "/" serves every action: count this one
        found = self._find_task(_integer(_required(params, "Id"), "Id"))
        if found is None:
            raise _Refused(acs_error(404, "EntityNotExists.TaskInstance", "The task instance does not exist."))
        instance, index = found
        earlier = instance.run_history.get(index, [])
        latest = len(earlier) + 1
        run = _integer(params["RunNumber"], "RunNumber") if "RunNumber" in params else latest
        if not 1 <= run <= latest:
            raise _Refused(acs_error(400, "InvalidParameter.RunNumber", "The run number does not exist."))
        task_name = instance.workflow.tasks[index][1]
        status = earlier[run - 1] if run < latest else self._statuses(instance)[1][index]
        if status == "NotRun":
            return {"TaskInstanceLog": ""}
        lines = [f"[emulator] {task_name}: task instance {instance.task_instance_id(index)}, run {run}"]
        lines += [f"[emulator] {task_name}: step {step} of 30 done" for step in range(1, 31)]
        if status == "Failure":
            lines += [
                "FAILED: ODPS-0130071:[1,8] Semantic analysis exception - column sale_amount cannot be resolved",
                "Current task status: ERROR",
            ]
        elif status == "Success":
            lines.append("Current task status: FINISH")
        return {"TaskInstanceLog": "\n".join(lines) + "\n"}


class _Refused(Exception):
    def __init__(self, response: web.Response) -> None:
        super().__init__(response.status)
        self.response = response


def _must_sign(name: str) -> bool:
    return name.lower().startswith("x-acs-")


def _expired_token() -> web.Response:
    return acs_error(400, "InvalidSecurityToken.Expired", "Specified SecurityToken is expired.")


def _required(params: dict[str, str], name: str) -> str:
    value = params.get(name)
    if value is None or value == "":
        raise _Refused(acs_error(400, f"Missing{name}", f"{name} is mandatory for this action."))
    return value


def _integer(value: str | None, name: str) -> int:
    if value is None or not value.strip().lstrip("-").isdigit():
        raise _Refused(acs_error(400, "InvalidParameter", f"The parameter {name} is not a valid integer: {value!r}."))
    return int(value)


def _project(params: dict[str, str]) -> None:
    if _integer(_required(params, "ProjectId"), "ProjectId") != DATAWORKS_PROJECT_ID:
        raise _Refused(acs_error(404, "EntityNotExists.Project", "The project does not exist."))


def _json_list(params: dict[str, str], name: str, *, required: bool = False) -> list[Any]:
    text = _required(params, name) if required else params.get(name, "[]")
    try:
        values = json.loads(text)
    except ValueError:
        values = None
    if not isinstance(values, list):
        raise _Refused(acs_error(400, "InvalidParameter", f"The parameter {name} must be a JSON array."))
    return values


def _status_word(outcome: str) -> str:
    """An outcome as DataWorks writes it: Success or Failure (tests may write success, failed, failure)."""
    if outcome in FINISHED:
        return outcome
    return {"success": "Success", "failed": "Failure", "failure": "Failure"}[str(outcome).lower()]


def _business_day_ms(day: dt.date) -> int:
    """00:00:00 of ``day`` in UTC+8, in epoch ms."""
    return int(dt.datetime(day.year, day.month, day.day, tzinfo=BUSINESS_ZONE).timestamp() * 1000)


def _invalid(name: str, why: str) -> _Refused:
    return _Refused(acs_error(400, "InvalidParameter", f"The parameter {name} is not valid: {why}."))


def _json_object(text: str | None, name: str) -> dict[str, Any]:
    if not text:
        raise _Refused(acs_error(400, f"Missing{name}", f"{name} is mandatory for this action."))
    try:
        value = json.loads(text)
    except ValueError:
        value = None
    if not isinstance(value, dict):
        raise _invalid(name, "it must be a JSON object")
    return value


def _period_days(text: str | None) -> list[dt.date]:
    """Every day of ``Periods.BizDates`` (``[{"StartBizDate": "yyyy-mm-dd", "EndBizDate": ...}]``, 1 to 7)."""
    ranges = _json_object(text, "Periods").get("BizDates")
    if not isinstance(ranges, list) or not 1 <= len(ranges) <= 7:
        raise _invalid("Periods.BizDates", "give 1 to 7 business date ranges")
    days: list[dt.date] = []
    for entry in ranges:
        try:
            start = dt.date.fromisoformat(str(entry["StartBizDate"]))
            end = dt.date.fromisoformat(str(entry["EndBizDate"]))
        except (KeyError, TypeError, ValueError):
            raise _invalid("Periods.BizDates", "each range needs StartBizDate and EndBizDate as yyyy-mm-dd") from None
        if end < start:
            raise _invalid("Periods.BizDates", "EndBizDate is before StartBizDate")
        days += [start + dt.timedelta(days=offset) for offset in range((end - start).days + 1)]
    return days


def _check_run_properties(text: str | None, task_ids: set[int]) -> None:
    """A backfill's DefaultRunProperties: Mode, Parallelism and Analysis are required, and RootTaskIds of the
    workflow's own tasks unless Mode is Chain."""
    properties = _json_object(text, "DefaultRunProperties")
    mode = properties.get("Mode")
    if mode not in ("General", "ManualSelection", "Chain", "AllDownstream"):
        raise _invalid("DefaultRunProperties.Mode", f"{mode!r} is not a data backfill mode")
    parallelism = properties.get("Parallelism")
    if not isinstance(parallelism, int) or not 1 <= parallelism <= 10:
        raise _invalid("DefaultRunProperties.Parallelism", "give 1 to 10")
    analysis = properties.get("Analysis")
    if not isinstance(analysis, dict) or not all(isinstance(analysis.get(key), bool) for key in ("Enabled", "Blocked")):
        raise _invalid("DefaultRunProperties.Analysis", "Enabled and Blocked are required")
    roots = properties.get("RootTaskIds")
    if mode != "Chain" and (not isinstance(roots, list) or not roots or not set(roots) <= task_ids):
        raise _invalid("DefaultRunProperties.RootTaskIds", "give tasks of the workflow")


def _check_workflow_parameters(text: str | None, *, json_object: bool) -> None:
    """JSON for a manual workflow; ``key=value`` text (pairs separated by white space) for the others."""
    if not text:
        return
    if json_object:
        _json_object(text, "WorkflowParameters")
        return
    pairs = text.split()
    if text.lstrip().startswith(("{", "[")) or not all("=" in pair and not pair.startswith("=") for pair in pairs):
        raise _invalid("WorkflowParameters", "a periodic or event-triggered workflow takes key=value text")


# -- the V3 signature, from Alibaba Cloud's "Request syntax and signature method V3" ------------------


def _parse_authorization(value: str) -> tuple[str, str, str] | None:
    """``ACS3-HMAC-SHA256 Credential=<id>,SignedHeaders=<a;b>,Signature=<hex>``: (id, names, signature)."""
    prefix = "ACS3-HMAC-SHA256 "
    if not value.startswith(prefix):
        return None
    fields = dict(part.strip().split("=", 1) for part in value[len(prefix) :].split(",") if "=" in part)
    if not {"Credential", "SignedHeaders", "Signature"} <= set(fields):
        return None
    return fields["Credential"], fields["SignedHeaders"], fields["Signature"]


def _rfc3986(text: str) -> str:
    return quote(text, safe="-_.~")


def _string_to_sign(request: web.Request, signed: list[str], payload_hash: str) -> str:
    """``ACS3-HMAC-SHA256\n`` + hex sha256 of the canonical request, built from what came over the wire."""
    uri = "/".join(_rfc3986(segment) for segment in (request.path or "/").split("/"))
    query = "&".join(f"{_rfc3986(key)}={_rfc3986(value)}" for key, value in sorted(request.query.items()))
    values: dict[str, list[str]] = {}
    for name, value in request.headers.items():
        if name.lower() in signed:
            values.setdefault(name.lower(), []).append(value.strip())
    header_lines = "".join(f"{name}:{','.join(sorted(values.get(name, [])))}\n" for name in sorted(signed))
    canonical = "\n".join([request.method, uri, query, header_lines, ";".join(sorted(signed)), payload_hash])
    return "ACS3-HMAC-SHA256\n" + hashlib.sha256(canonical.encode()).hexdigest()


def mount(emulator: Emulator) -> DataWorksEmulator:
    """This platform inside ``emulator`` (see ``parts.EmulatorModule``)."""
    return DataWorksEmulator(emulator.state)


def connection(url: str) -> dict[str, Any]:
    """The default connection to an emulator at ``url``."""
    return {
        "login": DATAWORKS_ACCESS_KEY_ID,
        "password": DATAWORKS_ACCESS_KEY_SECRET,
        "extra": {"region_id": DATAWORKS_REGION_ID, "endpoint": url, "project_id": DATAWORKS_PROJECT_ID},
    }
