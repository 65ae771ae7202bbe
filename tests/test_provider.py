"""The provider as Airflow sees it: entry point, provider info schema, the CLI's listings."""

from __future__ import annotations

import json
import subprocess
import sys
from importlib.metadata import entry_points
from pathlib import Path

import airflow
import jsonschema

from airflow_provider_flowinst import get_provider_info

API_MD_HOOKS = {
    "enos_batch": ("airflow_provider_flowinst.hooks.enos_batch.EnOSBatchHook", "enos_batch_conn_id"),
    "enos_bpm": ("airflow_provider_flowinst.hooks.enos_bpm.EnOSBPMHook", "enos_bpm_conn_id"),
    "lsf_pm": ("airflow_provider_flowinst.hooks.lsf.LSFProcessManagerHook", "lsf_pm_conn_id"),
    "dataworks": ("airflow_provider_flowinst.hooks.dataworks.DataWorksHook", "dataworks_conn_id"),
}


def test_the_entry_point_is_registered():
    found = [
        ep for ep in entry_points(group="apache_airflow_provider") if ep.value.startswith("airflow_provider_flowinst")
    ]
    assert [(ep.name, ep.value) for ep in found] == [("provider_info", "airflow_provider_flowinst:get_provider_info")]


def test_provider_info_matches_airflows_schema():
    schema = json.loads((Path(airflow.__file__).parent / "provider_info.schema.json").read_text())
    jsonschema.validate(get_provider_info(), schema)
    assert get_provider_info()["package-name"] == "airflow-provider-flowinst"


def test_every_module_with_sensors_operators_or_triggers_is_listed():
    package = Path(get_provider_info.__code__.co_filename).parent
    info = get_provider_info()
    for kind in ("sensors", "operators", "triggers"):
        listed = {module for item in info[kind] for module in item["python-modules"]}
        on_disk = {
            f"airflow_provider_flowinst.{kind}.{path.stem}"
            for path in (package / kind).glob("*.py")
            if path.stem != "__init__"
        }
        assert listed == on_disk, kind


def test_every_connection_type_names_its_api_md_hook():
    types = {item["connection-type"]: item["hook-class-name"] for item in get_provider_info()["connection-types"]}
    assert types == {conn_type: hook for conn_type, (hook, _) in API_MD_HOOKS.items()}


def airflow_cli(*args: str) -> str:
    return subprocess.run([sys.executable, "-m", "airflow", *args], check=True, capture_output=True, text=True).stdout


def test_airflow_providers_list_shows_the_provider():
    providers = json.loads(airflow_cli("providers", "list", "--output", "json"))
    ours = [item for item in providers if item["package_name"] == "airflow-provider-flowinst"]
    assert len(ours) == 1


def test_airflow_providers_hooks_shows_every_connection_type():
    hooks = json.loads(airflow_cli("providers", "hooks", "--output", "json"))
    listed = {item["connection_type"]: (item["class"], item["conn_id_attribute_name"]) for item in hooks}
    for conn_type, expected in API_MD_HOOKS.items():
        assert listed[conn_type] == expected
