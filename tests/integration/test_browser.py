"""Headless Chromium opens the display's page and sees the picture change from frame to frame."""

from __future__ import annotations

import shutil
import threading
from pathlib import Path
from typing import Any

import pytest
import zmq

from shared.messages import ResultHeader
from shared.wire import encode
from tests.integration.display_harness import (
    frame_header,
    frame_jpeg,
    read_jsonl,
    result_for,
    result_with,
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


def _result(header: Any, shift: int) -> ResultHeader:
    """A result whose seven probabilities differ from frame to frame and stream to stream."""
    weights = [1.0 + ((header.seq + shift) * 3 + index * 5) % 7 for index in range(7)]
    total = sum(weights)
    return result_with(header, [w / total for w in weights])


def publish_two_streams(display: Any, second: zmq.Socket[bytes], stop: threading.Event) -> None:
    """Two cameras at ~8 fps each, every frame answered."""
    seq = 0
    while not stop.wait(0.12):
        for stream_id, shift in (("cam-a", 0), ("cam-b", 3)):
            header = frame_header(seq, stream_id)
            if stream_id == "cam-a":
                display.send_frame(header)
            else:
                second.send_multipart(encode(header, frame_jpeg(seq + 100)))
            display.send_result(_result(header, shift))
        seq += 1


#: Runs in the page: the stream and frame the bars show, and the bars' values.
BARS_JS = """
() => {
  const box = document.getElementById("faces");
  const bars = Array.from(box.querySelectorAll(".face .bar"));
  return {stream: box.dataset.stream, seq: box.dataset.seq,
          values: bars.map((bar) => Number(bar.dataset.value)),
          timelines: box.querySelectorAll("canvas.timeline").length,
          figures: document.getElementById("figures").textContent,
          picker: !document.getElementById("stream-picker").hidden,
          src: document.getElementById("stream").getAttribute("src"),
          snapshot: document.getElementById("snapshot").getAttribute("href")};
}
"""


def _recorded(jsonl: Path, stream: str, seq: int) -> list[float]:
    for line in read_jsonl(jsonl):
        if line["stream_id"] == stream and line["seq"] == seq:
            return list(line["faces"][0]["probabilities"])
    raise AssertionError(f"no jsonl line for {stream} #{seq}")


def test_page_shows_each_faces_bars_timeline_and_figures_and_switches_streams(
    tmp_path: Path,
) -> None:
    if shutil.which(CHROMIUM) is None:
        pytest.skip(f"{CHROMIUM} not installed (apt-get install -y chromium)")
    sync_api = pytest.importorskip(
        "playwright.sync_api", reason="the 'playwright' package (dev extra) is not installed"
    )
    ctx: zmq.Context[Any] = zmq.Context.instance()
    second = ctx.socket(zmq.XPUB)
    second.setsockopt(zmq.LINGER, 0)
    second_port = second.bind_to_random_port("tcp://127.0.0.1")
    jsonl = tmp_path / "results.jsonl"
    try:
        with running_display(
            tmp_path,
            "--mode", "sync", "--sinks", "http,jsonl", "--jsonl-path", str(jsonl),
            "--preview-endpoints", f"tcp://127.0.0.1:{second_port}",
        ) as display:  # fmt: skip
            wait_subscribed(display)
            assert second.poll(10_000, zmq.POLLIN) and second.recv()[:1] == b"\x01"
            stop = threading.Event()
            publisher = threading.Thread(
                target=publish_two_streams, args=(display, second, stop), daemon=True
            )
            publisher.start()
            try:
                with sync_api.sync_playwright() as playwright:
                    browser = playwright.chromium.launch(
                        executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS, timeout=60_000
                    )
                    try:
                        page = browser.new_page(viewport={"width": 1100, "height": 700})
                        page.goto(display.http_url, timeout=30_000)
                        page.wait_for_function(
                            "() => document.querySelectorAll('#faces .bar').length === 7 && "
                            "!document.getElementById('stream-picker').hidden",
                            timeout=30_000,
                        )
                        first = page.evaluate(BARS_JS)
                        page.screenshot(path=str(tmp_path / "page-cam-a.png"))
                        page.select_option("#stream-picker", "cam-b")
                        page.wait_for_function(
                            "() => document.getElementById('faces').dataset.stream === 'cam-b'",
                            timeout=10_000,
                        )
                        page.wait_for_timeout(600)  # deliberate: the page's video catches up
                        switched = page.evaluate(BARS_JS)
                        page.screenshot(path=str(tmp_path / "page-cam-b.png"))
                    finally:
                        browser.close()
            finally:
                stop.set()
                publisher.join(timeout=5)
    finally:
        second.close(linger=0)
    assert first["stream"] == "cam-a" and first["picker"]
    assert first["values"] == pytest.approx(_recorded(jsonl, "cam-a", int(first["seq"])), abs=1e-4)
    assert first["timelines"] == 1
    assert "fps" in first["figures"] and "workers online 1" in first["figures"]
    assert switched["stream"] == "cam-b"
    assert switched["src"] == "/stream.mjpg?stream=cam-b"
    assert switched["snapshot"] == "/snapshot.jpg?stream=cam-b"
    assert switched["values"] == pytest.approx(
        _recorded(jsonl, "cam-b", int(switched["seq"])), abs=1e-4
    )
    for name in ("page-cam-a.png", "page-cam-b.png"):
        assert (tmp_path / name).stat().st_size > 10_000


def test_the_browser_signs_in_with_the_form_before_it_sees_the_page(tmp_path: Path) -> None:
    if shutil.which(CHROMIUM) is None:
        pytest.skip(f"{CHROMIUM} not installed (apt-get install -y chromium)")
    sync_api = pytest.importorskip(
        "playwright.sync_api", reason="the 'playwright' package (dev extra) is not installed"
    )
    token = "browser-token-0123456789abcdef"
    (tmp_path / "page.token").write_text(token + "\n")
    with (
        running_display(
            tmp_path, "--sinks", "http", "--http-token-file", str(tmp_path / "page.token")
        ) as display,
        sync_api.sync_playwright() as playwright,
    ):
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS, timeout=60_000
        )
        try:
            page = browser.new_page()
            page.goto(display.http_url, timeout=30_000)
            assert page.url.endswith("/login")
            page.fill("input[name=token]", "not-the-token")
            page.click("button[type=submit]")
            page.wait_for_selector("p.error", timeout=30_000)
            page.screenshot(path=str(tmp_path / "login-refused.png"))
            # An attempt within the wait after a failure (a quarter of a second after the
            # first) is turned away as too soon; a person then signs in again.
            for _ in range(20):
                page.fill("input[name=token]", token)
                with page.expect_navigation(wait_until="domcontentloaded", timeout=30_000):
                    page.click("button[type=submit]")
                if page.query_selector("#stream") is not None:
                    break
                assert "Too many attempts" in page.inner_text("p.error")
            page.wait_for_selector("#stream", state="attached", timeout=30_000)
            assert page.title() == "Emojify" and page.url == display.http_url
            page.screenshot(path=str(tmp_path / "signed-in.png"))
        finally:
            browser.close()
    assert "wrong credentials" in display.log_text() and "signed in" in display.log_text()
