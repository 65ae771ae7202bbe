"""The "Remote graph" tab in a real browser: Airflow's own api-server, scheduler and triggerer with the
provider installed, the simple auth manager with a password, Debian's headless Chromium through Selenium.

It runs ``example_enos_batch_wait`` to its end, logs in through the UI's login form, opens the finished
sensor task's page, clicks the "Remote graph" tab and reads the DOM inside the tab's frame: every node and
edge of the XCom graph must be drawn, each node with its state. A screenshot is saved under the test's
tmp_path (its path printed). An anonymous request to the plugin's route is refused.

Chromium comes from Debian (``scripts/ensure_chromium.sh`` installs it if missing); nothing is downloaded
at run time, and if it cannot be installed the test fails saying so.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote

import pytest
import requests

from airflow_provider_flowinst.testing.connections import emulator_connections
from airflow_provider_flowinst.testing.emulator.process import EmulatorProcess
from tests.airflow_stack import AirflowStack

pytestmark = pytest.mark.browser

ROOT = Path(__file__).resolve().parent.parent.parent
DAG_ID = "example_enos_batch_wait"
TASK_ID = "wait_for_enos_flow"
LOGICAL_DATE = "2024-03-05T00:00:00Z"
#: The EnOS flow the example waits on, its run for LOGICAL_DATE, and how long (emulated) that run is held.
FLOW_ID, INSTANCE_ID, HELD_SECONDS = "2809", "2809-20240305000000", 3600.0
#: The browser signs in as a viewer (reading is all the tab needs); the test triggers the DAG as an admin.
USER, PASSWORD = "viewer", "remote-graph-browser-test"
ADMIN, ADMIN_PASSWORD = "ops", "remote-graph-browser-admin"
#: The user who may edit task instances (simple auth manager role "op"), and so rerun failed nodes.
OPERATOR, OPERATOR_PASSWORD = "operator", "remote-graph-browser-operator"
#: The DAG whose wait on a failing DataWorks run the operator repairs from the tab.
RERUN_DAG_ID, RERUN_TASK_ID = "remote_graph_rerun", "wait"
CHROMIUM, CHROMEDRIVER = Path("/usr/bin/chromium"), Path("/usr/bin/chromedriver")
CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
    "--window-size=1600,1200",
)
WAIT_SECONDS = 60


def ensure_chromium() -> None:
    if CHROMIUM.exists() and CHROMEDRIVER.exists():
        return
    result = subprocess.run(
        [str(ROOT / "scripts" / "ensure_chromium.sh")], capture_output=True, text=True, timeout=900, check=False
    )
    if result.returncode != 0 or not (CHROMIUM.exists() and CHROMEDRIVER.exists()):
        pytest.fail(
            "The browser test needs Debian's chromium and chromium-driver, and scripts/ensure_chromium.sh could "
            f"not install them (exit {result.returncode}):\n{(result.stdout + result.stderr)[-3000:]}",
            pytrace=False,
        )


@pytest.fixture(scope="module")
def emulator_process(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmulatorProcess]:
    log_path = tmp_path_factory.mktemp("browser-emulator") / "emulator.log"
    with EmulatorProcess(log_path=log_path, extra_args=("--time-scale", "0.2")) as emulator:
        yield emulator


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory, emulator_process: EmulatorProcess) -> Iterator[AirflowStack]:
    """Airflow with a login: one user with a password, no anonymous admin."""
    root = tmp_path_factory.mktemp("browser-stack")
    passwords = root / "passwords.json"
    passwords.write_text(json.dumps({USER: PASSWORD, ADMIN: ADMIN_PASSWORD, OPERATOR: OPERATOR_PASSWORD}))
    stack = AirflowStack(
        root=root,
        dag_files=[ROOT / "example_dags" / f"{DAG_ID}.py", ROOT / "tests" / "full_stack_dags" / "rerun_tab_dags.py"],
        connections=emulator_connections(emulator_process.url),
        other_logs={"emulator": emulator_process.log_path} if emulator_process.log_path else {},
        settings={
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS": "False",
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": f"{USER}:viewer,{ADMIN}:admin,{OPERATOR}:op",
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(passwords),
        },
    )
    try:
        stack.start(timeout=180)
        token = requests.post(
            f"{stack.api_url}/auth/token", json={"username": ADMIN, "password": ADMIN_PASSWORD}, timeout=30
        ).json()["access_token"]
        stack.http.headers["Authorization"] = f"Bearer {token}"  # the REST calls below; the browser logs in itself
        yield stack
    finally:
        stack.stop()


@pytest.fixture(scope="module")
def finished_run(stack: AirflowStack, emulator_process: EmulatorProcess) -> tuple[str, dict]:
    """A run whose sensor deferred, and succeeded in the triggerer once the remote run ended."""
    stack.wait_for(lambda: _dag_known(stack), WAIT_SECONDS * 2, f"the dag-processor to parse {DAG_ID}")
    # The remote run is held until the deferral has settled (see AirflowStack.wait_for_settled_deferral).
    emulator_process.create_enos_batch_instance(FLOW_ID, instance_id=INSTANCE_ID, running_seconds=HELD_SECONDS)
    # With a logical date: the example's instance id is templated from it (EnOS flow 2809 runs daily).
    run = stack.api("POST", f"/dags/{DAG_ID}/dagRuns", {"logical_date": LOGICAL_DATE, "conf": {}})
    run_id = str(run["dag_run_id"])
    stack.wait_for_settled_deferral(DAG_ID, run_id, TASK_ID, WAIT_SECONDS * 2)
    emulator_process.advance_clock(HELD_SECONDS)
    stack.wait_for_task_state(DAG_ID, run_id, TASK_ID, "success", WAIT_SECONDS * 3)
    return run_id, stack.xcom(DAG_ID, run_id, TASK_ID)


def _dag_known(stack: AirflowStack, dag_id: str = DAG_ID) -> bool:
    response = stack.http.get(f"{stack.api_url}/api/v2/dags/{dag_id}", timeout=10)
    return response.status_code == 200


@pytest.fixture
def browser(tmp_path: Path):
    ensure_chromium()
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for flag in (*CHROMIUM_FLAGS, f"--user-data-dir={tmp_path / 'chromium-profile'}"):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(executable_path=str(CHROMEDRIVER)), options=options)
    driver.set_page_load_timeout(WAIT_SECONDS)
    try:
        yield driver
    finally:
        driver.quit()
        shutil.rmtree(tmp_path / "chromium-profile", ignore_errors=True)


def log_in(driver, stack: AirflowStack, user: str = USER, password: str = PASSWORD) -> None:
    """Through the simple auth manager's own login form, as a person would."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import WebDriverWait

    driver.get(f"{stack.api_url}/auth/login")
    wait = WebDriverWait(driver, WAIT_SECONDS)
    wait.until(ec.presence_of_element_located((By.NAME, "username"))).send_keys(user)
    driver.find_element(By.NAME, "password").send_keys(password)
    driver.find_element(By.CSS_SELECTOR, "button[type=submit]").click()
    wait.until(lambda d: d.get_cookie("_token") is not None)


def test_the_remote_graph_tab_draws_every_node_and_edge_with_its_state(browser, stack, finished_run, tmp_path):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import WebDriverWait

    run_id, instance = finished_run
    log_in(browser, stack)
    browser.get(f"{stack.api_url}/dags/{DAG_ID}/runs/{quote(run_id, safe='')}/tasks/{TASK_ID}")
    wait = WebDriverWait(browser, WAIT_SECONDS)
    tab = wait.until(ec.element_to_be_clickable((By.XPATH, "//a[contains(@href, 'plugin/remote_graph')]")))
    assert "Remote graph" in tab.text
    tab.click()
    frame = wait.until(ec.presence_of_element_located((By.CSS_SELECTOR, "iframe[title='Remote graph']")))
    browser.switch_to.frame(frame)
    svg = wait.until(ec.presence_of_element_located((By.CSS_SELECTOR, "svg.remote-graph")))

    nodes = {
        g.get_attribute("data-node-id"): g.get_attribute("data-state")
        for g in svg.find_elements(By.CSS_SELECTOR, "g.node")
    }
    edges = {
        (p.get_attribute("data-source"), p.get_attribute("data-target"))
        for p in svg.find_elements(By.CSS_SELECTOR, "path.edge")
    }
    source = browser.find_element(By.TAG_NAME, "body").get_attribute("data-source")
    browser.switch_to.default_content()
    screenshot = tmp_path / "remote-graph-tab.png"
    browser.save_screenshot(str(screenshot))
    print(f"\nscreenshot of the Remote graph tab: {screenshot}")

    assert source == "xcom"
    assert nodes == {node["id"]: node["state"] for node in instance["graph"]["nodes"]}
    assert edges == {(edge["source"], edge["target"]) for edge in instance["graph"]["edges"]}
    assert set(nodes.values()) == {"success"}
    assert len(nodes) == 4 and len(edges) == 3


def test_an_anonymous_request_to_the_plugin_is_refused(stack, finished_run):
    run_id, _ = finished_run
    url = f"{stack.api_url}/flowinst/remote-graph/{DAG_ID}/{quote(run_id, safe='')}/{TASK_ID}"

    anonymous = requests.get(url, timeout=30)
    signed_in = stack.http.get(url, timeout=30)

    assert anonymous.status_code in (401, 403)
    assert "remote-graph" not in anonymous.text
    assert signed_in.status_code == 200  # the same route, with a user the auth manager allows


# -- repairing a failed run from the tab -----------------------------------------------------------------


@pytest.fixture(scope="module")
def failed_wait(stack: AirflowStack, emulator_process: EmulatorProcess) -> tuple[str, str, str]:
    """(run id, DataWorks instance id, the failed node's id): a wait that failed on a failed DataWorks run,
    whose rerun would run for an hour (emulated), so the tab shows it running."""
    stack.wait_for(
        lambda: _dag_known(stack, RERUN_DAG_ID), WAIT_SECONDS * 2, f"the dag-processor to parse {RERUN_DAG_ID}"
    )
    instance_id = emulator_process.create_dataworks_instance(
        1002, queued_seconds=0.5, running_seconds=2.0, rerun_seconds=3600
    )
    run_id = stack.trigger_dag(RERUN_DAG_ID, {"instance_id": instance_id})
    stack.wait_for_task_state(RERUN_DAG_ID, run_id, RERUN_TASK_ID, "failed", WAIT_SECONDS * 3)
    return run_id, instance_id, f"{instance_id}02"  # workflow 1002 fails at its second task


def open_tab(driver, stack: AirflowStack, dag_id: str, run_id: str, task_id: str):
    """The task's page, its Remote graph tab clicked, the driver switched into the tab's frame."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import WebDriverWait

    driver.get(f"{stack.api_url}/dags/{dag_id}/runs/{quote(run_id, safe='')}/tasks/{task_id}")
    wait = WebDriverWait(driver, WAIT_SECONDS)
    wait.until(ec.element_to_be_clickable((By.XPATH, "//a[contains(@href, 'plugin/remote_graph')]"))).click()
    frame = wait.until(ec.presence_of_element_located((By.CSS_SELECTOR, "iframe[title='Remote graph']")))
    driver.switch_to.frame(frame)
    wait.until(ec.presence_of_element_located((By.CSS_SELECTOR, "svg.remote-graph")))
    return wait


def node_states(driver) -> dict[str, str]:
    from selenium.webdriver.common.by import By

    return {
        g.get_attribute("data-node-id"): g.get_attribute("data-state")
        for g in driver.find_elements(By.CSS_SELECTOR, "g.node")
    }


def rerun_url(stack: AirflowStack, run_id: str) -> str:
    path = f"/flowinst/remote-graph/{RERUN_DAG_ID}/{quote(run_id, safe='')}/{RERUN_TASK_ID}/rerun-failed"
    return stack.api_url + path


def reruns_of(emulator_process: EmulatorProcess, instance_id: str) -> list[list[str]]:
    calls = emulator_process.control("GET", "/_emulator/dataworks/reruns")
    return [call["ids"] for call in calls if any(i.startswith(instance_id) for i in call["ids"])]


def test_a_viewer_sees_no_rerun_button_and_cannot_post_one(browser, stack, failed_wait, emulator_process):
    from selenium.webdriver.common.by import By

    run_id, instance_id, failed_node = failed_wait
    log_in(browser, stack)
    open_tab(browser, stack, RERUN_DAG_ID, run_id, RERUN_TASK_ID)
    assert node_states(browser)[failed_node] == "failed"
    assert browser.find_elements(By.ID, "rerun-failed") == []

    token = requests.post(f"{stack.api_url}/auth/token", json={"username": USER, "password": PASSWORD}, timeout=30)
    viewer = {"Authorization": f"Bearer {token.json()['access_token']}", "Origin": stack.api_url}
    form = {"map_index": "-1", "nodes": failed_node}
    for url in (rerun_url(stack, run_id) + "/confirm", rerun_url(stack, run_id)):
        assert requests.post(url, data=form, headers=viewer, timeout=30).status_code == 403
    # An editor's request from another site is refused too, and a GET changes nothing.
    cross_site = {**stack.http.headers, "Origin": "https://evil.example"}
    assert requests.post(rerun_url(stack, run_id), data=form, headers=cross_site, timeout=30).status_code == 403
    assert stack.http.get(rerun_url(stack, run_id), timeout=30).status_code == 405
    assert reruns_of(emulator_process, instance_id) == []


def test_an_operator_reruns_exactly_the_failed_nodes_and_sees_them_running(
    browser, stack, failed_wait, emulator_process, tmp_path
):
    from selenium.webdriver.common.by import By

    run_id, instance_id, failed_node = failed_wait
    log_in(browser, stack, OPERATOR, OPERATOR_PASSWORD)
    wait = open_tab(browser, stack, RERUN_DAG_ID, run_id, RERUN_TASK_ID)
    before = node_states(browser)
    assert before[failed_node] == "failed"

    browser.find_element(By.ID, "rerun-failed").click()
    confirm = wait.until(lambda d: d.find_element(By.ID, "confirm-rerun"))
    assert failed_node in browser.find_element(By.TAG_NAME, "body").text
    assert reruns_of(emulator_process, instance_id) == []  # nothing is sent before the confirmation
    confirm.click()
    wait.until(
        lambda d: d.find_elements(By.CSS_SELECTOR, "svg.remote-graph") and node_states(d)[failed_node] == "running"
    )
    after = node_states(browser)
    browser.switch_to.default_content()
    browser.save_screenshot(str(tmp_path / "remote-graph-rerun.png"))

    assert reruns_of(emulator_process, instance_id) == [[failed_node]]  # one call, exactly the failed node
    assert after == {**before, failed_node: "running"}
    assert any(
        f"user 'operator' reran the failed nodes ['{failed_node}']" in line
        for line in stack.log_lines("api-server", "reran the failed nodes")
    )
