"""The Remote graph tab's "Rerun failed nodes" button: a two-step, same-origin POST, for editors only.

The tab's frame runs no script (and the pages here forbid it in their CSP), so the confirmation is a second
page: the button POSTs to ``.../rerun-failed/confirm``, which names the nodes and offers a second POST button
to ``.../rerun-failed``. Both POSTs are refused unless their ``Origin`` is the api-server's own, and unless
the auth manager lets the user edit that DAG's task instances (``requires_access_dag("PUT",
DagAccessEntity.TASK_INSTANCE)``); a GET changes nothing. The rerun is logged with the user, the run and the
nodes, then the browser is sent back to the graph, read live again, where those nodes run.
"""

# No "from __future__ import annotations": FastAPI reads the routes' annotations.
import functools
import html
import logging
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import quote

from fastapi import Depends, FastAPI, Form, HTTPException, Request
from fastapi.responses import HTMLResponse, RedirectResponse
from starlette.concurrency import run_in_threadpool

from airflow_provider_flowinst.hooks import HOOK_CLASSES, get_hook, hook_class_for
from airflow_provider_flowinst.plugins.instance_source import TaskRun, forget_live
from airflow_provider_flowinst.reruns import FAILURE_STATES

log = logging.getLogger(__name__)

FAILED_STATES = frozenset(state.value for state in FAILURE_STATES)
BUTTON_STYLE = (
    ".rerun{margin:0 0 8px}.rerun button{font:inherit;padding:4px 10px;border:1px solid #b91c1c;"
    "border-radius:6px;background:#fef2f2;color:#991b1b;cursor:pointer}"
)
esc = functools.partial(html.escape, quote=True)


def failed_nodes(instance: dict[str, Any]) -> list[dict[str, Any]]:
    """The graph's nodes in a failure state (none where the platform shows no graph)."""
    graph = instance.get("graph") or {}
    return [node for node in graph.get("nodes", ()) if node.get("state") in FAILED_STATES]


def can_rerun(run: TaskRun) -> bool:
    """A run read live, ended in a failure state, on a platform that can rerun in place."""
    instance = run.instance
    if instance is None or run.source != "live" or instance.get("state") not in FAILED_STATES:
        return False
    platform = str(instance.get("platform"))
    return platform in HOOK_CLASSES and hook_class_for(platform, "the Remote graph tab").can_rerun_failed_nodes


def may_edit(request: Request, user: Any, dag_id: str) -> bool:
    """Whether the auth manager lets ``user`` edit this DAG's task instances (the api-server's own check)."""
    from airflow.api_fastapi.auth.managers.models.resource_details import DagAccessEntity
    from airflow.api_fastapi.core_api.security import requires_access_dag

    try:
        requires_access_dag("PUT", DagAccessEntity.TASK_INSTANCE, param_dag_id=dag_id)(request, user)
    except HTTPException:
        return False
    return True


def button_html(page_path: str, map_index: int, run: TaskRun) -> str:
    """The button above the graph: a POST form to the confirmation page (styled by ``BUTTON_STYLE``, which the
    page's one ``<style>`` holds: the plugin's CSP allows that element only)."""
    count = len(failed_nodes(run.instance or {}))
    label = f"Rerun failed nodes ({count})" if count else "Rerun failed nodes"
    return (
        f'<form class="rerun" method="post" action="{esc(page_path)}/rerun-failed/confirm">'
        f'<input type="hidden" name="map_index" value="{map_index}">'
        f'<button type="submit" id="rerun-failed">{esc(label)}</button></form>'
    )


def page_path(request: Request, dag_id: str, run_id: str, task_id: str) -> str:
    """The graph page's path on the api-server (the app's mount point included), its ids quoted."""
    ids = "/".join(quote(part, safe="") for part in (dag_id, run_id, task_id))
    return f"{request.scope.get('root_path', '')}/remote-graph/{ids}"


def require_same_origin(request: Request) -> None:
    """403 unless the request's ``Origin`` is the api-server's own (browsers send it on every POST)."""
    own = f"{request.url.scheme}://{request.url.netloc}"
    origin = request.headers.get("origin")
    if origin != own:
        log.warning("Remote graph: refused a rerun request from origin %r (expected %r)", origin, own)
        raise HTTPException(status_code=403, detail="cross-site request refused")


def confirm_html(page_path: str, dag_id: str, task_id: str, map_index: int, run: TaskRun, style: str) -> str:
    """The confirmation page: the nodes that run again, and the second POST; ``style`` is the tab's own (the
    only ``<style>`` the plugin's CSP allows)."""
    instance = run.instance or {}
    nodes = failed_nodes(instance)
    listed = "".join(f"<li>{esc(node.get('name') or node['id'])} ({esc(node['id'])})</li>" for node in nodes)
    run_name = f"{esc(str(instance.get('platform')))} run {esc(str(instance.get('instance_id')))}"
    what = (
        f"<p>These nodes of {run_name} run again, in the same run:</p><ul>{listed}</ul>"
        if nodes
        else f"<p>{run_name} runs again from what failed (the platform shows no nodes).</p>"
    )
    node_ids = ",".join(node["id"] for node in nodes)
    return (
        f'<!doctype html><html lang="en"><head><meta charset="utf-8"><title>Rerun failed nodes: {esc(dag_id)}.'
        f"{esc(task_id)}</title><style>{style}</style></head><body><h3>Rerun the failed nodes?</h3>{what}"
        f'<form class="rerun" method="post" action="{esc(page_path)}/rerun-failed">'
        f'<input type="hidden" name="map_index" value="{map_index}">'
        f'<input type="hidden" name="nodes" value="{esc(node_ids)}">'
        f'<button type="submit" id="confirm-rerun">Yes, rerun them</button></form>'
        f'<p><a href="{esc(page_path)}?map_index={map_index}">Cancel</a></p></body></html>'
    )


def add_routes(app: FastAPI, load: Callable[..., Awaitable[TaskRun]], style: str) -> None:
    """The confirmation page and the rerun, on ``app``; ``await load(session, dag_id, run_id, task_id,
    map_index)`` gives the task's ``TaskRun`` (404 when there is no such task instance); ``style`` is the
    tab's page style, which the confirmation page shares."""
    from airflow.api_fastapi.auth.managers.models.resource_details import DagAccessEntity
    from airflow.api_fastapi.common.db.common import SessionDep
    from airflow.api_fastapi.core_api.security import GetUserDep, requires_access_dag

    guards = [Depends(require_same_origin), Depends(requires_access_dag("PUT", DagAccessEntity.TASK_INSTANCE))]
    route = "/remote-graph/{dag_id}/{run_id}/{task_id}"

    async def failed_run(session: Any, dag_id: str, run_id: str, task_id: str, map_index: int) -> TaskRun:
        run = await load(session, dag_id, run_id, task_id, str(map_index))
        if not can_rerun(run):
            raise HTTPException(status_code=409, detail="this task's remote run is not a failed run that can rerun")
        return run

    @app.post(route + "/rerun-failed/confirm", dependencies=guards, response_class=HTMLResponse)
    async def confirm_rerun(
        request: Request, dag_id: str, run_id: str, task_id: str, session: SessionDep, map_index: int = Form(-1)
    ) -> HTMLResponse:
        run = await failed_run(session, dag_id, run_id, task_id, map_index)
        return HTMLResponse(
            confirm_html(page_path(request, dag_id, run_id, task_id), dag_id, task_id, map_index, run, style)
        )

    @app.post(route + "/rerun-failed", dependencies=guards)
    async def rerun_failed(
        request: Request,
        dag_id: str,
        run_id: str,
        task_id: str,
        session: SessionDep,
        user: GetUserDep,
        map_index: int = Form(-1),
        nodes: str = Form(""),
    ) -> RedirectResponse:
        run = await failed_run(session, dag_id, run_id, task_id, map_index)
        instance = run.instance or {}
        confirmed = [node for node in nodes.split(",") if node]
        if confirmed != [node["id"] for node in failed_nodes(instance)] or run.conn_id is None:
            raise HTTPException(status_code=409, detail="the run's failed nodes changed since they were confirmed")
        rerun = await run_in_threadpool(_rerun, run.conn_id, str(instance["instance_id"]))
        forget_live(run.conn_id, str(instance["instance_id"]))
        log.warning(
            "Remote graph: user %r reran the failed nodes %s of %s run %s (DAG %s, run %s, task %s, map index %s)",
            user.get_name(),
            rerun,
            instance.get("platform"),
            instance.get("instance_id"),
            dag_id,
            run_id,
            task_id,
            map_index,
        )
        page = page_path(request, dag_id, run_id, task_id)
        return RedirectResponse(f"{page}?map_index={map_index}", status_code=303)


def _rerun(conn_id: str, instance_id: str) -> list[str]:
    """The rerun itself, through the task's connection (blocking: the route runs it on a worker thread)."""
    hook = get_hook(conn_id)
    try:
        return hook.rerun_failed_nodes(instance_id)
    finally:
        hook.close()
