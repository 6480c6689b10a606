"""The web demo in a real browser: Debian's chromium, headless, driven by Playwright (browsers
cannot be downloaded here, so Playwright launches the system chromium). Uploads a source and a
reference, clicks Convert, waits for the converted audio, then runs a one-click example; types a
sentence on the Clone tab and hears it in a preset voice; saves screenshots under
test-output/browser/ (or $VOICELAB_TEST_OUTPUT)."""
from __future__ import annotations

import io
import os
import re
import shutil
import socket
from pathlib import Path

import pytest
import soundfile as sf

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


def test_clone_tab_types_text_picks_a_voice_and_speaks(page, url):
    if not (ROOT / "checkpoints" / "synth-small").is_dir():
        pytest.skip("checkpoints/synth-small is not there yet: the Clone tab has no cloner")
    OUTPUT.mkdir(parents=True, exist_ok=True)
    page.get_by_role("tab", name="Clone").click()
    text = "Hello there. This voice was cloned from a few seconds of speech."
    page.locator("#clone-text textarea").fill(text)
    page.locator("#clone-counter").get_by_text(f"{len(text)} / 500 characters").wait_for(timeout=10_000)
    page.locator("#clone-preset input").click()
    page.get_by_role("option", name="flite-awb").click()
    page.locator("#clone-button").click()
    summary = page.locator("#clone-summary")
    summary.get_by_text("Similarity to the reference").wait_for(timeout=120_000)
    assert "synth-small + hifigan-fast; 2 sentences" in summary.inner_text()
    player = page.locator("#clone-output")
    player.locator("audio").first.wait_for(state="attached", timeout=30_000)
    # the player's clock shows the length (the <audio> itself stays empty: a waveform plays it)
    player.locator("time#duration").filter(has_text=re.compile(r"^\d+:\d\d$")).filter(
        has_not_text="0:00").wait_for(timeout=30_000)
    wav = page.request.get(player.get_by_test_id("download-link").get_attribute("href")).body()
    assert sf.info(io.BytesIO(wav)).duration > 1.0
    page.screenshot(path=OUTPUT / "clone.png", full_page=True)
    assert (OUTPUT / "clone.png").stat().st_size > 10_000
