"""Hot reload: notice a new model file, load and check it off the loop, hand it over to swap in.

The loop calls ``poll()`` every turn; it is cheap (a ``stat`` of the model and its metadata
every ``check_s``). When their state changes, the new pair is loaded in a background thread
(``classifier.load_classifier``: metadata, labels, hashes, shapes, warm-up), so frames keep flowing
meanwhile; the next ``poll()`` after it finishes returns the new classifier once. A bad pair is
refused with a WARNING, counted as ``reload_failed`` and not tried again until its files change.

Training replaces the pair with two renames (model, then metadata), so a check can land between
them. Two rules keep such a moment from being taken for a bad file: a load during which the
files changed is dropped and the new state loaded at the next check, and a model that does not
match its metadata is looked at once more at the next check before it is refused.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from shared.model_file import ModelPairMismatchError, metadata_path, tflite_path
from shared.runtime import Stats
from stages.model_base import Classifier

__all__ = ["FileState", "ModelReloader", "file_state", "start_daemon"]

log = logging.getLogger(__name__)

#: (inode, size, mtime in ns) of the model file, its .tflite and its metadata; None where missing.
FileState = tuple[tuple[int, int, int] | None, ...]


def _stat(path: Path) -> tuple[int, int, int] | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return (st.st_ino, st.st_size, st.st_mtime_ns)


def file_state(model_path: Path) -> FileState:
    """What changes when training renames a new model (or its .tflite, or metadata) into place."""
    return tuple(
        _stat(path) for path in (model_path, tflite_path(model_path), metadata_path(model_path))
    )


def start_daemon(work: Callable[[], None]) -> None:
    """Run ``work`` in a daemon thread: a slow load must not delay the process's exit."""
    threading.Thread(target=work, name="model-reload", daemon=True).start()


@dataclass
class _Attempt:
    state: FileState
    done: threading.Event
    #: The same pair was found mismatched at the check before: a mismatch now is for real.
    second_look: bool = False
    classifier: Classifier | None = None
    error: BaseException | None = None
    #: The files changed while they were loading: what was loaded may be half of each.
    changed: bool = False


class ModelReloader:
    """Watches ``path``; ``poll()`` returns a newly loaded classifier once, else None."""

    def __init__(
        self,
        path: Path,
        load: Callable[[Path], Classifier],
        current_version: str,
        check_s: float,
        stats: Stats,
        *,
        clock: Callable[[], float] = time.monotonic,
        state_of: Callable[[Path], FileState] = file_state,
        spawn: Callable[[Callable[[], None]], None] = start_daemon,
    ) -> None:
        if check_s <= 0:
            raise ValueError(f"check_s: expected > 0, found {check_s}")
        self._path = path
        self._load = load
        self._version = current_version
        self._check_s = check_s
        self._stats = stats
        self._clock = clock
        self._state_of = state_of
        self._spawn = spawn
        # The pair as it is now is the one loaded at start (or one we need not try).
        self._tried: FileState | None = state_of(path)
        self._mismatched: FileState | None = None
        self._next_check = clock() + check_s
        self._attempt: _Attempt | None = None

    @property
    def loading(self) -> bool:
        return self._attempt is not None

    def poll(self) -> Classifier | None:
        """Check for a finished load, or (every ``check_s``) for changed files; never blocks."""
        if self._attempt is not None:
            return self._finish() if self._attempt.done.is_set() else None
        now = self._clock()
        if now < self._next_check:
            return None
        self._next_check = now + self._check_s
        state = self._state_of(self._path)
        if state == self._tried:
            return None
        # Remembered before loading: a pair that fails stays refused until its files change.
        self._tried = state
        attempt = _Attempt(
            state=state, done=threading.Event(), second_look=state == self._mismatched
        )
        self._attempt = attempt
        log.info("model file %s changed, loading it", self._path)

        def work() -> None:
            try:
                attempt.classifier = self._load(self._path)
            except Exception as error:  # reported by poll() on the loop's thread
                attempt.error = error
            finally:
                attempt.changed = self._state_of(self._path) != attempt.state
                attempt.done.set()

        self._spawn(work)
        return self.poll() if attempt.done.is_set() else None

    def _finish(self) -> Classifier | None:
        attempt = self._attempt
        assert attempt is not None
        self._attempt = None
        if attempt.changed:
            log.info(
                "model file %s changed while loading; loading it at the next check", self._path
            )
            self._tried = None
            return None
        if isinstance(attempt.error, ModelPairMismatchError) and not attempt.second_look:
            log.info(
                "%s; looking again at the next check (a write may be under way)", attempt.error
            )
            self._mismatched = attempt.state
            self._tried = None
            return None
        if attempt.classifier is None:
            self._stats.increment("reload_failed")
            reason = " ".join(str(attempt.error).split()) or type(attempt.error).__name__
            log.warning(
                "model reload refused, keeping %s: %s: %s (not tried again until it changes)",
                self._version,
                self._path,
                reason,
            )
            return None
        new = attempt.classifier
        if new.version == self._version:
            log.info("model file %s rewritten with the same model %s", self._path, new.version)
            return None
        log.info("model reloaded: %s -> %s", self._version, new.version)
        self._stats.increment("reloads")
        self._version = new.version
        return new
