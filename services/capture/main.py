"""Capture loop: read the source, publish every frame for preview, hand frames out on credit."""

from __future__ import annotations

import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterator, Sequence
from typing import Any, Final

import zmq

from shared.curve import CurveError, secure_servers
from shared.http_status import (
    Health,
    LoopWatch,
    Metric,
    StatusError,
    counters,
    gauges,
    start_status_server,
)
from shared.image import ImageError, decode_jpeg, encode_jpeg, resize_to_fit
from shared.log_throttle import LogThrottle, and_more
from shared.messages import EndOfStream, FrameHeader, Heartbeat, WorkRequest
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
from shared.transport import (
    PREVIEW_QUEUE,
    Socket,
    TransportError,
    bind,
    is_loopback_endpoint,
    make_socket,
    recv_multipart_timeout,
    set_heartbeats,
)
from shared.wire import WireError, decode, encode, split_envelope

from .dispatch import Credits, InFlight, LostWorker, NewestSlot
from .preview import PreviewLink
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
#: /healthz answers 503 when the loop has not turned for this long (it turns every POLL_MS).
STUCK_AFTER_S: Final = 5.0

#: Help text of the counters on /metrics.
COUNTER_HELP: Final = {
    "frames_read": "Frames read from the source.",
    "frames_sent": "Frames handed to workers (redispatched ones included).",
    "drops": "Frames never processed: replaced by a newer one (live), or lost on a dead worker "
    "(live).",
    "malformed": "Messages from workers that broke the wire format.",
    "skipped": "Frames that could not be encoded or sent.",
    "unreachable": "Sends that failed because the worker was gone or full.",
    "worker_lost": "Workers given up on (silent for worker_timeout_s, disconnected, restarted).",
    "redispatched": "Frames handed to another worker after theirs was lost (lossless).",
    "lost_in_flight": "Frames in flight on a lost worker (re-queued in lossless, dropped in live).",
    "heartbeats": "Heartbeats received from workers.",
}
GAUGE_HELP: Final = {
    "fps_in": "Frames read per second.",
    "fps_out": "Frames handed to workers per second.",
    "in_flight": "Frames handed to workers that have not reported them done.",
    "requeued": "Frames of lost workers waiting for another worker.",
    "workers": "Workers heard from within worker_timeout_s.",
    "workers_with_credit": "Workers that may be sent a frame now.",
    "credit": "Frames workers have asked for in total.",
    "latency_p50_ms": "Median time from handing a frame out to hearing it is done.",
    "latency_p95_ms": "95th percentile of the time from handing a frame out to hearing it done.",
}

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
        preview: PreviewLink,
        clock: Clock,
    ) -> None:
        self.settings = settings
        self.source = source
        self.stream_id = settings.stream_id or source.default_stream_id
        self.router = router
        self.preview = preview
        self.clock = clock
        self.stats = Stats()
        self.credits = Credits(settings.max_credit)
        # (seq, frames [header, payload]) read but not yet sent to a worker (at most one).
        self.slot: NewestSlot[tuple[int, list[bytes]]] = NewestSlot()
        # What each worker holds, so a lost worker's frames can go to another (lossless).
        self.inflight: InFlight[list[bytes]] = InFlight(settings.max_credit)
        # Frames of lost workers, by seq, handed out before any new frame.
        self.requeued: OrderedDict[int, list[bytes]] = OrderedDict()
        self.latency = LatencyWindow()
        self.watch = LoopWatch(STUCK_AFTER_S, clock)
        # Written by the loop, read by the status thread: replaced whole, never mutated.
        self.gauge_values: dict[str, float | int | None] = {}
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
        # Lossless: the first frame waits (up to display_wait_s) for a display to listen.
        self.display_deadline: float | None = None
        if settings.mode == "lossless" and settings.display_wait_s > 0:
            self.display_deadline = clock() + settings.display_wait_s

    def warn(self, message: str, error: Exception) -> None:
        """A warning at most once per WARNING_INTERVAL_S; floods are counted, not logged."""
        suppressed = self.throttle.ready()
        if suppressed is not None:
            more = and_more(suppressed)
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
            message, _ = decode(rest)
            if not isinstance(message, WorkRequest | Heartbeat):
                raise WireError(
                    f"expected a 'ready' or 'heartbeat' message, found {message.kind!r}"
                )
        except WireError as error:
            self.stats.increment("malformed")
            self.warn("skipping malformed message from a worker: %s", error)
            return
        now = self.clock()
        if isinstance(message, Heartbeat):
            self.stats.increment("heartbeats")
            self.inflight.heard(identity, now)
            return
        lost = self.inflight.heard(identity, now, message.started_at_ns)
        if lost is not None:
            self.lose_worker(identity, "it restarted", lost)
        for span_s in self.inflight.done(identity, message.done, now):
            self.latency.add(span_s * 1000.0)
        for seq in message.done:
            # Declared lost too early: it finished them after all.
            self.requeued.pop(seq, None)
        credit = self.credits.add(identity, message.credit)
        log.debug("worker %r asks for %d, holds %d", identity, message.credit, credit)

    def lose_worker(
        self, worker: bytes, why: str, lost: LostWorker[list[bytes]] | None = None
    ) -> None:
        """Give ``worker`` up: forget its credit; re-queue (lossless) or drop (live) its frames."""
        if lost is None:
            lost = self.inflight.lose(worker)
        credit = self.credits.forget(worker)
        self.stats.increment("worker_lost")
        seqs = [seq for seq, _ in lost.frames]
        if seqs:
            self.stats.increment("lost_in_flight", len(seqs))
        if self.settings.mode == "lossless":
            merged = dict(self.requeued)
            merged.update(lost.frames)
            self.requeued = OrderedDict(sorted(merged.items()))
            fate = "re-queued"
        else:
            self.stats.increment("drops", len(seqs))
            fate = "dropped"
        log.warning(
            "worker %r lost (%s): %d credit forgotten, frames in flight %s %s",
            worker,
            why,
            credit,
            seqs or "none",
            fate,
        )

    def lose_silent_workers(self, now: float) -> None:
        timeout_s = self.settings.worker_timeout_s
        for worker in self.inflight.silent(now, timeout_s):
            self.lose_worker(worker, f"not heard from for {timeout_s:.1f} s")

    # --- reading the source ----------------------------------------------------------------

    def display_listens(self, now: float) -> bool:
        """False while a lossless run still waits for its display before the first frame."""
        self.preview.poll()
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
        if not self.live_paced and (self.slot or self.requeued or self.credits.pick() is None):
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
        # The preview never blocks: a display whose queue (PREVIEW_QUEUE) is full misses this
        # frame, and counts it from the gap in seq numbers (its preview_missed).
        self.preview.send(message)
        if self.slot.put((header.seq, message)):
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
            self.stats.increment("unreachable")
            self.lose_worker(worker, "it is no longer connected")
            return False
        lost = self.credits.forget(worker)
        self.stats.increment("unreachable")
        log.warning("forgetting worker %r (%d credit): %s", worker, lost, why)
        return False

    def next_to_send(self) -> tuple[int, list[bytes], bool] | None:
        """(seq, frames, re-queued?): a lost worker's frames first, then the newest read."""
        if self.requeued:
            seq, message = next(iter(self.requeued.items()))
            return seq, message, True
        item = self.slot.peek()
        return None if item is None else (item[0], item[1], False)

    def dispatch(self) -> None:
        while True:
            worker = self.credits.pick()
            ready = self.next_to_send()
            if ready is None or worker is None:
                return
            seq, message, requeued = ready
            if self.send_to(worker, message):
                self.credits.use(worker)
                if requeued:
                    del self.requeued[seq]
                    self.stats.increment("redispatched")
                    log.info("frame %d re-sent to worker %r", seq, worker)
                else:
                    self.slot.take()
                self.inflight.sent(worker, seq, message, self.clock())
                self.stats.increment("frames_sent")
                self.fps_out.mark()

    def finish_if_done(self, now: float) -> None:
        if self.ended_at is None or self.eos_sent:
            return
        if self.slot and self.settings.mode == "live" and now - self.ended_at >= END_GRACE_S:
            self.slot.drop()
            self.stats.increment("drops")
        if self.slot or self.requeued:
            return  # lossless: the last frame waits for a worker however long it takes
        if self.settings.mode == "lossless" and self.inflight.total:
            return  # a worker lost now would hand its frames back; the end comes after them
        end = EndOfStream(
            stream_id=self.stream_id, frame_count=self.seq, dropped=self.stats.get("drops")
        )
        self.preview.send(encode(end))
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
            "p50_ms": self.latency.percentile(50),
            "p95_ms": self.latency.percentile(95),
            "in_flight": self.inflight.total,
            "requeued": len(self.requeued),
            "workers": self.inflight.workers,
            "workers_with_credit": self.credits.workers_with_credit,
            "credit": self.credits.total,
            "worker_lost": counts.get("worker_lost", 0),
            "redispatched": counts.get("redispatched", 0),
            "read": counts.get("frames_read", 0),
            "sent": counts.get("frames_sent", 0),
            "skipped": counts.get("skipped", 0) + self.source.skipped,
            "unreachable": counts.get("unreachable", 0),
        }

    def publish_gauges(self) -> None:
        self.gauge_values = {
            "in_flight": self.inflight.total,
            "requeued": len(self.requeued),
            "workers": self.inflight.workers,
            "workers_with_credit": self.credits.workers_with_credit,
            "credit": self.credits.total,
        }

    # --- status (called from the status server's threads) ----------------------------------

    def metrics(self) -> list[Metric]:
        counts = {name: 0 for name in COUNTER_HELP}
        counts.update(self.stats.snapshot())
        counts["skipped"] += self.source.skipped
        values: dict[str, float | int | None] = {
            "fps_in": self.fps_in.rate(),
            "fps_out": self.fps_out.rate(),
            **self.gauge_values,
            "latency_p50_ms": self.latency.percentile(50),
            "latency_p95_ms": self.latency.percentile(95),
        }
        return counters(counts, COUNTER_HELP) + gauges(values, GAUGE_HELP)

    def health(self) -> Health:
        return self.watch.health(
            stream_id=self.stream_id,
            mode=self.settings.mode,
            seq=self.seq,
            ended=self.ended_at is not None,
            **self.gauge_values,
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
                self.receive_requests(self.poll_timeout_ms())
                self.lose_silent_workers(self.clock())
                due = self.next_read_at()
                if due is not None and self.clock() >= due:
                    self.read_one()
                self.dispatch()
                self.finish_if_done(self.clock())
                self.publish_gauges()
                self.watch.turned()
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
        loop = CaptureLoop(settings, source, router, PreviewLink(pub), clock)
        status = start_status_server("capture", settings.status_host, settings.status_port, loop)
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
        return EXIT_BAD_SETTINGS
    try:
        return run(settings, stop, source=source)
    except CurveError as error:
        log.error("cannot start: %s", error)
        return EXIT_BAD_SETTINGS
    except (TransportError, StatusError) as error:
        log.error("cannot start: %s", error)
        return 1
    except Exception:
        log.exception("capture failed")
        return 1
