"""The worker's two directions: credit-based links to each capture, and the results sender."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any, Final

import zmq

from shared.curve import ClientKeys
from shared.log_throttle import LogThrottle, and_more
from shared.messages import MAX_DONE, Heartbeat, ResultHeader, WorkRequest
from shared.runtime import Stats
from shared.transport import Socket, connect, make_socket, send_nowait, set_heartbeats
from shared.wire import encode

__all__ = ["CaptureLink", "ResultSender"]

log = logging.getLogger(__name__)

#: Silence after which free credit is asked for again (a restarted capture forgot it).
RESEND_AFTER_S: Final = 1.0
#: Longest wait for a results peer that is not taking results, before dropping them.
RESULTS_WAIT_S: Final = 1.0
#: A few requests may wait for a capture that is not up yet; more would only be stale.
REQUEST_HWM: Final = 8
#: Results are small; this many may queue for a slow or restarting display.
RESULTS_HWM: Final = 100
HEARTBEAT_IVL_MS: Final = 1000
HEARTBEAT_TIMEOUT_MS: Final = 5000
SLICE_MS: Final = 100


class CaptureLink:
    """One capture endpoint: a DEALER of our own and the credit we hold there.

    One DEALER per capture, not one connected to all: a DEALER spreads its sends round-robin
    over its peers, and a request for more work must go to the capture that sent the frame.
    """

    def __init__(
        self,
        ctx: zmq.Context[Any],
        endpoint: str,
        worker_id: str,
        credit: int,
        clock: Callable[[], float] = time.monotonic,
        *,
        heartbeat_s: float = 1.0,
        started_at_ns: int = 0,
        curve: ClientKeys | None = None,
    ) -> None:
        self.endpoint = endpoint
        self._worker_id = worker_id
        self._credit = credit
        self._clock = clock
        self._heartbeat_s = heartbeat_s
        self._started_at_ns = started_at_ns
        #: Seqs whose results are sent but not yet reported to the capture (newest kept).
        self._done: list[int] = []
        self.socket: Socket = make_socket(
            ctx, zmq.DEALER, identity=worker_id.encode(), sndhwm=REQUEST_HWM
        )
        try:
            # No ZMQ_MAXMSGSIZE: libzmq treats an oversize message as a protocol error and
            # never reconnects, which would orphan this capture for good. Oversize frames are
            # received and refused by the wire format instead (counted as malformed).
            set_heartbeats(self.socket, HEARTBEAT_IVL_MS, HEARTBEAT_TIMEOUT_MS)
            if curve is not None:
                curve.apply(self.socket)
            connect(self.socket, endpoint)
        except BaseException:
            self.socket.close(linger=0)
            raise
        #: Frames asked for that have not arrived yet.
        self.outstanding = 0
        self._last_heard = clock()
        self._last_sent = clock()

    def _request(self, n: int) -> bool:
        request = WorkRequest(
            worker_id=self._worker_id,
            credit=n,
            done=tuple(self._done),
            started_at_ns=self._started_at_ns,
        )
        sent = send_nowait(self.socket, encode(request))
        if sent:
            self._done.clear()
            self._last_sent = self._clock()
        else:
            log.debug("%s: request queue full, credit %d not sent", self.endpoint, n)
        return sent

    def finished(self, seq: int) -> None:
        """The result of frame ``seq`` from this capture is sent; the next request says so."""
        self._done.append(seq)
        del self._done[:-MAX_DONE]

    def heartbeat_if_quiet(self) -> bool:
        """Send a heartbeat when nothing went to this capture for ``heartbeat_s``; True if sent.

        Capture gives up on a worker it has not heard from for its ``worker_timeout_s``, so a
        worker busy with another capture's frames, or simply idle, must still speak up.
        """
        now = self._clock()
        if now - self._last_sent < self._heartbeat_s:
            return False
        beat = Heartbeat(sender=self._worker_id, sent_at_ns=time.time_ns())
        if send_nowait(self.socket, encode(beat)):
            self._last_sent = now
            return True
        return False

    def start(self) -> None:
        """Ask for the full credit."""
        if self._request(self._credit):
            self.outstanding = self._credit
        self._last_heard = self._clock()

    def on_message(self) -> None:
        """A message arrived: it used one credit, whatever it turns out to be."""
        self.outstanding = max(0, self.outstanding - 1)
        self._last_heard = self._clock()

    def top_up(self) -> None:
        """After a message is dealt with, ask for what is missing to the full credit."""
        missing = self._credit - self.outstanding
        # With nothing missing the done seqs wait for the next request (or the idle resend).
        if missing > 0 and self._request(missing):
            self.outstanding += missing

    def resend_if_idle(self) -> bool:
        """Ask again for all free slots after RESEND_AFTER_S of silence; True if it did.

        The loop handles one frame at a time, so while it waits every slot is free. A capture
        that kept our credit caps it, so asking twice costs nothing.
        """
        now = self._clock()
        if now - self._last_heard < RESEND_AFTER_S:
            return False
        self._last_heard = now
        if self._request(self._credit):
            self.outstanding = self._credit
            return True
        return False

    def close(self) -> None:
        self.socket.close(linger=0)


class ResultSender:
    """PUSH to the display; waits at most RESULTS_WAIT_S for it, then drops and counts.

    After one timed-out wait it stops waiting (dropping at once) until a send goes through
    again, so a vanished display costs one second once, not one second per frame.
    """

    def __init__(
        self,
        ctx: zmq.Context[Any],
        endpoint: str,
        stats: Stats,
        *,
        curve: ClientKeys | None = None,
    ) -> None:
        self.endpoint = endpoint
        self._stats = stats
        self._blocked = False
        self._warn = LogThrottle(5.0)
        self.socket: Socket = make_socket(ctx, zmq.PUSH, sndhwm=RESULTS_HWM)
        try:
            if curve is not None:
                curve.apply(self.socket)
            connect(self.socket, endpoint)
        except BaseException:
            self.socket.close(linger=0)
            raise

    def send(self, result: ResultHeader, stop: threading.Event) -> bool:
        """Send one result; False when it was dropped (counted as ``results_dropped``)."""
        frames = encode(result)
        if send_nowait(self.socket, frames):
            if self._blocked:
                self._blocked = False
                log.info("results: %s takes results again", self.endpoint)
            return True
        if not self._blocked:
            deadline = time.monotonic() + RESULTS_WAIT_S
            while not stop.is_set() and time.monotonic() < deadline:
                if self.socket.poll(SLICE_MS, zmq.POLLOUT) and send_nowait(self.socket, frames):
                    return True
            self._blocked = True
        self._stats.increment("results_dropped")
        suppressed = self._warn.ready()
        if suppressed is not None:
            log.warning(
                "results: %s is not taking results (queue of %d full for %.1f s); dropped the "
                "result of %s seq %d%s",
                self.endpoint,
                RESULTS_HWM,
                RESULTS_WAIT_S,
                result.stream_id,
                result.seq,
                and_more(suppressed),
            )
        return False

    def close(self) -> None:
        self.socket.close(linger=0)
