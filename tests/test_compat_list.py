"""tests/compat_tests.txt names tests that exist: a renamed or re-parametrized test would otherwise make
`make test-compat` collect nothing for that line (pytest: "not found") and fail on every older release."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
LISTED = [
    line.strip()
    for line in (ROOT / "tests" / "compat_tests.txt").read_text().splitlines()
    if line.strip() and not line.startswith("#")
]
NODE = re.compile(r"^(?P<path>[^:\[]+)(?:::(?P<name>\w+)(?:\[[^\]]+\])?)?$")


def test_the_list_is_not_empty():
    assert len(LISTED) > 10


@pytest.mark.parametrize("node", LISTED)
def test_each_listed_node_names_a_file_and_a_test_in_it(node):
    found = NODE.match(node)
    assert found, f"not a pytest node id: {node}"
    path = ROOT / found["path"]
    assert path.exists(), f"{node}: no such file or folder"
    if found["name"] is None:
        return
    tree = ast.parse(path.read_text())
    tests = {item.name for item in ast.walk(tree) if isinstance(item, ast.FunctionDef | ast.AsyncFunctionDef)}
    assert found["name"] in tests, f"{node}: no test {found['name']} in {found['path']}"
