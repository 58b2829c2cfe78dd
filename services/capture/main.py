"""Capture loop: read the source, publish every frame for preview, hand frames out on credit."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from typing import Any, Final

import zmq

from shared.image import ImageError, decode_jpeg, encode_jpeg, resize_to_fit
from shared.log_throttle import LogThrottle
from shared.messages import EndOfStream, FrameHeader, WorkRequest
from shared.runtime import (
    PeriodicLogger,
    RateMeter,
    Stats,
    format_stats_line,
    install_stop_handlers,
    setup_logging,
)
from shared.settings import EXIT_BAD_SETTINGS, load_settings
from shared.transport import (
    Socket,
    TransportError,
    bind,
    is_loopback_endpoint,
    make_socket,
    recv_multipart_timeout,
    send_nowait,
    set_heartbeats,
)
from shared.wire import WireError, decode_as, encode, split_envelope

from .dispatch import Credits, NewestSlot
from .settings import CaptureSettings
from .sources import FrameSource, RawFrame, SourceError, open_source

__all__ = ["main", "run"]

log = logging.getLogger(__name__)

#: Longest wait in one turn of the loop, so a stop request is seen within a second.
POLL_MS: Final = 100
#: Requests handled per turn at most, so a flood cannot starve reading the source.
MAX_REQUESTS_PER_TURN: Final = 256
#: In live mode, how long the last frame of a source waits for a worker before it is dropped.
END_GRACE_S: Final = 1.0
#: On a normal exit (exit_at_end) give queued frames and EndOfStream this long to leave.
FLUSH_LINGER_MS: Final = 1000
HEARTBEAT_IVL_MS: Final = 1000
HEARTBEAT_TIMEOUT_MS: Final = 3000
WARNING_INTERVAL_S: Final = 5.0

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
    """The state of one capture run; ``run`` drives it until stopped or, optionally, the end."""

    def __init__(
        self,
        settings: CaptureSettings,
        source: FrameSource,
        router: Socket,
        pub: Socket,
        clock: Clock,
    ) -> None:
        self.settings = settings
        self.source = source
        self.stream_id = settings.stream_id or source.default_stream_id
        self.router = router
        self.pub = pub
        self.clock = clock
        self.stats = Stats()
        self.credits = Credits(settings.max_credit)
        # Frames [header, payload] read but not yet sent to a worker (at most one).
        self.slot: NewestSlot[list[bytes]] = NewestSlot()
        self.fps_in = RateMeter(clock=clock)
        self.fps_out = RateMeter(clock=clock)
        self.throttle = LogThrottle(WARNING_INTERVAL_S, clock)
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

    def warn(self, message: str, error: Exception) -> None:
        """A warning at most once per WARNING_INTERVAL_S; floods are counted, not logged."""
        suppressed = self.throttle.ready()
        if suppressed is not None:
            more = f" (and {suppressed} more since the last warning)" if suppressed else ""
            log.warning(message + more, error)

    # --- requests from workers -------------------------------------------------------------

    def receive_requests(self, timeout_ms: int) -> None:
        frames = recv_multipart_timeout(self.router, timeout_ms)
        handled = 0
        while frames is not None:
            self.handle_request(frames)
            handled += 1
            if handled >= MAX_REQUESTS_PER_TURN:
                return
            frames = recv_multipart_timeout(self.router, 0)

    def handle_request(self, frames: Sequence[bytes]) -> None:
        try:
            identity, rest = split_envelope(frames)
            request, _ = decode_as(rest, WorkRequest)
        except WireError as error:
            self.stats.increment("malformed")
            self.warn("skipping malformed message from a worker: %s", error)
            return
        credit = self.credits.add(identity, request.credit)
        log.debug("worker %r asks for %d, holds %d", identity, request.credit, credit)

    # --- reading the source ----------------------------------------------------------------

    def next_read_at(self) -> float | None:
        """When the next frame should be read; None while waiting for credit or after the end."""
        if self.ended_at is not None:
            return None
        if not self.live_paced and (self.slot or self.credits.pick() is None):
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
            self.stats.increment("skipped")
            self.warn("skipping a frame that cannot be sent: %s", error)
            return
        self.seq += 1
        self.stats.increment("frames_read")
        self.fps_in.mark()
        if not send_nowait(self.pub, message):
            self.stats.increment("preview_dropped")
        if self.slot.put(message):
            self.stats.increment("drops")
            log.debug("dropped seq %d: no worker took it before seq %d", header.seq - 1, header.seq)

    # --- handing frames to workers ---------------------------------------------------------

    def send_to(self, worker: bytes, message: list[bytes]) -> bool:
        try:
            self.router.send_multipart([worker, *message], flags=zmq.NOBLOCK)
            return True
        except zmq.Again:
            # Its queue is full although it had credit: treat it as gone until it asks again.
            why = "its queue is full"
        except zmq.ZMQError as error:
            if error.errno != zmq.EHOSTUNREACH:
                raise
            why = "it is no longer connected"
        lost = self.credits.forget(worker)
        self.stats.increment("unreachable")
        log.warning("forgetting worker %r (%d credit): %s", worker, lost, why)
        return False

    def dispatch(self) -> None:
        while True:
            message = self.slot.peek()
            worker = self.credits.pick()
            if message is None or worker is None:
                return
            if self.send_to(worker, message):
                self.credits.use(worker)
                self.slot.take()
                self.stats.increment("frames_sent")
                self.fps_out.mark()

    def finish_if_done(self, now: float) -> None:
        if self.ended_at is None or self.eos_sent:
            return
        if self.slot and self.settings.mode == "live" and now - self.ended_at >= END_GRACE_S:
            self.slot.drop()
            self.stats.increment("drops")
        if self.slot:
            return  # lossless: the last frame waits for a worker however long it takes
        end = EndOfStream(
            stream_id=self.stream_id, frame_count=self.seq, dropped=self.stats.get("drops")
        )
        send_nowait(self.pub, encode(end))
        self.eos_sent = True
        log.info(
            "published end of stream %s: %d frames, %d dropped",
            self.stream_id,
            end.frame_count,
            end.dropped,
        )

    def stats_fields(self) -> dict[str, object]:
        counts = self.stats.snapshot()
        return {
            "fps_in": self.fps_in.rate(),
            "fps_out": self.fps_out.rate(),
            "drops": counts.get("drops", 0),
            "malformed": counts.get("malformed", 0),
            "workers": self.credits.workers_with_credit,
            "credit": self.credits.total,
            "read": counts.get("frames_read", 0),
            "sent": counts.get("frames_sent", 0),
            "skipped": counts.get("skipped", 0) + self.source.skipped,
            "unreachable": counts.get("unreachable", 0),
            "preview_dropped": counts.get("preview_dropped", 0),
        }

    def run(self, stop: threading.Event) -> bool:
        """Loop until ``stop``; True when it ended by itself (exit_at_end) and should flush."""
        periodic = PeriodicLogger(self.settings.stats_interval_s, clock=self.clock)
        try:
            while not stop.is_set():
                self.receive_requests(self.poll_timeout_ms())
                due = self.next_read_at()
                if due is not None and self.clock() >= due:
                    self.read_one()
                self.dispatch()
                self.finish_if_done(self.clock())
                if periodic.due():
                    log.info("stats %s", format_stats_line(self.stats_fields()))
                if self.eos_sent and self.settings.exit_at_end:
                    return True
            return False
        finally:
            log.info("final stats %s", format_stats_line(self.stats_fields()))
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
    pub = make_socket(context, zmq.PUB)
    linger_ms = 0
    try:
        # MANDATORY: a send to a vanished worker raises instead of vanishing silently.
        router.setsockopt(zmq.ROUTER_MANDATORY, 1)
        # HANDOVER: a restarted worker with the same fixed identity takes over at once.
        router.setsockopt(zmq.ROUTER_HANDOVER, 1)
        set_heartbeats(router, HEARTBEAT_IVL_MS, HEARTBEAT_TIMEOUT_MS)
        frames_at = bind(router, settings.frames_endpoint)
        preview_at = bind(pub, settings.preview_endpoint)
        for endpoint in (frames_at, preview_at):
            if not is_loopback_endpoint(endpoint):
                log.warning("%s is reachable from the network and not encrypted", endpoint)
        loop = CaptureLoop(settings, source, router, pub, clock)
        log.info(
            "capture ready: stream %s from %s %r at %.1f fps, mode=%s pace=%s loop=%s; "
            "frames on %s, preview on %s",
            loop.stream_id,
            type(source).__name__,
            settings.source,
            source.fps,
            settings.mode,
            settings.pace,
            settings.loop,
            frames_at,
            preview_at,
        )
        if loop.run(stop):
            linger_ms = FLUSH_LINGER_MS
        return 0
    finally:
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
        return EXIT_BAD_SETTINGS
    try:
        return run(settings, stop, source=source)
    except TransportError as error:
        log.error("cannot start: %s", error)
        return 1
    except Exception:
        log.exception("capture failed")
        return 1
