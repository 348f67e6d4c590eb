"""Debian's chromium driven by Playwright, for the browser tests and the real store's: one browser per test session,
whichever folder asks first (the root conftest shares the fixture, so no second Playwright starts in the thread)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

CHROMIUM = Path(os.environ.get("CHROMIUM", "/usr/bin/chromium"))
OUTPUT = Path(__file__).resolve().parents[2] / "test-output" / "browser"
LAUNCH_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


def _unavailable(reason: str):
    if os.environ.get("CI") == "true":
        pytest.fail(f"browser tests cannot run in CI: {reason}", pytrace=False)
    pytest.skip(f"browser tests skipped: {reason}")


@pytest.fixture(scope="session")
def chromium():
    try:
        from playwright.sync_api import Error, sync_playwright
    except ImportError:
        _unavailable("the playwright package is not installed (pip install -e '.[dev]')")
    if not CHROMIUM.exists():
        _unavailable(f"no chromium at {CHROMIUM} (apt-get install chromium)")
    manager = sync_playwright().start()
    try:
        browser = manager.chromium.launch(executable_path=str(CHROMIUM), args=LAUNCH_ARGS)
    except Error as exc:
        manager.stop()
        _unavailable(f"chromium did not start: {str(exc).splitlines()[0]}")
    yield browser
    browser.close()
    manager.stop()


def screenshot(page, name: str) -> Path:
    return save_screenshot(page, OUTPUT / f"{name}.png")


def save_screenshot(page, path: Path) -> Path:
    """The whole page as a PNG at `path`, replaced in one step: `make test` runs its SQLite and PostgreSQL passes
    side by side, and both take the same screenshots (docs/screenshots/ among them)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".{path.name}.{os.getpid()}.partial")
    partial.write_bytes(page.screenshot(full_page=True))
    os.replace(partial, path)
    return path
