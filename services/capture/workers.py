"""The workers' side of capture: requests and heartbeats, credit, the frame waiting for a
worker, frames in flight, handing out, and giving up on a worker."""

from __future__ import annotations

import logging
from collections import OrderedDict
from collections.abc import Callable, Sequence
from typing import Final

import zmq

from shared.log_throttle import LogThrottle, and_more
from shared.messages import Heartbeat, WorkRequest
from shared.transport import Socket, recv_multipart_timeout
from shared.wire import WireError, decode, split_envelope

from .accounting import CaptureMeters
from .dispatch import Credits, InFlight, LostWorker, NewestSlot
from .settings import CaptureSettings

__all__ = ["Workers"]

log = logging.getLogger(__name__)

#: Requests handled per turn at most, so a flood cannot starve reading the source.
MAX_REQUESTS_PER_TURN: Final = 256
WARNING_INTERVAL_S: Final = 5.0

Message = list[bytes]


class Workers:
    """Hands frames to workers on credit over the ROUTER socket; lossless re-queues a lost
    worker's frames, live drops them."""

    def __init__(
        self,
        settings: CaptureSettings,
        router: Socket,
        meters: CaptureMeters,
        clock: Callable[[], float],
    ) -> None:
        self.settings = settings
        self.router = router
        self.meters = meters
        self.clock = clock
        self.credits = Credits(settings.max_credit)
        # (seq, frames [header, payload]) read but not yet sent to a worker (at most one).
        self.slot: NewestSlot[tuple[int, Message]] = NewestSlot()
        # What each worker holds, so a lost worker's frames can go to another (lossless).
        self.inflight: InFlight[Message] = InFlight(settings.max_credit)
        # Frames of lost workers, by seq, handed out before any new frame.
        self.requeued: OrderedDict[int, Message] = OrderedDict()
        self.throttle = LogThrottle(WARNING_INTERVAL_S, clock)

    @property
    def lossless(self) -> bool:
        return self.settings.mode == "lossless"

    @property
    def has_pending(self) -> bool:
        """A frame waits for a worker (the newest read, or a lost worker's)."""
        return bool(self.slot or self.requeued)

    def warn(self, message: str, error: Exception) -> None:
        """A warning at most once per WARNING_INTERVAL_S; floods are counted, not logged."""
        suppressed = self.throttle.ready()
        if suppressed is not None:
            log.warning(message + and_more(suppressed), error)

    # --- requests from workers -------------------------------------------------------------

    def receive(self, timeout_ms: int) -> None:
        """Handle what workers sent, waiting up to ``timeout_ms`` for the first message."""
        frames = recv_multipart_timeout(self.router, timeout_ms)
        handled = 0
        while frames is not None:
            self.handle(frames)
            handled += 1
            if handled >= MAX_REQUESTS_PER_TURN:
                return
            frames = recv_multipart_timeout(self.router, 0)

    def handle(self, frames: Sequence[bytes]) -> None:
        stats = self.meters.stats
        try:
            identity, rest = split_envelope(frames)
            message, _ = decode(rest)
            if not isinstance(message, WorkRequest | Heartbeat):
                raise WireError(
                    f"expected a 'ready' or 'heartbeat' message, found {message.kind!r}"
                )
        except WireError as error:
            stats.increment("malformed")
            self.warn("skipping malformed message from a worker: %s", error)
            return
        now = self.clock()
        if isinstance(message, Heartbeat):
            stats.increment("heartbeats")
            self.inflight.heard(identity, now)
            return
        lost = self.inflight.heard(identity, now, message.started_at_ns)
        if lost is not None:
            self.lose(identity, "it restarted", lost)
        for span_s in self.inflight.done(identity, message.done, now):
            self.meters.done(span_s)
        for seq in message.done:
            # Declared lost too early: it finished them after all.
            self.requeued.pop(seq, None)
        credit = self.credits.add(identity, message.credit)
        log.debug("worker %r asks for %d, holds %d", identity, message.credit, credit)

    def lose(self, worker: bytes, why: str, lost: LostWorker[Message] | None = None) -> None:
        """Give ``worker`` up: forget its credit; re-queue (lossless) or drop (live) its frames."""
        if lost is None:
            lost = self.inflight.lose(worker)
        credit = self.credits.forget(worker)
        self.meters.stats.increment("worker_lost")
        seqs = [seq for seq, _ in lost.frames]
        if seqs:
            self.meters.stats.increment("lost_in_flight", len(seqs))
        if self.lossless:
            merged = dict(self.requeued)
            merged.update(lost.frames)
            self.requeued = OrderedDict(sorted(merged.items()))
        log.warning(
            "worker %r lost (%s): %d credit forgotten, frames in flight %s %s",
            worker,
            why,
            credit,
            seqs or "none",
            "re-queued" if self.lossless else "dropped",
        )

    def lose_silent(self, now: float) -> None:
        timeout_s = self.settings.worker_timeout_s
        for worker in self.inflight.silent(now, timeout_s):
            self.lose(worker, f"not heard from for {timeout_s:.1f} s")

    # --- handing frames out ----------------------------------------------------------------

    def offer(self, seq: int, message: Message) -> None:
        """The newest frame read waits for a worker; in live mode it replaces an unsent one."""
        if self.slot.put((seq, message)):
            self.meters.stats.increment("replaced")
            log.debug("dropped seq %d: no worker took it before seq %d", seq - 1, seq)

    def drop_waiting(self) -> None:
        """Live, at the end: the last frame waited long enough for a worker."""
        if self.slot:
            self.slot.drop()
            self.meters.stats.increment("replaced")

    def send_to(self, worker: bytes, message: Message) -> bool:
        try:
            self.router.send_multipart([worker, *message], flags=zmq.NOBLOCK)
            return True
        except zmq.Again:
            # Its queue is full although it had credit: treat it as gone until it asks again.
            why = "its queue is full"
        except zmq.ZMQError as error:
            if error.errno != zmq.EHOSTUNREACH:
                raise
            self.meters.stats.increment("unreachable")
            self.lose(worker, "it is no longer connected")
            return False
        lost = self.credits.forget(worker)
        self.meters.stats.increment("unreachable")
        log.warning("forgetting worker %r (%d credit): %s", worker, lost, why)
        return False

    def next_to_send(self) -> tuple[int, Message, bool] | None:
        """(seq, frames, re-queued?): a lost worker's frames first, then the newest read."""
        if self.requeued:
            seq, message = next(iter(self.requeued.items()))
            return seq, message, True
        item = self.slot.peek()
        return None if item is None else (item[0], item[1], False)

    def dispatch(self) -> None:
        """Hand out what waits to the workers with credit, least recently served first."""
        while True:
            worker = self.credits.pick()
            ready = self.next_to_send()
            if ready is None or worker is None:
                return
            seq, message, requeued = ready
            if not self.send_to(worker, message):
                continue
            self.credits.use(worker)
            if requeued:
                del self.requeued[seq]
                self.meters.stats.increment("redispatched")
                log.info("frame %d re-sent to worker %r", seq, worker)
            else:
                self.slot.take()
            self.inflight.sent(worker, seq, message, self.clock())
            self.meters.stats.increment("frames_sent")
            self.meters.fps_out.mark()

    def gauges(self) -> dict[str, float | int | None]:
        return {
            "in_flight": self.inflight.total,
            "requeued": len(self.requeued),
            "workers": self.inflight.workers,
            "workers_with_credit": self.credits.workers_with_credit,
            "credit": self.credits.total,
        }
