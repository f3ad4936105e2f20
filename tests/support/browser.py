"""Real headless Chromium (Debian's /usr/bin/chromium, driven by Playwright) against a real
uvicorn server on loopback: the one place the browser tests start either.

Use ``pytestmark = [*BROWSER_MARKS]`` in a test module, :func:`chromium` for the browser and
:func:`tests.support.appserver.serve` for the app."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]

BROWSER_MARKS = [
    pytest.mark.browser,
    # outside CI a missing browser skips; in CI (.ci/run installs it) it must be there
    pytest.mark.skipif(
        not CHROMIUM.exists() and not os.environ.get("CI"),
        reason="Debian chromium not installed (apt-get install chromium)",
    ),
]


@contextmanager
def chromium() -> Iterator[Any]:
    """A launched headless Chromium (a Playwright ``Browser``), closed afterwards."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            browser.close()
