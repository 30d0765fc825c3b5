"""Every internal link of the built site resolves: relative href/src targets exist, #anchors exist in their page."""

from __future__ import annotations

import urllib.parse
from collections.abc import Iterator
from html.parser import HTMLParser
from pathlib import Path

import pytest

from conftest import BuiltSite

# (tag, attribute) pairs that load or link another resource.
LINK_ATTRIBUTES = {("a", "href"), ("link", "href"), ("img", "src"), ("script", "src"), ("source", "src"),
                   ("iframe", "src")}


class LinkCollector(HTMLParser):
    """Collects the ids and names defined in a page and the links it contains."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.anchors: set[str] = set()
        self.links: list[tuple[str, str]] = []  # (tag, url)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attributes = dict(attrs)
        for name in ("id", "name"):
            if attributes.get(name):
                self.anchors.add(attributes[name])
        for attribute in ("href", "src"):
            value = attributes.get(attribute)
            if (tag, attribute) in LINK_ATTRIBUTES and value:
                self.links.append((tag, value))


def parse_page(path: Path) -> LinkCollector:
    collector = LinkCollector()
    collector.feed(path.read_text(encoding="utf-8"))
    return collector


def internal_links(html_root: Path) -> Iterator[tuple[Path, str, Path, str]]:
    """Yield (page, url, target file, fragment) for every link that stays inside the site.

    Pages under _static/ are skipped: the themes copy Jinja macro files there that are not pages.
    """
    for page in sorted(html_root.rglob("*.html")):
        if page.relative_to(html_root).parts[0] == "_static":
            continue
        for _, url in parse_page(page).links:
            parts = urllib.parse.urlsplit(url)
            if parts.scheme or parts.netloc:  # http:, https:, mailto:, data:, javascript:, //host
                continue
            target = page if not parts.path else (page.parent / urllib.parse.unquote(parts.path)).resolve()
            yield page, url, target, urllib.parse.unquote(parts.fragment)


@pytest.mark.slow
def test_relative_links_resolve_to_files(built_site: BuiltSite):
    links = list(internal_links(built_site.html))
    assert len(links) > 50, f"only {len(links)} internal links found; is the site empty?"
    missing = [f"{page.relative_to(built_site.html)}: {url}" for page, url, target, _ in links if not target.exists()]
    assert missing == [], "links to files missing from the site:\n" + "\n".join(missing[:30])


@pytest.mark.slow
def test_fragments_resolve_to_anchors(built_site: BuiltSite):
    anchors: dict[Path, set[str]] = {}
    broken = []
    checked = 0
    for page, url, target, fragment in internal_links(built_site.html):
        if not fragment or target.suffix != ".html" or not target.is_file():
            continue
        if target not in anchors:
            anchors[target] = parse_page(target).anchors
        checked += 1
        if fragment not in anchors[target]:
            broken.append(f"{page.relative_to(built_site.html)}: {url}")
    assert checked > 20, f"only {checked} links with #fragments found"
    assert broken == [], "links to anchors that do not exist:\n" + "\n".join(broken[:30])


def test_collector_finds_links_and_anchors():
    collector = LinkCollector()
    collector.feed('<h2 id="a">x</h2><a name="b"></a><a href="page.html#c">y</a><img src="i.png"><p href="no">')
    assert collector.anchors == {"a", "b"}
    assert collector.links == [("a", "page.html#c"), ("img", "i.png")]
