"""Helpers for the browser tests: Chromium, a page watch and a second site.

The browser is Debian's Chromium, driven by Playwright; nothing here
downloads a browser.
"""

import base64
import os
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import quote

import pytest
import requests

ROOT = Path(__file__).resolve().parent.parent
SCREENSHOTS = ROOT / "screenshots"
CHROMIUM = "/usr/bin/chromium"

# NOTE: without the background-networking flags Chromium reaches out to
# outside hosts (updates, sync, safe browsing) during the tests.
CHROMIUM_ARGS = [
    "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update",
    "--disable-sync",
]
DESKTOP = {"width": 1280, "height": 800}
PHONE = {"width": 390, "height": 844}
TIMEOUT_MS = 15_000
SIMULATOR_AUTH = "Basic " + base64.b64encode(b"simulator:super_safe!").decode()

# Runs in every page before its own scripts; reports each CSP violation.
CSP_LISTENER = """
document.addEventListener("securitypolicyviolation", (event) => {
  window.reportCspViolation(
    `${event.effectiveDirective} blocked ${event.blockedURI || "inline"}`
    + ` on ${event.documentURI}`);
});
"""


def launch_chromium(playwright):
    """Start headless Chromium from the system package."""
    if not os.access(CHROMIUM, os.X_OK):
        pytest.fail(f"{CHROMIUM} is missing: apt-get install chromium "
                    "(make test installs it)")

    # NOTE: launch() gives the browser a fresh temporary profile directory
    # of its own and removes it on close.
    return playwright.chromium.launch(executable_path=CHROMIUM,
                                      headless=True, args=CHROMIUM_ARGS)


class PageWatch:
    """Collects console errors, uncaught errors and CSP violations."""

    def __init__(self, context):
        self.problems = []
        context.on("console", self._console)
        context.on("weberror", self._web_error)
        context.expose_binding("reportCspViolation", self._csp_violation)
        context.add_init_script(CSP_LISTENER)

    def _console(self, message):
        if message.type in ("error", "warning"):
            where = message.location.get("url", "")
            self.problems.append(f"console {message.type}: {message.text}"
                                 f" ({where})")

    def _web_error(self, error):
        self.problems.append(f"uncaught: {error.error}")

    def _csp_violation(self, source, text):
        self.problems.append(f"CSP violation: {text}")

    def take(self):
        """Return the problems seen so far and forget them."""
        taken, self.problems = self.problems, []
        return taken


class Simulator:
    """Sends requests to the simulator API the way the simulator does."""

    def __init__(self, base_url):
        self.base = base_url + "/api"
        self.http = requests.Session()
        # NOTE: a proxy from the environment must never see local requests.
        self.http.trust_env = False
        self.http.headers.update({"Authorization": SIMULATOR_AUTH,
                                  "Connection": "close"})

    def register(self, username, password="secret"):
        """Create a user through the API."""
        email = f"{username.replace(' ', '.')}@example.com"
        answer = self.http.post(f"{self.base}/register", json={
            "username": username, "email": email, "pwd": password})
        assert answer.status_code == 204, answer.text

    def tweet(self, username, text):
        """Post a message as a user through the API."""
        answer = self.http.post(f"{self.base}/msgs/{quote(username)}",
                                json={"content": text})
        assert answer.status_code == 204, answer.text


class OtherSite:
    """A second local web site that serves one page, for cross-site tests."""

    def __init__(self, host, page_html):
        body = page_html.encode()

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):
                self.send_response(200)
                self.send_header("Content-Type", "text/html; charset=utf-8")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer((host, 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever,
                                       daemon=True)

    @property
    def url(self):
        """Return the address of the site's page."""
        host, port = self.server.server_address[:2]
        return f"http://{host}:{port}/"

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc_info):
        self.server.shutdown()
        self.server.server_close()


def forged_post_page(action, fields):
    """Return a page that posts a form to action as soon as it loads."""
    inputs = "".join(f'<input type="hidden" name="{name}" value="{value}">'
                     for name, value in fields.items())
    return ("<!doctype html><title>Win a prize</title>"
            f'<form method="post" action="{action}">{inputs}</form>'
            "<script>document.forms[0].submit()</script>")
