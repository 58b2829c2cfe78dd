"""Entry point and loop of an inference worker: pull frames by credit, push one result per frame."""

from __future__ import annotations

import logging
import os
import sys
import threading
import time
from collections.abc import Callable, Sequence
from contextlib import ExitStack
from pathlib import Path
from typing import Any, Final

import zmq

from shared.curve import CurveError, client_keys
from shared.http_status import StatusError, start_status_server
from shared.metrics import ServiceMetrics
from shared.model_file import ModelFileError
from shared.runtime import (
    StartupInterrupted,
    install_stop_handlers,
    interruptible_startup,
    setup_logging,
)
from shared.settings import EXIT_CANNOT_START, load_settings
from shared.transport import TransportError
from stages.classifier import Classifier, Runtime, choose_runtime, load_classifier
from stages.detectors import DetectorError, FaceDetector, detector_for
from stages.detectors.tracking import TrackingDetector
from stages.tracker import tracker_for

from .links import CaptureLink, ResultSender
from .loop import FrameLoop
from .meters import WorkerMeters, WorkerStatus
from .reload import ModelReloader
from .settings import WorkerSettings, batch_wait_ms

__all__ = ["main", "run"]

log = logging.getLogger(__name__)

SERVICE: Final = "inference"


def run(
    settings: WorkerSettings,
    stop: threading.Event,
    *,
    ctx: zmq.Context[Any] | None = None,
    classifier: Classifier | None = None,
    detector: FaceDetector | None = None,
    load_classifier: Callable[[Path], Classifier] | None = None,
) -> int:
    """Serve frames until ``stop`` is set; return the exit code (0).

    Builds what it is not given (a context, the classifier from ``settings.model_path``, the
    detector); a test passes its own to run this in a thread. The model file is watched for a
    new model (``reload_check_s``) when the classifier is built here or ``load_classifier`` is
    given: that is how a new file is loaded.
    """
    if detector is None:
        detector = detector_for(settings)
    if classifier is None:
        if load_classifier is None:
            load_classifier = _loader(settings.tf_threads, settings.classifier_runtime)
        classifier = load_classifier(settings.model_path)
    registry = ServiceMetrics(SERVICE)
    meters = WorkerMeters(registry, window_s=settings.stats_interval_s)
    reloader = None
    if load_classifier is not None and settings.reload_check_s > 0:
        reloader = ModelReloader(
            settings.model_path,
            load_classifier,
            classifier.version,
            settings.reload_check_s,
            meters.stats,
        )
    tracker = tracker_for(settings)
    with ExitStack() as cleanup:
        if ctx is None:
            ctx = zmq.Context()
            cleanup.callback(ctx.destroy, linger=0)
        results = ResultSender(
            ctx,
            settings.results_endpoint,
            meters.stats,
            curve=client_keys(settings, settings.curve_display_public_key),
        )
        cleanup.callback(results.close)
        links: list[CaptureLink] = []
        # Tells every capture this is a new process, so what an earlier one held is lost.
        started_at_ns = time.time_ns()
        capture_keys = client_keys(settings, settings.curve_capture_public_key)
        for endpoint in settings.capture_endpoints:
            link = CaptureLink(
                ctx,
                endpoint,
                settings.worker_id,
                settings.credit,
                heartbeat_s=settings.heartbeat_s,
                started_at_ns=started_at_ns,
                curve=capture_keys,
            )
            cleanup.callback(link.close)
            links.append(link)
        log.info(
            "worker %s: model %s, detector %s; frames from %s, results to %s; curve=%s",
            settings.worker_id,
            classifier.version,
            settings.detector,
            ", ".join(settings.capture_endpoints),
            settings.results_endpoint,
            "on" if capture_keys is not None else "off",
        )
        wait_ms = batch_wait_ms(settings, on_gpu=_tensorflow_sees_a_gpu())
        if wait_ms > 0:
            log.info("batching frames that arrive within %.0f ms into one model call", wait_ms)
        loop = FrameLoop(
            settings=settings,
            stop=stop,
            links=links,
            results=results,
            classifier=classifier,
            detector=detector,
            meters=meters,
            tracker=tracker,
            reloader=reloader,
            batch_wait_ms=wait_ms,
        )
        worker_status = WorkerStatus(
            meters,
            registry,
            settings.worker_id,
            credit_held=loop.credit_held,
            model_version=lambda: loop.classifier.version,
            detector_counts=_detector_counts(detector),
            detector=settings.detector,
            runtime=choose_runtime(settings.classifier_runtime),
        )
        registry.read_from(worker_status)
        status = start_status_server(
            settings.status_host, settings.status_port, registry, worker_status.health
        )
        if status is not None:
            cleanup.callback(status.close)
        loop.serve()
        log.info("stopping: %s", meters.line(loop.credit_held()))
    return 0


def _detector_counts(detector: FaceDetector) -> Callable[[], dict[str, int]] | None:
    """A tracking detector's counts so far: full passes, and YuNet's sweeps and the faces they
    added (None for the other detectors)."""
    if not isinstance(detector, TrackingDetector):
        return None

    def counts() -> dict[str, int]:
        sweep = detector.full_sweep
        return {
            "full_detections": detector.full_passes,
            "yunet_sweeps": sweep.sweeps if sweep is not None else 0,
            "yunet_sweep_faces": sweep.faces_added if sweep is not None else 0,
        }

    return counts


def _loader(tf_threads: int, runtime: Runtime) -> Callable[[Path], Classifier]:
    def load(path: Path) -> Classifier:
        return load_classifier(path, runtime, tf_threads)

    return load


def _tensorflow_sees_a_gpu() -> bool:
    """Whether TensorFlow, if the classifier loaded it, runs on a GPU (tests' fakes do not)."""
    tf = sys.modules.get("tensorflow")
    return tf is not None and bool(tf.config.list_physical_devices("GPU"))


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
            detector = detector_for(settings)
            load_classifier = _loader(settings.tf_threads, settings.classifier_runtime)
            classifier = load_classifier(settings.model_path)
    except (ModelFileError, DetectorError) as error:
        log.error("cannot start: %s", _one_line(error))
        return EXIT_CANNOT_START
    except StartupInterrupted as signal_name:
        log.info("received %s during start-up, stopping", signal_name)
        return 0
    try:
        return run(
            settings,
            stop,
            classifier=classifier,
            detector=detector,
            load_classifier=load_classifier,
        )
    except (TransportError, StatusError, CurveError) as error:
        log.error("cannot start: %s", _one_line(error))
        return EXIT_CANNOT_START
    except Exception:
        log.exception("worker %s failed", settings.worker_id)
        return 1
