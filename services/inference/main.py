"""Entry point and loop of an inference worker: pull frames by credit, push one result per frame."""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Sequence
from contextlib import ExitStack
from typing import Any, Final

import zmq

from shared.log_throttle import LogThrottle
from shared.messages import FrameHeader
from shared.model_file import ModelFileError
from shared.runtime import (
    PeriodicLogger,
    StartupInterrupted,
    install_stop_handlers,
    interruptible_startup,
    setup_logging,
)
from shared.settings import load_settings
from shared.transport import TransportError
from shared.wire import WireError, decode_as

from .classifier import Classifier, EmotionClassifier
from .detect import DetectorError, FaceDetector, make_detector
from .links import CaptureLink, ResultSender
from .meters import WorkerMeters
from .pipeline import process_frame
from .settings import WorkerSettings

__all__ = ["EXIT_CANNOT_START", "main", "run"]

log = logging.getLogger(__name__)

SERVICE: Final = "inference"
POLL_MS: Final = 100
#: Model file missing or refused, detector unavailable, endpoint unusable: same code as a bad
#: setting, because each is fixed by configuration, not by a restart.
EXIT_CANNOT_START: Final = 2


def run(
    settings: WorkerSettings,
    stop: threading.Event,
    ctx: zmq.Context[Any] | None = None,
    classifier: Classifier | None = None,
    detector: FaceDetector | None = None,
) -> int:
    """Serve frames until ``stop`` is set; return the exit code (0).

    Builds what it is not given (a context, the classifier from ``settings.model_path``, the
    detector); a test passes its own to run this in a thread.
    """
    if detector is None:
        detector = make_detector(settings.detector, settings.min_face_px, settings.detect_max_width)
    if classifier is None:
        classifier = EmotionClassifier.load(settings.model_path, settings.tf_threads)
    meters = WorkerMeters(window_s=settings.stats_interval_s)
    with ExitStack() as cleanup:
        if ctx is None:
            ctx = zmq.Context()
            cleanup.callback(ctx.destroy, linger=0)
        results = ResultSender(ctx, settings.results_endpoint, meters.stats)
        cleanup.callback(results.close)
        links: list[CaptureLink] = []
        for endpoint in settings.capture_endpoints:
            link = CaptureLink(ctx, endpoint, settings.worker_id, settings.credit)
            cleanup.callback(link.close)
            links.append(link)
        log.info(
            "worker %s: model %s, detector %s; frames from %s, results to %s",
            settings.worker_id,
            classifier.version,
            settings.detector,
            ", ".join(settings.capture_endpoints),
            settings.results_endpoint,
        )
        loop = _FrameLoop(
            settings=settings,
            stop=stop,
            links=links,
            results=results,
            classifier=classifier,
            detector=detector,
            meters=meters,
        )
        loop.serve()
        log.info("stopping: %s", meters.line(loop.credit_held()))
    return 0


class _FrameLoop:
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
    ) -> None:
        self._settings = settings
        self._stop = stop
        self._links = links
        self._results = results
        self._classifier = classifier
        self._detector = detector
        self._meters = meters
        self._malformed_warn = LogThrottle(5.0)
        self._corrupt_warn = LogThrottle(5.0)

    def credit_held(self) -> int:
        return sum(link.outstanding for link in self._links)

    def serve(self) -> None:
        poller = zmq.Poller()
        for link in self._links:
            poller.register(link.socket, zmq.POLLIN)
            link.start()
        stats_due = PeriodicLogger(self._settings.stats_interval_s)
        while not self._stop.is_set():
            ready = dict(poller.poll(POLL_MS))
            # One message per ready capture per turn, so no capture starves the others.
            for link in self._links:
                if not ready.get(link.socket, 0) & zmq.POLLIN:
                    continue
                try:
                    frames = link.socket.recv_multipart(flags=zmq.NOBLOCK)
                except zmq.Again:
                    continue
                link.on_message()
                self._handle(frames, link)
                link.top_up()
            for link in self._links:
                if link.resend_if_idle():
                    self._meters.stats.increment("credit_resends")
                    log.debug("%s: nothing for a while, asked again for credit", link.endpoint)
            if stats_due.due():
                log.info("%s", self._meters.line(self.credit_held()))

    def _handle(self, frames: list[bytes], link: CaptureLink) -> None:
        meters = self._meters
        try:
            header, jpeg = decode_as(frames, FrameHeader)
        except WireError as error:
            meters.stats.increment("malformed")
            suppressed = self._malformed_warn.ready()
            if suppressed is not None:
                log.warning(
                    "malformed message from %s skipped: %s%s",
                    link.endpoint,
                    error,
                    _more(suppressed),
                )
            return
        meters.frame_in()
        result = process_frame(
            header,
            jpeg,
            detector=self._detector,
            classifier=self._classifier,
            face_margin=self._settings.face_margin,
            worker_id=self._settings.worker_id,
        )
        if result.error is not None:
            meters.stats.increment("corrupt")
            suppressed = self._corrupt_warn.ready()
            if suppressed is not None:
                log.warning(
                    "frame %s seq %d from %s: %s%s",
                    header.stream_id,
                    header.seq,
                    link.endpoint,
                    result.error,
                    _more(suppressed),
                )
        log.debug(
            "frame %s seq %d: %d faces in %.1f ms",
            header.stream_id,
            header.seq,
            len(result.faces),
            result.timings.total_ms,
        )
        sent = self._results.send(result, self._stop)
        meters.result_out(result, sent)


def _more(suppressed: int) -> str:
    return f" ({suppressed} more since the last warning)" if suppressed else ""


def _one_line(error: BaseException) -> str:
    return " ".join(str(error).split())


def main(argv: Sequence[str] | None = None) -> int:
    """Load settings, set up logging and signals, load detector and model, run until stopped."""
    settings = load_settings(WorkerSettings, argv)
    setup_logging(SERVICE, settings.log_level)
    # Before TensorFlow is imported (lazily, by the classifier): its C++ start-up chatter.
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    stop = threading.Event()
    install_stop_handlers(stop)
    try:
        with interruptible_startup(stop):
            detector = make_detector(
                settings.detector, settings.min_face_px, settings.detect_max_width
            )
            classifier = EmotionClassifier.load(settings.model_path, settings.tf_threads)
    except (ModelFileError, DetectorError) as error:
        log.error("cannot start: %s", _one_line(error))
        return EXIT_CANNOT_START
    except StartupInterrupted as signal_name:
        log.info("received %s during start-up, stopping", signal_name)
        return 0
    try:
        return run(settings, stop, classifier=classifier, detector=detector)
    except TransportError as error:
        log.error("cannot start: %s", _one_line(error))
        return EXIT_CANNOT_START
    except Exception:
        log.exception("worker %s failed", settings.worker_id)
        return 1
