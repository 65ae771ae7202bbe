"""Hooks, one per platform, and ``get_hook`` to pick the right one from a connection's type."""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseHook, Connection

from airflow_provider_flowinst.errors import FlowPlatformError
from airflow_provider_flowinst.registry import PLATFORMS

if TYPE_CHECKING:
    from airflow_provider_flowinst.hooks.base import FlowPlatformHook

#: conn_type -> hook class path, from the registry.
HOOK_CLASSES: dict[str, str] = {entry.conn_type: entry.hook_class_path for entry in PLATFORMS}


def hook_class_for(conn_type: str | None, conn_id: str) -> type[FlowPlatformHook[Any]]:
    path = HOOK_CLASSES.get(conn_type or "")
    if path is None:
        known = ", ".join(sorted(HOOK_CLASSES))
        raise FlowPlatformError(
            str(conn_type),
            f"choosing a hook for connection {conn_id!r}",
            f"conn_type {conn_type!r} is not a flow platform; use one of: {known}",
        )
    module_name, class_name = path.rsplit(".", 1)
    hook_class: type[FlowPlatformHook[Any]] = getattr(importlib.import_module(module_name), class_name)
    return hook_class


def hook_for_connection(connection: Connection) -> FlowPlatformHook[Any]:
    hook = hook_class_for(connection.conn_type, connection.conn_id)(connection.conn_id)
    hook.use_connection(connection)
    return hook


def get_hook(conn_id: str) -> FlowPlatformHook[Any]:
    """The platform hook for ``conn_id``, chosen by the connection's conn_type."""
    return hook_for_connection(BaseHook.get_connection(conn_id))


async def aget_hook(conn_id: str) -> FlowPlatformHook[Any]:
    """``get_hook`` for async code: the connection is fetched without blocking the event loop."""
    return hook_for_connection(await BaseHook.aget_connection(conn_id))


__all__ = ["HOOK_CLASSES", "aget_hook", "get_hook", "hook_class_for"]
