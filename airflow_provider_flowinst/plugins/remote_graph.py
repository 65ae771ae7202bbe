"""The FastAPI app behind the "Remote graph" tab, mounted by the api-server under ``/flowinst``.

Each page and its SVG are guarded by the api-server's own dependency ``requires_access_dag("GET",
DagAccessEntity.TASK_INSTANCE)``: the auth manager decides (bearer token or the UI's session cookie);
no user is 401, a refused one 403. The page is static HTML (the UI frames it sandboxed, without script);
what it shows comes from the instance dict alone, never from the connection or the platform's record.
"""

# No "from __future__ import annotations": FastAPI reads the routes' annotations, some defined in create_app.
import functools
import html
from typing import Annotated, Any

from fastapi import Depends, FastAPI, HTTPException, Query, Request
from fastapi.responses import HTMLResponse, Response

from airflow_provider_flowinst.graph_svg import render_svg
from airflow_provider_flowinst.plugins import rerun_action
from airflow_provider_flowinst.plugins.instance_source import TaskInstanceMissing, TaskRun, load_task_run

#: The UI's ``{MAP_INDEX}``: a number, or the placeholder itself for a task that is not mapped.
MapIndex = Annotated[str | None, Query()]
#: A page showing a run still going reloads itself this often (seconds).
LIVE_REFRESH_SECONDS = 15
ICON = (
    '<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 16 16"><g fill="none" stroke="#0f766e" stroke-width="1.5">'
    '<rect x="1" y="2" width="5" height="4" rx="1"/><rect x="10" y="2" width="5" height="4" rx="1"/>'
    '<rect x="5.5" y="10" width="5" height="4" rx="1"/><path d="M3.5 6v2h9V6M8 8v2"/></g></svg>'
)
PAGE_STYLE = (
    "body{margin:0;padding:12px;font:13px Inter,Helvetica,Arial,sans-serif;color:#0f172a;background:#fff}"
    ".meta{color:#475569;margin:0 0 8px}.note{padding:10px;border:1px solid #cbd5e1;border-radius:6px}"
    ".scroll{overflow:auto}"
)


def _map_index(value: str | None) -> int:
    """``{MAP_INDEX}`` is left as is by the UI for a task that is not mapped."""
    text = (value or "").strip()
    return int(text) if text.lstrip("-").isdigit() else -1


def _task_run(session: Any, dag_id: str, run_id: str, task_id: str, map_index: str | None) -> TaskRun:
    try:
        return load_task_run(session, dag_id, run_id, task_id, _map_index(map_index))
    except TaskInstanceMissing as exc:
        raise HTTPException(status_code=404, detail=str(exc)) from None


def page_html(dag_id: str, task_id: str, run: TaskRun, actions: str = "") -> str:
    """The tab's document: a line on where the run was read from, ``actions`` (HTML: the rerun button, for
    who may use it), then its SVG (or why there is none)."""
    esc = functools.partial(html.escape, quote=True)
    refresh = f'<meta http-equiv="refresh" content="{LIVE_REFRESH_SECONDS}">' if run.source == "live" else ""
    where = {
        "xcom": "read from the task's XCom (return_value)",
        "live": f"read live from the platform (this page reloads every {LIVE_REFRESH_SECONDS} s)",
        "none": "not available",
    }[run.source]
    body = (
        f'<div class="scroll">{render_svg(run.instance)}</div>'
        if run.instance is not None
        else f'<p class="note">{esc(run.note or "No remote run.")}</p>'
    )
    return (
        f'<!doctype html><html lang="en"><head><meta charset="utf-8">{refresh}'
        f"<title>Remote graph: {esc(dag_id)}.{esc(task_id)}</title><style>{PAGE_STYLE}</style></head>"
        f'<body data-source="{run.source}"><p class="meta">Remote run of task <b>{esc(task_id)}</b>'
        f" (task state {esc(run.task_state or 'none')}): {esc(where)}.</p>{actions}{body}</body></html>"
    )


@functools.cache
def create_app() -> FastAPI:
    """Built once, in the api-server only (it imports the api-server's security dependencies)."""
    from airflow.api_fastapi.auth.managers.models.resource_details import DagAccessEntity
    from airflow.api_fastapi.common.db.common import SessionDep
    from airflow.api_fastapi.core_api.security import GetUserDep, requires_access_dag

    can_read = [Depends(requires_access_dag("GET", DagAccessEntity.TASK_INSTANCE))]
    app = FastAPI(title="Remote graph (airflow-provider-flowinst)", docs_url=None, redoc_url=None, openapi_url=None)

    @app.get("/icon.svg", include_in_schema=False)
    def icon() -> Response:
        return Response(ICON, media_type="image/svg+xml")

    @app.get("/remote-graph/{dag_id}/{run_id}/{task_id}", dependencies=can_read, response_class=HTMLResponse)
    def remote_graph_page(
        request: Request,
        dag_id: str,
        run_id: str,
        task_id: str,
        session: SessionDep,
        user: GetUserDep,
        map_index: MapIndex = None,
    ) -> HTMLResponse:
        run = _task_run(session, dag_id, run_id, task_id, map_index)
        actions = ""
        if rerun_action.can_rerun(run) and rerun_action.may_edit(request, user, dag_id):
            path = rerun_action.page_path(request, dag_id, run_id, task_id)
            actions = rerun_action.button_html(path, _map_index(map_index), run)
        return HTMLResponse(page_html(dag_id, task_id, run, actions), headers={"Cache-Control": "no-store"})

    @app.get("/remote-graph/{dag_id}/{run_id}/{task_id}/graph.svg", dependencies=can_read)
    def remote_graph_svg(
        dag_id: str, run_id: str, task_id: str, session: SessionDep, map_index: MapIndex = None
    ) -> Response:
        run = _task_run(session, dag_id, run_id, task_id, map_index)
        if run.instance is None:
            raise HTTPException(status_code=404, detail=run.note or "no remote run")
        return Response(render_svg(run.instance), media_type="image/svg+xml", headers={"Cache-Control": "no-store"})

    rerun_action.add_routes(app, _task_run)
    return app
