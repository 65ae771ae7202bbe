"""EnOS BPM behind the EnOS gateway, with the Application Portal login that hands out the bearer tokens.

Every call here, the portal's included, must be signed for the gateway (``Gateway.check``); BPM calls
also need a live portal session. As app-portal-api 3.0.0 says, the token Log In hands out serves Choose
Organization only; BPM accepts the token that call hands out (v2.2: a new one; v2.1: "the access token in
the request", now bound to the organization). An expired or unknown session answers 31401 "Please login
first". Process instances move ``inProgress`` -> ``completed`` or ``terminated`` on the emulated clock, one
current task (``taskName``, ``assignee``) after another.

``POST /_emulator/enos_bpm/settings`` changes what the portal and queryList do (see ``BPMSettings``).
"""

from __future__ import annotations

import json
import secrets
import time
import uuid
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

from aiohttp import web

from airflow_provider_flowinst.testing.emulator.credentials import (
    BPM_ACCOUNT,
    BPM_PASSWORD,
    ENOS_APP_KEY,
    ENOS_APP_SECRET,
    ENOS_ORG_ID,
    ENOS_USER_ID,
)
from airflow_provider_flowinst.testing.emulator.enos_gateway import BehindGateway, Gateway
from airflow_provider_flowinst.testing.emulator.state import EmulatorState

if TYPE_CHECKING:
    from airflow_provider_flowinst.testing.emulator.app import Emulator

PLATFORM = "enos_bpm"
BASE = "/enos-bpm-service/v2.0/work"
PORTAL = "/app-portal-service"
ORG_NAME = "Emulated Organization"
REFRESH_TOKEN_LIFETIME_SECONDS = 30 * 24 * 3600  # (inferred) the portal's refresh tokens outlive access tokens


def user(user_id: str, full_name: str, email: str) -> dict[str, Any]:
    """A UserRepresentation struct."""
    return {
        "id": user_id,
        "firstName": None,
        "lastName": None,
        "email": email,
        "fullName": full_name,
        "tenantId": ENOS_ORG_ID,
        "groups": [],
        "privileges": [],
    }


CALLER = user(ENOS_USER_ID, "bpm.user", BPM_ACCOUNT)
MANAGER = user("u15000000000002", "jane.manager", "jane.manager@example.com")
FINANCE = user("u15000000000003", "frank.finance", "frank.finance@example.com")
LEGAL = user("u15000000000004", "lena.legal", "lena.legal@example.com")


@dataclass
class Definition:
    definition_id: str
    key: str
    name: str
    tasks: list[tuple[str, dict[str, Any]]]  # (task name, assignee), in order
    outcome: str = "completed"  # or "terminated": the last assignee rejects it
    seconds_per_task: float = 2.0
    version: int = 1


DEFAULT_DEFINITIONS = [
    Definition(
        "purchaseApproval:3:5abd9f71-e365-11ea-8a6b-be43f0d99bcd",
        "purchaseApproval",
        "Purchase approval",
        [("Manager approval", MANAGER), ("Finance review", FINANCE)],
        version=3,
    ),
    Definition(
        "leaveRequest:1:6c0e1a22-e365-11ea-8a6b-be43f0d99bcd",
        "leaveRequest",
        "Leave request",
        [("Manager approval", MANAGER)],
    ),
    Definition(
        "expenseClaim:2:7d1f2b33-e365-11ea-8a6b-be43f0d99bcd",
        "expenseClaim",
        "Expense claim",
        [("Manager approval", MANAGER)],
        outcome="terminated",
    ),
    Definition(
        "contractReview:1:8e203c44-e365-11ea-8a6b-be43f0d99bcd",
        "contractReview",
        "Contract review",
        [("Legal review", LEGAL)],
        seconds_per_task=10 * 3600,
    ),
]
REJECTION_REASON = "Rejected by the approver"


@dataclass
class ProcessInstance:
    instance_id: str
    definition: Definition
    name: str
    created: float  # emulated seconds
    started_by: dict[str, Any]
    values: dict[str, Any] = field(default_factory=dict)
    terminated_at: float | None = None
    terminated_by: dict[str, Any] | None = None
    terminate_reason: str | None = None


@dataclass
class UserSession:
    account: str
    user_id: str
    org_id: str | None  # None: a login's token, which serves Choose Organization only
    expires: float  # time.monotonic()


@dataclass
class BPMSettings:
    """What a test may change: which portal versions exist, the organizations, queryList's page limits."""

    #: Log In versions served; the others answer HTTP 404 (an older portal serves v2.0 only, as the en
    #: app-portal-api 2.3.0 pages and api_en ``app_portal/login.md`` write it; it answers ``code: 200``).
    login_versions: tuple[str, ...] = ("v2.2", "v2.0")
    #: Choose Organization versions served; the others answer HTTP 404 (new portals may have dropped v2.1).
    session_set_versions: tuple[str, ...] = ("v2.2", "v2.1")
    refresh_versions: tuple[str, ...] = ("v2.2", "v2.0")
    organizations: tuple[tuple[str, str], ...] = ((ENOS_ORG_ID, ORG_NAME),)
    #: queryList hands out at most this many rows a page, whatever pageSize asks (None: no cap).
    page_cap: int | None = None
    #: queryList refuses a pageSize above this (None: any size is taken).
    page_size_limit: int | None = None

    @classmethod
    def from_json(cls, spec: dict[str, Any]) -> BPMSettings:
        def opt_int(key: str) -> int | None:
            return None if spec.get(key) is None else int(spec[key])

        return cls(
            login_versions=tuple(spec.get("login_versions", cls.login_versions)),
            session_set_versions=tuple(spec.get("session_set_versions", cls.session_set_versions)),
            refresh_versions=tuple(spec.get("refresh_versions", cls.refresh_versions)),
            organizations=tuple((str(o[0]), str(o[1])) for o in spec.get("organizations", cls.organizations)),
            page_cap=opt_int("page_cap"),
            page_size_limit=opt_int("page_size_limit"),
        )


class EnOSBPMEmulator(BehindGateway):
    platform = PLATFORM
    path_prefixes = ("/enos-bpm-service/", "/app-portal-service/")

    def __init__(self, state: EmulatorState, gateway: Gateway) -> None:
        super().__init__(state, gateway)
        self.definitions = {definition.definition_id: definition for definition in DEFAULT_DEFINITIONS}
        self.instances: dict[str, ProcessInstance] = {}
        self.sessions: dict[str, UserSession] = {}  # bearer token -> session
        self.refresh_tokens: dict[str, tuple[str, float]] = {}  # refresh token -> (bearer token, expires)
        self.settings = BPMSettings()
        self.wall_start_ms = int(time.time() * 1000)
        self._seed()

    def _seed(self) -> None:
        """Instances that exist from the start, with fixed ids: one of each final state and one running."""
        by_key = {definition.key: definition for definition in self.definitions.values()}
        seeds = [
            ("0b7c5e00-e39a-11ea-b667-e2b39eaec001", "purchaseApproval", -3600.0),
            ("0b7c5e00-e39a-11ea-b667-e2b39eaec002", "expenseClaim", -1800.0),
            ("0b7c5e00-e39a-11ea-b667-e2b39eaec003", "contractReview", -600.0),
        ]
        for instance_id, key, created in seeds:
            definition = by_key[key]
            self.instances[instance_id] = ProcessInstance(
                instance_id, definition, definition.name, created=created, started_by=CALLER
            )

    def expire_tokens(self) -> None:
        """The portal's user sessions end (the gateway's tokens end through ``Gateway.expire_tokens``)."""
        self.sessions.clear()

    def routes(self) -> list[web.RouteDef]:
        return [
            web.post(f"{PORTAL}/{{version}}/login", self.login),
            web.post(f"{PORTAL}/{{version}}/session/set", self.session_set),
            web.get(f"{PORTAL}/{{version}}/token/refresh", self.token_refresh),
            web.get(f"{BASE}/process-instances", self.handle),
            web.post(f"{BASE}/process-instances", self.handle),
            web.post(f"{BASE}/process-instances/queryList", self.handle),
            web.post("/_emulator/enos_bpm/expire_user_tokens", self.control_expire_user_tokens),
            web.post("/_emulator/enos_bpm/settings", self.control_settings),
            web.post("/_emulator/enos_bpm/instances", self.control_create),
        ]

    # -- Application Portal ---------------------------------------------------------------------------

    @staticmethod
    def _portal(code: int, message: str, data: Any = None, status: int = 200) -> web.Response:
        return web.json_response({"code": code, "message": message, "data": data}, status=status)

    async def _portal_body(self, request: web.Request) -> dict[str, Any] | None:
        try:
            body = json.loads(await request.read() or b"{}")
        except ValueError:
            return None
        return body if isinstance(body, dict) else None

    async def login(self, request: web.Request) -> web.Response:
        # Which versions were tried, apart from the platform's call counts (a login is no BPM call).
        self.state.requests[f"enos_bpm_portal {request.method} {request.path}"] += 1
        if request.match_info["version"] not in self.settings.login_versions:
            return web.json_response({"code": 404, "message": "Not Found", "data": None}, status=404)
        self.state.token_requests["enos_bpm_portal"] += 1
        refusal = await self.gateway.check(request)
        if refusal is not None:
            return refusal
        body = await self._portal_body(request)
        if body is None or body.get("account") != BPM_ACCOUNT or body.get("password") != BPM_PASSWORD:
            # (inferred) the portal answers HTTP 200 with its own code; 31400 is the documented one.
            return self._portal(31400, "User password is missing or not valid")
        token = "APP_PORTAL_S_" + secrets.token_urlsafe(24)
        self.sessions[token] = UserSession(BPM_ACCOUNT, ENOS_USER_ID, None, self._token_expiry())
        ok_code = 200 if request.match_info["version"] == "v2.0" else 0  # v2.0 answered code 200
        return self._portal(
            ok_code,
            "OK",
            {
                "accessToken": token,
                "organizations": [{"id": org, "name": name} for org, name in self.settings.organizations],
                "user": {"id": ENOS_USER_ID, "name": CALLER["fullName"]},
            },
        )

    async def session_set(self, request: web.Request) -> web.Response:
        version = request.match_info["version"]
        if version not in self.settings.session_set_versions:
            return web.json_response({"code": 404, "message": "Not Found", "data": None}, status=404)
        refusal = await self.gateway.check(request)
        if refusal is not None:
            return refusal
        bearer, session = self._session(request)
        if session is None:
            return self._portal(31401, "Please login first")
        body = await self._portal_body(request)
        org_id = None if body is None else body.get("orgId")
        if not org_id:
            return self._portal(31400, "orgId is required")
        if org_id not in dict(self.settings.organizations):
            return self._portal(31404, "Can not find this organization.")
        if version == "v2.1":  # answers with the access token in the request, now bound to the organization
            session.org_id = org_id
            return self._portal(200, "", self._session_data(bearer, session))
        token = "APP_PORTAL_S_" + secrets.token_urlsafe(24)
        bound = UserSession(session.account, session.user_id, org_id, self._token_expiry())
        self.sessions[token] = bound
        return self._portal(0, "OK", self._session_data(token, bound))

    async def token_refresh(self, request: web.Request) -> web.Response:
        version = request.match_info["version"]
        if version not in self.settings.refresh_versions:
            return web.json_response({"code": 404, "message": "Not Found", "data": None}, status=404)
        self.state.token_requests["enos_bpm_refresh"] += 1
        refusal = await self.gateway.check(request)
        if refusal is not None:
            return refusal
        refresh_token = request.query.get("refreshToken", "")
        if not refresh_token:
            return self._portal(31400, "Refresh Token is required")
        entry = self.refresh_tokens.pop(refresh_token, None)
        if entry is None or entry[1] <= time.monotonic():
            return self._portal(31401, "Please login first")
        old = self.sessions.pop(entry[0], None)
        if old is None:
            old = UserSession(BPM_ACCOUNT, ENOS_USER_ID, ENOS_ORG_ID, 0.0)
        token = "APP_PORTAL_S_" + secrets.token_urlsafe(24)
        session = UserSession(old.account, old.user_id, old.org_id, self._token_expiry())
        self.sessions[token] = session
        return self._portal(200 if version == "v2.0" else 0, "OK", self._session_data(token, session))

    def _session_data(self, bearer: str, session: UserSession) -> dict[str, Any]:
        refresh = secrets.token_urlsafe(24)
        expires_ms = int(time.time() * 1000) + REFRESH_TOKEN_LIFETIME_SECONDS * 1000
        self.refresh_tokens[refresh] = (bearer, time.monotonic() + REFRESH_TOKEN_LIFETIME_SECONDS)
        return {
            "userId": session.user_id,
            "userName": CALLER["fullName"],
            "currentOrgId": session.org_id,
            "currentOrgName": ORG_NAME,
            "accessToken": bearer,
            "refreshToken": refresh,
            "refreshTokenExpire": expires_ms,
        }

    def _token_expiry(self) -> float:
        return time.monotonic() + self.state.token_lifetime

    def _session(self, request: web.Request) -> tuple[str, UserSession | None]:
        header = request.headers.get("Authorization", "")
        scheme, _, bearer = header.partition(" ")
        if scheme.lower() != "bearer" or not bearer:
            return "", None
        session = self.sessions.get(bearer)
        if session is None or session.expires <= time.monotonic():
            self.sessions.pop(bearer, None)
            return bearer, None
        return bearer, session

    async def control_create(self, request: web.Request) -> web.Response:
        """New instances (``count``, default 1) of the definition whose key is given (e.g.
        ``purchaseApproval``), started now."""
        spec = await request.json()
        by_key = {definition.key: definition for definition in self.definitions.values()}
        definition = by_key[str(spec.get("definition_key", "purchaseApproval"))]
        if spec.get("seconds_per_task") is not None:
            definition = replace(definition, seconds_per_task=float(spec["seconds_per_task"]))
        created = []
        for _ in range(int(spec.get("count", 1))):
            instance = ProcessInstance(
                str(uuid.uuid4()), definition, definition.name, created=self.state.now(), started_by=CALLER
            )
            self.instances[instance.instance_id] = instance
            created.append(instance.instance_id)
        return web.json_response({"instance_id": created[0] if created else None, "instance_ids": created})

    async def control_settings(self, request: web.Request) -> web.Response:
        """Replace the settings (``BPMSettings`` fields; those left out take their defaults)."""
        try:
            self.settings = BPMSettings.from_json(await request.json())
        except (TypeError, ValueError, IndexError) as exc:
            return web.json_response({"error": str(exc)}, status=400)
        return web.json_response({"ok": True})

    async def control_expire_user_tokens(self, request: web.Request) -> web.Response:
        """Drop every portal session (the gateway tokens stay): the next BPM call answers 31401. With
        ``{"refresh_tokens": true}`` the refresh tokens go too, so only a password login helps."""
        spec = await request.json() if request.can_read_body else {}
        self.sessions.clear()
        if isinstance(spec, dict) and spec.get("refresh_tokens"):
            self.refresh_tokens.clear()
        return web.json_response({"ok": True})

    # -- BPM ------------------------------------------------------------------------------------------

    async def handle(self, request: web.Request) -> web.StreamResponse:
        refusal = await self.refusal(request)
        if refusal is not None:
            return refusal
        _, session = self._session(request)
        if session is None or session.org_id is None:
            # An expired or unknown session, or a login's token (it serves Choose Organization only). The
            # HTTP status is not documented: 200 with the code, as the portal's other refusals.
            return self._envelope(31401, "Please login first")
        try:
            body = json.loads(await request.read() or b"null")
        except ValueError:
            return self._envelope(33400, "Invalid parameter: the body is not JSON")
        if request.path.endswith("/queryList"):
            return self._query(body)
        if request.method == "GET":
            return self._get(request.query.get("processInstanceId", ""))
        if request.query.get("action") == "delete":
            return self._terminate(request.query.get("processInstanceId", ""), body)
        return self._start(body)

    def _expire_and_refuse(self) -> web.Response:
        self.sessions.clear()  # the portal's sessions end with the gateway's tokens
        return super()._expire_and_refuse()

    @staticmethod
    def _envelope(code: int, message: str, data: Any = None) -> web.Response:
        return web.json_response({"code": code, "msg": message, "data": data})

    def _get(self, instance_id: str) -> web.Response:
        instance = self.instances.get(instance_id)
        if instance is None:
            return self._envelope(
                33404, "The process instance ID does not exist or you do not have the permission to view it."
            )
        return self._envelope(0, "", self.record(instance))

    def _start(self, body: Any) -> web.Response:
        body = body if isinstance(body, dict) else {}
        definition = self.definitions.get(str(body.get("processDefinitionId", "")))
        if definition is None:  # (inferred) 33400 for invalid parameters, by analogy with 33403/33404/33500
            return self._envelope(33400, "Invalid parameter: the process definition does not exist.")
        values = body.get("values")
        if not isinstance(values, dict):
            return self._envelope(33400, "Invalid parameter: values is required.")
        instance = ProcessInstance(
            str(uuid.uuid4()),
            definition,
            str(body.get("name") or definition.name),
            created=self.state.now(),
            started_by=CALLER,
            values=values,
        )
        self.instances[instance.instance_id] = instance
        return self._envelope(0, "", self.record(instance))

    def _terminate(self, instance_id: str, body: Any) -> web.Response:
        instance = self.instances.get(instance_id)
        if instance is None:
            return self._envelope(33404, "The process instance ID does not exist.")
        body = body if isinstance(body, dict) else {}
        reason = body.get("deleteReason") or body.get("terminateReason")
        if not reason:
            return self._envelope(33400, "Invalid parameter: deleteReason is required.")
        if self._progress(instance)[0] != "inProgress":  # (inferred) an ended instance is not terminable
            return self._envelope(
                33403, "The current user does not have the permission to terminate this process instance."
            )
        instance.terminated_at = self.state.now()
        instance.terminated_by = CALLER
        instance.terminate_reason = str(reason)
        return self._envelope(0, "", True)

    def _query(self, body: Any) -> web.Response:
        body = body if isinstance(body, dict) else {}
        status = body.get("processStatus")
        if status not in ("inProgress", "completed", "terminated"):
            return self._envelope(
                33400, "Invalid parameter: processStatus must be inProgress, completed or terminated."
            )
        pagination = body.get("pagination") if isinstance(body.get("pagination"), dict) else {}
        current, page_size = pagination.get("current", 0), pagination.get("pageSize", 1000)
        # "starting from 0": a negative page is refused, and page 0 is the first one.
        if not _is_int(current) or not _is_int(page_size) or current < 0 or page_size < 1:
            return self._envelope(33400, "Invalid parameter: pagination.current must be >= 0, pageSize >= 1.")
        limit = self.settings.page_size_limit
        if limit is not None and page_size > limit:  # (inferred) how a platform refuses a page too large
            return self._envelope(33400, f"Invalid parameter: pagination.pageSize must not exceed {limit}.")
        if self.settings.page_cap is not None:  # the page the platform hands out, whatever was asked
            page_size = min(page_size, self.settings.page_cap)
        records = [self.record(inst) for inst in self.instances.values()]
        records = [r for r in records if r["processStatus"] == status]
        if body.get("processName"):
            records = [r for r in records if str(body["processName"]) in r["name"]]
        if body.get("processInstanceId"):
            records = [r for r in records if r["id"] == body["processInstanceId"]]
        if body.get("startBy"):
            records = [r for r in records if r["startedBy"]["id"] == body["startBy"]]
        if body.get("startedBefore") is not None:
            records = [r for r in records if r["createdTime"] < int(body["startedBefore"])]
        if body.get("startedAfter") is not None:
            records = [r for r in records if r["createdTime"] > int(body["startedAfter"])]
        sorts = pagination.get("sorts") or [{"field": "createdTime", "order": "desc"}]
        sort = sorts[0] if isinstance(sorts[0], dict) else {}
        sort_field = str(sort.get("field") or "createdTime")
        records.sort(
            key=lambda r: (r.get(sort_field) is None, r.get(sort_field) or 0, r["id"]),
            reverse=str(sort.get("order", "desc")).lower() == "desc",
        )
        page = records[current * page_size : (current + 1) * page_size]
        # queryList's records leave processStatus out (the query's own filter says it): drop it here too.
        listed = [{key: value for key, value in record.items() if key != "processStatus"} for record in page]
        return self._envelope(
            0,
            "",
            {
                "pagination": {
                    "current": current,
                    "pageSize": page_size,
                    "total": len(records),
                    "sorts": sorts,
                    "start": current * page_size,
                },
                "processInstances": listed,
            },
        )

    # -- what an instance looks like at this moment --------------------------------------------------

    def _progress(self, instance: ProcessInstance) -> tuple[str, int | None, float]:
        """(processStatus, index of the current task or None, emulated seconds from creation to end)."""
        definition = instance.definition
        if instance.terminated_at is not None:
            return "terminated", None, instance.terminated_at - instance.created
        age = self.state.now() - instance.created
        total = definition.seconds_per_task * len(definition.tasks)
        if age < total:
            return "inProgress", int(age // definition.seconds_per_task), age
        return definition.outcome, None, total

    def _epoch_ms(self, emulated: float) -> int:
        return self.wall_start_ms + int(emulated * self.state.time_scale * 1000)

    def record(self, instance: ProcessInstance) -> dict[str, Any]:
        definition = instance.definition
        status, task_index, end_offset = self._progress(instance)
        created_ms = self._epoch_ms(instance.created)
        ended_ms = None if status == "inProgress" else self._epoch_ms(instance.created + end_offset)
        task_name, assignee = definition.tasks[task_index] if task_index is not None else (None, None)
        terminated_by, reason = None, None
        if status == "terminated":
            terminated_by = instance.terminated_by or definition.tasks[-1][1]
            reason = instance.terminate_reason or REJECTION_REASON
        return {
            "id": instance.instance_id,
            "processInstanceId": instance.instance_id,
            "name": instance.name,
            "processName": instance.name,
            "businessKey": instance.instance_id.replace("-", "")[:32],
            "processDefinitionId": definition.definition_id,
            "processDefinitionName": definition.name,
            "processDefinitionDescription": None,
            "processDefinitionKey": definition.key,
            "processDefinitionCategory": "http://flowable.org/test",
            "processDefinitionVersion": definition.version,
            "processDefinitionDeploymentId": definition.definition_id.rsplit(":", 1)[-1],
            "graphicalNotationDefined": True,
            "startFormDefined": True,
            "tenantId": ENOS_ORG_ID,
            "started": created_ms,
            "ended": ended_ms,
            "createdTime": created_ms,
            "completedTime": ended_ms if status == "completed" else None,
            "terminatedTime": ended_ms if status == "terminated" else None,
            "startedBy": instance.started_by,
            "terminatedBy": terminated_by,
            "terminateReason": reason,
            "assignee": assignee,
            "taskName": task_name,
            "url": None,
            "terminable": status == "inProgress",
            "variables": [{"name": key, "value": value} for key, value in instance.values.items()],
            "processStatus": status,
        }


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def mount(emulator: Emulator) -> EnOSBPMEmulator:
    """This platform inside ``emulator`` (see ``parts.EmulatorModule``)."""
    return EnOSBPMEmulator(emulator.state, emulator.gateway)


def connection(url: str) -> dict[str, Any]:
    """The default connection to an emulator at ``url``: the portal account, signing with the gateway app."""
    extra = {"app_key": ENOS_APP_KEY, "app_secret": ENOS_APP_SECRET, "org_id": ENOS_ORG_ID}
    return {"host": url, "login": BPM_ACCOUNT, "password": BPM_PASSWORD, "extra": extra}
