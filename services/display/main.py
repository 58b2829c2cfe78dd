"""Display loop: preview frames (SUB) and results (PULL) in, rendered frames to the sinks out."""

from __future__ import annotations

import dataclasses
import logging
import sys
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Final

import zmq

from shared.curve import CurveError, client_keys, secure_servers
from shared.http_status import (
    Health,
    LoopWatch,
    Metric,
    StatusError,
    counters,
    gauges,
    start_status_server,
)
from shared.image import ImageError, ImageU8, decode_jpeg
from shared.log_throttle import LogThrottle, and_more
from shared.messages import EndOfStream, Face, FrameHeader, ResultHeader
from shared.runtime import (
    LatencyWindow,
    PeriodicLogger,
    RateMeter,
    Stats,
    format_stats_line,
    install_stop_handlers,
    setup_logging,
)
from shared.settings import EXIT_BAD_SETTINGS, load_settings
from shared.transport import PREVIEW_QUEUE, Socket, TransportError, bind, connect, make_socket
from shared.wire import WireError, decode

from .render import (
    AssetError,
    Sprites,
    load_sprites,
    placeholder_frame,
    render_frame,
    tile_grid,
    with_banner,
)
from .ring import FrameEntry, FrameRing, LiveResults, ResultState, SeqGaps
from .settings import DisplaySettings
from .sinks import FrameSink, HttpSink, JsonLinesSink, SinkError, VideoFileSink, WindowSink

__all__ = ["main", "run"]

log = logging.getLogger(__name__)

POLL_MS: Final = 100
#: Most messages taken from one socket per loop turn, so neither socket starves the other.
MAX_BATCH: Final = 256
WARN_EVERY_S: Final = 5.0
PLACEHOLDER_WH: Final = (640, 480)
OFFLINE_BANNER: Final = "inference offline"
#: /healthz answers 503 when the loop has not turned for this long (it turns every POLL_MS).
STUCK_AFTER_S: Final = 5.0
#: In the grid, a stream without frames for this long is marked, and forgotten after FORGET_S.
TILE_STALE_S: Final = 3.0
TILE_FORGET_S: Final = 60.0
COUNTER_HELP: Final = {
    "frames": "Preview frames received.",
    "preview_missed": "Preview frames that never arrived (gaps in a stream's seq numbers): "
    "the capture's preview queue for this display was full, so the display read too slowly.",
    "results": "Results received (duplicates included).",
    "matched": "Frames paired with their result.",
    "missing": "Frames given up on without a result.",
    "late_results": "Results that came after their frame was counted missing.",
    "unknown_results": "Results whose frame never came.",
    "duplicate_results": "Second and later results of one frame (not written, not drawn).",
    "duplicate_frames": "Frames received twice.",
    "malformed": "Messages that broke the wire format, and undecodable preview frames.",
    "rendered": "Frames drawn into the sinks.",
    "skipped": "Live frames not drawn because a newer one came in the same turn.",
    "waiting": "Frames drawn with a 'waiting for inference' or offline banner.",
    "stale": "Live frames drawn with a stale-result banner.",
    "offline": "Times inference went offline (frames but no results for offline_after_s).",
    "end_of_stream": "End-of-stream messages received.",
}
GAUGE_HELP: Final = {
    "fps_in": "Preview frames received per second.",
    "fps_out": "Frames drawn per second.",
    "results_per_s": "Results received per second.",
    "in_flight": "Frames waiting for their result.",
    "inference_offline": "1 while frames arrive but no result came for offline_after_s.",
    "latency_p50_ms": "Median time from capture to drawing.",
    "latency_p95_ms": "95th percentile of the time from capture to drawing.",
    "latency_last_ms": "Time from capture to drawing of the frame drawn last.",
    "streams": "Streams shown (one, or the tiles of the grid).",
}


def _drain(socket: Socket, limit: int) -> list[list[bytes]]:
    messages: list[list[bytes]] = []
    while len(messages) < limit:
        try:
            messages.append(socket.recv_multipart(flags=zmq.NOBLOCK))
        except zmq.Again:
            break
    return messages


@dataclasses.dataclass
class _Tile:
    """The latest drawn frame of one stream, for the grid."""

    picture: ImageU8
    drawn_at: float
    ended: bool = False


class _Display:
    """The state between loop turns: ring, live results, meters; it renders into the sinks."""

    def __init__(
        self,
        settings: DisplaySettings,
        sprites: Sprites,
        frame_sinks: Sequence[FrameSink],
        jsonl: JsonLinesSink | None,
    ) -> None:
        self.settings = settings
        self.sprites = sprites
        self.frame_sinks = list(frame_sinks)
        self.jsonl = jsonl
        self.ring = FrameRing(settings.ring_size)
        self.live = LiveResults(settings.result_ttl_ms, settings.smoothing)
        self.stats = Stats()
        self.frames_in = RateMeter()
        self.results_in = RateMeter()
        self.rendered = RateMeter()
        self.latency = LatencyWindow()
        self.latency_last_ms: float | None = None
        self.gaps = SeqGaps()
        self.tiles: dict[str, _Tile] = {}
        self.grid_due = False
        self.grid_drawn_at = 0.0
        self.malformed_log = LogThrottle(WARN_EVERY_S)
        self.last_render = time.monotonic()
        self.newest_unrendered: FrameEntry | None = None
        self.newest_unrendered_at = 0.0
        self.last_frame_at: float | None = None
        self.last_result_at = time.monotonic()
        self.offline = False
        self.watch = LoopWatch(STUCK_AFTER_S, time.monotonic)

    def counters(self) -> dict[str, int]:
        return {**self.stats.snapshot(), **dataclasses.asdict(self.ring.counts)}

    def stats_line(self) -> str:
        counts = self.counters()
        p50, p95 = self.latency.percentile(50), self.latency.percentile(95)
        return format_stats_line(
            {
                "fps_in": self.frames_in.rate(),
                "fps_out": self.rendered.rate(),
                "results_s": self.results_in.rate(),
                "drops": counts.get("skipped", 0),
                "malformed": counts.get("malformed", 0),
                "p50_ms": p50,
                "p95_ms": p95,
                "in_flight": len(self.ring),
                "offline": int(self.offline),
                "matched": counts["matched"],
                "missing": counts["missing"],
                "preview_missed": counts.get("preview_missed", 0),
                "stale": counts.get("stale", 0),
                "late": counts["late_results"],
                "unknown": counts["unknown_results"],
                "duplicate": counts["duplicate_results"],
            }
        )

    # --- status (called from HTTP threads) -------------------------------------------------

    def metrics(self) -> list[Metric]:
        counts = {name: 0 for name in COUNTER_HELP}
        counts.update(self.counters())
        values: dict[str, float | int | None] = {
            "fps_in": self.frames_in.rate(),
            "fps_out": self.rendered.rate(),
            "results_per_s": self.results_in.rate(),
            "in_flight": len(self.ring),
            "inference_offline": int(self.offline),
            "latency_p50_ms": self.latency.percentile(50),
            "latency_p95_ms": self.latency.percentile(95),
            "latency_last_ms": self.latency_last_ms,
            "streams": len(self.tiles),
        }
        return counters(counts, COUNTER_HELP) + gauges(values, GAUGE_HELP)

    def health(self) -> Health:
        now = time.monotonic()
        return self.watch.health(
            mode=self.settings.mode,
            inference="offline" if self.offline else "ok",
            last_frame_age_s=round(now - self.last_render, 3),
            last_result_age_s=round(now - self.last_result_at, 3),
        )

    def check_offline(self, now: float) -> bool:
        """Whether frames arrive but no result came for offline_after_s; logs each change."""
        after_s = self.settings.offline_after_s
        frames_coming = self.last_frame_at is not None and now - self.last_frame_at < after_s
        offline = frames_coming and now - self.last_result_at >= after_s
        if offline and not self.offline:
            self.stats.increment("offline")
            log.warning(
                "inference offline: frames arrive but no result for %.1f s",
                now - self.last_result_at,
            )
        elif self.offline and not offline and now - self.last_result_at < after_s:
            log.info("inference back: results arrive again")
        self.offline = offline
        return offline

    def _shown(self, stream_id: str) -> bool:
        wanted = self.settings.show_stream
        return wanted is None or wanted == stream_id

    def malformed(self, where: str, error: Exception) -> None:
        self.stats.increment("malformed")
        held = self.malformed_log.ready()
        if held is not None:
            log.warning("malformed message on %s skipped: %s%s", where, error, and_more(held))

    def render(self, entry: FrameEntry, faces: Sequence[Face], banner: str | None) -> None:
        header = entry.header
        try:
            frame_bgr = decode_jpeg(entry.jpeg)
        except ImageError as error:
            self.malformed(f"preview frame {header.stream_id}#{header.seq}", error)
            return
        picture = render_frame(
            frame_bgr,
            faces,
            self.sprites,
            banner=banner,
            caption=f"{header.stream_id} #{header.seq}",
            emoji_opacity=self.settings.emoji_opacity,
        )
        self.show(header.stream_id, picture)
        self.stats.increment("rendered")
        self.rendered.mark()
        self.latency_last_ms = (time.time_ns() - header.captured_at_ns) / 1e6
        self.latency.add(self.latency_last_ms)
        self.last_render = time.monotonic()
        if self.newest_unrendered is not None and self.newest_unrendered.header == header:
            self.newest_unrendered = None

    def show(self, stream_id: str, picture: ImageU8) -> None:
        """Every drawn frame of a lone stream goes to the sinks as it is; with several
        streams, it becomes that stream's tile and the grid goes out once per loop turn."""
        if stream_id not in self.tiles:
            # A new stream starts a new show: streams that ended before leave the grid.
            for ended in [name for name, tile in self.tiles.items() if tile.ended]:
                del self.tiles[ended]
        self.tiles[stream_id] = _Tile(picture, time.monotonic())
        if len(self.tiles) == 1:
            for sink in self.frame_sinks:
                sink.show(picture)
        else:
            self.grid_due = True

    def show_grid(self, now: float, force: bool = False) -> None:
        """Send the grid of all streams to the sinks if a tile changed (or a stale one needs
        its age redrawn); forget streams silent for TILE_FORGET_S."""
        for stream_id, tile in list(self.tiles.items()):
            if now - tile.drawn_at >= TILE_FORGET_S:
                log.info(
                    "stream %s: no frame for %.0f s, removed from the grid",
                    stream_id,
                    now - tile.drawn_at,
                )
                del self.tiles[stream_id]
                self.grid_due = True
        if not self.tiles or (len(self.tiles) == 1 and not self.grid_due):
            # A lone stream's frames went to the sinks as they were drawn.
            return
        stale = len(self.tiles) > 1 and any(
            not tile.ended and now - tile.drawn_at >= TILE_STALE_S for tile in self.tiles.values()
        )
        if not (force or self.grid_due or (stale and now - self.grid_drawn_at >= 1.0)):
            return
        pictures = []
        for _, tile in sorted(self.tiles.items()):
            age_s = now - tile.drawn_at
            # In the middle: the tile's own banner (e.g. "inference offline") stays readable.
            if tile.ended:
                pictures.append(with_banner(tile.picture, "stream ended", middle=True))
            elif age_s >= TILE_STALE_S:
                text = f"no frames for {age_s:.0f} s"
                pictures.append(with_banner(tile.picture, text, middle=True))
            else:
                pictures.append(tile.picture)
        grid = tile_grid(pictures, self.settings.grid_width)
        for sink in self.frame_sinks:
            sink.show(grid)
        self.grid_due = False
        self.grid_drawn_at = now

    def on_result(self, frames: list[bytes]) -> None:
        try:
            message, _ = decode(frames)
        except WireError as error:
            self.malformed("results", error)
            return
        if not isinstance(message, ResultHeader):
            self.malformed("results", WireError(f"expected a result, found {message.kind!r}"))
            return
        self.results_in.mark()
        self.last_result_at = time.monotonic()
        if self.ring.is_duplicate(message):
            # The first result of a frame wins; add_result counts this one.
            self.ring.add_result(message)
            log.debug("duplicate result for %s seq %d skipped", message.stream_id, message.seq)
            return
        if message.error is not None:
            self.stats.increment("result_errors")
        if self.jsonl is not None:
            self.jsonl.write(message, time.time_ns())
        if self.settings.mode == "live":
            self.live.add(message)
        pair = self.ring.add_result(message)
        if pair is not None and self.settings.mode == "sync" and self._shown(message.stream_id):
            self.render(pair.frame, pair.result.faces, pair.result.error)

    def on_preview(self, frames: list[bytes], newest: dict[str, FrameEntry]) -> None:
        try:
            message, payload = decode(frames)
        except WireError as error:
            self.malformed("preview", error)
            return
        if isinstance(message, EndOfStream):
            self.on_end(message)
            return
        if not isinstance(message, FrameHeader):
            self.malformed("preview", WireError(f"expected a frame, found {message.kind!r}"))
            return
        self.frames_in.mark()
        self.last_frame_at = time.monotonic()
        missed = self.gaps.missed(message)
        if missed:
            self.stats.increment("preview_missed", missed)
        entry = FrameEntry(message, payload)
        pair = self.ring.add_frame(message, payload)
        if not self._shown(message.stream_id):
            self.stats.increment("other_stream")
            return
        if self.settings.mode == "sync":
            if pair is not None:
                self.render(entry, pair.result.faces, pair.result.error)
            else:
                self.newest_unrendered = entry
                self.newest_unrendered_at = time.monotonic()
            return
        if message.stream_id in newest:
            # Live: only the newest frame per turn is drawn, so a slow render never lags.
            self.stats.increment("skipped")
        newest[message.stream_id] = entry

    def on_end(self, end: EndOfStream) -> None:
        self.stats.increment("end_of_stream")
        grace = self.settings.end_grace_s if self.settings.mode == "sync" else 0.0
        log.info(
            "stream %s ended: %d frames (%d dropped by capture); waiting up to %.1f s for results",
            end.stream_id,
            end.frame_count,
            end.dropped,
            grace,
        )
        self.ring.end_stream(end, time.monotonic(), grace)

    def render_live(self, newest: Mapping[str, FrameEntry]) -> None:
        offline = self.check_offline(time.monotonic())
        for entry in newest.values():
            view = self.live.view(entry.header)
            banner = None
            if offline:
                banner = OFFLINE_BANNER
                self.stats.increment("waiting")
            elif view.state is ResultState.WAITING:
                banner = "waiting for inference"
                self.stats.increment("waiting")
            elif view.state is ResultState.STALE:
                banner = f"inference stale ({(view.age_ms or 0.0) / 1000:.1f} s)"
                self.stats.increment("stale")
            self.render(entry, view.faces, banner)

    def tick(self) -> None:
        now = time.monotonic()
        offline = self.check_offline(now)
        waiting_s = self.settings.waiting_after_ms / 1000
        if (
            self.newest_unrendered is not None
            and now - self.newest_unrendered_at >= waiting_s
            and now - self.last_render >= waiting_s
        ):
            # Sync mode with no results coming: show that frames arrive, and say why no faces.
            self.stats.increment("waiting")
            banner = OFFLINE_BANNER if offline else "waiting for inference"
            self.render(self.newest_unrendered, (), banner)
            self.newest_unrendered = None
        for summary in self.ring.finished_streams(now):
            log.info(
                "stream %s complete: frames=%d results=%d matched=%d missing=%d "
                "dropped_by_capture=%d%s",
                summary.stream_id,
                summary.frames,
                summary.results,
                summary.matched,
                summary.missing,
                summary.dropped,
                " (grace period ran out)" if summary.timed_out else "",
            )
            tile = self.tiles.get(summary.stream_id)
            if tile is None:
                continue
            tile.ended = True
            self.grid_due = True
            if all(t.ended for t in self.tiles.values()):
                # The last stream shown ended: the final picture stays (and a video file ends).
                if len(self.tiles) > 1:
                    self.show_grid(now, force=True)
                for sink in self.frame_sinks:
                    sink.end_stream()
            else:
                # Others go on: the grid keeps to the streams that are still running.
                del self.tiles[summary.stream_id]
        self.show_grid(now)
        for sink in self.frame_sinks:
            sink.tick()


def _build_sinks(
    settings: DisplaySettings, stop: threading.Event, display: _Display
) -> tuple[list[FrameSink], JsonLinesSink | None]:
    frame_sinks: list[FrameSink] = []
    jsonl: JsonLinesSink | None = None
    try:
        for name in settings.sinks:
            if name == "window":
                frame_sinks.append(WindowSink(settings.window_title, stop))
            elif name == "http":
                http = HttpSink(
                    settings.http_host,
                    settings.http_port,
                    title=settings.window_title,
                    placeholder_bgr=placeholder_frame(PLACEHOLDER_WH, "waiting for frames"),
                    jpeg_quality=settings.jpeg_quality,
                    max_clients=settings.http_max_clients,
                    status=display,
                )
                frame_sinks.append(http)
                print(f"display: open {http.url}", flush=True)
                log.info("display: open %s", http.url)
            elif name == "video" and settings.video_path is not None:
                frame_sinks.append(VideoFileSink(settings.video_path, settings.video_fps))
            elif name == "jsonl" and settings.jsonl_path is not None:
                jsonl = JsonLinesSink(settings.jsonl_path)
    except BaseException:
        _close_sinks(frame_sinks, jsonl)
        raise
    return frame_sinks, jsonl


def _close_sinks(frame_sinks: Sequence[FrameSink], jsonl: JsonLinesSink | None) -> None:
    for sink in frame_sinks:
        try:
            sink.close()
        except Exception:
            log.exception("closing %s failed", type(sink).__name__)
    if jsonl is not None:
        jsonl.close()


def run(
    settings: DisplaySettings,
    stop: threading.Event,
    ctx: zmq.Context[Any] | None = None,
    *,
    sprites: Sprites | None = None,
) -> int:
    """Receive, match and render until ``stop`` is set; 0 on a clean stop.

    Raises AssetError (missing emoji), TransportError or SinkError when it cannot start.
    """
    sprites = load_sprites() if sprites is None else sprites
    context: zmq.Context[Any] = zmq.Context() if ctx is None else ctx
    sockets: list[Socket] = []
    frame_sinks: list[FrameSink] = []
    jsonl: JsonLinesSink | None = None
    closers: list[Callable[[], None]] = []
    try:
        # A bounded queue: a display that falls behind loses preview frames (counted as
        # preview_missed) instead of holding seconds of old ones.
        sub = make_socket(context, zmq.SUB, rcvhwm=PREVIEW_QUEUE)
        sockets.append(sub)
        sub.setsockopt(zmq.SUBSCRIBE, b"")
        preview_keys = client_keys(settings, settings.curve_capture_public_key)
        if preview_keys is not None:
            preview_keys.apply(sub)
        for endpoint in settings.preview_endpoints:
            connect(sub, endpoint)
        pull = make_socket(context, zmq.PULL)
        sockets.append(pull)
        closers.append(secure_servers(context, settings, (pull,), "display"))
        bound = bind(pull, settings.results_endpoint)
        display = _Display(settings, sprites, [], None)
        frame_sinks, jsonl = _build_sinks(settings, stop, display)
        display.frame_sinks, display.jsonl = frame_sinks, jsonl
        status = start_status_server("display", settings.status_host, settings.status_port, display)
        if status is not None:
            closers.append(status.close)
        log.info(
            "display up: mode=%s sinks=%s preview<-%s results<-%s curve=%s",
            settings.mode,
            ",".join(settings.sinks),
            ",".join(settings.preview_endpoints),
            bound,
            "on" if preview_keys is not None else "off",
        )
        poller = zmq.Poller()
        poller.register(sub, zmq.POLLIN)
        poller.register(pull, zmq.POLLIN)
        periodic = PeriodicLogger(settings.stats_interval_s)
        while not stop.is_set():
            ready = dict(poller.poll(POLL_MS))
            # Results first, so a frame that arrives in the same turn sees its result.
            if pull in ready:
                for frames in _drain(pull, MAX_BATCH):
                    display.on_result(frames)
            if sub in ready:
                newest: dict[str, FrameEntry] = {}
                for frames in _drain(sub, MAX_BATCH):
                    display.on_preview(frames, newest)
                display.render_live(newest)
            display.tick()
            display.watch.turned()
            if periodic.due():
                log.info("stats %s", display.stats_line())
        log.info("stopping; final stats %s", display.stats_line())
        return 0
    finally:
        for close in closers:
            close()
        _close_sinks(frame_sinks, jsonl)
        for socket in sockets:
            socket.close(linger=0)
        if ctx is None:
            context.term()


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m services.display``: exit 0 on SIGTERM/SIGINT, 2 on bad settings or assets."""
    settings = load_settings(DisplaySettings, argv)
    setup_logging("display", settings.log_level)
    try:
        sprites = load_sprites()
    except AssetError as error:
        print(f"services.display: {error}", file=sys.stderr)
        return EXIT_BAD_SETTINGS
    stop = threading.Event()
    install_stop_handlers(stop)
    try:
        return run(settings, stop, sprites=sprites)
    except CurveError as error:
        log.error("cannot start: %s", error)
        return EXIT_BAD_SETTINGS
    except (TransportError, SinkError, StatusError) as error:
        log.error("cannot start: %s", error)
        return 1
    except Exception:
        log.exception("display failed")
        return 1
