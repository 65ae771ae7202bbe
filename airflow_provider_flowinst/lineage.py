"""OpenLineage for remote runs: the run a task started or watched, and each node of its graph, as jobs.

Airflow's OpenLineage provider (the ``openlineage`` extra) asks each task for ``get_openlineage_facets_on_complete``
(or ``..._on_failure``) when it ends. For the operators and sensors of this provider the answer comes from here:

- the Airflow task's own event gains an ``externalQuery`` facet (the remote run's id and namespace) and a
  ``flowinst_run`` facet (platform, flow, id, state, console link);
- the remote run is emitted as a job of its own: namespace per platform and endpoint (``dataworks://<region>/
  <project>``, ``enos-batch://<gateway>/<org>``, ``enos-bpm://<gateway>/<org>``, ``lsf://<host:port>``), name the
  flow, its state as the event type, the Airflow task's run as its parent;
- each node of the remote graph is a child job ``<flow>.<node id>`` with its own run, its state, and the remote run
  as its parent (the way the Databricks provider reports each query under its task).

Everything is read from the instance dict the task already produced: nothing here calls the platform. Nothing
secret goes into a facet: namespaces keep a host and port (never credentials in a URL), ids and states.
This module imports OpenLineage, so the operators import it only inside their OpenLineage methods.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import attr
from airflow.providers.openlineage.extractors import OperatorLineage
from airflow.providers.openlineage.plugins.adapter import _PRODUCER
from airflow.providers.openlineage.plugins.listener import get_openlineage_listener
from airflow.providers.openlineage.plugins.macros import (
    lineage_job_name,
    lineage_job_namespace,
    lineage_root_job_name,
    lineage_root_job_namespace,
    lineage_root_run_id,
    lineage_run_id,
)
from openlineage.client.event_v2 import Job, Run, RunEvent, RunState
from openlineage.client.facet_v2 import (
    RunFacet,
    error_message_run,
    external_query_run,
    job_type_job,
    parent_run,
)

from airflow_provider_flowinst.hooks.base import ConnectionReader
from airflow_provider_flowinst.models import FlowState

if TYPE_CHECKING:
    from airflow.sdk import Connection

#: The facet this provider adds to runs. Its JSON schema ships in the package (``lineage_run_facet.json``,
#: whose ``$id`` this is): the provider has no web address of its own to publish it at.
FACET_NAME = "flowinst_run"
FACET_SCHEMA_URL = "urn:airflow-provider-flowinst:facets:FlowInstRunFacet:1-0-0"
#: The event type that ends a run in each terminal state; a run that has not ended is RUNNING.
END_EVENTS = {
    FlowState.SUCCESS: RunState.COMPLETE,
    FlowState.SKIPPED: RunState.COMPLETE,
    FlowState.FAILED: RunState.FAIL,
    FlowState.CANCELLED: RunState.ABORT,
}
#: OpenLineage's jobType for each platform's runs and for each kind of graph node.
RUN_JOB_TYPES = {"enos_batch": "FLOW", "enos_bpm": "PROCESS", "lsf_pm": "FLOW", "dataworks": "WORKFLOW"}
NODE_JOB_TYPES = {"task": "TASK", "flow": "FLOW", "activity": "ACTIVITY"}
#: Remote graphs can be large: past this many nodes the rest are left out (the run's facet says how many).
MAX_NODE_EVENTS = 500


@attr.define
class FlowInstRunFacet(RunFacet):
    """What the remote run (or graph node) is on its platform: ids, state in both vocabularies, console link."""

    platform: str
    instanceId: str  # OpenLineage facets are camelCase
    flowId: str | None = None
    state: str | None = None
    rawState: str | None = None
    kind: str | None = None
    url: str | None = None
    nodeCount: int | None = None

    @staticmethod
    def _get_schema() -> str:
        return FACET_SCHEMA_URL


def operator_lineage(task_instance: Any, conn_id: str, instance: Mapping[str, Any] | None) -> OperatorLineage[Any, Any]:
    """Emit the remote run and its nodes as child jobs of ``task_instance``; the facets for the task's own event.

    ``instance`` is the dict the task returned (or ended on); None (the task failed before it knew a run)
    means no remote events and no facets.
    """
    if not instance:
        return OperatorLineage()
    remote = RemoteRun(instance, namespace(conn_id, instance))
    parent = airflow_parent(task_instance)
    adapter = get_openlineage_listener().adapter
    for event in remote.events(parent):
        adapter.emit(event)
    return OperatorLineage(
        run_facets={
            "externalQuery": external_query_run.ExternalQueryRunFacet(
                externalQueryId=remote.instance_id, source=remote.namespace, producer=_PRODUCER
            ),
            FACET_NAME: remote.facet(),
        }
    )


def airflow_parent(task_instance: Any) -> parent_run.ParentRunFacet:
    """The Airflow task's run (as Airflow's OpenLineage provider names it), with its DAG run as the root."""
    return parent_run.ParentRunFacet(
        run=parent_run.Run(runId=lineage_run_id(task_instance)),
        job=parent_run.Job(namespace=lineage_job_namespace(), name=lineage_job_name(task_instance)),  # type: ignore[no-untyped-call]
        root=parent_run.Root(
            run=parent_run.RootRun(runId=lineage_root_run_id(task_instance)),
            job=parent_run.RootJob(
                namespace=lineage_root_job_namespace(task_instance), name=lineage_root_job_name(task_instance)
            ),
        ),
        producer=_PRODUCER,
    )


def namespace(conn_id: str, instance: Mapping[str, Any]) -> str:
    """The remote run's job namespace: the platform and where it runs (host and port only, never credentials)."""
    from airflow.sdk import BaseHook

    platform = str(instance.get("platform"))
    connection = BaseHook.get_connection(conn_id)
    return namespace_of(platform, connection, instance)


def namespace_of(platform: str, connection: Connection, instance: Mapping[str, Any]) -> str:
    reader = ConnectionReader(connection, platform)
    if platform == "dataworks":
        region = reader.extra("region_id") or _authority(str(reader.extra("endpoint") or "")) or "unknown-region"
        details = instance.get("details") or {}
        project = details.get("ProjectId") if isinstance(details, Mapping) else None
        project = project or reader.extra("project_id")
        return f"dataworks://{region}/{project}" if project not in (None, "") else f"dataworks://{region}"
    host = _authority(str(connection.host or ""), connection.schema, connection.port) or "unknown-host"
    if platform == "lsf_pm":
        return f"lsf://{host}"
    scheme = "enos-batch" if platform == "enos_batch" else "enos-bpm"
    org = reader.extra("org_id")
    return f"{scheme}://{host}/{org}" if org not in (None, "") else f"{scheme}://{host}"


def _authority(url: str, schema: str | None = None, port: int | None = None) -> str:
    """``host[:port]`` of a URL or bare host, without any user or password a URL may carry."""
    text = url.strip()
    if not text:
        return ""
    parts = urlsplit(text if "://" in text else f"{schema or 'https'}://{text}")
    host = (parts.hostname or "").lower()
    try:
        chosen = parts.port or port
    except ValueError:
        chosen = port
    return f"{host}:{chosen}" if host and chosen else host


class RemoteRun:
    """One remote run, read from its instance dict, as OpenLineage jobs, runs and events."""

    def __init__(self, instance: Mapping[str, Any], namespace: str) -> None:
        self.instance = instance
        self.namespace = namespace
        self.platform = str(instance.get("platform"))
        self.instance_id = str(instance.get("instance_id"))
        self.flow = str(instance.get("flow_id") or instance.get("name") or self.instance_id)
        self.state = _state(instance.get("state"))
        self.started_at = _time(instance.get("started_at"))
        self.ended_at = _time(instance.get("ended_at"))
        graph = instance.get("graph") or {}
        self.nodes: list[Mapping[str, Any]] = [node for node in graph.get("nodes") or [] if isinstance(node, Mapping)]
        # Stable: whoever reports this remote run (the task that started it, a sensor on it) names the same run.
        self.run_id = str(uuid.uuid5(uuid.NAMESPACE_URL, f"{namespace}/{self.flow}/{self.instance_id}"))

    def facet(self) -> FlowInstRunFacet:
        return FlowInstRunFacet(
            platform=self.platform,
            instanceId=self.instance_id,
            flowId=self.flow,
            state=self.state.value,
            rawState=_text(self.instance.get("raw_state")),
            url=_text(self.instance.get("url")),
            nodeCount=len(self.nodes),
            producer=_PRODUCER,
        )

    def job_type(self, job_type: str) -> job_type_job.JobTypeJobFacet:
        return job_type_job.JobTypeJobFacet(
            processingType="BATCH", integration=self.platform.upper(), jobType=job_type, producer=_PRODUCER
        )

    def events(self, parent: parent_run.ParentRunFacet) -> list[RunEvent]:
        """The remote run's events, then each node's: a start and, for what has ended, its end."""
        job = Job(
            namespace=self.namespace,
            name=self.flow,
            facets={"jobType": self.job_type(RUN_JOB_TYPES.get(self.platform, "JOB"))},
        )
        facets: dict[str, RunFacet] = {"parent": parent, FACET_NAME: self.facet()}
        if self.state in (FlowState.FAILED, FlowState.CANCELLED):
            facets["errorMessage"] = error_message_run.ErrorMessageRunFacet(
                message=f"{self.platform} run {self.instance_id} of {self.flow} ended {self.state.value}"
                f" ({_text(self.instance.get('raw_state'))})",
                programmingLanguage="none",
                producer=_PRODUCER,
            )
        events = _lifecycle(job, Run(runId=self.run_id, facets=facets), self.state, self.started_at, self.ended_at)
        as_parent = parent_run.ParentRunFacet(
            run=parent_run.Run(runId=self.run_id),
            job=parent_run.Job(namespace=self.namespace, name=self.flow),
            root=parent.root,
            producer=_PRODUCER,
        )
        for node in self.nodes[:MAX_NODE_EVENTS]:
            events.extend(self.node_events(node, as_parent))
        return events

    def node_events(self, node: Mapping[str, Any], parent: parent_run.ParentRunFacet) -> list[RunEvent]:
        node_id = str(node.get("id"))
        kind = _text(node.get("kind")) or "task"
        state = _state(node.get("state"))
        job = Job(
            namespace=self.namespace,
            name=f"{self.flow}.{node_id}",
            facets={"jobType": self.job_type(NODE_JOB_TYPES.get(kind, "JOB"))},
        )
        run_id = str(uuid.uuid5(uuid.NAMESPACE_URL, f"{self.namespace}/{self.flow}/{self.instance_id}/{node_id}"))
        facet = FlowInstRunFacet(
            platform=self.platform,
            instanceId=_text(node.get("instance_id")) or node_id,
            flowId=self.flow,
            state=state.value,
            rawState=_text(node.get("raw_state")),
            kind=kind,
            producer=_PRODUCER,
        )
        run = Run(runId=run_id, facets={"parent": parent, FACET_NAME: facet})
        # The graph carries a node's times where the platform gives them; otherwise the run's bound them.
        started = _time(node.get("started_at")) or self.started_at
        ended = _time(node.get("ended_at")) or self.ended_at
        if state in (FlowState.QUEUED, FlowState.UNKNOWN):
            # Not started (or not known to be): one OTHER event says so, without claiming a start.
            return [_event(RunState.OTHER, job, run, ended or started)]
        return _lifecycle(job, run, state, started, ended)


def _lifecycle(
    job: Job, run: Run, state: FlowState, started: dt.datetime | None, ended: dt.datetime | None
) -> list[RunEvent]:
    end = END_EVENTS.get(state)
    first = _event(RunState.START, job, run, started)
    if end is None:
        return [first, _event(RunState.RUNNING, job, run, None)]
    return [first, _event(end, job, run, ended)]


def _event(kind: RunState, job: Job, run: Run, at: dt.datetime | None) -> RunEvent:
    moment = at or dt.datetime.now(dt.timezone.utc)
    return RunEvent(eventType=kind, eventTime=moment.isoformat(), run=run, job=job, producer=_PRODUCER)


def _state(value: Any) -> FlowState:
    try:
        return FlowState(str(value))
    except ValueError:
        return FlowState.UNKNOWN


def _time(value: Any) -> dt.datetime | None:
    if not isinstance(value, str) or not value:
        return None
    try:
        moment = dt.datetime.fromisoformat(value)
    except ValueError:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=dt.timezone.utc)


def _text(value: Any) -> str | None:
    return None if value is None else str(value)
