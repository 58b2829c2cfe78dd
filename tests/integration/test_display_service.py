"""The display as a real subprocess on real sockets: results logged, frames rendered, SIGTERM."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import zmq

from shared.image import decode_jpeg, encode_jpeg
from shared.messages import EndOfStream
from shared.wire import encode
from tests.integration.display_harness import (
    FACE_BOX,
    FRAME_WH,
    REPO,
    DisplayProcess,
    frame_header,
    http_get,
    read_jsonl,
    result_for,
    running_display,
    wait_subscribed,
)
from tests.waiting import wait_for

pytestmark = [pytest.mark.integration, pytest.mark.timeout(90)]


def test_sync_display_end_to_end(tmp_path: Path) -> None:
    jsonl_path = tmp_path / "results.jsonl"
    with running_display(
        tmp_path, "--mode", "sync", "--sinks", "http,jsonl", "--jsonl-path", str(jsonl_path)
    ) as display:
        page = display.snapshot()
        wait_subscribed(display)

        # Results out of order, one before its frame, one frame never answered.
        headers = [frame_header(seq) for seq in range(6)]
        display.send_result(result_for(headers[2]))
        for header in headers:
            display.send_frame(header)
        for seq in (0, 5, 1, 3):
            display.send_result(result_for(headers[seq], label_index=seq % 7))
        display.send_end("cam0", frame_count=6)

        wait_for(lambda: len(read_jsonl(jsonl_path)) >= 5, 15, "5 result lines")
        lines = read_jsonl(jsonl_path)
        assert sorted(line["seq"] for line in lines) == [0, 1, 2, 3, 5]
        first = lines[0]
        assert first["stream_id"] == "cam0" and first["worker_id"] == "test-worker"
        assert first["model_version"] == "test-model" and first["error"] is None
        assert first["faces"][0]["box_xywh"] == list(FACE_BOX)
        assert len(first["faces"][0]["probabilities"]) == 7
        assert {"label", "score"} <= set(first["faces"][0]) and "timings" in first

        wait_for(lambda: display.metrics().get("matched_total", 0) >= 5, 15, "5 matched pairs")
        snapshot = display.snapshot()
        assert snapshot != page
        frame = decode_jpeg(snapshot)
        x, y, w, h = FACE_BOX
        # An emoji (yellow-ish, BGR) is drawn over the face; the frame's own face disc is not.
        b, g, r = frame[y + h // 2, x + w // 2].astype(int)
        assert r > 150 and g > 120 and b < 120, (b, g, r)

        wait_for(lambda: "stream cam0 complete" in display.log_text(), 15, "stream completion")
        assert "missing=1" in display.log_text()

        # Malformed messages on both sockets are counted and skipped.
        before = display.metrics().get("malformed_total", 0)
        display.publisher.send_multipart([b"garbage"])
        display.publisher.send_multipart([b"\x81\xa4kind\xa5frame", b"not a jpeg"])
        display.publisher.send_multipart(encode(frame_header(99), b"\xff\xd8 truncated"))
        display.pusher.send_multipart([b"junk", b""])
        display.pusher.send_multipart(encode(frame_header(7), b"\xff\xd8 wrong socket"))
        wait_for(
            lambda: display.metrics().get("malformed_total", 0) >= before + 4,
            15,
            "malformed counted",
        )
        assert display.process.poll() is None

        # Still alive and rendering: a new matched pair changes the picture.
        header = frame_header(100, "cam0")
        display.send_frame(header)
        matched = display.metrics()["matched_total"]
        display.send_result(result_for(header, label_index=0))
        wait_for(lambda: display.metrics()["matched_total"] > matched, 15, "a new matched pair")
        assert display.snapshot() != snapshot
        assert any(line["seq"] == 100 for line in read_jsonl(jsonl_path))

        code, took_s = display.terminate(timeout_s=5)
        assert code == 0, display.log_text()
        assert took_s < 1.0, f"SIGTERM took {took_s:.2f} s"


def test_live_display_marks_waiting_and_renders_every_frame(tmp_path: Path) -> None:
    with running_display(tmp_path, "--mode", "live", "--sinks", "http") as display:
        wait_subscribed(display)
        first = display.snapshot()
        # No results at all: frames are still shown, with a "waiting for inference" banner.
        display.send_frame(frame_header(1))
        wait_for(lambda: display.snapshot() != first, 10, "a live frame")
        frame = decode_jpeg(display.snapshot())
        assert frame[:30].mean() < frame[60:].mean(), "the banner dims the top strip"
        assert display.metrics().get("waiting_total", 0) >= 1

        header = frame_header(2)
        display.send_result(result_for(header))
        wait_for(lambda: display.metrics().get("results_total", 0) >= 1, 10, "the result")
        display.send_frame(header)
        wait_for(lambda: display.metrics().get("matched_total", 0) >= 1, 10, "the matched frame")
        x, y, w, h = FACE_BOX

        def emoji_on_the_face() -> bool:
            # The snapshot is published just after the match is counted.
            b, g, r = decode_jpeg(display.snapshot())[y + h // 2, x + w // 2].astype(int)
            return bool(r > 150 and g > 120 and b < 120)

        wait_for(emoji_on_the_face, 10, "the emoji drawn over the face")

        code, took_s = display.terminate(timeout_s=5)
        assert code == 0 and took_s < 1.0


def test_bad_setting_exits_2() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "services.display", "--mode", "bogus"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 2
    assert "mode" in done.stderr


def test_missing_assets_exit_2(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    from services.display import main as display_main
    from stages.render import load_sprites

    monkeypatch.setattr(display_main, "load_sprites", lambda: load_sprites(tmp_path))
    monkeypatch.delenv("DISPLAY", raising=False)
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    assert display_main.main(["--sinks", "http"]) == 2


@pytest.mark.parametrize("mode", ["sync", "live"])
def test_offline_banner_while_frames_come_without_results_then_back(
    tmp_path: Path, mode: str
) -> None:
    jsonl_path = tmp_path / "results.jsonl"
    with running_display(
        tmp_path,
        "--mode",
        mode,
        "--sinks",
        "http,jsonl",
        "--jsonl-path",
        str(jsonl_path),
        "--offline-after-s",
        "1",
    ) as display:
        wait_subscribed(display)
        seq = 0

        def feed(with_results: bool) -> None:
            nonlocal seq
            header = frame_header(seq)
            display.send_frame(header)
            if with_results:
                display.send_result(result_for(header))
                display.send_result(result_for(header))  # a duplicate: not written again
            seq += 1

        def health() -> dict[str, object]:
            status, body = http_get(display.http_url + "healthz")
            assert status == 200
            return dict(json.loads(body))

        def offline() -> bool:
            feed(with_results=False)
            return health()["inference"] == "offline"

        wait_for(offline, 15, "the display to call inference offline")
        assert display.metrics()["inference_offline"] == 1
        assert display.metrics()["offline_total"] >= 1

        def back() -> bool:
            feed(with_results=True)
            return health()["inference"] == "ok"

        wait_for(back, 15, "the display to call inference back")
        assert display.metrics()["inference_offline"] == 0
        wait_for(
            lambda: display.metrics()["duplicate_results_total"] >= 1, 5, "a duplicate counted"
        )
        seqs = [line["seq"] for line in read_jsonl(jsonl_path)]
        assert len(seqs) == len(set(seqs)), "one line per frame"
    assert "inference offline" in display.log_text() and "inference back" in display.log_text()


def test_several_streams_share_a_grid_and_leave_it_when_they_end(tmp_path: Path) -> None:
    ctx: zmq.Context[Any] = zmq.Context.instance()
    second = ctx.socket(zmq.XPUB)
    second.setsockopt(zmq.LINGER, 0)
    second_port = second.bind_to_random_port("tcp://127.0.0.1")
    green = np.zeros((FRAME_WH[1], FRAME_WH[0], 3), np.uint8)
    green[:, :, 1] = 200
    green_jpeg = encode_jpeg(green, 90)
    try:
        with running_display(
            tmp_path,
            "--mode",
            "live",
            "--sinks",
            "http",
            "--preview-endpoints",
            f"tcp://127.0.0.1:{second_port}",
            "--grid-width",
            str(2 * FRAME_WH[0]),
        ) as display:
            wait_subscribed(display)
            # The second capture's XPUB hears the display subscribe, as the first one did.
            assert second.poll(10_000, zmq.POLLIN), "the display subscribed to the second capture"
            assert second.recv()[:1] == b"\x01"

            def both_streams(count: int) -> Callable[[], bool]:
                def shown() -> bool:
                    display.send_frame(frame_header(count, "cam-a"))
                    second.send_multipart(encode(frame_header(count, "cam-b"), green_jpeg))
                    return display.metrics().get("streams", 0) == 2

                return shown

            wait_for(both_streams(0), 10, "both streams on the display")
            grid_hw = (FRAME_WH[1], 2 * FRAME_WH[0])
            # The grid goes out on the display's next loop turn.
            wait_for(lambda: _snapshot_hw(display) == grid_hw, 5, "the grid on the page")
            grid = decode_jpeg(display.snapshot())
            # cam-a (dark background, left) and cam-b (green, right), sorted by stream id.
            left = grid[FRAME_WH[1] - 60, 20].astype(int)
            right = grid[FRAME_WH[1] - 60, FRAME_WH[0] + 20].astype(int)
            assert 30 < left[2] < 90 and left[1] < 100, left
            assert right[1] > 150 and right[0] < 60 and right[2] < 60, right

            # cam-b falls silent while cam-a goes on: after a while its tile says so.
            last = 0

            def silent_tile_marked() -> bool:
                nonlocal last
                last += 1
                display.send_frame(frame_header(last, "cam-a"))
                marked = decode_jpeg(display.snapshot())
                middle = FRAME_WH[1] // 2
                strip = marked[middle - 15 : middle - 5, FRAME_WH[0] + 5 : 2 * FRAME_WH[0] - 5, 1]
                return bool(strip.astype(int).mean() < 150)

            wait_for(silent_tile_marked, 15, "the silent stream's tile marked")

            # cam-b ends: the grid keeps to the stream that still runs.
            second.send_multipart(encode(EndOfStream(stream_id="cam-b", frame_count=1)))
            wait_for(lambda: display.metrics().get("streams", 0) == 1, 10, "cam-b to leave")
            single_hw = (FRAME_WH[1], FRAME_WH[0])
            wait_for(lambda: _snapshot_hw(display) == single_hw, 5, "cam-a alone on the page")
            # cam-a jumps 11 seq numbers: the ten frames between count as missed. (The page
            # shows cam-a alone as soon as cam-b has left, so the count is the event to wait
            # for, not the page.)
            display.send_frame(frame_header(last + 11, "cam-a"))
            wait_for(lambda: display.metrics().get("preview_missed_total", 0) > 0, 5, "the jump")
            assert display.metrics()["preview_missed_total"] == 10
            assert display.process.poll() is None
    finally:
        second.close(linger=0)


def _snapshot_hw(display: DisplayProcess) -> tuple[int, int]:
    height, width = decode_jpeg(display.snapshot()).shape[:2]
    return height, width
