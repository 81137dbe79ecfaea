#!/usr/bin/env python3
"""Check a self-contained HTML page in a real headless Chromium.

Loads PAGE from its file:// URL in the system's Chromium (driven over the
DevTools protocol by Playwright, with Playwright's own browser download never
used), waits for it to load, takes a full-page screenshot (and optionally a
PDF), and prints one JSON object on stdout:

  ok               no external request, console error, page error or failed load
  requests         external requests: every URL other than the page's own
                   file:// URL, data: URLs and blob: URLs the page made itself
                   (other file:// URLs count too); they are recorded and then
                   aborted, so the check never touches the network
  console_errors   console messages of level error ("Failed to load ..." too)
  console_warnings console messages of level warning (informational only)
  page_errors      uncaught exceptions
  failed_loads     requests that failed, with the browser's reason
  title, screenshot, screenshot_bytes, body_text_chars, svg_count (<svg>
  elements), table_rows (<tr> elements), pdf, pdf_bytes, chromium, seconds

Exit status: 0 if ok, 1 if not, 2 if the check itself could not run (then the
JSON has an "error"). Each step is bounded by --timeout seconds, and a
watchdog ends the whole run after 2 * timeout + 10 s (a page whose script
never yields, say).

Usage:
  python3 tests/browser/check_page.py PAGE.html --screenshot OUT.png
          [--width 1200] [--print-pdf OUT.pdf] [--timeout 60]

The browser is $CHROMIUM, else the first of chromium, chromium-browser,
google-chrome, google-chrome-stable on PATH. tests/browser/install.sh installs
Chromium and this script's requirements.
"""
import argparse
import json
import os
import shutil
import sys
import threading
import time
from pathlib import Path
from urllib.parse import unquote, urldefrag

BROWSERS = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
FACTS_JS = """() => ({
  body_text_chars: document.body ? document.body.innerText.length : 0,
  svg_count: document.querySelectorAll('svg').length,
  table_rows: document.querySelectorAll('tr').length,
})"""


def find_chromium():
    env = os.environ.get("CHROMIUM")
    if env:
        return shutil.which(env) or env
    for name in BROWSERS:
        if path := shutil.which(name):
            return path
    raise RuntimeError("no Chromium found: set CHROMIUM or run tests/browser/install.sh")


def emit(result, code):
    print(json.dumps(result, indent=1, ensure_ascii=False), flush=True)
    return code


def check(args, result):
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        raise RuntimeError("playwright missing: run tests/browser/install.sh") from None

    page_path = Path(args.page).resolve()
    if not page_path.is_file():
        raise RuntimeError(f"no such page: {args.page}")
    page_url = page_path.as_uri()
    ms = args.timeout * 1000

    def external(url):
        if url.startswith(("data:", "blob:")):
            return False
        return unquote(urldefrag(url)[0]) != unquote(page_url)

    def on_request(req):
        if external(req.url):
            result["requests"].append(req.url)

    def on_console(msg):
        if msg.type in ("error", "warning"):
            result[f"console_{msg.type}s"].append(msg.text)

    def route(r):  # external requests are only recorded, never sent
        return r.abort() if external(r.request.url) else r.continue_()

    with sync_playwright() as pw:
        browser = pw.chromium.launch(
            executable_path=find_chromium(), timeout=ms,
            args=["--no-sandbox", "--disable-dev-shm-usage", "--no-first-run"])
        result["chromium"] = browser.version
        try:
            ctx = browser.new_context(
                viewport={"width": args.width, "height": 800}, service_workers="block")
            ctx.set_default_timeout(ms)
            ctx.route("**/*", route)
            ctx.on("request", on_request)
            ctx.on("requestfailed", lambda r: result["failed_loads"].append(
                {"url": r.url, "error": r.failure}))
            page = ctx.new_page()
            page.on("websocket", lambda ws: result["requests"].append(ws.url))
            page.on("console", on_console)
            page.on("pageerror", lambda e: result["page_errors"].append(
                f"{e.name}: {e.message}" if e.name else e.message))
            page.goto(page_url, wait_until="load")
            try:  # let late requests and timers settle, but don't insist
                page.wait_for_load_state("networkidle", timeout=min(ms, 5000))
            except Exception:
                pass
            page.evaluate("() => document.fonts.ready.then(() => true)")
            result["title"] = page.title()
            result.update(page.evaluate(FACTS_JS))
            page.screenshot(path=args.screenshot, full_page=True)
            result["screenshot_bytes"] = os.path.getsize(args.screenshot)
            if args.print_pdf:
                page.pdf(path=args.print_pdf, print_background=True)
                result["pdf"] = args.print_pdf
                result["pdf_bytes"] = os.path.getsize(args.print_pdf)
        finally:
            browser.close()


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("page")
    ap.add_argument("--screenshot", required=True, help="full-page PNG to write")
    ap.add_argument("--width", type=int, default=1200, help="viewport width in CSS px")
    ap.add_argument("--print-pdf", help="also print the page to this PDF")
    ap.add_argument("--timeout", type=float, default=60, help="seconds per step")
    args = ap.parse_args()

    result = {"ok": False, "requests": [], "console_errors": [], "console_warnings": [],
              "page_errors": [], "failed_loads": [], "title": None,
              "screenshot": args.screenshot, "screenshot_bytes": 0,
              "body_text_chars": 0, "svg_count": 0, "table_rows": 0}
    start, limit = time.monotonic(), 2 * args.timeout + 10

    def watchdog():  # last resort: the page or browser stopped answering
        result["error"] = f"watchdog: no result after {limit:.0f} s"
        emit(result, 2)
        os._exit(2)
    timer = threading.Timer(limit, watchdog)
    timer.daemon = True
    timer.start()
    try:
        check(args, result)
    except Exception as exc:  # the check could not run: say why, in the JSON
        result["error"] = f"{type(exc).__name__}: {exc}"
    finally:
        timer.cancel()
    result["seconds"] = round(time.monotonic() - start, 2)
    if "error" in result:
        return emit(result, 2)
    result["ok"] = not (result["requests"] or result["console_errors"]
                        or result["page_errors"] or result["failed_loads"])
    return emit(result, 0 if result["ok"] else 1)

if __name__ == "__main__":
    sys.exit(main())
