"""IBM Spectrum LSF Process Manager, through LSF Application Center web services: flow instances."""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterable, Mapping
from dataclasses import replace
from typing import TYPE_CHECKING, Any, TypeVar

from airflow_provider_flowinst.hooks.base import ConnectionReader, FlowPlatformHook, _mask, require_id
from airflow_provider_flowinst.platforms.lsf import (
    APPLICATION_CENTER_PORTS,
    PLATFORM,
    TOKEN_IDLE_SECONDS,
    WS_PATH,
    InstancesQuery,
    LSFClient,
    LSFLogonAuth,
    LSFSettings,
)
from airflow_provider_flowinst.protocol import Operation, Token
from airflow_provider_flowinst.registry import entry_for
from airflow_provider_flowinst.transport import TOKENS, AsyncTransport, SyncTransport, TransportSettings

if TYPE_CHECKING:
    from typing_extensions import Unpack

log = logging.getLogger(__name__)

T = TypeVar("T")
FlowInstanceIds = str | int | Iterable[str | int]


class TokenUsers:
    """How many open hooks of this process use each cached LSF token (the cache is process-wide): the last
    one to close logs out, so a token another hook still works with is never ended under it."""

    def __init__(self) -> None:
        self._counts: dict[str, int] = {}
        self._lock = threading.Lock()

    def hold(self, key: str) -> None:
        with self._lock:
            self._counts[key] = self._counts.get(key, 0) + 1

    def release(self, key: str) -> bool:
        """One user fewer; True when it was the last."""
        with self._lock:
            left = self._counts.get(key, 0) - 1
            if left > 0:
                self._counts[key] = left
                return False
            self._counts.pop(key, None)
            return True

    def count(self, key: str) -> int:
        return self._counts.get(key, 0)

    def clear(self) -> None:
        with self._lock:
            self._counts.clear()


TOKEN_USERS = TokenUsers()


ENTRY = entry_for(PLATFORM)


class LSFProcessManagerHook(FlowPlatformHook[LSFClient], entry=ENTRY):
    """Talks to LSF Process Manager through Application Center's web services (logon token as a cookie).

    One token per (base URL, user) is shared by every hook of the process: the server may refuse a second
    logon while a token is live. ``close`` (``aclose`` in the triggerer) logs out once no other open hook of
    the process uses the token; the provider's sensors, operators and triggers close their hooks when done
    (and when killed). A hook never closed (a user's own task code) leaves no token either: the process
    logs out when it exits, normally or by an exception (not when it is SIGKILLed).

    :param lsf_pm_conn_id: an ``lsf_pm`` connection: host = Application Center URL (``https://pac:8443``; a
        bare host gets port 8080 for ``http``, 8443 for ``https``), login = user name, password = password,
        extras ``verify`` and ``timezone`` (for times that carry no GMT offset).
    """

    can_rerun_failed_nodes = True

    def __init__(self, lsf_pm_conn_id: str = ENTRY.default_conn_name) -> None:
        super().__init__(lsf_pm_conn_id)
        self._auth: LSFLogonAuth | None = None
        self._holding = False

    def build(self, reader: ConnectionReader) -> tuple[LSFClient, LSFLogonAuth]:
        base_url = application_center_url(reader)
        settings = LSFSettings(base_url=base_url, timezone=reader.timezone())
        auth = LSFLogonAuth(
            base_url=base_url,
            user=reader.required("login", "the LSF user name"),
            password=reader.required("password", "the user's password"),
            on_secret=_mask,  # the logon token, as soon as it is obtained
        )
        self._auth = auth
        return LSFClient(settings), auth

    # -- the token's users, and the logout at the end ------------------------------------------------

    def perform(self, operation: Operation[T]) -> T:
        self._hold()
        return super().perform(operation)

    async def aperform(self, operation: Operation[T]) -> T:
        self._hold()
        return await super().aperform(operation)

    def close(self) -> None:
        """Log out when no other open hook of the process uses the token: the server frees it now instead of
        holding it for an hour (where it refuses a second logon, the next task could not log on). A logout
        that fails is a warning, never the task's failure."""
        token = self._release()
        if token is not None:
            transport = SyncTransport(self._logout_settings())
            try:
                transport.run(self._logout(token))
            except Exception as exc:
                self._logout_failed(exc)
            finally:
                transport.close()
        super().close()

    async def aclose(self) -> None:
        """``close`` in the triggerer: the last wait on the token has ended."""
        token = self._release()
        if token is not None:
            try:
                await AsyncTransport(self._logout_settings()).run(self._logout(token))
            except Exception as exc:
                self._logout_failed(exc)

    def _hold(self) -> None:
        if not self._holding and self._settings is not None:
            TOKEN_USERS.hold(self._settings.auth.cache_key)
            self._holding = True

    def _release(self) -> Token | None:
        """The token to log out with, when this hook was the last user of it and this process obtained it (a
        forked child leaves its parent's token alone); it leaves the cache first, so a hook that starts
        meanwhile logs on anew instead of using a token being ended."""
        if not self._holding or self._settings is None:
            return None
        self._holding = False
        key = self._settings.auth.cache_key
        if not TOKEN_USERS.release(key):
            return None
        return TOKENS.take_own(key)

    def _logout(self, token: Token) -> Operation[None]:
        assert self._auth is not None
        return self._auth.logout(token)

    def _logout_settings(self) -> TransportSettings:
        # One quick retry at most: a task ends on time even when the server is down.
        assert self._settings is not None
        return replace(self._settings, max_retries=min(self._settings.max_retries, 1))

    def _logout_failed(self, exc: Exception) -> None:
        log.warning(
            "Could not log out of LSF Application Center (%s); the server frees the token after %d minutes unused",
            exc,
            TOKEN_IDLE_SECONDS // 60,
        )

    def check_connection(self) -> None:
        # Logs on, then one cheap query (a 404 "nothing matches" is fine).
        self.perform(self.client.query_page(state="Running", pagesize=1))

    # -- the platform's own calls --------------------------------------------------------------------

    def list_flow_instances(
        self, *, pagesize: int | None = None, **query: Unpack[InstancesQuery]
    ) -> list[dict[str, Any]]:
        """GET flow/instances: with ``pagesize``, the one page of up to ``pagesize`` records from ``start``
        (0-based, inferred), as the platform's call returns it; without, every page from ``start`` on.
        The filters (``InstancesQuery``) are ``id``, ``flowname``, ``username``, ``state`` and ``start``.

        ``username="all"`` lists every user's instances; ``state`` is Running, Exit, Killed, Done or
        Suspended. Nothing matching (the platform's 404) is an empty list. Key names come stripped.
        """
        return self.perform(self.client.list_flow_instances(pagesize=pagesize, **query))

    def kill_flow_instances(self, ids: FlowInstanceIds) -> str:
        """Kill the instances (``[101, 102]`` or ``"101,102"``); returns the platform's message."""
        return self.perform(self.client.kill_flow_instances(ids))

    def suspend_flow_instances(self, ids: FlowInstanceIds) -> str:
        return self.perform(self.client.suspend_flow_instances(ids))

    def resume_flow_instances(self, ids: FlowInstanceIds) -> str:
        return self.perform(self.client.resume_flow_instances(ids))

    def rerun_flow_instances(self, ids: FlowInstanceIds, variables: Mapping[str, Any] | str | None = None) -> str:
        """Rerun the instances; ``variables`` as ``{"a": 1, "b": 3}`` or ``"a=1;b=3"``."""
        return self.perform(self.client.rerun_flow_instances(ids, variables))

    def submit_flow(self, flowname: str, variables: Mapping[str, Any] | str | None = None) -> Any:
        """Start a run of ``flowname`` (``owner:name``); returns the platform's answer, decoded.

        The answer does not document the new instance's id: ``start_run`` finds it (and refuses to guess
        when two starts of the flow ran at the same moment).
        """
        return self.perform(self.client.submit_flow(require_id(flowname, PLATFORM, "flow name"), variables))


def application_center_url(reader: ConnectionReader) -> str:
    """The base URL: a bare host gets the scheme's default port (8080 http, 8443 https).

    A host written as a whole URL is taken as written (``https://pac.example.com`` means port 443, e.g.
    behind a proxy). A trailing ``/platform/ws`` (or ``/platform``) is dropped: calls add it themselves.
    """
    scheme = (reader.connection.schema or "https").strip().lower()
    url = reader.base_url(default_port=APPLICATION_CENTER_PORTS.get(scheme))
    for suffix in (WS_PATH, "/platform"):
        if url.endswith(suffix):
            return url[: -len(suffix)]
    return url
