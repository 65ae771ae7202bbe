"""The FastAPI app behind the "Remote graph" tab, mounted by the api-server under ``/flowinst``.

Each page and its SVG are guarded by the api-server's own dependency ``requires_access_dag("GET",
DagAccessEntity.TASK_INSTANCE)``: the auth manager decides (bearer token or the UI's session cookie);
no user is 401, a refused one 403. The page is static HTML: the UI frames it with a sandbox that allows
scripts, same-origin and forms, so it is the plugin's Content-Security-Policy (``answers``) that allows no
script at all. What it shows comes from the instance dict alone, never from the connection or the
platform's record.

The routes are async: the metadata database is read on a worker thread (``run_in_threadpool``), a live
read runs on the event loop within its own budget (``live_reads``), and the drawing (bounded by
``graph_reduce``) on a worker thread again. Every answer carries the headers of ``answers``.
"""

# No "from __future__ import annotations": FastAPI reads the routes' annotations, some defined in create_app.
import functools
import re
from typing import Annotated, Any

from fastapi import Depends, FastAPI, HTTPException, Query, Request
from fastapi.responses import HTMLResponse, Response
from starlette.concurrency import run_in_threadpool
from starlette.types import ASGIApp

from airflow_provider_flowinst.graph_svg import draw
from airflow_provider_flowinst.plugins import rerun_action
from airflow_provider_flowinst.plugins.answers import SecurityHeaders, answer_errors_in_plain_text, security_headers
from airflow_provider_flowinst.plugins.instance_source import (
    LiveTarget,
    TaskInstanceMissing,
    TaskRun,
    locate_task_run,
    read_live,
)
from airflow_provider_flowinst.safe_text import escaped

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
    ".scroll{overflow:auto}.reduced{margin:0 0 8px;border-color:#f59e0b}" + rerun_action.BUTTON_STYLE
)


#: Path values shown on the page (ids Airflow allows are far shorter).
ID_CHARS = 250
#: A map index: -1 (not mapped) up to the database column's largest, in ASCII digits.
MAP_INDEX_PATTERN = re.compile(r"-?[0-9]{1,10}")
MAX_MAP_INDEX = 2**31 - 1
UNMAPPED = ("", "{MAP_INDEX}")


def parse_map_index(value: str | None) -> int:
    """``{MAP_INDEX}`` (left as is by the UI for a task that is not mapped) or a whole number; else 422."""
    text = (value or "").strip()
    if text in UNMAPPED:
        return -1
    number = int(text) if MAP_INDEX_PATTERN.fullmatch(text) else None
    if number is None or not -1 <= number <= MAX_MAP_INDEX:
        raise HTTPException(
            status_code=422, detail=f"map_index must be a whole number from -1 to {MAX_MAP_INDEX}, or omitted."
        )
    return number


async def _task_run(session: Any, dag_id: str, run_id: str, task_id: str, map_index: str | None) -> TaskRun:
    index = parse_map_index(map_index)
    try:
        found = await run_in_threadpool(locate_task_run, session, dag_id, run_id, task_id, index)
    except TaskInstanceMissing as exc:
        raise HTTPException(status_code=404, detail=str(exc)) from None
    return await read_live(found) if isinstance(found, LiveTarget) else found


def page_html(dag_id: str, task_id: str, run: TaskRun, actions: str = "") -> str:
    """The tab's document: a line on where the run was read from, ``actions`` (HTML: the rerun button, for
    who may use it), then its SVG (or why there is none)."""
    esc = functools.partial(escaped, limit=ID_CHARS)
    refresh = f'<meta http-equiv="refresh" content="{LIVE_REFRESH_SECONDS}">' if run.source == "live" else ""
    where = {
        "xcom": "read from the task's XCom (return_value)",
        "live": f"read live from the platform (this page reloads every {LIVE_REFRESH_SECONDS} s)",
        "none": "not available",
    }[run.source]
    if run.instance is not None:
        drawing = draw(run.instance)
        summary = drawing.view.summary()
        reduced = f'<p class="note reduced">{esc(summary, limit=1000)}</p>' if summary else ""
        body = f'{reduced}<div class="scroll">{drawing.svg}</div>'
    else:
        body = f'<p class="note">{esc(run.note or "No remote run.", limit=1000)}</p>'

    return (
        f'<!doctype html><html lang="en"><head><meta charset="utf-8">{refresh}'
        f"<title>Remote graph: {esc(dag_id)}.{esc(task_id)}</title><style>{PAGE_STYLE}</style></head>"
        f'<body data-source="{run.source}"><p class="meta">Remote run of task <b>{esc(task_id)}</b>'
        f" (task state {esc(run.task_state or 'none')}): {esc(where)}.</p>{actions}{body}</body></html>"
    )


@functools.cache
def create_app() -> ASGIApp:
    """Built once, in the api-server only (it imports the api-server's security dependencies)."""
    from airflow.api_fastapi.auth.managers.models.resource_details import DagAccessEntity
    from airflow.api_fastapi.common.db.common import SessionDep
    from airflow.api_fastapi.core_api.security import GetUserDep, requires_access_dag

    can_read = [Depends(requires_access_dag("GET", DagAccessEntity.TASK_INSTANCE))]
    app = FastAPI(title="Remote graph (airflow-provider-flowinst)", docs_url=None, redoc_url=None, openapi_url=None)
    answer_errors_in_plain_text(app)

    @app.get("/icon.svg", include_in_schema=False)
    async def icon() -> Response:
        return Response(ICON, media_type="image/svg+xml")

    @app.get("/remote-graph/{dag_id}/{run_id}/{task_id}", dependencies=can_read, response_class=HTMLResponse)
    async def remote_graph_page(
        request: Request,
        dag_id: str,
        run_id: str,
        task_id: str,
        session: SessionDep,
        user: GetUserDep,
        map_index: MapIndex = None,
    ) -> HTMLResponse:
        run = await _task_run(session, dag_id, run_id, task_id, map_index)
        actions = ""
        if rerun_action.can_rerun(run) and await run_in_threadpool(rerun_action.may_edit, request, user, dag_id):
            path = rerun_action.page_path(request, dag_id, run_id, task_id)
            actions = rerun_action.button_html(path, parse_map_index(map_index), run)
        return HTMLResponse(await run_in_threadpool(page_html, dag_id, task_id, run, actions))

    @app.get("/remote-graph/{dag_id}/{run_id}/{task_id}/graph.svg", dependencies=can_read)
    async def remote_graph_svg(
        dag_id: str, run_id: str, task_id: str, session: SessionDep, map_index: MapIndex = None
    ) -> Response:
        run = await _task_run(session, dag_id, run_id, task_id, map_index)
        if run.instance is None:
            raise HTTPException(status_code=404, detail=run.note or "no remote run")
        drawing = await run_in_threadpool(draw, run.instance)
        return Response(drawing.svg, media_type="image/svg+xml")

    rerun_action.add_routes(app, _task_run, PAGE_STYLE)
    # Outermost: the headers reach every answer, FastAPI's own 500 included.
    return SecurityHeaders(app, security_headers([PAGE_STYLE]))
