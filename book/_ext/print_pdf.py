"""Print the single-page HTML build of the book to one PDF, offline, with headless Chromium.

    python book/_ext/print_pdf.py [--html _build/singlehtml] [--output _build/book.pdf]

``make pdf`` first builds ``_build/singlehtml`` (``jupyter-book build --builder singlehtml``,
every chapter on one page, the same executed outputs as the site), serves it on 127.0.0.1,
waits until MathJax has typeset every formula and prints it (A4, backgrounds on). Requests to
other hosts are blocked, as in the site check. Explorers print as their first frame.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "tests"))
from site_check import CHROMIUM_FLAGS, LOCAL_HOSTS, Server, find_chromium  # noqa: E402

TYPESET_TIMEOUT_S = 300


def print_pdf(html_dir: Path, output: Path) -> int:
    """Write ``output`` from ``html_dir/index.html``; returns its size in bytes."""
    from urllib.parse import urlsplit

    from playwright.sync_api import sync_playwright

    if not (html_dir / "index.html").is_file():
        raise SystemExit(f"no single-page build in {html_dir}: run 'make pdf' (it builds one first)")
    with Server(html_dir) as server, sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=find_chromium(), headless=True, args=CHROMIUM_FLAGS)
        page = browser.new_page()
        page.route("**/*", lambda route, request: route.continue_()
                   if urlsplit(request.url).scheme in ("data", "blob", "about")
                   or urlsplit(request.url).hostname in LOCAL_HOSTS else route.abort("blockedbyclient"))
        page.goto(server.url + "index.html", wait_until="load", timeout=120_000)
        deadline = time.monotonic() + TYPESET_TIMEOUT_S
        while page.evaluate("document.querySelectorAll('.math').length > 0 && "
                            "document.querySelectorAll('mjx-container').length === 0"):
            if time.monotonic() > deadline:
                raise SystemExit("MathJax did not typeset the book within the time limit")
            page.wait_for_timeout(500)
        page.emulate_media(media="print")
        output.parent.mkdir(parents=True, exist_ok=True)
        page.pdf(path=str(output), format="A4", print_background=True,
                 margin={"top": "15mm", "bottom": "15mm", "left": "12mm", "right": "12mm"})
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
