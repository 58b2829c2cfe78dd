"""Capture loop: read the source, publish every frame for preview, hand frames out on credit."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from typing import Any, Final

import zmq

from shared.curve import CurveError, secure_servers
from shared.http_status import Health, LoopWatch, StatusError, start_status_server
from shared.image import ImageError, decode_jpeg, encode_jpeg, resize_to_fit
from shared.messages import EndOfStream, FrameHeader
from shared.metrics import Sample, ServiceMetrics
from shared.runtime import (
    PeriodicLogger,
    format_stats_line,
    install_stop_handlers,
    setup_logging,
)
from shared.settings import EXIT_CANNOT_START, load_settings
from shared.transport import (
    PREVIEW_QUEUE,
    Socket,
    TransportError,
    bind,
    is_loopback_endpoint,
    make_socket,
    set_heartbeats,
)
from shared.wire import WireError, encode

from .accounting import CaptureMeters
from .preview import PreviewLink
from .settings import CaptureSettings
from .sources import FrameSource, RawFrame, SourceError, open_source
from .workers import Workers

__all__ = ["main", "run"]

log = logging.getLogger(__name__)

#: Longest wait in one turn of the loop, so a stop request is seen within a second.
POLL_MS: Final = 100
#: In live mode, how long the last frame of a source waits for a worker before it is dropped.
END_GRACE_S: Final = 1.0
#: On a normal exit (exit_at_end) give queued frames and EndOfStream this long to leave.
FLUSH_LINGER_MS: Final = 1000
HEARTBEAT_IVL_MS: Final = 1000
HEARTBEAT_TIMEOUT_MS: Final = 3000
#: /healthz answers 503 when the loop has not turned for this long (it turns every POLL_MS).
STUCK_AFTER_S: Final = 5.0

Clock = Callable[[], float]


def jpeg_of(raw: RawFrame, max_wh: tuple[int, int], quality: int) -> tuple[bytes, int, int]:
    """JPEG bytes and size of a frame: stored JPEGs pass as they are unless over ``max_wh``."""
    if isinstance(raw.image, bytes):
        if raw.width <= max_wh[0] and raw.height <= max_wh[1]:
            return raw.image, raw.width, raw.height
        frame_bgr = decode_jpeg(raw.image)
    else:
        frame_bgr = raw.image
    frame_bgr = resize_to_fit(frame_bgr, max_wh)
    return encode_jpeg(frame_bgr, quality), frame_bgr.shape[1], frame_bgr.shape[0]


class CaptureLoop:
    """One capture run: read the source at its pace, publish every frame for preview, hand
    frames to workers (``Workers``), end the stream; ``run`` drives it until stopped."""

    def __init__(
        self,
        settings: CaptureSettings,
        source: FrameSource,
        router: Socket,
        preview: PreviewLink,
        clock: Clock,
        *,
        registry: ServiceMetrics | None = None,
    ) -> None:
        self.settings = settings
        self.source = source
        self.stream_id = settings.stream_id or source.default_stream_id
        self.preview = preview
        self.clock = clock
        self.registry = registry or ServiceMetrics("capture")
        self.meters = CaptureMeters(self.registry, settings.mode == "live", clock)
        self.meters.source_skipped = lambda: source.skipped
        self.workers = Workers(settings, router, self.meters, clock)
        self.watch = LoopWatch(STUCK_AFTER_S, clock)
        self.seq = 0
        self.frames: Iterator[RawFrame] = source.frames()
        self.read_this_pass = 0
        self.next_due = clock()
        self.ended_at: float | None = None
        self.eos_sent = False
        # Live mode at the source's pace reads regardless of workers; a camera always does.
        self.live_paced = settings.mode == "live" and (
            settings.pace == "source" or source.self_paced
        )
        # Lossless: the first frame waits (up to display_wait_s) for a display to listen.
        self.display_deadline: float | None = None
        if settings.mode == "lossless" and settings.display_wait_s > 0:
            self.display_deadline = clock() + settings.display_wait_s
        self.registry.describe(
            stream_id=self.stream_id,
            source=type(source).__name__,
            mode=settings.mode,
            pace=settings.pace,
        )

    # --- reading the source ----------------------------------------------------------------

    def display_listens(self, now: float) -> bool:
        """False while a lossless run still waits for its display before the first frame."""
        if self.display_deadline is None:
            return True
        if self.preview.ever_subscribed:
            self.display_deadline = None
            return True
        if now < self.display_deadline:
            return False
        log.warning(
            "no display subscribed to the preview within %.1f s: going on without one "
            "(frames published before a display subscribes are not shown)",
            self.settings.display_wait_s,
        )
        self.display_deadline = None
        return True

    def next_read_at(self) -> float | None:
        """When the next frame should be read; None while waiting for credit, a display (the
        first frame of a lossless run) or after the end."""
        if self.ended_at is not None or not self.display_listens(self.clock()):
            return None
        workers = self.workers
        if not self.live_paced and (workers.has_pending or workers.credits.pick() is None):
            return None
        if self.source.self_paced or (self.settings.pace == "fast" and not self.live_paced):
            return float("-inf")
        return self.next_due

    def poll_timeout_ms(self) -> int:
        due = self.next_read_at()
        if due is None:
            return POLL_MS
        return int(min(POLL_MS, max(0.0, (due - self.clock()) * 1000.0)))

    def next_raw(self) -> RawFrame | None:
        raw = next(self.frames, None)
        if raw is None and self.settings.loop and self.read_this_pass > 0:
            log.info("end of source, looping (seq %d)", self.seq)
            self.frames = self.source.frames()
            self.read_this_pass = 0
            raw = next(self.frames, None)
        return raw

    def read_one(self) -> None:
        raw = self.next_raw()
        now = self.clock()
        if raw is None:
            self.ended_at = now
            log.info("end of source after %d frames", self.seq)
            return
        captured_at_ns = time.time_ns()
        self.read_this_pass += 1
        period = 1.0 / self.source.fps
        # Keep to the source's clock, but after a stall restart it rather than burst to catch up.
        self.next_due = self.next_due + period if now - self.next_due < period else now + period
        try:
            jpeg, width, height = jpeg_of(
                raw, (self.settings.max_width, self.settings.max_height), self.settings.jpeg_quality
            )
            header = FrameHeader(
                stream_id=self.stream_id,
                seq=self.seq,
                captured_at_ns=captured_at_ns,
                width=width,
                height=height,
            )
            message = encode(header, jpeg)
        except (ImageError, WireError, ValueError) as error:
            self.meters.stats.increment("skipped")
            self.workers.warn("skipping a frame that cannot be sent: %s", error)
            return
        self.seq += 1
        self.meters.stats.increment("frames_read")
        self.meters.fps_in.mark()
        # The preview never blocks: a display whose queue (PREVIEW_QUEUE) is full misses this
        # frame, and counts it from the gap in seq numbers (its preview_missed).
        self.preview.send(message)
        self.workers.offer(header.seq, message)

    # --- the end of the stream -------------------------------------------------------------

    def finish_if_done(self, now: float) -> None:
        if self.ended_at is None or self.eos_sent:
            return
        workers = self.workers
        if self.settings.mode == "live" and now - self.ended_at >= END_GRACE_S:
            workers.drop_waiting()
        if workers.has_pending:
            return  # lossless: the last frame waits for a worker however long it takes
        if self.settings.mode == "lossless" and workers.inflight.total:
            return  # a worker lost now would hand its frames back; the end comes after them
        end = EndOfStream(
            stream_id=self.stream_id, frame_count=self.seq, dropped=self.meters.dropped
        )
        self.preview.send(encode(end))
        self.eos_sent = True
        log.info(
            "published end of stream %s: %d frames, %d dropped",
            self.stream_id,
            end.frame_count,
            end.dropped,
        )

    # --- status (health is called from the status server's threads) ------------------------

    def metrics(self) -> list[Sample]:
        return self.meters.metrics(evicted=self.workers.inflight.evicted)

    def health(self) -> Health:
        return self.watch.health(
            stream_id=self.stream_id,
            mode=self.settings.mode,
            seq=self.seq,
            ended=self.ended_at is not None,
            **self.meters.gauge_values,
        )

    def run(self, stop: threading.Event) -> bool:
        """Loop until ``stop``; True when it ended by itself (exit_at_end) and should flush."""
        periodic = PeriodicLogger(self.settings.stats_interval_s, clock=self.clock)
        if self.display_deadline is not None:
            log.info(
                "lossless: the first frame waits up to %.1f s for a display on the preview",
                self.settings.display_wait_s,
            )
        try:
            while not stop.is_set():
                self.workers.receive(self.poll_timeout_ms())
                self.preview.poll()
                self.workers.lose_silent(self.clock())
                due = self.next_read_at()
                if due is not None and self.clock() >= due:
                    self.read_one()
                self.workers.dispatch()
                self.finish_if_done(self.clock())
                self.meters.gauge_values = self.workers.gauges()
                self.watch.turned()
                if periodic.due():
                    log.info("stats %s", format_stats_line(self.meters.stats_fields()))
                if self.eos_sent and self.settings.exit_at_end:
                    return True
            return False
        finally:
            log.info("final stats %s", format_stats_line(self.meters.stats_fields()))
            close = getattr(self.frames, "close", None)
            if close is not None:
                close()


def run(
    settings: CaptureSettings,
    stop: threading.Event,
    ctx: zmq.Context[Any] | None = None,
    source: FrameSource | None = None,
    clock: Clock = time.monotonic,
) -> int:
    """Bind, then capture until ``stop`` is set (or the end, with exit_at_end); exit code 0.

    Opens the source from the settings unless one is given (raises SourceError); raises
    TransportError when an endpoint cannot be bound.
    """
    if source is None:
        source = open_source(settings.source, settings.fps)
    context: zmq.Context[Any] = zmq.Context() if ctx is None else ctx
    router = make_socket(context, zmq.ROUTER)
    pub = make_socket(context, zmq.XPUB, sndhwm=PREVIEW_QUEUE)
    linger_ms = 0
    closers: list[Callable[[], None]] = []
    try:
        # MANDATORY: a send to a vanished worker raises instead of vanishing silently.
        router.setsockopt(zmq.ROUTER_MANDATORY, 1)
        # HANDOVER: a restarted worker with the same fixed identity takes over at once.
        router.setsockopt(zmq.ROUTER_HANDOVER, 1)
        set_heartbeats(router, HEARTBEAT_IVL_MS, HEARTBEAT_TIMEOUT_MS)
        closers.append(secure_servers(context, settings, (router, pub), "capture"))
        frames_at = bind(router, settings.frames_endpoint)
        preview_at = bind(pub, settings.preview_endpoint)
        for endpoint in (frames_at, preview_at):
            if settings.curve_secret_key is None and not is_loopback_endpoint(endpoint):
                log.warning(
                    "%s is reachable from the network and NOT encrypted "
                    "(allow_insecure_network is set)",
                    endpoint,
                )
        registry = ServiceMetrics("capture")
        loop = CaptureLoop(settings, source, router, PreviewLink(pub), clock, registry=registry)
        registry.read_from(loop)
        status = start_status_server(
            settings.status_host, settings.status_port, registry, loop.health
        )
        if status is not None:
            closers.append(status.close)
        log.info(
            "capture ready: stream %s from %s %r at %.1f fps, mode=%s pace=%s loop=%s; "
            "frames on %s, preview on %s, curve=%s",
            loop.stream_id,
            type(source).__name__,
            settings.source,
            source.fps,
            settings.mode,
            settings.pace,
            settings.loop,
            frames_at,
            preview_at,
            "off" if settings.curve_secret_key is None else "on",
        )
        if loop.run(stop):
            linger_ms = FLUSH_LINGER_MS
        return 0
    finally:
        for close in closers:
            close()
        router.close(linger=linger_ms)
        pub.close(linger=linger_ms)
        source.close()
        if ctx is None:
            context.term()


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m services.capture``: settings, logging, signals, source; then ``run``."""
    settings = load_settings(CaptureSettings, argv)
    setup_logging("capture", settings.log_level)
    stop = threading.Event()
    install_stop_handlers(stop)
    try:
        source = open_source(settings.source, settings.fps)
    except SourceError as error:
        log.error("cannot start: %s", error)
        return EXIT_CANNOT_START
    try:
        return run(settings, stop, source=source)
    except (CurveError, TransportError, StatusError) as error:
        log.error("cannot start: %s", error)
        return EXIT_CANNOT_START
    except Exception:
        log.exception("capture failed")
        return 1
