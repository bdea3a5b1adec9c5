"""Print the single-page HTML build of the book to one PDF, offline, with headless Chromium.

    python book/_ext/print_pdf.py [--html _build/singlehtml] [--output _build/book.pdf]

``make pdf`` first builds ``_build/singlehtml`` (``jupyter-book build --builder singlehtml``,
every chapter on one page, the same executed outputs as the site), serves it on 127.0.0.1,
waits until MathJax has typeset every formula and prints it (A4, backgrounds on). A missing
image, stylesheet or script stops it (except the search index, which a single page has
none of); requests to other hosts are blocked, as in the site check. Explorers print as
their first frame.
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "tests"))
from site_check import CHROMIUM_FLAGS, LOCAL_HOSTS, Server, find_chromium  # noqa: E402

TYPESET_TIMEOUT_S = 300
SINGLE_PAGE = "whole-book.html"  # the name the single page is served under (never written)


def single_page(html_dir: Path) -> Path:
    """The page holding the whole book: ``index.html``, or where its refresh redirect points
    (Jupyter Book writes the book to its root document, ``book/intro.html``)."""
    index = html_dir / "index.html"
    if not index.is_file():
        raise SystemExit(
            f"no single-page build in {html_dir}: run 'make pdf' (it builds one first)")
    redirect = re.search(r'http-equiv="Refresh" content="0; url=([^"]+)"',
                         index.read_text(encoding="utf8"))
    return html_dir / redirect.group(1) if redirect else index


def print_pdf(html_dir: Path, output: Path) -> int:
    """Write ``output`` from the single page of ``html_dir``; returns its size in bytes."""
    from urllib.parse import urlsplit

    from playwright.sync_api import sync_playwright

    # Sphinx writes the single page to the root document's path (book/intro.html) but links its
    # assets relative to the site's root: it is served from the root, under a name of its own.
    text = single_page(html_dir).read_text(encoding="utf8")
    with Server(html_dir) as server, sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=find_chromium(), headless=True,
                                     args=CHROMIUM_FLAGS)
        page = browser.new_page()

        def route(route_, request):
            parts = urlsplit(request.url)
            if parts.hostname in LOCAL_HOSTS and parts.path == "/" + SINGLE_PAGE:
                route_.fulfill(body=text, content_type="text/html; charset=utf-8")
            elif parts.scheme in ("data", "blob", "about") or parts.hostname in LOCAL_HOSTS:
                route_.continue_()
            else:
                route_.abort("blockedbyclient")

        page.route("**/*", route)
        missing: list[str] = []
        page.on(
            "response", lambda response: (response.status >= 400 and not response.url.endswith(
                "/searchindex.js") and missing.append(response.url)))
        page.goto(server.url + SINGLE_PAGE, wait_until="load", timeout=120_000)
        page.wait_for_function("Array.from(document.images).every((image) => image.complete)",
                               timeout=TYPESET_TIMEOUT_S * 1000)
        page.wait_for_function("window.MathJax && MathJax.startup && MathJax.startup.promise",
                               timeout=TYPESET_TIMEOUT_S * 1000)
        page.evaluate("MathJax.startup.promise.then(() => "
                      "MathJax.typesetPromise ? MathJax.typesetPromise() : null)")
        if missing:
            raise SystemExit(
                f"{len(missing)} files of the single page are missing, e.g. {missing[:3]}")
        page.emulate_media(media="print")
        output.parent.mkdir(parents=True, exist_ok=True)
        page.pdf(path=str(output), format="A4", print_background=True, margin={
            "top": "15mm",
            "bottom": "15mm",
            "left": "12mm",
            "right": "12mm"
        })
        browser.close()
    return output.stat().st_size


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--html", type=Path, default=Path("_build/singlehtml"))
    parser.add_argument("--output", type=Path, default=Path("_build/book.pdf"))
    args = parser.parse_args()
    size = print_pdf(args.html.resolve(), args.output)
    print(f"Book printed: {args.output} ({size / 1e6:.1f} MB)")


if __name__ == "__main__":
    main()
