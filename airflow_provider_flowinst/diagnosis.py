"""Why a remote run failed: its failed and cancelled nodes, and the last lines of their logs, in the task log.

Called once, where a sensor or an operator is about to fail a task on a failure state, so a successful
wait costs nothing. Every platform call made here is allowed to fail: what it could not read is said in
the log, and the task still fails with the real error (the run's failure), never with the log read's.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from airflow_provider_flowinst.models import FlowInstance, FlowState, GraphNode, NodeKind
from airflow_provider_flowinst.redaction import connection_secrets, redact

#: How many failed nodes get their log read: a run where hundreds failed needs the first few, not all.
MAX_NODES_WITH_LOG = 5
#: What is shown of each log: its last lines, and at most this many characters of them.
TAIL_LINES = 20
TAIL_CHARS = 4000
#: Node states that make a node worth naming.
BAD_NODE_STATES = (FlowState.FAILED, FlowState.CANCELLED)


@dataclass(frozen=True)
class Diagnosis:
    """What was found: the bad nodes (failed first), and per node id its log tail or why there is none."""

    nodes: tuple[GraphNode, ...]
    logs: Mapping[str, str]
    notes: tuple[str, ...] = ()
    #: Said in the error message when no node is to blame (a BPM process terminated by someone).
    cause: str | None = None

    @property
    def first_failed(self) -> GraphNode | None:
        return self.nodes[0] if self.nodes else None


def bad_nodes(instance: FlowInstance) -> tuple[GraphNode, ...]:
    """The failed nodes in graph order, then the cancelled ones: the first is the one to name."""
    if instance.graph is None:
        return ()
    nodes = instance.graph.nodes
    return tuple(node for state in BAD_NODE_STATES for node in nodes if node.state is state)


def tail(text: str, *, lines: int = TAIL_LINES, chars: int = TAIL_CHARS) -> str:
    """The last ``lines`` lines of ``text``, cut to its last ``chars`` characters."""
    last = "\n".join(text.rstrip("\n").splitlines()[-lines:])
    return last if len(last) <= chars else "…" + last[-(chars - 1) :]


def diagnose(hook: Any, instance: FlowInstance) -> Diagnosis:
    """Read what explains the failure: the graph if the wait did not read it, then each bad node's log.

    ``hook`` is a platform hook: its client says what the platform can tell (``node_log``, ``failure_notes``).
    """
    secrets = connection_secrets(hook)
    try:
        client = hook.client
    except Exception as exc:  # the graph the wait read still names the failed nodes
        nodes = bad_nodes(instance)
        note = f"could not read more of the run from the platform: {redact(str(exc), secrets)}"
        return Diagnosis(nodes=nodes, logs={}, notes=(note,))
    told = client.failure_notes(instance)
    notes: list[str] = list(told.notes)
    if instance.graph is None and client.offers_graph:
        try:
            instance = hook.get_instance(instance.instance_id, include_graph=True)
        except Exception as exc:
            notes.append(f"could not read the run's graph: {redact(str(exc), secrets)}")
    nodes = bad_nodes(instance)
    logs: dict[str, str] = {}
    readable = [node for node in nodes if node.kind is NodeKind.TASK and node.instance_id]
    for node in readable[:MAX_NODES_WITH_LOG]:
        operation = client.node_log(node)
        if operation is None:
            break
        try:
            logs[node.id] = tail(redact(hook.perform(operation), secrets))
        except Exception as exc:  # a failing log read must never hide the run's own failure
            logs[node.id] = f"(its log could not be read: {redact(str(exc), secrets)})"
    if logs and len(readable) > MAX_NODES_WITH_LOG:
        notes.append(f"logs shown for the first {MAX_NODES_WITH_LOG} of {len(readable)} failed tasks")
    return Diagnosis(nodes=nodes, logs=logs, notes=tuple(notes), cause=told.cause)


def report_lines(diagnosis: Diagnosis, instance: FlowInstance) -> list[str]:
    """The diagnosis as log messages: one per bad node, each followed by its log tail."""
    if not diagnosis.nodes:
        lines = [f"{instance.platform} {instance.instance_id}: no failed or cancelled remote node is known"]
    else:
        lines = []
    for node in diagnosis.nodes:
        lines.append(
            f"Remote {node.kind.value} {node.name or node.id} ({node.instance_id or node.id}) {node.state.value}"
            f" [platform state {node.raw_state}]"
        )
        if node.id in diagnosis.logs:
            lines.append(f"Last lines of the log of {node.name or node.id}:\n{diagnosis.logs[node.id]}")
    return lines + list(diagnosis.notes)


def explain_failure(hook: Any, instance: FlowInstance, message: str, log: logging.Logger | Any) -> str:
    """Log why ``instance`` failed and return ``message`` naming its first failed node.

    ``hook`` is the platform hook, or a connection id to build one from; nothing here raises.
    """
    try:
        if isinstance(hook, str):
            from airflow_provider_flowinst.hooks import get_hook

            hook = get_hook(hook)
        diagnosis = diagnose(hook, instance)
        for line in report_lines(diagnosis, instance):
            log.error(line)  # already formatted: the same text through stdlib logging and structlog
    except Exception:
        log.exception("Could not diagnose the failure of %s %s", instance.platform, instance.instance_id)
        return message
    first = diagnosis.first_failed
    if first is None:
        return f"{message}; {diagnosis.cause}" if diagnosis.cause else message
    return (
        f"{message}; first failed node: {first.name or first.id} "
        f"({first.state.value}, platform state {first.raw_state!r})"
    )
