"""Validate OpenLineage events offline against the pinned spec (tests/fixtures/openlineage_spec) and this
provider's own facet schema (airflow_provider_flowinst/lineage_run_facet.json)."""

from __future__ import annotations

import datetime as dt
import json
import uuid
from functools import cache
from pathlib import Path
from typing import Any

from jsonschema import Draft202012Validator
from referencing import Registry, Resource

ROOT = Path(__file__).resolve().parent.parent
SPEC = ROOT / "tests" / "fixtures" / "openlineage_spec"
RUN_EVENT = "https://openlineage.io/spec/2-0-2/OpenLineage.json#/$defs/RunEvent"


@cache
def registry() -> Registry:
    files = [SPEC / "OpenLineage.json", *sorted((SPEC / "facets").glob("*.json"))]
    files.append(ROOT / "airflow_provider_flowinst" / "lineage_run_facet.json")
    schemas = [json.loads(path.read_text()) for path in files]
    return Registry().with_resources((schema["$id"], Resource.from_contents(schema)) for schema in schemas)


def validator(ref: str) -> Draft202012Validator:
    return Draft202012Validator({"$ref": ref}, registry=registry(), format_checker=Draft202012Validator.FORMAT_CHECKER)


def is_pinned(schema_url: str) -> bool:
    try:
        registry().get_or_retrieve(schema_url.split("#")[0])
    except Exception:
        return False
    return True


def problems(event: dict[str, Any], *, all_facets_pinned: bool) -> list[str]:
    """What is wrong with ``event``: against the RunEvent schema, each facet against its own schema where it is
    pinned (``all_facets_pinned``: every facet must be), and the formats jsonschema leaves unchecked."""
    found = [
        f"RunEvent: {error.message} at {list(error.absolute_path)}" for error in validator(RUN_EVENT).iter_errors(event)
    ]
    facets = {**event["run"].get("facets", {}), **event["job"].get("facets", {})}
    for name, facet in facets.items():
        url = facet.get("_schemaURL", "")
        if not is_pinned(url):
            if all_facets_pinned:
                found.append(f"facet {name}: schema {url} is not pinned")
            continue
        ref = url if "#" in url else url.split("#")[0]
        found += [f"facet {name}: {error.message}" for error in validator(ref).iter_errors(facet)]
    try:
        uuid.UUID(event["run"]["runId"])
        dt.datetime.fromisoformat(event["eventTime"])
    except (ValueError, KeyError) as exc:
        found.append(f"runId or eventTime: {exc}")
    return found
