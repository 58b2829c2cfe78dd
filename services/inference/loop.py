"""The worker's loop: receive frames by credit, classify (alone or in batches), send results.

Between turns it swaps in a model the reloader has loaded, so a new model never meets faces
cropped for the old one's input size.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final

import zmq

from shared.log_throttle import LogThrottle, and_more
from shared.messages import FrameHeader
from shared.runtime import PeriodicLogger
from shared.wire import WireError, decode_as
from stages.batching import classify_frames
from stages.detectors import FaceDetector, framing_for
from stages.faces import PreparedFrame, finish_frame, label_faces, prepare_frame
from stages.model_base import Classifier
from stages.tracker import FaceTracker

from .links import CaptureLink, ResultSender
from .meters import WorkerMeters
from .reload import ModelReloader
from .settings import WorkerSettings

__all__ = ["POLL_MS", "FrameLoop"]

log = logging.getLogger(__name__)

POLL_MS: Final = 100


@dataclass(frozen=True)
class _Received:
    prepared: PreparedFrame
    link: CaptureLink


class FrameLoop:
    """The receive, process, send, ask-for-more loop over every capture link."""

    def __init__(
        self,
        *,
        settings: WorkerSettings,
        stop: threading.Event,
        links: list[CaptureLink],
        results: ResultSender,
        classifier: Classifier,
        detector: FaceDetector,
        meters: WorkerMeters,
        tracker: FaceTracker | None = None,
        reloader: ModelReloader | None = None,
        batch_wait_ms: float = 0.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._settings = settings
        self._stop = stop
        self._links = links
        self._results = results
        self._classifier = classifier
        self._detector = detector
        self._framing = framing_for(settings.detector, settings.face_margin, settings.align_roll)
        self._meters = meters
        self._tracker = tracker
        self._reloader = reloader
        self._batch_wait_ms = batch_wait_ms
        self._clock = clock
        self._malformed_warn = LogThrottle(5.0)
        self._corrupt_warn = LogThrottle(5.0)

    @property
    def classifier(self) -> Classifier:
        return self._classifier

    def credit_held(self) -> int:
        return sum(link.outstanding for link in self._links)

    def serve(self) -> None:
        poller = zmq.Poller()
        for link in self._links:
            poller.register(link.socket, zmq.POLLIN)
            link.start()
        stats_due = PeriodicLogger(self._settings.stats_interval_s)
        batching = self._batch_wait_ms > 0
        while not self._stop.is_set():
            if self._reloader is not None:
                new = self._reloader.poll()
                if new is not None:
                    self._classifier = new
            ready = dict(poller.poll(POLL_MS))
            batch: list[_Received] = []
            # One message per ready capture per turn, so no capture starves the others.
            for link in self._links:
                if ready.get(link.socket, 0) & zmq.POLLIN:
                    received = self._receive(link)
                    if received is not None and not batching:
                        self._complete([received])
                    elif received is not None:
                        batch.append(received)
            if batch:
                self._gather(poller, batch)
                self._complete(batch)
            for link in self._links:
                if link.resend_if_idle():
                    self._meters.stats.increment("credit_resends")
                    log.debug("%s: nothing for a while, asked again for credit", link.endpoint)
                elif link.heartbeat_if_quiet():
                    self._meters.stats.increment("heartbeats")
            self._meters.turned()
            if stats_due.due():
                log.info("%s", self._meters.line(self.credit_held()))

    def _gather(self, poller: zmq.Poller, batch: list[_Received]) -> None:
        """Add frames that arrive within ``batch_wait_ms`` of the first, up to the limits."""
        deadline = self._clock() + self._batch_wait_ms / 1000.0
        while not self._stop.is_set():
            faces = sum(len(item.prepared.boxes_xywh) for item in batch)
            left_s = deadline - self._clock()
            if faces >= self._settings.max_batch_faces or left_s <= 0 or self.credit_held() == 0:
                return
            ready = dict(poller.poll(max(1, int(left_s * 1000))))
            for link in self._links:
                if ready.get(link.socket, 0) & zmq.POLLIN:
                    received = self._receive(link)
                    if received is not None:
                        batch.append(received)

    def _receive(self, link: CaptureLink) -> _Received | None:
        """One message from ``link``, decoded and prepared; None if none or malformed."""
        try:
            frames = link.socket.recv_multipart(flags=zmq.NOBLOCK)
        except zmq.Again:
            return None
        link.on_message()
        try:
            header, jpeg = decode_as(frames, FrameHeader)
        except WireError as error:
            self._meters.stats.increment("malformed")
            suppressed = self._malformed_warn.ready()
            if suppressed is not None:
                log.warning(
                    "malformed message from %s skipped: %s%s",
                    link.endpoint,
                    error,
                    and_more(suppressed),
                )
            link.top_up()
            return None
        self._meters.frame_in()
        prepared = prepare_frame(
            header,
            jpeg,
            detector=self._detector,
            input_hw=self._classifier.input_hw,
            framing=self._framing,
        )
        return _Received(prepared, link)

    def _complete(self, batch: list[_Received]) -> None:
        """Classify the batch's faces in one call, then answer each frame in seq order."""
        classifier = self._classifier
        rows, classify_ms, seen = classify_frames(
            [item.prepared for item in batch],
            classifier,
            self._settings.mirror,
            every=self._settings.classify_every,
            carried=self._tracker.smoothed if self._tracker is not None else None,
        )
        self._meters.stats.increment("classified", seen)
        order = sorted(
            range(len(batch)),
            key=lambda i: (batch[i].prepared.header.stream_id, batch[i].prepared.header.seq),
        )
        for index in order:
            prepared, link = batch[index].prepared, batch[index].link
            result = finish_frame(
                prepared,
                label_faces(prepared, rows[index], self._tracker),
                classify_ms=classify_ms if len(prepared.boxes_xywh) else 0.0,
                worker_id=self._settings.worker_id,
                model_version=classifier.version,
            )
            header = prepared.header
            if result.error is not None:
                self._meters.stats.increment("corrupt")
                suppressed = self._corrupt_warn.ready()
                if suppressed is not None:
                    log.warning(
                        "frame %s seq %d from %s: %s%s",
                        header.stream_id,
                        header.seq,
                        link.endpoint,
                        result.error,
                        and_more(suppressed),
                    )
            log.debug(
                "frame %s seq %d: %d faces in %.1f ms",
                header.stream_id,
                header.seq,
                len(result.faces),
                result.timings.total_ms,
            )
            sent = self._results.send(result, self._stop)
            self._meters.result_out(result, sent)
            # Done even when the display did not take it: re-sending would not help that.
            link.finished(header.seq)
        # One request per capture for the whole batch, carrying every seq it finished.
        for link in {id(item.link): item.link for item in batch}.values():
            link.top_up()
