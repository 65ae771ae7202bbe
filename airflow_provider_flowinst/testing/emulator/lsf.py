"""LSF Process Manager behind LSF Application Center web services: logon, flow instances, operations.

Behaviour, and the choices made where the vendor does not say:

- Logon takes ``<User><name/><pass/></User>`` (``Content-Type: application/xml``) and answers a token shaped
  like the real ones, ``jsmith"2024-01-01T00:00:00Z"<base64>"<base64>``: it holds ``"``, so a client must
  send it back as ``platform_token=...`` with ``#quote#`` in their place. A raw ``"`` in the cookie is not
  read (401). A wrong password is 403 and an empty user 400, as ``{"error": {"message": ...}}``.
- A token unused for 60 emulated minutes is dropped: the next call with it answers 401.
- A second logon while the user holds a live token: (inferred) a real Application Center hands out another
  token (IBM's own curl guide logs on again at will), so by default the emulator does too. The 409 "User is
  already logged on" the documentation lists is served in *single-session* mode, switched on with
  ``POST /_emulator/lsf_pm/settings {"single_session": true}``.
- Instances move Running -> Done / Exit / Killed on the emulated clock, deterministically per flow;
  suspend, resume, kill and rerun act on them; submit starts a new one (the answer does not name it).
- With the setting ``token_prefix``, logon answers the token as ws_overview writes it,
  ``platform_token=jsmith"...``: the cookie still carries the bare token (a cookie ``platform_token=
  platform_token=...`` is not read: 401).
- Rerun (IBM: "the flow runs again, starting at the jobs that exited ... and all successor jobs") takes a
  flow instance that ended back to Running, the same id, a new start time; it then ends as the instance's
  ``rerun_outcome`` (default Done: a rerun is the run after a fix; ``rerun_outcome`` when the instance is
  created through the control API scripts another). The emulator reruns only an instance that has ended
  (IBM also allows Running and Waiting ones; inferred: the provider never asks for that). Every operation
  call is recorded (``GET /_emulator/lsf_pm/operations``).
- Logout (POST ``/platform/ws/logout`` with the cookie) frees the token at once; each is counted
  (``GET /_emulator/lsf_pm/sessions``: live tokens and logouts so far). A dropped token's logout is 401.
- Queries: ``username`` absent = the logged-on user's (inferred), ``all`` = everyone's; one match comes as
  a lone object; some JSON keys and every XML ``lastUpdateTime`` tag carry the documented stray leading
  space; no match is 404; ``start`` (0-based, inferred) and ``pagesize`` page the list. ``total`` counts every
  match. (inferred) A page holds at most ``page_cap`` records (default 100) whatever ``pagesize`` asks: the
  documentation sets no maximum, and a real server may well cap it.
- Submit answers ``{"message": {"message": "1 flow(s) submitted."}}``, naming no instance (inferred: the
  answer is not documented). With the setting ``submit_names_instance`` it names it as ``<id>:<owner>:<flow>``,
  for clients that read such an answer.
- Answers are XML when ``Accept`` prefers ``application/xml``.
- Injected faults apply to every call but logon; ``expired_token`` answers 401 and drops the token.
"""

from __future__ import annotations

import base64
import datetime as dt
import secrets
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from xml.sax.saxutils import escape

import defusedxml.ElementTree
from aiohttp import web

from airflow_provider_flowinst.testing.emulator.credentials import LSF_PASSWORD, LSF_USER
from airflow_provider_flowinst.testing.emulator.faults import fault_response, take
from airflow_provider_flowinst.testing.emulator.state import EmulatorState

if TYPE_CHECKING:
    from airflow_provider_flowinst.testing.emulator.app import Emulator

PLATFORM = "lsf_pm"
WS = "/platform/ws"
USERS = {LSF_USER: LSF_PASSWORD}
TOKEN_IDLE_SECONDS = 3600.0
#: The emulated server's zone, so clients must read the "GMT+08:00" offset.
SERVER_ZONE = dt.timezone(dt.timedelta(hours=8))
STATES = ("Running", "Exit", "Killed", "Done", "Suspended")
ENDINGS = ("Done", "Exit", "Killed")
#: ``status`` looks like the flow's exit code (inferred).
EXIT_STATUS = {"Done": 0, "Exit": 1, "Killed": 130}
OUTCOME_WORDS = {"success": "Done", "failed": "Exit", "cancelled": "Killed"}
OPERATIONS = ("kill", "suspend", "resume", "rerun", "setvar")
#: Most records one query page holds (see the module's docstring); a setting changes it.
DEFAULT_PAGE_CAP = 100
LOGOUTS = "lsf_pm logouts"


@dataclass(frozen=True)
class FlowDefinition:
    user: str
    name: str
    outcome: str = "Done"
    running_seconds: float = 4.0
    rerun_outcome: str = "Done"  # a rerun is the run after a fix

    @property
    def full_name(self) -> str:
        return f"{self.user}:{self.name}"


DEFAULT_FLOWS = [
    FlowDefinition("jsmith", "flow1"),
    FlowDefinition("jsmith", "flow_exit", outcome="Exit"),
    FlowDefinition("jsmith", "flow_killed", outcome="Killed"),
    FlowDefinition("jsmith", "long_flow", running_seconds=10 * 3600),
    # A second long flow: two tasks that start one flow at once are ambiguous on LSF by design (its submit
    # answer names no run), so the PostgreSQL full-stack test starts one run of each.
    FlowDefinition("jsmith", "long_flow_b", running_seconds=10 * 3600),
    FlowDefinition("alice", "nightly", running_seconds=6.0),
    # Each started by one test only: no other run of it falls in the window (2 minutes before the attempt)
    # in which a new process looks for the run an attempt made.
    FlowDefinition("jsmith", "flow_once"),
    FlowDefinition("jsmith", "flow_retried"),
    FlowDefinition("jsmith", "flow_repaired", outcome="Exit", running_seconds=2.0),
]


@dataclass
class FlowRun:
    """One flow instance; times are emulated seconds."""

    id: int
    flow: FlowDefinition
    began: float
    outcome: str
    running_seconds: float
    appear_at: float = 0.0
    suspended_at: float | None = None
    suspended_for: float = 0.0
    ended_at: float | None = None  # set when killed
    ended_state: str | None = None
    variables: dict[str, str] = field(default_factory=dict)
    rerun_outcome: str | None = None  # None: the flow's

    def state(self, now: float) -> tuple[str, float | None]:
        """(LSF state word, emulated moment it ended or None)."""
        if self.ended_state is not None and self.ended_at is not None:
            return self.ended_state, self.ended_at
        if self.suspended_at is not None:
            return "Suspended", None
        done_at = self.began + self.suspended_for + self.running_seconds
        if now < done_at:
            return "Running", None
        return self.outcome, done_at


@dataclass
class Session:
    user: str
    last_used: float  # emulated seconds


def form_variables(form: Mapping[str, Any], xml: bool) -> dict[str, str] | web.Response:
    """A form's ``variables`` (``name=value;...``), or the refusal LSF answers for malformed ones."""
    try:
        return parse_variables(str(form.get("variables") or ""))
    except ValueError as exc:
        return lsf_error(400, f"The request is not valid: {exc}.", xml=xml)


def lsf_error(status: int, message: str, *, xml: bool = False) -> web.Response:
    """The platform's error shape: ``{"error": {"message": ...}}`` (``<error><message>`` in XML)."""
    if xml:
        return _xml_response(f"<error><message>{escape(message)}</message></error>", status=status)
    return web.json_response({"error": {"message": message}}, status=status)


def _xml_response(text: str, status: int = 200) -> web.Response:
    return web.Response(status=status, text=text, content_type="application/xml")


def wants_xml(request: web.Request) -> bool:
    accept = request.headers.get("Accept", "").lower()
    xml, json_at = accept.find("xml"), accept.find("json")
    return xml >= 0 and (json_at < 0 or xml < json_at)


def read_cookie(request: web.Request, name: str) -> str | None:
    """The raw cookie value, read by hand: the token's ``#quote#`` and base64 must reach us untouched."""
    for part in request.headers.get("Cookie", "").split(";"):
        key, sep, value = part.strip().partition("=")
        if sep and key == name:
            return value
    return None


class LSFEmulator:
    platform = PLATFORM

    def __init__(self, state: EmulatorState) -> None:
        self.state = state
        self.flows = {flow.full_name: flow for flow in DEFAULT_FLOWS}
        self.runs: dict[int, FlowRun] = {}
        self.sessions: dict[str, Session] = {}  # token -> session
        #: Every token handed out, also after its logout: what the secrets test looks for in logs and errors.
        self.issued: list[str] = []
        self.single_session = False
        self.page_cap: int | None = DEFAULT_PAGE_CAP
        self.submit_names_instance = False
        self.token_prefix = False
        self.next_id = 101
        #: Every operation call (kill, suspend, resume, rerun, setvar): ``{"action", "ids"}``.
        self.operation_calls: list[dict[str, Any]] = []
        self.wall_start = dt.datetime.now(dt.timezone.utc).replace(microsecond=0)
        # The two instances of the vendor's sample: 101 is done, 102 runs for a minute and then is done.
        self._start(self.flows["jsmith:flow1"], began=-600.0)
        self._start(self.flows["jsmith:flow1"], running_seconds=60.0)

    def serves(self, request: web.Request) -> bool:
        return request.path.startswith(f"{WS}/")

    def expire_tokens(self) -> None:
        self.expire_all()

    def routes(self) -> list[web.RouteDef]:
        return [
            web.post(f"{WS}/logon", self.logon),
            web.post(f"{WS}/logout", self.logout),
            web.get(f"{WS}/flow/instances", self.query),
            web.post(WS + "/flow/instances/{action}", self.operate),
            web.post(f"{WS}/flow/definitions/submit", self.submit),
            web.post("/_emulator/lsf_pm/instances", self.control_create),
            web.get("/_emulator/lsf_pm/instances", self.control_list),
            web.post("/_emulator/lsf_pm/settings", self.control_settings),
            web.post("/_emulator/lsf_pm/tokens", self.control_tokens),
            web.get("/_emulator/lsf_pm/sessions", self.control_sessions),
            web.get("/_emulator/lsf_pm/operations", self.control_operations),
        ]

    # -- instances -----------------------------------------------------------------------------------

    def _start(
        self,
        flow: FlowDefinition,
        *,
        began: float | None = None,
        outcome: str | None = None,
        running_seconds: float | None = None,
        appear_after: float = 0.0,
        variables: dict[str, str] | None = None,
        rerun_outcome: str | None = None,
    ) -> FlowRun:
        now = self.state.now()
        run = FlowRun(
            id=self.next_id,
            flow=flow,
            began=now + appear_after if began is None else began,
            outcome=outcome or flow.outcome,
            running_seconds=flow.running_seconds if running_seconds is None else float(running_seconds),
            appear_at=now + appear_after,
            variables=dict(variables or {}),
            rerun_outcome=rerun_outcome,
        )
        self.runs[run.id] = run
        self.next_id += 1
        return run

    def _visible(self, run: FlowRun) -> bool:
        return self.state.now() >= run.appear_at

    def _time(self, emulated: float | None) -> str:
        """An emulated moment as the server writes it: "2018-08-14 14:11:15 GMT+08:00"."""
        if emulated is None:
            return ""
        moment = self.wall_start + dt.timedelta(seconds=emulated * self.state.time_scale)
        return moment.astimezone(SERVER_ZONE).strftime("%Y-%m-%d %H:%M:%S GMT+08:00")

    def record(self, run: FlowRun) -> dict[str, Any]:
        now = self.state.now()
        word, ended = run.state(now)
        last_update = ended if ended is not None else (run.suspended_at if run.suspended_at is not None else now)
        return {
            "id": run.id,
            "user": run.flow.user,
            "name": run.flow.name,
            "fullName": f"{run.id}:{run.flow.full_name}",
            "state": word,
            "status": EXIT_STATUS.get(word, 0),
            "workDirectory": f"/home/{run.flow.user}",
            "lastUpdateTime": self._time(last_update),
            "startTime": self._time(run.began),
            "endTime": self._time(ended),
        }

    # -- authentication ------------------------------------------------------------------------------

    def _live_session(self, token: str) -> Session | None:
        session = self.sessions.get(token)
        if session is None:
            return None
        if self.state.now() - session.last_used > TOKEN_IDLE_SECONDS:
            del self.sessions[token]  # dropped after 60 minutes unused
            return None
        return session

    def _new_token(self, user: str) -> str:
        issued = (self.wall_start + dt.timedelta(seconds=self.state.now() * self.state.time_scale)).strftime(
            "%Y-%m-%dT%H:%M:%SZ"
        )
        signature = base64.b64encode(secrets.token_bytes(48)).decode()
        salt = base64.b64encode(secrets.token_bytes(16)).decode()
        return f'{user}"{issued}"{signature}"{salt}'

    def _authenticate(self, request: web.Request) -> tuple[str | None, web.Response | None]:
        """(user, None) for a live token in the cookie; otherwise (None, the refusal)."""
        raw = read_cookie(request, "platform_token")
        xml = wants_xml(request)
        if not raw:
            return None, lsf_error(401, "No platform token: log on first.", xml=xml)
        if '"' in raw:
            return None, lsf_error(401, "The platform token cannot be read; write each quote as #quote#.", xml=xml)
        token = raw.replace("#quote#", '"')
        session = self._live_session(token)
        if session is None:
            return None, lsf_error(401, "The platform token has expired or is not valid. Log on again.", xml=xml)
        session.last_used = self.state.now()
        return session.user, None

    async def _admit(self, request: web.Request) -> tuple[str | None, web.StreamResponse | None]:
        """Faults first (like every emulated platform), then the token check."""
        fault = take(self.state, PLATFORM, request)
        if fault is not None:
            xml = wants_xml(request)
            faulted = await fault_response(
                fault,
                request,
                error=lambda status, code, message: lsf_error(status, message, xml=xml),
                expired_token=lambda: self._expire_and_refuse(request),
            )
            if faulted is not None:
                return None, faulted
        return self._authenticate(request)

    def expire_all(self) -> None:
        """Forget every token (like the gateway's ``expire_all``): the next call of each answers 401."""
        self.sessions.clear()

    def _expire_and_refuse(self, request: web.Request) -> web.Response:
        raw = read_cookie(request, "platform_token")
        if raw:
            self.sessions.pop(raw.replace("#quote#", '"'), None)
        return lsf_error(401, "The platform token has expired. Log on again.", xml=wants_xml(request))

    async def logon(self, request: web.Request) -> web.Response:
        self.state.token_requests[PLATFORM] += 1
        xml = wants_xml(request)
        if "xml" not in request.headers.get("Content-Type", "").lower():
            return lsf_error(415, "Unsupported media type: the logon body is application/xml.", xml=xml)
        try:
            root = defusedxml.ElementTree.fromstring(await request.read())
        except Exception:
            return lsf_error(400, "The logon request is not valid.", xml=xml)
        user = (root.findtext("name") or "").strip()
        password = root.findtext("pass") or ""
        if root.tag != "User" or not user:
            return lsf_error(400, "The user is empty.", xml=xml)
        expected = USERS.get(user)
        if expected is None or not secrets.compare_digest(expected.encode(), password.encode()):
            return lsf_error(403, f"Logon failed for user {user}: the user name or password is not correct.", xml=xml)
        if self.single_session and any(
            self._live_session(token) is not None and session.user == user
            for token, session in list(self.sessions.items())
        ):
            return lsf_error(409, f"User {user} is already logged on.", xml=xml)
        token = self._new_token(user)
        self.sessions[token] = Session(user=user, last_used=self.state.now())
        self.issued.append(token)
        written = f"platform_token={token}" if self.token_prefix else token
        if xml:
            return _xml_response("<User><token>" + escape(written, {'"': "&quot;"}) + "</token></User>")
        return web.json_response({"csrftoken": secrets.token_hex(16), "token": written})

    async def logout(self, request: web.Request) -> web.StreamResponse:
        user, refusal = await self._admit(request)
        if refusal is not None:
            return refusal
        raw = read_cookie(request, "platform_token") or ""
        self.sessions.pop(raw.replace("#quote#", '"'), None)
        self.state.requests[LOGOUTS] += 1  # a counter: the emulator's reset clears it
        return self._message(request, f"User {user} logged out.")

    # -- the API -------------------------------------------------------------------------------------

    async def query(self, request: web.Request) -> web.StreamResponse:
        user, refusal = await self._admit(request)
        if refusal is not None:
            return refusal
        xml = wants_xml(request)
        query = request.query
        try:
            start = int(query.get("start") or 0)
            pagesize = int(query["pagesize"]) if query.get("pagesize") else None
            wanted_id = int(query["id"]) if query.get("id") else None
        except ValueError:
            given = ", ".join(f"{name}={query[name]!r}" for name in ("id", "start", "pagesize") if name in query)
            return lsf_error(400, f"The request is not valid: id, start and pagesize are numbers ({given}).", xml=xml)
        if start < 0 or (pagesize is not None and pagesize < 1):
            return lsf_error(400, "The request is not valid: start >= 0 and pagesize >= 1.", xml=xml)
        state = query.get("state")
        if state and state not in STATES:
            return lsf_error(400, f"The request is not valid: unknown state {state}.", xml=xml)
        owner = query.get("username") or user
        now = self.state.now()
        matches = [
            run
            for run in sorted(self.runs.values(), key=lambda run: run.id)
            if self._visible(run)
            and (wanted_id is None or run.id == wanted_id)
            and (owner == "all" or run.flow.user == owner)
            and (not query.get("flowname") or run.flow.name == query["flowname"])
            and (not state or run.state(now)[0] == state)
        ]
        size = pagesize if self.page_cap is None else min(pagesize or self.page_cap, self.page_cap)
        page = matches[start : None if size is None else start + size]
        if not page:
            return lsf_error(404, "No flow instances that match the specified criteria found.", xml=xml)
        records = [self.record(run) for run in page]
        if xml:
            return _xml_response(self._records_xml(records, total=len(matches)))
        return web.json_response(
            {
                "pseudoFlowInstances": {
                    "total": len(matches),
                    # One match comes as the object itself, not a list of one.
                    "pseudoFlowInstance": _spaced_keys(records[0])
                    if len(records) == 1
                    else [_spaced_keys(record) for record in records],
                }
            }
        )

    @staticmethod
    def _records_xml(records: Iterable[dict[str, Any]], *, total: int) -> str:
        items = []
        for record in records:
            fields = []
            for key, value in record.items():
                # The documented XML writes this element name with a space after "<" on every record.
                tag = " lastUpdateTime" if key == "lastUpdateTime" else key
                fields.append(f"<{tag}>{escape(str(value))}</{tag}>")
            items.append("<pseudoFlowInstance>" + "".join(fields) + "</pseudoFlowInstance>")
        return f'<pseudoFlowInstances total="{total}">' + "".join(items) + "</pseudoFlowInstances>"

    def _message(self, request: web.Request, text: str) -> web.Response:
        if wants_xml(request):
            return _xml_response(f"<message><message>{escape(text)}</message></message>")
        return web.json_response({"message": {"message": text}})

    async def operate(self, request: web.Request) -> web.StreamResponse:
        _user, refusal = await self._admit(request)
        if refusal is not None:
            return refusal
        xml = wants_xml(request)
        action = request.match_info["action"]
        if action not in OPERATIONS:
            return lsf_error(404, f"Unknown operation {action}.", xml=xml)
        form = await request.post()
        ids_text = str(form.get("ids") or "")
        self.operation_calls.append({"action": action, "ids": ids_text})
        try:
            ids = [int(part) for part in ids_text.split(",")]
        except ValueError:
            return lsf_error(400, f"The request is not valid: ids {ids_text!r}.", xml=xml)
        missing = [str(i) for i in ids if i not in self.runs or not self._visible(self.runs[i])]
        if missing:
            return lsf_error(404, f"Flow instance not found: {','.join(missing)}.", xml=xml)
        variables = form_variables(form, xml)
        if not isinstance(variables, dict):
            return variables
        runs = [self.runs[i] for i in ids]
        now = self.state.now()
        act: Callable[[FlowRun, float], str | None] = getattr(self, f"_{action}")
        refused = [message for run in runs if (message := self._check(action, run, now))]
        if refused:
            return lsf_error(400, " ".join(refused), xml=xml)
        for run in runs:
            run.variables.update(variables)
            act(run, now)
        past = {"kill": "killed", "suspend": "suspended", "resume": "resumed", "rerun": "rerun", "setvar": "updated"}
        return self._message(request, f"Flow instance(s) {','.join(map(str, ids))} {past[action]}.")

    def _check(self, action: str, run: FlowRun, now: float) -> str | None:
        """Why ``action`` cannot apply to ``run`` now, or None."""
        word, _ = run.state(now)
        allowed = {
            "kill": ("Running", "Suspended"),
            "suspend": ("Running",),
            "resume": ("Suspended",),
            "rerun": ENDINGS,
            "setvar": STATES,
        }[action]
        if word in allowed:
            return None
        return f"Flow {run.id} is {word}: cannot {action} it."

    def _kill(self, run: FlowRun, now: float) -> None:
        run.ended_state, run.ended_at = "Killed", now

    def _suspend(self, run: FlowRun, now: float) -> None:
        run.suspended_at = now

    def _resume(self, run: FlowRun, now: float) -> None:
        if run.suspended_at is not None:
            run.suspended_for += now - run.suspended_at
            run.suspended_at = None

    def _rerun(self, run: FlowRun, now: float) -> None:
        run.began, run.suspended_for, run.suspended_at = now, 0.0, None
        run.ended_state = run.ended_at = None
        run.outcome = run.rerun_outcome or run.flow.rerun_outcome

    def _setvar(self, run: FlowRun, now: float) -> None:
        return None

    async def submit(self, request: web.Request) -> web.StreamResponse:
        _user, refusal = await self._admit(request)
        if refusal is not None:
            return refusal
        xml = wants_xml(request)
        form = await request.post()
        names = [name.strip() for name in str(form.get("flownames") or "").split(",") if name.strip()]
        if not names:
            return lsf_error(400, "The request is not valid: flownames is empty.", xml=xml)
        unknown = [name for name in names if name not in self.flows]
        if unknown:
            return lsf_error(404, f"Flow definition not found: {','.join(unknown)}.", xml=xml)
        variables = form_variables(form, xml)
        if not isinstance(variables, dict):
            return variables
        runs = [self._start(self.flows[name], variables=variables) for name in names]
        if self.submit_names_instance:
            started = ", ".join(f"{run.id}:{run.flow.full_name}" for run in runs)
            return self._message(request, f"{len(names)} flow(s) submitted: {started}.")
        # (inferred) the answer does not say which instance was started.
        return self._message(request, f"{len(names)} flow(s) submitted.")

    # -- control (tests and the demo) ----------------------------------------------------------------

    async def control_create(self, request: web.Request) -> web.Response:
        spec = await request.json()
        flow = self.flows.get(str(spec.get("flow", "jsmith:flow1")))
        if flow is None:
            return web.json_response({"error": f"unknown flow; known: {sorted(self.flows)}"}, status=400)
        outcome, rerun_outcome = (
            OUTCOME_WORDS.get(str(word).lower(), word) if word else None
            for word in (spec.get("outcome"), spec.get("rerun_outcome"))
        )
        if any(word is not None and word not in ENDINGS for word in (outcome, rerun_outcome)):
            return web.json_response({"error": f"outcome and rerun_outcome must be one of {ENDINGS}"}, status=400)
        runs = [
            self._start(
                flow,
                outcome=outcome,
                running_seconds=spec.get("running_seconds"),
                appear_after=float(spec.get("appear_after", 0)),
                rerun_outcome=rerun_outcome,
            )
            for _ in range(max(1, int(spec.get("count", 1))))
        ]
        return web.json_response({"instance_id": str(runs[0].id), "instance_ids": [str(run.id) for run in runs]})

    async def control_list(self, request: web.Request) -> web.Response:
        return web.json_response({str(run.id): self.record(run) for run in self.runs.values() if self._visible(run)})

    async def control_operations(self, request: web.Request) -> web.Response:
        return web.json_response(self.operation_calls)

    async def control_settings(self, request: web.Request) -> web.Response:
        spec = await request.json()
        if "single_session" in spec:
            self.single_session = bool(spec["single_session"])
        if "page_cap" in spec:
            self.page_cap = None if spec["page_cap"] is None else max(1, int(spec["page_cap"]))
        if "submit_names_instance" in spec:
            self.submit_names_instance = bool(spec["submit_names_instance"])
        if "token_prefix" in spec:
            self.token_prefix = bool(spec["token_prefix"])
        return web.json_response(
            {
                "single_session": self.single_session,
                "page_cap": self.page_cap,
                "submit_names_instance": self.submit_names_instance,
                "token_prefix": self.token_prefix,
            }
        )

    async def control_sessions(self, request: web.Request) -> web.Response:
        live = [token for token in list(self.sessions) if self._live_session(token) is not None]
        return web.json_response({"live": len(live), "logouts": self.state.requests[LOGOUTS]})

    async def control_tokens(self, request: web.Request) -> web.Response:
        """``{"drop": true}`` forgets every token; ``{"idle_seconds": s}`` ages them by s emulated seconds."""
        spec = await request.json()
        if spec.get("drop"):
            self.expire_all()
        idle = float(spec.get("idle_seconds") or 0)
        for session in self.sessions.values():
            session.last_used -= idle
        return web.json_response({"tokens": len(self.sessions)})


def parse_variables(text: str) -> dict[str, str]:
    """``a=1;b=3`` as a dict."""
    variables = {}
    for pair in filter(None, (part.strip() for part in text.split(";"))):
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise ValueError(f"variables {text!r} are not name=value pairs separated by ';'")
        variables[key.strip()] = value
    return variables


def _spaced_keys(record: dict[str, Any]) -> dict[str, Any]:
    """The documented JSON quirk: on every other record ``lastUpdateTime`` comes as ``" lastUpdateTime"``."""
    if record["id"] % 2 == 0:
        return {(" lastUpdateTime" if key == "lastUpdateTime" else key): value for key, value in record.items()}
    return record


def mount(emulator: Emulator) -> LSFEmulator:
    """This platform inside ``emulator`` (see ``parts.EmulatorModule``)."""
    return LSFEmulator(emulator.state)


def connection(url: str) -> dict[str, Any]:
    """The default connection to an emulator at ``url``."""
    return {"host": url, "login": LSF_USER, "password": LSF_PASSWORD}
