"""Test set-up: a private AIRFLOW_HOME with a migrated SQLite DB, the emulator, and its connections.

Airflow reads its configuration when first imported, so the environment is set at the top of this file,
before any test module imports Airflow.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
AIRFLOW_HOME = Path(tempfile.mkdtemp(prefix="flowinst-airflow-home-"))


def _bundle(name: str, path: Path) -> dict[str, object]:
    return {
        "name": name,
        "classpath": "airflow.dag_processing.bundles.local.LocalDagBundle",
        "kwargs": {"path": str(path)},
    }


os.environ.update(
    {
        "AIRFLOW_HOME": str(AIRFLOW_HOME),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__DAGS_FOLDER": str(ROOT / "tests" / "dags"),
        # dag.test() runs only DAGs it finds in a bundle: the test DAGs and the example DAGs.
        "AIRFLOW__DAG_PROCESSOR__DAG_BUNDLE_CONFIG_LIST": json.dumps(
            [_bundle("tests", ROOT / "tests" / "dags"), _bundle("examples", ROOT / "example_dags")]
        ),
    }
)
subprocess.run([sys.executable, "-m", "airflow", "db", "migrate"], check=True, capture_output=True)

import pytest  # noqa: E402

from airflow_provider_flowinst.testing.connections import emulator_connections  # noqa: E402
from airflow_provider_flowinst.testing.emulator import EmulatorServer  # noqa: E402
from airflow_provider_flowinst.transport import TOKENS  # noqa: E402

#: Emulated seconds pass ten times faster than wall seconds: a 6 s remote run takes 0.6 s.
TIME_SCALE = 0.1


@pytest.fixture(scope="session")
def emulator() -> Iterator[EmulatorServer]:
    """Every platform on a loopback port, for the whole session; its connections are set as env vars."""
    with EmulatorServer(time_scale=TIME_SCALE) as server:
        previous = {key: os.environ.get(key) for key in emulator_connections(server.url)}
        os.environ.update(emulator_connections(server.url))
        yield server
        for key, value in previous.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


@pytest.fixture(autouse=True)
def _fresh_tokens_and_faults(request: pytest.FixtureRequest) -> Iterator[None]:
    """No test sees another's cached token, pending fault or request counts (nor a module fixture set up
    after it: faults a test injected but did not use up are dropped when it ends, too)."""
    TOKENS.clear()
    if "emulator" in request.fixturenames:
        request.getfixturevalue("emulator").control("POST", "/_emulator/reset")
    yield
    TOKENS.clear()
    if "emulator" in request.fixturenames:
        request.getfixturevalue("emulator").control("POST", "/_emulator/reset")
