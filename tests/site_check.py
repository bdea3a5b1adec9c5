"""Open every page of the built book in headless Chromium, offline, and fail on anything broken.

    python tests/site_check.py [--html _build/html] [--toc _toc.yml] [--search-query WORD]

The site is served by Python's http.server on 127.0.0.1 (a free port) and driven through the
DevTools protocol with Playwright, using the system's Chromium (Debian's package; Playwright's
own browser download is never used). Pages: the site's index.html, every page in the table of
contents, genindex.html (and py-modindex.html when present) and search.html with a query.
A page fails on any of:

* a console error or an uncaught JavaScript exception;
* a local request that fails or answers with HTTP >= 400 (a missing asset);
* a request to any host other than 127.0.0.1 (it is blocked, so the check never uses the
  network, and reported: the site must not depend on a CDN);
* an embedded ipywidgets view that does not render (nothing visible next to its view script,
  or widget markup with no view at all);
* a matplotlib ``to_jshtml`` animation without its frame, slider or visible button icons;
* a broken image, or math that MathJax did not typeset;
* (search page) no search results for the query: the local search index must work;
* (layout, at every viewport: a 390 px phone and a 1400 px desk by default) an element of the
  page's content that sticks out past the right edge of the window, unless it sits inside a
  scroll container (a wide table or code block that scrolls on its own is fine), or an
  explorer (animation) whose frame, slider or buttons are cut off — by the window or by a
  container, scrolling or not.

``--screenshots DIR`` also saves a full-page screenshot of every page at every viewport
(``DIR/<page>@<width>.png``), to look at.

Exit status 0 when every page is clean, 1 otherwise (2 when the check itself cannot run).
"""

from __future__ import annotations

import argparse
import functools
import http.server
import os
import shutil
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

import yaml

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM_FLAGS = [
    "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync"
]
LOCAL_HOSTS = {"127.0.0.1"}
#: Window sizes (CSS px) every page is checked at: a phone and a desk.
VIEWPORTS = ((390, 844), (1400, 900))
WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"


class SiteCheckError(RuntimeError):
    """The check could not run (no Chromium, no Playwright, no built site)."""


# --------------------------------------------------------------------------- pages


def toc_pages(toc_path: Path) -> list[str]:
    """HTML paths (relative to the site root) of every file in a Jupyter Book _toc.yml."""
    toc = yaml.safe_load(Path(toc_path).read_text())
    files: list[str] = []

    def walk(entries):
        for entry in entries or []:
            if "file" in entry:
                files.append(entry["file"])
            for key in ("parts", "chapters", "sections"):
                walk(entry.get(key))

    if "root" in toc:
        files.append(toc["root"])
    walk(toc.get("parts"))
    walk(toc.get("chapters"))
    walk(toc.get("sections"))
    return [str(Path(f).with_suffix("")) + ".html" for f in files]


def site_pages(html_dir: Path, toc_path: Path, search_query: str) -> list[str]:
    pages = ["index.html", *toc_pages(toc_path), "genindex.html"]
    if (html_dir / "py-modindex.html").is_file():
        pages.append("py-modindex.html")
    pages.append(f"search.html?q={search_query}")
    return list(dict.fromkeys(pages))


# --------------------------------------------------------------------------- server


class _QuietHandler(http.server.SimpleHTTPRequestHandler):

    def log_message(self, format, *args):  # noqa: A002 (the base class's name)
        pass


@dataclass
class Server:
    directory: Path
    httpd: http.server.ThreadingHTTPServer = field(init=False)

    def __enter__(self):
        handler = functools.partial(_QuietHandler, directory=str(self.directory))
        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0),
                                                     handler)  # port 0: a free one
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()
        return self

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}/"

    def __exit__(self, *exc):
        self.httpd.shutdown()
        self.httpd.server_close()


# --------------------------------------------------------------------------- browser


def find_chromium() -> str:
    """Chromium from $CHROMIUM, the PATH or /usr/bin; a clear error when there is none."""
    candidates = [os.environ.get("CHROMIUM", "")]
    candidates += [
        shutil.which(name) or "" for name in ("chromium", "chromium-browser", "google-chrome")
    ]
    candidates.append("/usr/bin/chromium")
    for candidate in candidates:
        if candidate and os.access(candidate, os.X_OK):
            return candidate
    raise SiteCheckError(
        "Chromium not found: the site check needs a headless Chromium. On Debian/Ubuntu run "
        "'apt-get install -y chromium' ('make test' and 'make site-check' do this when run as "
        "root), or set CHROMIUM=/path/to/chromium.")


# JavaScript run in each page after it has loaded: what rendered, and what did not.
PAGE_PROBE = """
() => {
  const visible = (el) => {
    if (!el) return false;
    const r = el.getBoundingClientRect();
    return r.width > 0 && r.height > 0;
  };
  const out = {views: 0, rendered: 0, unrendered: [], widgetMarkup: 0, animations: [],
               brokenImages: [], math: 0, typeset: 0};
  const views = document.querySelectorAll('script[type="%(view)s"]');
  out.views = views.length;
  views.forEach((tag, i) => {
    const area = tag.previousElementSibling;
    const ok = area && area.classList.contains('widget-subarea') &&
               Array.from(area.querySelectorAll('*')).some(visible);
    if (ok) out.rendered += 1;
    else {
      let model = '?';
      try { model = JSON.parse(tag.textContent).model_id; } catch (e) {}
      out.unrendered.push('widget view #' + (i + 1) + ' (model ' + model + ')');
    }
  });
  out.widgetMarkup = document.querySelectorAll(
    '[class*="jupyter-widgets"], [class^="widget-"], [class*=" widget-"]').length;
  document.querySelectorAll('div.animation').forEach((anim, i) => {
    const img = anim.querySelector('img');
    const slider = anim.querySelector('input[type=range]');
    const buttons = Array.from(anim.querySelectorAll('.anim-buttons button'));
    const iconless = buttons.filter((b) => {
      const icon = b.querySelector('i, svg');
      return !icon || !visible(icon);
    });
    const problems = [];
    if (!img || !img.getAttribute('src') || !(img.naturalWidth > 0))
      problems.push('no frame shown');
    if (!slider || !(Number(slider.max) > 0)) problems.push('no frame slider (frames not loaded)');
    if (buttons.length === 0) problems.push('no control buttons');
    else if (iconless.length)
      problems.push(iconless.length + ' of ' + buttons.length + ' buttons without a visible icon');
    out.animations.push({index: i + 1, problems});
  });
  document.querySelectorAll('img').forEach((img) => {
    if (img.complete && img.getAttribute('src') && img.naturalWidth === 0)
      out.brokenImages.push(img.getAttribute('src').slice(0, 120));
  });
  out.math = document.querySelectorAll('.math').length;
  out.typeset = document.querySelectorAll('mjx-container').length;
  return out;
}
""" % {
    "view": WIDGET_VIEW
}

# JavaScript: elements of the content that overflow the window (outside scroll containers)
# and explorer frames or controls that are cut off.
LAYOUT_PROBE = """
() => {
  const width = document.documentElement.clientWidth;
  const clips = (el) =>
    ['auto', 'scroll', 'hidden', 'clip'].includes(getComputedStyle(el).overflowX);
  // Scroll containers of the content (code, tables, outputs, display math) count; the page's
  // own layout boxes do not (the article may scroll sideways, which is what must not happen).
  const layout = '.bd-article-container, .bd-main, .bd-content, .bd-container, ' +
    '.bd-page-width, article, main';
  const inScroller = (el) => {
    for (let a = el.parentElement; a && a !== document.body && !a.matches(layout);
         a = a.parentElement)
      if (clips(a)) return true;
    return false;
  };
  const name = (el) => el.tagName.toLowerCase() + (el.id ? '#' + el.id : '') +
    (el.classList.length ? '.' + Array.from(el.classList).slice(0, 2).join('.') : '');
  const shown = (el) => {
    const r = el.getBoundingClientRect();
    const style = getComputedStyle(el);
    return r.width > 0 && r.height > 0 && style.visibility !== 'hidden';
  };
  const out = {overflowing: [], clipped: []};
  const content = document.querySelector('#main-content, main, [role=main]') || document.body;
  for (const el of content.querySelectorAll('*')) {
    if (el.closest('mjx-assistive-mml, .visually-hidden, .sr-only')) continue;
    if (!shown(el)) continue;
    const r = el.getBoundingClientRect();
    if (r.right > width + 1 && !inScroller(el))
      out.overflowing.push(name(el) + ' reaches ' + Math.round(r.right) + ' px');
  }
  document.querySelectorAll('div.animation').forEach((anim, i) => {
    const parts = [anim.querySelector('img'), anim.querySelector('input[type=range]'),
                   ...anim.querySelectorAll('.anim-buttons button')].filter(Boolean);
    for (const part of parts) {
      const r = part.getBoundingClientRect();
      let cut = r.right > width + 1 || r.left < -1;
      for (let a = part.parentElement; a && !cut && a !== document.body; a = a.parentElement) {
        if (!clips(a)) continue;
        const box = a.getBoundingClientRect();
        cut = r.right > box.right + 1 || r.left < box.left - 1;
      }
      if (cut) {
        out.clipped.push('animation #' + (i + 1) + ': ' + name(part) + ' cut off');
        break;
      }
    }
  });
  out.overflowing = Array.from(new Set(out.overflowing));
  return out;
}
"""


@dataclass
class PageResult:
    page: str
    width: int  # of the window, CSS px
    problems: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


def _probe(page, settle_s: float, has_source_animation: bool) -> dict:
    """Poll the page until widgets, animations and math have rendered (or time runs out)."""
    deadline = time.monotonic() + settle_s
    while True:
        state = page.evaluate(PAGE_PROBE)
        done = (not state["unrendered"] and all(not a["problems"] for a in state["animations"]) and
                (state["math"] == 0 or state["typeset"] > 0) and
                not (has_source_animation and not state["animations"]))
        if done or time.monotonic() > deadline:
            return state
        page.wait_for_timeout(250)


def check_page(context, base_url: str, html_dir: Path, page_path: str, settle_s: float, width: int,
               screenshots: Path | None = None) -> PageResult:
    result = PageResult(page_path, width)
    source_file = html_dir / page_path.split("?")[0]
    if not source_file.is_file():
        result.problems.append(f"page missing from the site: {source_file}")
        return result
    source = source_file.read_text(errors="replace")

    page = context.new_page()
    page.on(
        "console", lambda msg:
        (msg.type == "error" and result.problems.append(f"console error: {msg.text}" +
                                                        (f" ({msg.location.get('url', '')})"
                                                         if msg.location.get("url") else ""))))
    page.on("pageerror", lambda exc: result.problems.append(f"uncaught JavaScript error: {exc}"))

    def on_response(response):
        if response.status >= 400:
            result.problems.append(f"HTTP {response.status}: {response.url}")

    def on_failed(request):
        if urlsplit(request.url).hostname in LOCAL_HOSTS:
            result.problems.append(f"request failed ({request.failure}): {request.url}")

    page.on("response", on_response)
    page.on("requestfailed", on_failed)
    try:
        page.goto(base_url + page_path, wait_until="load", timeout=60_000)
        try:
            page.wait_for_load_state("networkidle", timeout=20_000)
        except Exception:  # noqa: BLE001 (still probe what is there)
            result.notes.append("network did not go idle within 20 s")
        state = _probe(page, settle_s, "_anim_img" in source)
        layout = page.evaluate(LAYOUT_PROBE)
        if page_path.startswith("search.html"):
            _check_search(page, result, settle_s)
        if screenshots is not None:
            shot = screenshots / f"{page_path.split('?')[0].replace('/', '_')[:-5]}@{width}.png"
            page.screenshot(path=str(shot), full_page=True)
    except Exception as exc:  # noqa: BLE001 (a page that cannot load is a failure, not a crash)
        result.problems.append(f"could not load: {exc}")
        page.close()
        return result
    page.close()

    result.problems += [f"{what} did not render" for what in state["unrendered"]]
    if WIDGET_VIEW not in source and ("jupyter-widgets" in source or 'class="widget-' in source):
        if state["views"] == 0 and state["widgetMarkup"] == 0:
            result.problems.append("widget markup in the page source but no widget rendered")
    if "_anim_img" in source and not state["animations"]:
        result.problems.append("matplotlib animation in the page source but no animation element")
    for anim in state["animations"]:
        result.problems += [f"animation #{anim['index']}: {p}" for p in anim["problems"]]
    result.problems += [f"broken image: {src}" for src in state["brokenImages"]]
    overflowing = layout["overflowing"]
    if overflowing:
        result.problems.append(f"{len(overflowing)} elements stick out of the {width} px window "
                               f"(outside any scroll container), e.g. {'; '.join(overflowing[:4])}")
    result.problems += layout["clipped"]
    if state["math"] and not state["typeset"]:
        result.problems.append(f"{state['math']} math elements but nothing typeset by MathJax")
    if state["views"]:
        result.notes.append(f"{state['rendered']}/{state['views']} widgets rendered")
    if state["animations"]:
        count = len(state["animations"])
        result.notes.append(f"{count} animation{'s' if count != 1 else ''}")
    return result


def _check_search(page, result: PageResult, settle_s: float) -> None:
    query = page.url.split("q=", 1)[-1]
    try:
        page.wait_for_selector("#search-results ul.search li", timeout=settle_s * 1000)
    except Exception:  # noqa: BLE001
        result.problems.append(
            f"offline search found nothing for {query!r} (searchindex.js not working?)")
        return
    hits = page.locator("#search-results ul.search li").count()
    result.notes.append(f"{hits} search results for {query!r}")


def check_site(html_dir: Path, toc_path: Path = ROOT / "_toc.yml", *,
               pages: list[str] | None = None, search_query: str = "diffraction",
               settle_s: float = 20.0, chromium: str | None = None, viewports=VIEWPORTS,
               screenshots: Path | None = None, log=print) -> list[PageResult]:
    """Check every page at every viewport (width, height in CSS px); one PageResult per page and
    viewport (raises SiteCheckError if it cannot run)."""
    html_dir = Path(html_dir).resolve()
    if not (html_dir / "index.html").is_file():
        raise SiteCheckError(f"no built site in {html_dir}: run 'make book' first")
    chromium = chromium or find_chromium()
    try:
        from playwright.sync_api import sync_playwright
    except ImportError as exc:
        raise SiteCheckError("Playwright for Python is missing: pip install -e '.[test]'") from exc
    pages = pages or site_pages(html_dir, toc_path, search_query)

    blocked: list[str] = []

    def route(route_, request):
        parts = urlsplit(request.url)
        if parts.scheme in ("data", "blob", "about") or parts.hostname in LOCAL_HOSTS:
            route_.continue_()
        else:
            blocked.append(request.url)
            route_.abort("blockedbyclient")

    results = []
    with Server(html_dir) as server, sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=chromium, headless=True, args=CHROMIUM_FLAGS)
        try:
            if screenshots is not None:
                Path(screenshots).mkdir(parents=True, exist_ok=True)
            for page_path, (width, height) in ((p, v) for v in viewports for p in pages):
                context = browser.new_context(service_workers="block", viewport={
                    "width": width,
                    "height": height
                })
                context.route("**/*", route)
                blocked.clear()
                result = check_page(context, server.url, html_dir, page_path, settle_s, width,
                                    None if screenshots is None else Path(screenshots))
                context.close()
                # Blocked requests also show up as failed requests / console errors; keep the
                # clear one.
                result.problems = [p for p in result.problems if not any(b in p for b in blocked)]
                result.problems += [
                    f"request to a non-local host (blocked): {url}"
                    for url in dict.fromkeys(blocked)
                ]
                results.append(result)
                status = "ok  " if result.ok else "FAIL"
                log(f"{status} {page_path} @{width}px" +
                    (f"  [{'; '.join(result.notes)}]" if result.notes else ""))
                for problem in result.problems:
                    log(f"       - {problem}")
        finally:
            browser.close()
    return results


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--html", type=Path, default=ROOT / "_build" / "html",
                        help="built site (default: _build/html)")
    parser.add_argument("--toc", type=Path, default=ROOT / "_toc.yml",
                        help="table of contents (default: _toc.yml)")
    parser.add_argument("--search-query", default="diffraction",
                        help="word the search page must find")
    parser.add_argument("--page", action="append",
                        help="check only these pages (paths relative to the site)")
    parser.add_argument("--screenshots", type=Path,
                        help="save a full-page screenshot of every page here")
    args = parser.parse_args(argv)
    start = time.monotonic()
    try:
        results = check_site(args.html, args.toc, pages=args.page, search_query=args.search_query,
                             screenshots=args.screenshots)
    except SiteCheckError as exc:
        print(f"site check could not run: {exc}", file=sys.stderr)
        return 2
    failed = [r for r in results if not r.ok]
    print(f"{len(results) - len(failed)}/{len(results)} page views clean "
          f"({len(VIEWPORTS)} window widths) in {time.monotonic() - start:.0f} s")
    if failed:
        print("site check FAILED: " + ", ".join(f"{r.page} @{r.width}px" for r in failed),
              file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
