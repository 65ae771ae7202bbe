"""A fifth platform touches no module of the provider: a toy one, in its own package under
tests/fifth_platform/ and registered through the entry point group ``airflow_provider_flowinst.platforms``,
goes through hook, sensor (poke and deferrable), trigger, diagnosis and the Remote graph source.

The checks run in a process of their own, whose path holds the toy package and its dist-info (so the entry
point is found the way an installed package's is), and the registry of this process stays the built-in one.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
TOY = HERE / "fifth_platform"


def test_the_toy_platform_goes_through_every_generic_part():
    path = os.pathsep.join(filter(None, [str(TOY), str(HERE.parent), os.environ.get("PYTHONPATH")]))
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "no:xdist", str(TOY / "toy_checks.py")],
        cwd=HERE.parent,
        env={**os.environ, "PYTHONPATH": path},
        capture_output=True,
        text=True,
        timeout=600,
    )

    assert done.returncode == 0, done.stdout[-6000:] + done.stderr[-3000:]
    assert re.search(r"\b6 passed\b", done.stdout), done.stdout[-2000:]


def test_without_the_entry_point_the_registry_holds_the_four_built_in_platforms():
    from airflow_provider_flowinst.registry import BUILT_IN, PLATFORMS

    assert PLATFORMS == BUILT_IN
    assert [entry.key for entry in PLATFORMS] == ["enos_batch", "enos_bpm", "lsf_pm", "dataworks"]


SHARED_MODULES = [
    "diagnosis.py",
    "transport.py",
    "http1.py",
    "protocol.py",
    "batching.py",
    "waits.py",
    "sensors/flow_instance.py",
    "operators/trigger.py",
    "triggers/flow_instance.py",
    "plugins/instance_source.py",
    "plugins/remote_graph.py",
]


@pytest.mark.parametrize("module", SHARED_MODULES)
def test_no_shared_module_names_a_platform(module):
    text = (HERE.parent / "airflow_provider_flowinst" / module).read_text()
    assert not re.search(r"\b(enos_batch|enos_bpm|lsf_pm|dataworks)\b", text)
