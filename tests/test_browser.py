"""The built site in headless Chromium: pages load cleanly, math is typeset, images load, search works.

The site from the session's strict build is served by a local http.server and opened in
Debian's Chromium through the DevTools protocol (tests/chromium_devtools.py). The browser
never reaches the network: requests for MathJax on the jsDelivr CDN, which Sphinx's
default ``mathjax_path`` names, are served from the pinned ``django-static-mathjax``
wheel (MathJax 3.2.2, the 3.x release the CDN serves), and every other off-site request
is blocked and reported. Screenshots of each page go to ``_build/test-artifacts/browser/``.
"""

from __future__ import annotations

import base64
import functools
import mimetypes
import re
import shutil
import threading
import time
import urllib.parse
from dataclasses import dataclass
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from importlib import resources
from pathlib import Path
from typing import Any

import pytest
import yaml

from chromium_devtools import INSTALL_HINT, Chromium, DevToolsPage, find_chromium
from conftest import REPOSITORY_ROOT, BuiltSite

ARTIFACTS = REPOSITORY_ROOT / "_build" / "test-artifacts" / "browser"

# Sphinx 7's default mathjax_path is https://cdn.jsdelivr.net/npm/mathjax@3/es5/tex-mml-chtml.js.
MATHJAX_CDN = re.compile(r"^https://cdn\.jsdelivr\.net/npm/mathjax@3/(?P<path>[^?#]+)")

# Terms a reader would search for, each occurring in the book's prose.
SEARCH_TERMS = ["专家", "批大小"]
# A term the book never uses: its search must come back empty.
ABSENT_TERM = "量子纠缠"

# Collects what one page shows after its scripts, images and MathJax have finished.
PAGE_PROBE = r"""
(async () => {
  const article = document.querySelector("article.bd-article") || document.body;
  const images = [...document.images];
  images.forEach((img) => { img.loading = "eager"; });
  await Promise.all(images.map((img) => img.complete ? null : new Promise((resolve) => {
    img.addEventListener("load", resolve);
    img.addEventListener("error", resolve);
    setTimeout(resolve, 20000);
  })));
  let mathjax = null;
  if (window.MathJax && MathJax.startup && MathJax.startup.promise) {
    await MathJax.startup.promise;
    mathjax = MathJax.version;
  }
  const prose = article.cloneNode(true);
  prose.querySelectorAll("pre, code, script, style, textarea, mjx-container, .highlight, .cell_output")
    .forEach((element) => element.remove());
  return {
    mathjax,
    mathCount: document.querySelectorAll(".math").length,
    untypesetMath: [...document.querySelectorAll(".math")]
      .filter((element) => !element.querySelector("mjx-container"))
      .map((element) => element.textContent.trim().slice(0, 80)),
    mathErrors: [...document.querySelectorAll("mjx-merror")].map((element) => element.textContent.slice(0, 80)),
    proseText: prose.textContent,
    fullText: article.textContent,
    images: images.map((img) => ({src: img.currentSrc || img.src, complete: img.complete,
                                  naturalWidth: img.naturalWidth})),
    ids: [...document.querySelectorAll("[id]")].map((element) => element.id),
    equationLinks: [...document.querySelectorAll('a[href*="#equation-"]')].map((a) => a.href),
  };
})()
"""

# Sphinx's searchtools.js fills the summary line only when the search has finished.
SEARCH_DONE = ("(() => { const summary = document.querySelector('#search-results .search-summary');"
               " return summary && summary.textContent.trim() ? summary.textContent : null; })()")
SEARCH_RESULTS = "[...document.querySelectorAll('#search-results ul.search li a')].map((a) => a.href)"

RAW_TEX = [re.compile(pattern) for pattern in (r"\$\$", r"\\\(", r"\\\[", r"\\begin\{", r"\$[^$\n]{1,80}\$")]


@dataclass
class PageReport:
    """What the browser found on one page of the table of contents."""

    url: str
    console_errors: list[str]
    probe: dict[str, Any]


class QuietHandler(SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - signature of the base class
        pass


class RequestRouter:
    """Resolves paused requests: the local site passes, MathJax comes from the wheel, the rest is blocked."""

    def __init__(self, site_url: str, mathjax_root: Path):
        self.site_url = site_url
        self.mathjax_root = mathjax_root
        self.blocked: list[str] = []

    def __call__(self, page: DevToolsPage, params: dict[str, Any]) -> None:
        request_id = params["requestId"]
        url = params["request"]["url"]
        if url.startswith(self.site_url):
            page.send("Fetch.continueRequest", requestId=request_id)
            return
        match = MATHJAX_CDN.match(url)
        local = self.mathjax_root / match["path"] if match else None
        if local is not None and local.is_file():
            content_type = mimetypes.guess_type(local.name)[0] or "application/octet-stream"
            headers = [{"name": "Content-Type", "value": content_type},
                       {"name": "Access-Control-Allow-Origin", "value": "*"}]
            page.send("Fetch.fulfillRequest", requestId=request_id, responseCode=200, responseHeaders=headers,
                      body=base64.b64encode(local.read_bytes()).decode())
            return
        self.blocked.append(url)
        page.send("Fetch.failRequest", requestId=request_id, errorReason="BlockedByClient")


def toc_documents(toc: dict) -> list[str]:
    """Return every document of a jupyter-book ``_toc.yml`` mapping, in reading order."""
    documents = [toc["root"]]

    def walk(entries: list[dict]) -> None:
        for entry in entries:
            if "file" in entry:
                documents.append(entry["file"])
            if "glob" in entry:
                # Run records: every committed data/raw/<device>/<run-id>/sweep.ipynb.
                matches = sorted(REPOSITORY_ROOT.glob(entry["glob"] + ".ipynb"))
                documents.extend(str(path.relative_to(REPOSITORY_ROOT).with_suffix("")) for path in matches)
            walk(entry.get("sections", []))
            walk(entry.get("chapters", []))

    walk(toc.get("parts", []))
    walk(toc.get("chapters", []))
    return documents


def console_errors(events: list[dict[str, Any]]) -> list[str]:
    """Return the error messages among DevTools Runtime and Log events.

    A 404 for /favicon.ico is left out: Chromium requests it on its own, and the book has no icon.
    """
    errors = []
    for event in events:
        params = event["params"]
        if event["method"] == "Runtime.exceptionThrown":
            details = params["exceptionDetails"]
            errors.append(details.get("exception", {}).get("description", details.get("text", "")))
        elif event["method"] == "Runtime.consoleAPICalled" and params["type"] in ("error", "assert"):
            errors.append(" ".join(str(arg.get("value", arg.get("description", ""))) for arg in params["args"]))
        elif event["method"] == "Log.entryAdded" and params["entry"]["level"] == "error":
            if params["entry"].get("url", "").endswith("/favicon.ico"):
                continue
            errors.append(f"{params['entry']['text']} ({params['entry'].get('url', '')})")
    return errors


def page_path(url: str, site_url: str) -> str:
    """Path of ``url`` below the site root, without query and fragment."""
    return urllib.parse.urlsplit(url).path.removeprefix(urllib.parse.urlsplit(site_url).path)


@pytest.fixture(scope="module")
def site_url(built_site: BuiltSite):
    handler = functools.partial(QuietHandler, directory=str(built_site.html))
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/"
    server.shutdown()
    server.server_close()


@pytest.fixture(scope="module")
def browser_page(site_url: str):
    executable = find_chromium()
    if executable is None:
        pytest.fail(f"Chromium is not installed, so the browser tests cannot run: {INSTALL_HINT}.", pytrace=False)
    try:
        mathjax_root = Path(str(resources.files("mathjax"))) / "static" / "mathjax"
    except ModuleNotFoundError:
        pytest.fail("the package django-static-mathjax is missing: run `make test`, which installs "
                    "requirements.lock", pytrace=False)
    shutil.rmtree(ARTIFACTS, ignore_errors=True)
    with Chromium(executable, ARTIFACTS / "chromium.log") as chromium:
        page = chromium.open_page()
        router = RequestRouter(site_url, mathjax_root)
        page.request_handler = router
        for domain in ("Page", "Runtime", "Log"):
            page.call(f"{domain}.enable")
        page.call("Fetch.enable", patterns=[{"urlPattern": "*"}])
        page.call("Emulation.setDeviceMetricsOverride", width=1280, height=900, deviceScaleFactor=1, mobile=False)
        yield page, router
        page.close()


@pytest.fixture(scope="module")
def page_reports(built_site: BuiltSite, site_url: str, browser_page) -> dict[str, PageReport]:
    """Open every page of the table of contents once and record what the browser saw."""
    page, router = browser_page
    toc = yaml.safe_load((REPOSITORY_ROOT / "_toc.yml").read_text(encoding="utf-8"))
    reports = {}
    started = time.monotonic()
    for document in toc_documents(toc):
        relative = f"{document}.html"
        assert (built_site.html / relative).is_file(), f"{relative} is in _toc.yml but missing from the built site"
        url = urllib.parse.urljoin(site_url, relative)
        page.events.clear()
        page.navigate(url)
        probe = page.evaluate(PAGE_PROBE, timeout=90)
        page.drain(0.3)
        page.screenshot(ARTIFACTS / f"{document.replace('/', '_')}.png")
        reports[document] = PageReport(url, console_errors(page.events), probe)
    print(f"browser visited {len(reports)} pages in {time.monotonic() - started:.1f} s; artifacts in {ARTIFACTS}")
    return reports


def test_toc_pages_have_no_console_errors(page_reports: dict[str, PageReport]):
    for document, report in page_reports.items():
        assert report.console_errors == [], f"{document}: console errors {report.console_errors}"


def test_browser_made_no_offsite_requests(page_reports: dict[str, PageReport], browser_page):
    _, router = browser_page
    assert router.blocked == [], f"pages requested off-site resources (blocked): {router.blocked}"


def test_math_is_typeset_by_mathjax(page_reports: dict[str, PageReport]):
    pages_with_math = [document for document, report in page_reports.items() if report.probe["mathCount"]]
    assert pages_with_math, "no page of the book contains math; the MathJax check would test nothing"
    for document in pages_with_math:
        probe = page_reports[document].probe
        assert probe["mathjax"], f"{document}: has {probe['mathCount']} math elements but MathJax did not load"
        assert probe["untypesetMath"] == [], f"{document}: math left as TeX: {probe['untypesetMath'][:5]}"
        assert probe["mathErrors"] == [], f"{document}: MathJax errors: {probe['mathErrors'][:5]}"


def test_no_raw_tex_in_visible_text(page_reports: dict[str, PageReport]):
    for document, report in page_reports.items():
        leftovers = [match.group(0) for pattern in RAW_TEX for match in pattern.finditer(report.probe["proseText"])]
        assert leftovers == [], f"{document}: raw TeX in the text after MathJax ran: {leftovers[:5]}"


def test_every_image_loaded(page_reports: dict[str, PageReport]):
    assert any(report.probe["images"] for report in page_reports.values()), "the book has no images at all"
    for document, report in page_reports.items():
        broken = [image["src"] for image in report.probe["images"]
                  if not image["complete"] or image["naturalWidth"] == 0]
        assert broken == [], f"{document}: images that did not load: {broken}"


def test_equation_links_point_to_anchors(page_reports: dict[str, PageReport], site_url: str):
    ids_by_path = {page_path(report.url, site_url): set(report.probe["ids"]) for report in page_reports.values()}
    links = [(document, link) for document, report in page_reports.items() for link in report.probe["equationLinks"]]
    assert links, "no {eq} reference links found in the book"
    for document, link in links:
        path = page_path(link, site_url)
        fragment = urllib.parse.urlsplit(link).fragment
        assert path in ids_by_path, f"{document}: {link} points to a page outside the table of contents"
        assert fragment in ids_by_path[path], f"{document}: {link} points to a missing anchor #{fragment}"


def _search(page: DevToolsPage, site_url: str, term: str) -> tuple[str, set[str]]:
    page.events.clear()
    page.navigate(urllib.parse.urljoin(site_url, "search.html?q=" + urllib.parse.quote(term)))
    summary = page.wait_until(SEARCH_DONE, f"the search for {term!r} to finish", timeout=60)
    page.screenshot(ARTIFACTS / f"search_{term}.png")
    found = {page_path(href, site_url).removesuffix(".html") for href in page.evaluate(SEARCH_RESULTS)}
    errors = console_errors(page.events)
    assert errors == [], f"search for {term!r}: console errors {errors}"
    return summary, found


@pytest.mark.parametrize("term", SEARCH_TERMS)
def test_search_finds_chinese_term(term: str, page_reports: dict[str, PageReport], browser_page, site_url: str):
    page, _ = browser_page
    in_prose = {document for document, report in page_reports.items() if term in report.probe["proseText"]}
    anywhere = {document for document, report in page_reports.items() if term in report.probe["fullText"]}
    assert in_prose, f"{term!r} no longer occurs in the book's prose; pick another search term"
    summary, found = _search(page, site_url, term)
    assert in_prose <= found, f"search for {term!r} missed {sorted(in_prose - found)} (found {sorted(found)}; {summary})"
    assert found <= anywhere, f"search for {term!r} returned pages without the term: {sorted(found - anywhere)}"


def test_search_for_absent_term_is_empty(page_reports: dict[str, PageReport], browser_page, site_url: str):
    page, _ = browser_page
    assert not any(ABSENT_TERM in report.probe["fullText"] for report in page_reports.values())
    _, found = _search(page, site_url, ABSENT_TERM)
    assert found == set(), f"search for {ABSENT_TERM!r}, which the book never uses, returned {sorted(found)}"
