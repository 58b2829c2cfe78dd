"""Display loop: preview frames (SUB) and results (PULL) in, rendered frames to the sinks out."""

from __future__ import annotations

import logging
import sys
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Final

import zmq

from shared.curve import CurveError, client_keys, secure_servers
from shared.file_sinks import FrameSink, JsonLinesSink, SinkError
from shared.http_status import (
    Health,
    LoopWatch,
    StatusError,
    start_status_server,
    status_routes,
)
from shared.image import ImageError, decode_jpeg
from shared.messages import EndOfStream, Face, FrameHeader, ResultHeader
from shared.metrics import Sample, ServiceMetrics
from shared.runtime import PeriodicLogger, install_stop_handlers, setup_logging
from shared.settings import EXIT_CANNOT_START, load_settings
from shared.transport import PREVIEW_QUEUE, Socket, TransportError, bind, connect, make_socket
from shared.wire import WireError, decode
from stages.render import AssetError, Sprites, load_sprites, render_frame

from .accounting import DisplayMeters
from .outputs import close_sinks, open_sinks
from .page_state import PageState, state_route
from .ring import FrameEntry, FrameRing, LiveResults, ResultState, SeqGaps
from .screen import Screen
from .settings import DisplaySettings

__all__ = ["main", "run"]

log = logging.getLogger(__name__)

POLL_MS: Final = 100
#: Most messages taken from one socket per loop turn, so neither socket starves the other.
MAX_BATCH: Final = 256
OFFLINE_BANNER: Final = "inference offline"
#: /healthz answers 503 when the loop has not turned for this long (it turns every POLL_MS).
STUCK_AFTER_S: Final = 5.0


def _drain(socket: Socket, limit: int) -> list[list[bytes]]:
    messages: list[list[bytes]] = []
    while len(messages) < limit:
        try:
            messages.append(socket.recv_multipart(flags=zmq.NOBLOCK))
        except zmq.Again:
            break
    return messages


class _Display:
    """Matching between loop turns: frames and results in, drawn frames to the ``Screen``."""

    def __init__(
        self,
        settings: DisplaySettings,
        sprites: Sprites,
        registry: ServiceMetrics,
    ) -> None:
        self.settings = settings
        self.sprites = sprites
        self.screen = Screen([], settings.grid_width)
        self.jsonl: JsonLinesSink | None = None
        self.ring = FrameRing(settings.ring_size)
        self.live = LiveResults(settings.result_ttl_ms)
        self.meters = DisplayMeters(registry, self.ring)
        self.stats = self.meters.stats
        self.gaps = SeqGaps()
        self.last_render = time.monotonic()
        self.newest_unrendered: FrameEntry | None = None
        self.newest_unrendered_at = 0.0
        self.last_frame_at: float | None = None
        self.last_result_at = time.monotonic()
        self.offline = False
        self.watch = LoopWatch(STUCK_AFTER_S, time.monotonic)
        self.page = PageState()
        registry.describe(mode=settings.mode, sinks=",".join(settings.sinks))

    # --- status (called from HTTP threads) -------------------------------------------------

    def metrics(self) -> list[Sample]:
        return self.meters.metrics(self.offline, self.screen.streams)

    def figures(self) -> dict[str, object]:
        """The display's own figures for the page (called from HTTP threads)."""
        return {
            "mode": self.settings.mode,
            "fps_in": self.meters.frames_in.rate(),
            "fps_out": self.meters.rendered.rate(),
            "latency_p50_ms": self.meters.latency.quantile_ms(0.5),
            "latency_p95_ms": self.meters.latency.quantile_ms(0.95),
            "inference_offline": self.offline,
        }

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

    def render(self, entry: FrameEntry, faces: Sequence[Face], banner: str | None) -> None:
        header = entry.header
        try:
            frame_bgr = decode_jpeg(entry.jpeg)
        except ImageError as error:
            self.meters.malformed(f"preview frame {header.stream_id}#{header.seq}", error)
            return
        picture = render_frame(
            frame_bgr,
            faces,
            self.sprites,
            banner=banner,
            caption=f"{header.stream_id} #{header.seq}",
            emoji_opacity=self.settings.emoji_opacity,
        )
        self.last_render = time.monotonic()
        self.screen.show(header.stream_id, picture, self.last_render)
        self.page.drawn(header, faces)
        self.meters.drawn(header.captured_at_ns)
        if self.newest_unrendered is not None and self.newest_unrendered.header == header:
            self.newest_unrendered = None

    # --- messages --------------------------------------------------------------------------

    def on_result(self, frames: list[bytes]) -> None:
        try:
            message, _ = decode(frames)
        except WireError as error:
            self.meters.malformed("results", error)
            return
        if not isinstance(message, ResultHeader):
            self.meters.malformed(
                "results", WireError(f"expected a result, found {message.kind!r}")
            )
            return
        self.meters.results_in.mark()
        self.last_result_at = time.monotonic()
        if self.ring.is_duplicate(message):
            # The first result of a frame wins; add_result counts this one.
            self.ring.add_result(message)
            log.debug("duplicate result for %s seq %d skipped", message.stream_id, message.seq)
            return
        self.page.result(message)
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
            self.meters.malformed("preview", error)
            return
        if isinstance(message, EndOfStream):
            self.on_end(message)
            return
        if not isinstance(message, FrameHeader):
            self.meters.malformed("preview", WireError(f"expected a frame, found {message.kind!r}"))
            return
        self.meters.frames_in.mark()
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

    # --- drawing ---------------------------------------------------------------------------

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
            self.screen.stream_ended(summary.stream_id, now)
        self.screen.tick(now)


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
        registry = ServiceMetrics("display")
        display = _Display(settings, sprites, registry)
        registry.read_from(display)
        routes = {
            **status_routes(registry, display.health),
            "/state.json": state_route(display.page, display.figures),
        }
        frame_sinks, jsonl = open_sinks(settings, stop, routes)
        display.screen.sinks, display.jsonl = frame_sinks, jsonl
        status = start_status_server(
            settings.status_host, settings.status_port, registry, display.health
        )
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
                log.info("stats %s", display.meters.stats_line(display.offline))
        log.info("stopping; final stats %s", display.meters.stats_line(display.offline))
        return 0
    finally:
        for close in closers:
            close()
        close_sinks(frame_sinks, jsonl)
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
        return EXIT_CANNOT_START
    stop = threading.Event()
    install_stop_handlers(stop)
    try:
        return run(settings, stop, sprites=sprites)
    except (CurveError, TransportError, SinkError, StatusError) as error:
        log.error("cannot start: %s", error)
        return EXIT_CANNOT_START
    except Exception:
        log.exception("display failed")
        return 1
