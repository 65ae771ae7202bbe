"""scripts/check_site_links.py, the offline link check `make docs` runs on the built site."""

from __future__ import annotations

import runpy
from pathlib import Path

from tests.conftest import ROOT

check = runpy.run_path(str(ROOT / "scripts" / "check_site_links.py"))["main"]


def site(tmp_path: Path, pages: dict[str, str]) -> Path:
    for name, body in pages.items():
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(f"<html><body>{body}</body></html>")
    return tmp_path


def test_links_to_pages_and_anchors_that_exist_pass(tmp_path, capsys):
    root = site(
        tmp_path,
        {
            "index.html": '<a href="guide/#start">g</a> <a href="#top">t</a> <h1 id="top">x</h1>'
            '<img src="pic.svg"> <a href="https://example.com/#nowhere">external, not followed</a>',
            "guide/index.html": '<h2 id="start">s</h2> <a href="../">home</a>',
            "pic.svg": "<svg/>",
        },
    )
    assert check(root) == 0
    assert "0 broken" in capsys.readouterr().out


def test_a_missing_page_or_anchor_fails_naming_it(tmp_path, capsys):
    root = site(
        tmp_path,
        {
            "index.html": '<a href="gone/">a</a> <a href="guide/#later">b</a>',
            "guide/index.html": '<h2 id="start">s</h2>',
        },
    )
    assert check(root) == 1
    out = capsys.readouterr().out
    assert "index.html: gone/ (no such file)" in out
    assert "index.html: guide/#later (no #later there)" in out


def test_an_include_left_unexpanded_fails(tmp_path, capsys):
    highlighted = (
        '<span class="o">--</span><span class="mi">8</span> <span class="o">&lt;</span> <span class="o">--</span>'
    )
    root = site(tmp_path, {"index.html": f'<pre>{highlighted}"example_dags/x.py"</pre>'})
    assert check(root) == 1
    assert "index.html: an include (--8<--) was left unexpanded" in capsys.readouterr().out
