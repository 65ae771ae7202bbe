"""What every platform hook shares: reading the connection and running operations sync or async."""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import math
import os
from abc import abstractmethod
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Any, ClassVar, Generic, TypeVar

from airflow.sdk import BaseHook, Connection

from airflow_provider_flowinst.clock import SYSTEM
from airflow_provider_flowinst.errors import (
    FlowInstanceNotFound,
    FlowPlatformError,
    RerunNotSupported,
    RunOutcomeUnknown,
    unknown_flow,
)
from airflow_provider_flowinst.models import FlowInstance, FlowState
from airflow_provider_flowinst.platforms._common import SCHEME_PORTS
from airflow_provider_flowinst.protocol import Authenticator, Operation, PlatformClient, StartAttempt, Token
from airflow_provider_flowinst.redaction import redact
from airflow_provider_flowinst.registry import Platform
from airflow_provider_flowinst.reruns import CALL as RERUN_CALL
from airflow_provider_flowinst.reruns import RerunningClient, look_after_unclear_rerun
from airflow_provider_flowinst.starts import find_after_unclear_start
from airflow_provider_flowinst.timeparse import validate_timezone
from airflow_provider_flowinst.transport import (
    DEFAULT_MAX_RESPONSE_BYTES,
    TOKENS,
    AsyncTransport,
    SyncTransport,
    TransportSettings,
)

log = logging.getLogger(__name__)

T = TypeVar("T")
ClientT = TypeVar("ClientT", bound=PlatformClient)

TRUE_WORDS = frozenset({"true", "1", "yes", "on"})
FALSE_WORDS = frozenset({"false", "0", "no", "off"})
#: The transport extras' bounds: a value outside them is a mistake (a unit slip, a typo), refused by name.
MAX_TIMEOUT_SECONDS = 3600.0
MAX_RETRIES = 100


class ConnectionReader:
    """Reads a connection's fields (plain extras or the UI's prefixed ones), naming the connection in every error."""

    def __init__(self, connection: Connection, platform: str) -> None:
        self.connection = connection
        self.platform = platform
        self._extras = connection.extra_dejson if connection.extra else {}

    def extra(self, name: str, default: Any = None) -> Any:
        """An extra under its plain name or the UI's ``extra__<conn_type>__<name>``."""
        for key in (name, f"extra__{self.connection.conn_type}__{name}"):
            value = self._extras.get(key)
            if value not in (None, ""):
                return value
        return default

    def required_extra(self, name: str) -> str:
        value = self.extra(name)
        if value is None:
            raise self.error(f"the connection's extra {name!r} is required")
        return str(value)

    def required(self, field: str, meaning: str) -> str:
        value = getattr(self.connection, field)
        if not value:
            raise self.error(f"the connection's {field} ({meaning}) is required")
        return str(value)

    def base_url(self, default_port: int | None = None, host: str | None = None) -> str:
        """``host`` may be a whole base URL; otherwise ``schema`` (default https) and ``port`` complete it."""
        raw = (host or self.required("host", "the API base URL")).strip().rstrip("/")
        if "://" in raw:
            return raw
        scheme = (self.connection.schema or "https").strip().lower()
        if scheme not in SCHEME_PORTS:
            raise self.error(f"the connection's schema must be http or https, got {scheme!r}")
        port = self.connection.port or default_port
        return f"{scheme}://{raw}:{port}" if port else f"{scheme}://{raw}"

    def verify(self) -> bool | str:
        """TLS verification: on unless the connection says false; else the path of a CA bundle file or a
        directory of CA certificates, which must exist (a typo such as "flase" is refused here, by name)."""
        value = self.extra("verify", True)
        if isinstance(value, bool):
            return value
        text = str(value).strip()
        if text.lower() in TRUE_WORDS:
            return True
        if text.lower() in FALSE_WORDS:
            return False
        if not os.path.exists(text):
            raise self.error(
                f"the connection's extra 'verify' must be true, false or the path of a CA bundle file or "
                f"directory, got {text!r} (no such file or directory)"
            )
        return text

    def timezone(self) -> str:
        try:
            return validate_timezone(str(self.extra("timezone", "UTC")))
        except ValueError as exc:
            raise self.error(str(exc)) from None

    def number(
        self, name: str, default: float, *, maximum: float = math.inf, positive: bool = False, integer: bool = False
    ) -> float:
        """A finite number extra, not negative (``positive``: above zero), at most ``maximum``."""
        value = self.extra(name, default)
        kind = "a whole number" if integer else "a number"
        try:
            if isinstance(value, bool):  # JSON true is not 1 second
                raise TypeError
            number = float(value)
        except (TypeError, ValueError, OverflowError):
            raise self.error(f"the connection's extra {name!r} must be {kind}, got {value!r}") from None
        if not math.isfinite(number):
            raise self.error(f"the connection's extra {name!r} must be a finite number, got {value!r}")
        if integer and not number.is_integer():
            raise self.error(f"the connection's extra {name!r} must be {kind}, got {value!r}")
        if number < 0 or (positive and number == 0):
            bound = "above 0" if positive else "0 or more"
            raise self.error(f"the connection's extra {name!r} must be {bound}, got {value!r}")
        if number > maximum:
            raise self.error(f"the connection's extra {name!r} must be at most {maximum:g}, got {value!r}")
        return number

    def transport_settings(self, auth: Authenticator, **options: Any) -> TransportSettings:
        """The transport extras, each checked: a call can never wait forever or unbounded."""
        return TransportSettings(
            platform=self.platform,
            auth=auth,
            verify=self.verify(),
            connect_timeout=self.number("connect_timeout", 10.0, maximum=MAX_TIMEOUT_SECONDS, positive=True),
            read_timeout=self.number("read_timeout", 60.0, maximum=MAX_TIMEOUT_SECONDS, positive=True),
            max_retries=int(self.number("max_retries", 5, maximum=MAX_RETRIES, integer=True)),
            retry_max_wait=self.number("retry_max_wait", 60.0, maximum=MAX_TIMEOUT_SECONDS),
            max_response_bytes=int(
                self.number(
                    "max_response_bytes", DEFAULT_MAX_RESPONSE_BYTES, integer=True, positive=True, maximum=2**40
                )
            ),
            **options,
        )

    def error(self, message: str) -> FlowPlatformError:
        return FlowPlatformError(self.platform, f"reading connection {self.connection.conn_id!r}", message)


class FlowPlatformHook(BaseHook, Generic[ClientT]):
    """Base of the platform hooks: a connection, a pure platform client and two transports.

    A hook names its registry entry once (``class MyHook(FlowPlatformHook[MyClient], entry=...)``); the class
    attributes Airflow reads and the connection form come from it.
    """

    entry: ClassVar[Platform]
    platform: ClassVar[str]
    conn_name_attr: ClassVar[str]
    default_conn_name: ClassVar[str]
    conn_type: ClassVar[str]
    hook_name: ClassVar[str]
    #: Whether the platform can rerun the failed nodes of a run in place (``rerun_failed_nodes``).
    can_rerun_failed_nodes: ClassVar[bool] = False

    def __init_subclass__(cls, *, entry: Platform | None = None, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if entry is not None:
            cls.entry = entry
            cls.platform = entry.key
            cls.conn_name_attr = entry.conn_name_attr
            cls.default_conn_name = entry.default_conn_name
            cls.conn_type = entry.conn_type
            cls.hook_name = entry.integration

    @classmethod
    def get_ui_field_behaviour(cls) -> dict[str, Any]:
        """The connection form on Airflow before 3.2 (later ones read provider info)."""
        return cls.entry.ui_field_behaviour()

    def __init__(self, conn_id: str | None = None, **kwargs: Any) -> None:
        super().__init__()
        self.conn_id = conn_id or kwargs.pop(self.conn_name_attr, None) or self.default_conn_name
        if kwargs:
            raise TypeError(f"{type(self).__name__} got unexpected arguments: {sorted(kwargs)}")
        setattr(self, self.conn_name_attr, self.conn_id)
        self._connection: Connection | None = None
        self._client: ClientT | None = None
        self._settings: TransportSettings | None = None
        self._sync: SyncTransport | None = None
        self._async: AsyncTransport | None = None
        #: Whether this hook counts among the users of its credential's cached token (``TOKENS.hold``).
        self._holding = False

    # -- what each platform supplies -----------------------------------------------------------------

    @abstractmethod
    def build(self, reader: ConnectionReader) -> tuple[ClientT, Authenticator]:
        """The platform client and its authenticator for this connection."""

    # -- connection and clients ----------------------------------------------------------------------

    def use_connection(self, connection: Connection) -> None:
        """Set up from an already fetched connection (the async path fetches it without blocking)."""
        if connection.conn_type and connection.conn_type != self.conn_type:
            raise FlowPlatformError(
                self.platform,
                f"reading connection {connection.conn_id!r}",
                f"its conn_type is {connection.conn_type!r}, but {type(self).__name__} needs {self.conn_type!r}",
            )
        reader = ConnectionReader(connection, self.platform)
        client, auth = self.build(reader)
        for secret in auth.secrets():
            _mask(secret)
        settings = reader.transport_settings(auth)
        self._connection = connection
        self._client = client
        self._settings = settings
        self._sync = None
        self._async = None

    def limit_calls(
        self,
        *,
        connect_timeout: float,
        read_timeout: float,
        max_retries: int,
        retry_max_wait: float,
        max_response_bytes: int,
    ) -> None:
        """Hold this hook's calls to a caller's own budget, each setting the smaller of it and the
        connection's: the Remote graph tab reads live in seconds, not with a task's minutes of retries."""
        if self._settings is None:
            self.use_connection(self.get_connection(self.conn_id))
        assert self._settings is not None
        own = self._settings
        self._settings = dataclasses.replace(
            own,
            connect_timeout=min(own.connect_timeout, connect_timeout),
            read_timeout=min(own.read_timeout, read_timeout),
            max_retries=min(own.max_retries, max_retries),
            retry_max_wait=min(own.retry_max_wait, retry_max_wait),
            max_response_bytes=min(own.max_response_bytes, max_response_bytes),
        )
        self._sync = None
        self._async = None

    @property
    def attempt_seconds(self) -> float:
        """The longest one attempt of a call can last: the connection's connect_timeout + read_timeout."""
        if self._settings is None:
            self.use_connection(self.get_connection(self.conn_id))
        assert self._settings is not None
        return self._settings.connect_timeout + self._settings.read_timeout

    @property
    def client(self) -> ClientT:
        if self._client is None:
            self.use_connection(self.get_connection(self.conn_id))
        assert self._client is not None
        return self._client

    async def aclient(self) -> ClientT:
        if self._client is None:
            self.use_connection(await self.aget_connection(self.conn_id))
        assert self._client is not None
        return self._client

    def perform(self, operation: Operation[T]) -> T:
        """Drive an operation over requests (blocking)."""
        self._hold()
        if self._sync is None:
            assert self._settings is not None, "call through .client first"
            self._sync = SyncTransport(self._settings)
        return self._sync.run(operation)

    async def aperform(self, operation: Operation[T]) -> T:
        """Drive an operation over aiohttp (never blocks the event loop)."""
        self._hold()
        if self._async is None:
            assert self._settings is not None, "await .aclient() first"
            self._async = AsyncTransport(self._settings)
        return await self._async.run(operation)

    # -- the calls every hook has --------------------------------------------------------------------

    def get_instance(self, instance_id: str, *, include_graph: bool = True) -> FlowInstance:
        """The remote instance, normalised (state, times, graph)."""
        return self.perform(
            self.client.get_instance(require_id(instance_id, self.platform), include_graph=include_graph)
        )

    async def aget_instance(self, instance_id: str, *, include_graph: bool = True) -> FlowInstance:
        client = self._client if self._client is not None else await self.aclient()  # no coroutine a poll
        return await self.aperform(
            client.get_instance(require_id(instance_id, self.platform), include_graph=include_graph)
        )

    # -- run control: start and stop remote runs, list a flow's newest instances ----------------------

    def start_run(
        self, flow: str, parameters: Mapping[str, Any] | None = None, *, attempt: StartAttempt | None = None
    ) -> str:
        """Start a run of ``flow`` (an EnOS flow id, an LSF ``owner:flowname``, a DataWorks workflow id or a
        BPM process definition id); the new instance's id.

        Never starts two runs: after a fault that leaves open whether the platform acted, the run this
        ``attempt`` made is looked for instead (see ``starts``). Pass an ``attempt`` recorded beforehand to
        be able to find its run later, after a crash.
        """
        client = self.client
        flow = require_id(flow, self.platform, "flow")
        attempt = attempt or StartAttempt.new(flow, SYSTEM.now_ms())
        try:
            return self.perform(client.start_run(flow, parameters, attempt))
        except RunOutcomeUnknown as unclear:
            return self.perform(find_after_unclear_start(client, flow, parameters, attempt, unclear))
        except FlowInstanceNotFound as unknown:
            unknown_flow(unknown)  # marks it permanent
            raise

    async def astart_run(
        self, flow: str, parameters: Mapping[str, Any] | None = None, *, attempt: StartAttempt | None = None
    ) -> str:
        client = await self.aclient()
        flow = require_id(flow, self.platform, "flow")
        attempt = attempt or StartAttempt.new(flow, SYSTEM.now_ms())
        try:
            return await self.aperform(client.start_run(flow, parameters, attempt))
        except RunOutcomeUnknown as unclear:
            return await self.aperform(find_after_unclear_start(client, flow, parameters, attempt, unclear))
        except FlowInstanceNotFound as unknown:
            unknown_flow(unknown)  # marks it permanent
            raise

    def find_started_run(self, attempt: StartAttempt, parameters: Mapping[str, Any] | None = None) -> str | None:
        """The run an earlier ``attempt`` made (e.g. by a task try that crashed mid-start), or None."""
        return self.perform(self.client.find_started_run(attempt.flow, parameters, attempt))

    def stop_run(self, instance_id: str) -> None:
        """Stop a run: EnOS cancel, LSF kill, DataWorks StopWorkflowInstances, BPM terminate."""
        self.perform(self.client.stop_run(require_id(instance_id, self.platform)))

    async def astop_run(self, instance_id: str) -> None:
        client = await self.aclient()
        await self.aperform(client.stop_run(require_id(instance_id, self.platform)))

    async def arecent_instances(
        self, flow: str, states: Iterable[FlowState], filters: Mapping[str, Any] | None = None
    ) -> list[FlowInstance]:
        """The newest instances of ``flow`` (without graphs), for event triggers."""
        client = await self.aclient()
        return await self.aperform(
            client.recent_instances(require_id(flow, self.platform, "flow"), states, filters or {})
        )

    async def abatch_instances(self, ids: Sequence[str]) -> dict[str, FlowInstance]:
        """As many of ``ids`` as the platform's list calls can read at once (see ``batching``)."""
        client = await self.aclient()
        return await self.aperform(client.batch_instances(ids))

    # -- repair: rerun, in place, the failed nodes of a run that ended badly --------------------------

    def rerun_failed_nodes(self, instance_id: str) -> list[str]:
        """Rerun the nodes of a run that ended in a failure state which failed, in place (the same instance
        id); their graph node ids (none where the platform shows no graph).

        ``RerunNotSupported`` where the platform cannot (``can_rerun_failed_nodes`` is False) and for a run
        not in a failure state: a running or successful run is never touched. A rerun whose answer is lost
        is not sent again before the run has been looked at (see ``reruns``).
        """
        client = self._rerunning_client(self.client)
        plan = self.perform(client.plan_rerun(require_id(instance_id, self.platform)))
        try:
            self.perform(client.send_rerun(plan))
        except RunOutcomeUnknown as unclear:
            return self.perform(look_after_unclear_rerun(client, plan, unclear))
        return list(plan.node_ids)

    async def arerun_failed_nodes(self, instance_id: str) -> list[str]:
        client = self._rerunning_client(await self.aclient())
        plan = await self.aperform(client.plan_rerun(require_id(instance_id, self.platform)))
        try:
            await self.aperform(client.send_rerun(plan))
        except RunOutcomeUnknown as unclear:
            return await self.aperform(look_after_unclear_rerun(client, plan, unclear))
        return list(plan.node_ids)

    def _rerunning_client(self, client: ClientT) -> RerunningClient:
        if not self.can_rerun_failed_nodes or not isinstance(client, RerunningClient):
            raise RerunNotSupported(
                self.platform,
                RERUN_CALL,
                f"{self.entry.title} offers no call that reruns the failed nodes of a run in place; "
                "start a new run instead",
            )
        return client

    def test_connection(self) -> tuple[bool, str]:
        """Used by the UI's "Test" button: log in (or sign) and make one cheap call."""
        try:
            self.check_connection()
        except Exception as exc:
            return False, str(exc)
        return True, f"Connected to {self.entry.title}"

    def check_connection(self) -> None:
        """A cheap authenticated call; raises FlowPlatformError when it fails."""
        raise NotImplementedError

    def close(self) -> None:
        """The task is done with this hook. Where the platform holds a session until it is ended (an LSF logon
        token), the last open hook of the process that uses it ends it: the server frees it now instead of
        holding it (and refusing the user's next logon) until it expires. A logout that fails is a warning,
        never the task's failure."""
        ending = self._session_to_end()
        if ending is not None:
            token, operation = ending
            transport = SyncTransport(self._logout_settings())
            with self._logout_warned(token):
                try:
                    transport.run(operation)
                finally:
                    transport.close()
        if self._sync is not None:
            self._sync.close()

    async def aclose(self) -> None:
        """``close`` in the triggerer: the last wait on the token has ended."""
        ending = self._session_to_end()
        if ending is not None:
            token, operation = ending
            with self._logout_warned(token):
                await AsyncTransport(self._logout_settings()).run(operation)

    def _hold(self) -> None:
        if not self._holding and self._settings is not None:
            TOKENS.hold(self._settings.auth.cache_key)
            self._holding = True

    def _release(self) -> Token | None:
        """The token to end, when this hook was its last user and this process obtained it (see ``TOKENS``)."""
        if not self._holding or self._settings is None:
            return None
        self._holding = False
        return TOKENS.release(self._settings.auth.cache_key)

    def _session_to_end(self) -> tuple[Token, Operation[Any]] | None:
        """The token to end and its logout, when this hook was the token's last user in the process that
        obtained it and the platform ends sessions; a logout that cannot even be built is a warning."""
        token = self._release()
        if token is None or self._settings is None:
            return None
        with self._logout_warned(token):
            operation = self._settings.auth.logout(token)
            return None if operation is None else (token, operation)
        return None

    @contextlib.contextmanager
    def _logout_warned(self, token: Token) -> Iterator[None]:
        """A logout that fails is a warning, never the task's failure."""
        try:
            yield
        except Exception as exc:
            self._logout_failed(exc, token)

    def _logout_settings(self) -> TransportSettings:
        # One quick retry at most: a task ends on time even when the server is down.
        assert self._settings is not None
        return dataclasses.replace(self._settings, max_retries=min(self._settings.max_retries, 1))

    def _logout_failed(self, exc: Exception, token: Token) -> None:
        why = redact(str(exc), token.secrets())  # an answer may echo the logout's cookie
        log.warning("Could not end the %s session (%s); the server frees it when it expires", self.entry.title, why)


def require_id(value: Any, platform: str, what: str = "instance id") -> str:
    """Ids are strings; an empty or blank id is refused before any call is made."""
    text = "" if value is None else str(value)
    if not text.strip():
        raise FlowPlatformError(platform, "checking input", f"the {what} is empty")
    return text.strip()


def _mask(secret: str) -> None:
    if not secret:
        return
    try:
        from airflow.sdk.log import mask_secret
    except ImportError:  # pragma: no cover - older task SDKs
        return
    mask_secret(secret)
