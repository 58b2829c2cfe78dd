"""Headless Chromium opens the display's page and sees the picture change from frame to frame."""

from __future__ import annotations

import shutil
import threading
from pathlib import Path
from typing import Any

import pytest

from tests.integration.display_harness import (
    frame_header,
    result_for,
    running_display,
    wait_subscribed,
)

pytestmark = [pytest.mark.integration, pytest.mark.browser, pytest.mark.timeout(120)]

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]

#: Runs in the page: the <img> drawn on a canvas, as a hash of its pixels and their spread.
SAMPLE_JS = """
() => {
  const img = document.getElementById("stream");
  const canvas = document.createElement("canvas");
  canvas.width = img.naturalWidth;
  canvas.height = img.naturalHeight;
  const context = canvas.getContext("2d");
  context.drawImage(img, 0, 0);
  const data = context.getImageData(0, 0, canvas.width, canvas.height).data;
  let hash = 2166136261, sum = 0, sumSq = 0;
  for (let i = 0; i < data.length; i += 1) {
    hash = Math.imul(hash ^ data[i], 16777619) >>> 0;
    if (i % 4 !== 3) { sum += data[i]; sumSq += data[i] * data[i]; }
  }
  const n = (data.length / 4) * 3;
  const mean = sum / n;
  return {hash, mean, std: Math.sqrt(Math.max(0, sumSq / n - mean * mean)),
          width: canvas.width, height: canvas.height};
}
"""


def publish_frames(display: Any, stop: threading.Event) -> None:
    """Capture and a worker at ~10 fps: every frame different, every frame answered."""
    seq = 0
    while not stop.wait(0.1):
        header = frame_header(seq)
        display.send_frame(header)
        display.send_result(result_for(header, label_index=seq % 7))
        seq += 1


def test_page_shows_changing_frames(tmp_path: Path) -> None:
    if shutil.which(CHROMIUM) is None:
        pytest.skip(f"{CHROMIUM} not installed (apt-get install -y chromium)")
    sync_api = pytest.importorskip(
        "playwright.sync_api", reason="the 'playwright' package (dev extra) is not installed"
    )
    with running_display(tmp_path, "--mode", "live", "--sinks", "http") as display:
        wait_subscribed(display)
        stop = threading.Event()
        publisher = threading.Thread(target=publish_frames, args=(display, stop), daemon=True)
        publisher.start()
        try:
            with sync_api.sync_playwright() as playwright:
                browser = playwright.chromium.launch(
                    executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS, timeout=60_000
                )
                try:
                    page = browser.new_page()
                    page.goto(display.http_url, timeout=30_000)
                    assert page.title() == "Emojify"
                    page.wait_for_function(
                        "() => document.getElementById('stream').naturalWidth > 0",
                        timeout=30_000,
                    )
                    first = page.evaluate(SAMPLE_JS)
                    page.wait_for_timeout(500)
                    second = page.evaluate(SAMPLE_JS)
                finally:
                    browser.close()
        finally:
            stop.set()
            publisher.join(timeout=5)
    assert (first["width"], first["height"]) == (320, 240)
    assert first["hash"] != second["hash"], "the picture did not change in 0.5 s"
    for sample in (first, second):
        assert sample["std"] > 10, f"the picture looks blank: {sample}"
