"""The reference page at /docs in a real headless browser (Debian's chromium, driven by
playwright): it renders every operation of the published document, logs no console error,
and asks nothing of any origin but the gateway's.

Chromium comes from Debian (`make browser` installs it; .ci/run too): playwright's own
browser download needs a host this project does not reach. CUSTOMERS_CHROMIUM overrides
the path.
"""

from __future__ import annotations

import os
import pathlib
from collections.abc import Iterator
from urllib.parse import urlsplit

import pytest
from playwright.sync_api import Browser, ConsoleMessage, Page, Request, sync_playwright

from tests.e2e.conftest import Stack
from tests.helpers.openapi import document

pytestmark = pytest.mark.parametrize("stack", ["sqlite"], indirect=True)

CHROMIUM = pathlib.Path(os.environ.get("CUSTOMERS_CHROMIUM", "/usr/bin/chromium"))
_VERBS = ("get", "put", "post", "patch", "delete")


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    if not CHROMIUM.exists():
        pytest.fail(f"{CHROMIUM} is missing: run `make browser` (Debian's chromium)")
    with sync_playwright() as playwright:
        # --no-sandbox: CI runs as root, where chromium's sandbox refuses to start.
        launched = playwright.chromium.launch(executable_path=str(CHROMIUM), args=["--no-sandbox"])
        try:
            yield launched
        finally:
            launched.close()


class Recorder:
    """Everything the page logged and asked for while it was open."""

    def __init__(self, page: Page) -> None:
        self.errors: list[str] = []
        self.requests: list[str] = []
        page.on("console", self._console)
        page.on("pageerror", lambda error: self.errors.append(f"page error: {error}"))
        page.on("request", self._request)
        page.on("requestfailed", lambda r: self.errors.append(f"request failed: {r.url}"))

    def _console(self, message: ConsoleMessage) -> None:
        if message.type in ("error", "assert"):
            self.errors.append(f"console {message.type}: {message.text}")

    def _request(self, request: Request) -> None:
        self.requests.append(request.url)


def _documented_operations() -> set[tuple[str, str]]:
    return {
        (verb.upper(), path)
        for path, item in document()["paths"].items()
        for verb in _VERBS
        if verb in item
    }


def test_docs_page_shows_every_operation_without_errors_or_outside_requests(
    stack: Stack, browser: Browser, tmp_path: pathlib.Path
) -> None:
    page = browser.new_page()
    recorder = Recorder(page)
    try:
        page.goto(f"{stack.base_url}/docs", wait_until="networkidle")
        page.wait_for_selector(".opblock", timeout=20_000)
        shown = page.eval_on_selector_all(
            ".opblock",
            """blocks => blocks.map(b => [
                b.querySelector('.opblock-summary-method').textContent,
                b.querySelector('.opblock-summary-path').getAttribute('data-path'),
            ])""",
        )
        assert {(verb, path) for verb, path in shown} == _documented_operations()
        assert len(shown) == len(_documented_operations())
        assert "Signing a request" in page.locator(".information-container").inner_text()

        # An operation opens with its documented statuses.
        operation = page.locator("#operations-CustomerService-SignChallenge")
        operation.locator(".opblock-summary-control").click()
        operation.locator(".responses-table").first.wait_for(timeout=5_000)
        statuses = operation.locator(".response-col_status").all_text_contents()
        assert {"204", "400", "401", "404", "409", "422"} <= {s.strip() for s in statuses}
        page.wait_for_load_state("networkidle")
    finally:
        page.screenshot(path=str(tmp_path / "docs.png"))
        page.close()

    assert recorder.errors == []
    gateway = urlsplit(stack.base_url)
    outside = [url for url in recorder.requests if urlsplit(url)[:2] != gateway[:2]]
    assert outside == [], outside
    assert f"{stack.base_url}/openapi.json" in recorder.requests
