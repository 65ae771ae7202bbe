"""Offline link check of the built documentation site: every relative href/src in every page must name a file
of the site, and every #fragment an id in the page it points to; no page may show an include line
(``--8<--``) that was left unexpanded. External links (with a scheme) are not followed: nothing here
touches the network. Usage: python scripts/check_site_links.py build/site"""

from __future__ import annotations

import html
import re
import sys
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote, urlsplit

#: An include line as it reads when it was not expanded (in the page's text, tags stripped, escapes undone).
UNEXPANDED_INCLUDE = re.compile(r"--\s*8\s*<\s*--")
TAG = re.compile(r"<[^>]*>")


class Page(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.links: list[str] = []
        self.ids: set[str] = set()
        self.text = ""

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        for name, value in attrs:
            if name in ("id", "name") and value:
                self.ids.add(value)
            elif name in ("href", "src") and value:
                self.links.append(value)


def parse(path: Path) -> Page:
    page = Page()
    page.text = path.read_text(encoding="utf-8")
    page.feed(page.text)
    return page


def target_of(page: Path, link: str, site: Path) -> tuple[Path, str] | None:
    parts = urlsplit(link)
    if parts.scheme or parts.netloc or link.startswith(("mailto:", "javascript:")):
        return None
    path = page if not parts.path else (page.parent / unquote(parts.path)).resolve()
    if path.is_dir():
        path = path / "index.html"
    return path, unquote(parts.fragment)


def main(site: Path) -> int:
    site = site.resolve()
    pages = {path: parse(path) for path in site.rglob("*.html")}
    broken = []
    for path, page in pages.items():
        if path.parent.name == "search" or path.name == "404.html":
            continue
        if UNEXPANDED_INCLUDE.search(html.unescape(TAG.sub("", page.text))):
            broken.append(f"{path.relative_to(site)}: an include (--8<--) was left unexpanded")
        for link in page.links:
            target = target_of(path, link, site)
            if target is None:
                continue
            file, fragment = target
            if not file.exists() or site not in file.parents:
                broken.append(f"{path.relative_to(site)}: {link} (no such file)")
            elif fragment and file.suffix == ".html" and fragment not in pages[file].ids:
                broken.append(f"{path.relative_to(site)}: {link} (no #{fragment} there)")
    for line in broken:
        print(line)
    print(f"links: {sum(len(p.links) for p in pages.values())} in {len(pages)} pages, {len(broken)} broken")
    return 1 if broken else 0


if __name__ == "__main__":
    sys.exit(main(Path(sys.argv[1] if len(sys.argv) > 1 else "build/site")))
