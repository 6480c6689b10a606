"""The web demo in a real browser: Debian's chromium, headless, driven by Playwright (browsers
cannot be downloaded here, so Playwright launches the system chromium). Uploads a source and a
reference, clicks Convert, waits for the converted audio, then runs a one-click example, and
saves screenshots under test-output/browser/ (or $VOICELAB_TEST_OUTPUT)."""
from __future__ import annotations

import os
import shutil
import socket
from pathlib import Path

import pytest

from app import ROOT, DemoSettings, build_app

sync_api = pytest.importorskip("playwright.sync_api", reason="pip install playwright (CI installs it)")
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="no system chromium (apt install chromium; CI does)")
OUTPUT = Path(os.environ.get("VOICELAB_TEST_OUTPUT", ROOT / "test-output")) / "browser"


@pytest.fixture(scope="module")
def url():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    app = build_app(DemoSettings())
    app.launch(server_name="127.0.0.1", server_port=port, prevent_thread_lock=True, quiet=True)
    try:
        yield app.local_url
    finally:
        app.close()


@pytest.fixture
def page(url):
    with sync_api.sync_playwright() as playwright:
        # --no-sandbox: CI runs as root, where chromium's sandbox refuses to start; containers
        # often have a tiny /dev/shm, which --disable-dev-shm-usage avoids
        browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True,
                                             args=["--no-sandbox", "--disable-dev-shm-usage"])
        page = browser.new_page(viewport={"width": 1280, "height": 1400})
        page.goto(url)
        page.wait_for_selector("#convert-button")
        yield page
        browser.close()


def test_upload_convert_and_hear_the_output(page):
    OUTPUT.mkdir(parents=True, exist_ok=True)
    page.locator("#source-audio input[type=file]").set_input_files(ROOT / "assets/examples/flite-rms-deep.wav")
    page.locator("#reference-audio input[type=file]").set_input_files(ROOT / "assets/voices/festival-slt-light.wav")
    for component in ("#source-audio", "#reference-audio"):  # uploaded: the player shows its clock
        page.locator(component).get_by_text("0:00").first.wait_for(timeout=30_000)
    page.locator("#convert-button").click()
    summary = page.locator("#convert-summary")
    summary.get_by_text("Similarity to the reference").wait_for(timeout=120_000)
    page.locator("#output-audio audio").first.wait_for(state="attached", timeout=30_000)
    assert "ppgvc-small + hifigan-fast" in summary.inner_text()
    page.screenshot(path=OUTPUT / "convert.png", full_page=True)
    assert (OUTPUT / "convert.png").stat().st_size > 10_000


def test_one_click_example_converts(page):
    OUTPUT.mkdir(parents=True, exist_ok=True)
    page.get_by_text("flite-rms-deep.wav").first.click()
    page.locator("#convert-summary").get_by_text("Similarity to the reference").wait_for(timeout=120_000)
    page.locator("#output-audio audio").first.wait_for(state="attached", timeout=30_000)
    page.screenshot(path=OUTPUT / "example.png", full_page=True)


def test_results_tab_shows_the_report_and_a_model_card(page):
    OUTPUT.mkdir(parents=True, exist_ok=True)
    page.get_by_role("tab", name="Results").click()
    report = page.locator(".voicelab-report")
    report.get_by_text("target ceiling").first.wait_for(timeout=30_000)
    assert report.locator("img").count() >= 1  # the bar charts, embedded
    page.get_by_text("Training data").first.wait_for(timeout=30_000)  # the default model's card
    page.screenshot(path=OUTPUT / "results.png", full_page=True)
