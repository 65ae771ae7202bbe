"""Every parser, fed anything a server could send: the expected result or a FlowPlatformError, nothing else.

Each test drives one parsing entry point of a platform module (an envelope reader, a record or graph
parser, a token answer, a whole ``get_instance`` operation fed answer after answer) with hypothesis, at
least 1,000 examples each. Bodies are built from plausible shapes (the platform's own envelopes and
records, whose fields hold plausible values or any JSON at all), arbitrary JSON, JSON cut short, bytes,
deeply nested documents and, for LSF, XML (documented shapes, tags with a stray space, entity bombs,
external entities). Any exception other than FlowPlatformError fails the test.

``FLOWINST_FUZZ_EXAMPLES=20000 pytest tests/test_fuzz_parsers.py`` explores further.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Callable
from typing import Any
from xml.sax.saxutils import escape

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from airflow_provider_flowinst.errors import FlowPlatformError
from airflow_provider_flowinst.models import FlowInstance, InstanceGraph
from airflow_provider_flowinst.platforms import dataworks, enos_batch, enos_bpm, enos_gateway, lsf
from airflow_provider_flowinst.protocol import (
    HttpRequest,
    HttpResponse,
    Token,
    decode_embedded_json,
    decode_json,
)
from airflow_provider_flowinst.transport import TransientFault, _classify, retry_after_seconds
from tests.helpers import camel_case, drive_to_end

EXAMPLES = int(os.environ.get("FLOWINST_FUZZ_EXAMPLES", "1000"))
fuzz = settings(
    max_examples=EXAMPLES,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much],
)

# -- building blocks -------------------------------------------------------------------------------------

TRICKY_TEXT = [
    "",
    " ",
    "0",
    "-1",
    "²",  # str.isdigit() says yes, int() says no
    "١٢",  # Arabic-Indic digits: int() reads them
    "1e400",
    "NaN",
    "Infinity",
    "9" * 30,
    "\x00",
    "<",
    "&amp;",
    '"',
    "null",
    "2019-08-08 09:32:30",
    "2019-08-08 09:32:30.0",
    "0001-01-01 00:00:00",
    "9999-12-31 23:59:59",
    "0000-00-00 00:00:00",
    "99999999999",
    "2018-08-14 14:11:15 GMT+08:00",
    "0001-01-01 00:00:00 GMT+08:00",
    "9999-12-31 23:59:59 GMT-08:00",
    "2018-08-14 14:11:15 GMT+99:99",
    "GMT",
    "SUCCESS",
    "Running",
    "completed",
    "Success",
]
texts = st.one_of(st.text(max_size=16), st.sampled_from(TRICKY_TEXT))
numbers = st.one_of(
    st.integers(min_value=-(2**64), max_value=2**64),
    st.sampled_from([0, 1, -1, 2**31, 2**63, 10**20, -(10**20), 253402300800000]),
    st.floats(),
)
scalars = st.one_of(st.none(), st.booleans(), numbers, texts)
json_values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3),
    max_leaves=8,
)


#: Any JSON value, scalars more often than (costlier) nested ones.
anything = st.one_of(scalars, scalars, json_values)


def maybe(*plausible: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    """A plausible value two times in three, any JSON value otherwise."""
    return st.one_of(*plausible, *plausible, anything)


def record(**fields: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    """An object with any subset of ``fields`` (and now and then something else entirely)."""
    return st.one_of(
        st.fixed_dictionaries({}, optional=fields), st.fixed_dictionaries({}, optional=fields), json_values
    )


def deep_json(depth: int) -> bytes:
    return ("[" * depth + "]" * depth).encode()


def encode(value: Any) -> bytes:
    return json.dumps(value).encode()


def bodies(document: st.SearchStrategy[Any]) -> st.SearchStrategy[bytes]:
    """The document as JSON, cut short, or replaced by bytes, a bare value or a very deep document."""
    encoded = document.map(encode)
    return st.one_of(
        encoded,
        encoded,
        encoded,
        st.tuples(encoded, st.integers(min_value=0, max_value=400)).map(lambda pair: pair[0][: pair[1]]),
        json_values.map(encode),
        st.binary(max_size=40),
        st.sampled_from([b"", b"<html><body>502 Bad Gateway</body></html>", b"{", b"null", b"[]"]),
        st.integers(min_value=1, max_value=5000).map(deep_json),
    )


STATUSES = st.one_of(
    st.sampled_from([200, 200, 200, 200, 400, 401, 403, 404, 409, 410, 429, 500, 503]), st.integers(100, 599)
)
HEADERS = st.one_of(
    st.just({}),
    st.just({"content-type": "application/json"}),
    st.dictionaries(
        st.sampled_from(["content-type", "retry-after", "x-acs-retry-after"]),
        st.one_of(texts, st.sampled_from(["application/json", "text/html", "Wed, 21 Oct 2015 07:28:10 GMT"])),
        max_size=3,
    ),
)


def responses(document: st.SearchStrategy[Any]) -> st.SearchStrategy[HttpResponse]:
    return st.builds(HttpResponse, status=STATUSES, headers=HEADERS, body=bodies(document))


def get_instance_answers(client: Any, instance_id: str, answers: list[HttpResponse]) -> None:
    """The client's ``get_instance``, its requests answered with ``answers``, gives a FlowInstance or raises
    FlowPlatformError."""
    returns(FlowInstance, lambda: drive_to_end(client.get_instance(instance_id), answers))


def returns(kind: type | tuple[type, ...], call: Callable[[], Any]) -> Any:
    """``call()`` returns a ``kind`` or raises FlowPlatformError; anything else fails the test."""
    try:
        result = call()
    except FlowPlatformError as error:
        assert str(error)  # the message itself can be built
        return None
    assert isinstance(result, kind), f"got {type(result).__name__}"
    if isinstance(result, FlowInstance):
        json.dumps(result.to_dict())  # what goes to XCom is JSON
    return result


# -- the shared protocol helpers and the transport's reading of answers ---------------------------------


@fuzz
@given(responses(json_values))
def test_decode_json(response):
    returns(object, lambda: decode_json(response, platform="enos_batch", call="fuzz"))


@fuzz
@given(st.one_of(texts, json_values, bodies(json_values).map(lambda body: body.decode("utf-8", "replace"))))
def test_decode_embedded_json(text):
    returns(object, lambda: decode_embedded_json(text, platform="enos_batch", call="fuzz", what="graph"))


@fuzz
@given(
    st.builds(HttpResponse, status=STATUSES, headers=HEADERS, body=bodies(json_values)),
    st.sampled_from(["GET", "POST"]),
)
def test_the_transport_reads_any_answer_as_passable_or_not(response, method):
    seconds = retry_after_seconds(response)
    assert seconds is None or (isinstance(seconds, float) and seconds >= 0)
    settings = type("S", (), {"platform": "dataworks"})()
    signer = dataworks.DataWorksSigner("AK", "S")
    try:
        _classify(settings, HttpRequest(method, "https://x/", call="fuzz"), response, signer.throttling)
    except TransientFault as fault:
        assert fault.retry_after is None or fault.retry_after >= 0
    except FlowPlatformError as error:  # a redirect is an error of its own, never passed on to be misread
        assert 300 <= response.status < 400
        assert f"HTTP {response.status}" in str(error)


# -- EnOS gateway (token answers, expiry checks) ---------------------------------------------------------

gateway_envelopes = record(
    code=maybe(st.sampled_from([0, "0", 1203, "1203", 401])),
    status=maybe(st.sampled_from([0, 1001, 1003])),
    msg=texts,
    data=record(accessToken=maybe(texts), expire=maybe(numbers, texts)),
)


@fuzz
@given(responses(gateway_envelopes))
def test_enos_token_answers(response):
    token = returns(Token, lambda: enos_gateway.parse_token_response(response, platform="enos_batch", now=0.0))
    if token is not None:
        assert token.value and math.isfinite(token.expires_at)
    auth = enos_gateway.EnOSGatewayAuth(platform="enos_batch", base_url="https://gw", app_key="k", app_secret="s")
    assert auth.is_token_expired(response) in (True, False)


# -- EnOS Batch Processing -------------------------------------------------------------------------------

words = maybe(st.sampled_from(sorted(enos_batch.STATE_BY_WORD)), texts)


def either_spelling(**fields: st.SearchStrategy[Any]) -> dict[str, st.SearchStrategy[Any]]:
    """The fields under their snake_case names and their camelCase ones (EnOS answers spell them either way)."""
    return {spelling: strategy for name, strategy in fields.items() for spelling in (name, camel_case(name))}


graph_task = record(
    **either_spelling(task_name=maybe(texts), task_inst_id=maybe(texts), task_id=maybe(numbers), node_id=maybe(texts)),
    status=words,
)
graph_flow = record(
    **either_spelling(flow_id=maybe(numbers), flow_name=maybe(texts), node_id=maybe(texts), flow_inst_id=maybe(texts)),
    status=words,
)
graph_documents = record(
    tasks=maybe(st.lists(graph_task, max_size=4)),
    flows=maybe(st.lists(graph_flow, max_size=3)),
    relations=maybe(st.lists(record(source=maybe(texts), target=maybe(texts)), max_size=4)),
)
graph_texts = st.one_of(
    graph_documents.map(json.dumps),  # the graph as EnOS sends it: JSON inside a string
    graph_documents.map(json.dumps).map(lambda text: text[: len(text) // 2]),
    graph_documents,  # already decoded (a newer API version)
    texts,
    json_values,
)
enos_records = record(
    instanceId=maybe(texts, numbers),
    flowId=maybe(numbers),
    flowName=maybe(texts),
    status=maybe(st.integers(-3, 12), texts),
    statusDesc=words,
    startTime=maybe(texts),
    endTime=maybe(texts),
    parameters=maybe(st.sampled_from(["[]", '[{"key": "a", "value": 1}]', "[", "{}"]), texts),
    graph=graph_texts,
)
enos_envelopes = record(
    code=maybe(st.sampled_from([0, "0", 62102, 62103])),
    status=maybe(st.sampled_from([0, 62101])),
    msg=texts,
    data=maybe(enos_records),
)
enos_client = enos_batch.EnOSBatchClient(
    enos_batch.EnOSBatchSettings(base_url="https://gw", org_id="o", user_id="u", timezone="Asia/Shanghai")
)


@fuzz
@given(graph_texts)
def test_enos_graph_in_a_string(text):
    returns((InstanceGraph, type(None)), lambda: enos_batch.parse_graph(text))


@fuzz
@given(responses(enos_envelopes))
def test_enos_get_instance_reads_any_answer(response):
    get_instance_answers(enos_client, "2809-20190808093200", [response])
    returns(object, lambda: enos_batch.read_envelope(response, call="Get My Flow"))


# -- EnOS BPM --------------------------------------------------------------------------------------------

epoch_ms = maybe(numbers, st.integers(0, 4_102_444_800_000))
bpm_records = record(
    id=maybe(texts),
    processInstanceId=maybe(texts),
    name=maybe(texts),
    processDefinitionId=maybe(texts),
    processStatus=maybe(st.sampled_from(["inProgress", "completed", "terminated", "INPROGRESS"]), texts),
    createdTime=epoch_ms,
    started=epoch_ms,
    completedTime=epoch_ms,
    terminatedTime=epoch_ms,
    ended=epoch_ms,
    taskName=maybe(texts),
    url=maybe(texts),
)
bpm_envelopes = record(code=maybe(st.sampled_from([0, "0", 33404, 401, 410])), msg=texts, data=maybe(bpm_records))
portal_envelopes = record(
    code=maybe(st.sampled_from([0, 200, "0", 31400])),
    message=texts,
    data=record(accessToken=maybe(texts), refreshToken=maybe(texts)),
)
bpm_client = enos_bpm.EnOSBPMClient(enos_bpm.EnOSBPMSettings(base_url="https://gw"))
bpm_auth = enos_bpm.EnOSBPMAuth(
    gateway=enos_gateway.EnOSGatewayAuth(platform="enos_bpm", base_url="https://gw", app_key="k", app_secret="s"),
    account="a",
    password="p",
    org_id="o",
)


@pytest.mark.parametrize(
    ("client", "records"), [(enos_client, enos_records), (bpm_client, bpm_records)], ids=["enos_batch", "enos_bpm"]
)
@fuzz
@given(data=st.data(), include_graph=st.booleans())
def test_enos_and_bpm_instance_records_with_or_without_their_graph(client, records, data, include_graph):
    record_ = data.draw(records)
    returns(FlowInstance, lambda: client.to_flow_instance(record_, include_graph=include_graph))


@fuzz
@given(responses(bpm_envelopes))
def test_bpm_get_instance_reads_any_answer(response):
    get_instance_answers(bpm_client, "0b7c5e00", [response])
    assert bpm_auth.is_token_expired(response) in (True, False)


@fuzz
@given(responses(gateway_envelopes), responses(portal_envelopes), responses(portal_envelopes))
def test_bpm_login_reads_any_answers(gateway_answer, login_answer, session_answer):
    token = returns(Token, lambda: drive_to_end(bpm_auth.login(), [gateway_answer, login_answer, session_answer]))
    if token is not None:
        assert token.value and token.payload.bearer


# -- LSF Process Manager ---------------------------------------------------------------------------------

lsf_records = record(
    id=maybe(numbers, texts),
    user=maybe(texts),
    name=maybe(texts),
    fullName=maybe(st.sampled_from(["101:jsmith:flow1", "::", "a:b"]), texts),
    state=maybe(st.sampled_from(["Running", "Done", "Exit", "Killed", "Suspended"]), texts),
    status=maybe(numbers),
    startTime=maybe(texts),
    endTime=maybe(texts),
    **{" lastUpdateTime": maybe(texts)},
)
lsf_documents = st.one_of(
    record(
        pseudoFlowInstances=maybe(
            record(
                total=maybe(numbers, texts), pseudoFlowInstance=maybe(lsf_records, st.lists(lsf_records, max_size=3))
            )
        )
    ),
    record(pseudoFlowInstance=maybe(lsf_records)),
    record(error=maybe(record(message=maybe(texts)), texts)),
    record(token=maybe(texts), User=maybe(record(token=maybe(texts)))),
    record(message=maybe(record(message=maybe(texts)), texts)),
)
XML_NAMES = [
    "pseudoFlowInstances",
    "pseudoFlowInstance",
    "total",
    "id",
    "user",
    "name",
    "fullName",
    "state",
    "status",
    "startTime",
    " lastUpdateTime",
    "error",
    "message",
    "User",
    "token",
    "ns:x",
]
xml_leaf = st.tuples(st.sampled_from(XML_NAMES), texts).map(lambda pair: f"<{pair[0]}>{escape(pair[1])}</{pair[0]}>")
xml_elements = st.recursive(
    xml_leaf,
    lambda inner: st.tuples(st.sampled_from(XML_NAMES), st.lists(inner, max_size=4)).map(
        lambda pair: f"<{pair[0]}>{''.join(pair[1])}</{pair[0]}>"
    ),
    max_leaves=12,
)
HOSTILE_XML = [
    '<!DOCTYPE r [<!ENTITY a "aaaaaaaaaa"><!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;">]><User><token>&b;</token></User>',
    '<!DOCTYPE r [<!ENTITY x SYSTEM "file:///etc/passwd">]><User><token>&x;</token></User>',
    '<!DOCTYPE r SYSTEM "http://127.0.0.1:1/evil.dtd"><User><token>t</token></User>',
    '<?xml version="1.0" encoding="no-such-encoding"?><User/>',
    '<?xml version="1.0"?><!DOCTYPE r><User><token>t</token></User>',
    "<User><token>&undefined;</token></User>",
    '<User token="a" token="b"/>',
    "<",
    "<a><b></a>",
]
xml_bodies = st.one_of(
    xml_elements.map(str.encode),
    xml_elements.map(lambda text: text[: len(text) // 2].encode()),
    st.sampled_from(HOSTILE_XML).map(str.encode),
    st.integers(1, 3000).map(lambda depth: ("<a>" * depth + "</a>" * depth).encode()),
)
lsf_responses = st.one_of(
    responses(lsf_documents),
    st.builds(HttpResponse, status=STATUSES, headers=st.just({"content-type": "application/xml"}), body=xml_bodies),
)
lsf_client = lsf.LSFClient(lsf.LSFSettings(base_url="https://pac:8443", timezone="Asia/Shanghai"))


@fuzz
@given(lsf_responses)
def test_lsf_answers_json_and_xml(response):
    returns(object, lambda: lsf.read_answer(response, call="Get Flow Instances", not_found=True))
    payload = returns(object, lambda: lsf.decode_answer(response, call="Get Flow Instances"))
    returns(tuple, lambda: lsf.records_of(payload))
    assert lsf.error_message(payload) is None or isinstance(lsf.error_message(payload), str)


@fuzz
@given(lsf_records)
def test_lsf_flow_instance_records(record_):
    returns(FlowInstance, lambda: lsf_client.to_flow_instance(record_))


@fuzz
@given(lsf_responses, lsf_responses)
def test_lsf_get_instance_reads_any_answers(first, second):
    get_instance_answers(lsf_client, "101", [first, second])


@fuzz
@given(lsf_responses)
def test_lsf_logon_answers(response):
    token = returns(Token, lambda: lsf.parse_logon_response(response, user="jsmith", base_url="https://pac"))
    if token is not None:
        assert token.value.strip() == token.value and token.value


# -- DataWorks -------------------------------------------------------------------------------------------

dw_statuses = maybe(st.sampled_from(sorted(dataworks.STATE_BY_STATUS)), texts)
dw_workflow_records = record(
    Id=maybe(numbers, texts),
    WorkflowId=maybe(numbers),
    Name=maybe(texts),
    Status=dw_statuses,
    StartedTime=epoch_ms,
    FinishedTime=epoch_ms,
    BizDate=epoch_ms,
    ProjectId=maybe(numbers, texts),
)
dw_task_records = record(Id=maybe(numbers, texts), TaskName=maybe(texts), Status=dw_statuses)
dw_documents = st.one_of(
    record(RequestId=texts, WorkflowInstance=maybe(dw_workflow_records)),
    record(
        PagingInfo=maybe(
            record(
                TotalCount=maybe(numbers, texts),
                TaskInstances=maybe(st.lists(dw_task_records, max_size=3)),
                UpstreamTaskInstances=maybe(
                    st.lists(
                        record(DependencyType=texts, TaskInstance=maybe(dw_task_records), Id=maybe(numbers)), max_size=3
                    )
                ),
            )
        )
    ),
    record(
        Code=maybe(
            st.sampled_from(["Throttling.User", "EntityNotExists.WorkflowInstance", "InvalidAccessKeyId.NotFound"])
        ),
        Message=texts,
        RequestId=maybe(texts),
    ),
)
dw_client = dataworks.DataWorksClient(dataworks.DataWorksSettings(endpoint="https://dw", project_id="100"))


@fuzz
@given(responses(dw_documents))
def test_dataworks_answers_and_error_bodies(response):
    returns(dict, lambda: dataworks.read_response(response, call="GetWorkflowInstance"))
    assert dataworks.is_throttled(response) in (True, False)
    code = dataworks.error_code(response)
    assert code is None or isinstance(code, str)


@fuzz
@given(
    dw_workflow_records,
    st.lists(dw_task_records, max_size=4),
    st.dictionaries(
        texts, st.lists(record(TaskInstance=maybe(dw_task_records), Id=maybe(numbers)), max_size=3), max_size=3
    ),
)
def test_dataworks_records_and_graph(record_, tasks, upstream):
    returns(FlowInstance, lambda: dw_client.to_flow_instance(record_))
    tasks = [task for task in tasks if isinstance(task, dict)]
    upstream = {key: [entry for entry in entries if isinstance(entry, dict)] for key, entries in upstream.items()}
    returns(InstanceGraph, lambda: dataworks.build_graph(tasks, upstream))


@fuzz
@given(st.lists(responses(dw_documents), min_size=1, max_size=5))
def test_dataworks_get_instance_reads_any_answers(answers):
    get_instance_answers(dw_client, "700001", answers)
