"""The platform registry: every entry agrees with its hook, provider info, error titles, the connection form,
the hook lookup and the emulator, so a new entry that forgets one of them fails here."""

from __future__ import annotations

import importlib
import inspect
import json
from pathlib import Path

import pytest

from airflow_provider_flowinst import get_provider_info
from airflow_provider_flowinst.errors import PLATFORM_TITLES, FlowPlatformError
from airflow_provider_flowinst.hooks import HOOK_CLASSES, get_hook, hook_class_for
from airflow_provider_flowinst.registry import BY_KEY, PLATFORMS, Platform, entry_for
from airflow_provider_flowinst.testing.connections import emulator_connection_specs
from airflow_provider_flowinst.testing.emulator import Emulator

PACKAGE = Path(__file__).resolve().parent.parent / "airflow_provider_flowinst"
#: The connection's own fields, which the form may relabel, hide or give a placeholder.
STANDARD_FIELDS = {"host", "schema", "login", "password", "port", "extra", "description"}
#: Modules in the per-platform folders that are no platform's own.
SHARED_MODULES = {"__init__", "base", "flow_instance", "trigger", "rerun", "_common", "enos_gateway"}

entries = pytest.mark.parametrize("entry", PLATFORMS, ids=[entry.key for entry in PLATFORMS])


def modules_in(folder: str) -> set[str]:
    return {path.stem for path in (PACKAGE / folder).glob("*.py")} - SHARED_MODULES


def test_keys_and_modules_are_unique():
    assert len(BY_KEY) == len(PLATFORMS)
    assert len({entry.module for entry in PLATFORMS}) == len(PLATFORMS)


def test_every_platform_module_has_an_entry():
    """A platform, hook or emulator module without a registry entry would be served by nothing."""
    modules = {entry.module for entry in PLATFORMS}
    assert modules_in("platforms") == modules
    assert modules_in("hooks") == modules
    assert modules_in("testing/emulator") & modules == modules
    assert modules_in("sensors") == {entry.module for entry in PLATFORMS if entry.sensor}
    assert modules_in("operators") == {entry.module for entry in PLATFORMS if entry.operator}


@entries
def test_the_hook_class_takes_its_attributes_from_the_entry(entry: Platform):
    hook_class = hook_class_for(entry.conn_type, "any")
    assert f"{hook_class.__module__}.{hook_class.__name__}" == entry.hook_class_path == HOOK_CLASSES[entry.key]
    assert hook_class.entry is entry
    assert (hook_class.platform, hook_class.conn_type) == (entry.key, entry.key)
    assert hook_class.hook_name == entry.integration
    assert (hook_class.conn_name_attr, hook_class.default_conn_name) == (f"{entry.key}_conn_id", f"{entry.key}_default")
    parameter = inspect.signature(hook_class).parameters[entry.conn_name_attr]
    assert parameter.default == entry.default_conn_name


@entries
def test_the_platform_module_speaks_for_the_same_key(entry: Platform):
    module = importlib.import_module(f"airflow_provider_flowinst.platforms.{entry.module}")
    assert entry.key == module.PLATFORM


@entries
def test_provider_info_lists_the_entry(entry: Platform):
    info = get_provider_info()
    (listed,) = [item for item in info["connection-types"] if item["connection-type"] == entry.conn_type]
    assert listed["hook-class-name"] == entry.hook_class_path
    assert listed["hook-name"] == entry.integration
    assert listed["conn-fields"] == entry.conn_fields
    assert {"integration-name": entry.integration, "python-modules": [entry.hook_module]} in info["hooks"]
    integrations = {item["integration-name"]: item for item in info["integrations"]}
    assert integrations[entry.integration]["external-doc-url"] == entry.doc_url


def test_every_module_provider_info_names_can_be_imported():
    info = get_provider_info()
    for section in ("hooks", "sensors", "operators", "triggers"):
        for item in info[section]:
            for module in item["python-modules"]:
                importlib.import_module(module)
    assert len(info["connection-types"]) == len(PLATFORMS)


@entries
def test_errors_name_the_platform_by_its_title(entry: Platform):
    assert PLATFORM_TITLES[entry.key] == entry.title
    error = FlowPlatformError(entry.key, "Get Thing", "no such thing", code=7)
    assert str(error) == f"{entry.title}: Get Thing failed: no such thing (code 7)"


@entries
def test_the_connection_form_is_the_same_before_and_after_airflow_3_2(entry: Platform):
    """``get_ui_field_behaviour`` (Airflow < 3.2) and provider info (3.2+) show one form."""
    behaviour = hook_class_for(entry.conn_type, "any").get_ui_field_behaviour()
    (listed,) = [item for item in get_provider_info()["connection-types"] if item["connection-type"] == entry.key]
    form = listed["ui-field-behaviour"]
    assert behaviour == {
        "hidden_fields": form["hidden-fields"],
        "relabeling": form["relabeling"],
        "placeholders": form["placeholders"],
    }
    assert behaviour["placeholders"], "every form shows an example"
    assert set(behaviour["hidden_fields"]) | set(behaviour["relabeling"]) | set(behaviour["placeholders"]) <= (
        STANDARD_FIELDS
    )
    assert not set(behaviour["hidden_fields"]) & set(behaviour["relabeling"]), "a hidden field needs no label"


@entries
def test_the_extra_placeholder_shows_only_extras_the_form_has(entry: Platform):
    example = json.loads(entry.placeholders["extra"])
    assert set(example) <= set(entry.conn_fields)


def test_hook_lookup_refuses_a_type_that_is_no_platform():
    with pytest.raises(FlowPlatformError) as refused:
        hook_class_for("http", "my_conn")
    assert "one of: " + ", ".join(sorted(BY_KEY)) in str(refused.value)


def test_an_unknown_key_names_the_known_ones():
    with pytest.raises(KeyError, match="lsf_pm"):
        entry_for("lsf")


@entries
def test_the_emulator_mounts_the_entry(entry: Platform):
    emulator = Emulator()
    assert emulator.platforms[entry.key].platform == entry.key
    assert getattr(emulator, entry.module) is emulator.platforms[entry.key]
    spec = emulator_connection_specs("http://127.0.0.1:1")[entry.default_conn_name]
    assert spec["conn_type"] == entry.conn_type


@entries
def test_the_emulator_serves_the_platform_and_its_faults(entry: Platform, emulator):
    """The default connection reaches the platform's emulator; a fault for the key meets its calls."""
    hook = get_hook(entry.default_conn_name)
    assert hook.test_connection() == (True, f"Connected to {entry.title}")
    requests = emulator.stats()["requests"]
    assert any(name.startswith(f"{entry.key} ") for name in requests), requests

    emulator.inject_fault("redirect", platform=entry.key)
    ok, message = get_hook(entry.default_conn_name).test_connection()
    assert not ok and message.startswith(f"{entry.title}: ")
    stats = emulator.stats()
    assert stats["requests"].get(f"{entry.key} fault: redirect") == 1
    assert stats["faults_pending"] == 0
