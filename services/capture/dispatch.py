"""Credit and in-flight bookkeeping, and the live-mode newest-frame slot: pure, no sockets.

Nothing here reads a clock: times are passed in, so tests are tables.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass
from typing import Generic, TypeVar

__all__ = ["Credits", "InFlight", "LostWorker", "NewestSlot"]

T = TypeVar("T")


class Credits:
    """How many frames each worker has asked for, capped; picks workers round-robin.

    Workers are kept least recently served first, so the one that waited longest gets the next
    frame: an even spread over workers with credit, and a new worker is served at once.
    """

    def __init__(self, max_credit: int) -> None:
        if max_credit < 1:
            raise ValueError(f"max_credit: expected >= 1, found {max_credit}")
        self._max_credit = max_credit
        self._credits: dict[bytes, int] = {}

    def add(self, worker: bytes, credit: int) -> int:
        """Add ``credit`` for ``worker`` (capped at max_credit); return its credit now."""
        if credit < 1:
            raise ValueError(f"credit: expected >= 1, found {credit}")
        if worker not in self._credits:
            # Front of the queue: a newcomer has waited longest of all.
            self._credits = {worker: 0, **self._credits}
        self._credits[worker] = min(self._max_credit, self._credits[worker] + credit)
        return self._credits[worker]

    def pick(self) -> bytes | None:
        """The least recently served worker with credit, or None; does not use the credit."""
        return next((worker for worker, credit in self._credits.items() if credit > 0), None)

    def use(self, worker: bytes) -> None:
        """One frame went to ``worker``: take one credit and move it to the back of the queue."""
        credit = self._credits.pop(worker, 0)
        if credit < 1:
            raise ValueError(f"worker {worker!r} has no credit to use")
        self._credits[worker] = credit - 1

    def forget(self, worker: bytes) -> int:
        """Drop ``worker`` (it vanished); return the credit it held."""
        return self._credits.pop(worker, 0)

    def credit_of(self, worker: bytes) -> int:
        return self._credits.get(worker, 0)

    @property
    def workers_with_credit(self) -> int:
        return sum(1 for credit in self._credits.values() if credit > 0)

    @property
    def total(self) -> int:
        return sum(self._credits.values())


class NewestSlot(Generic[T]):
    """Holds one unsent item; a newer one replaces it and the replaced one counts as dropped."""

    def __init__(self) -> None:
        self._item: T | None = None
        self.dropped = 0

    def put(self, item: T) -> bool:
        """Keep ``item``; True when it replaced an unsent one (a drop)."""
        replaced = self._item is not None
        if replaced:
            self.dropped += 1
        self._item = item
        return replaced

    def peek(self) -> T | None:
        return self._item

    def take(self) -> T | None:
        item, self._item = self._item, None
        return item

    def drop(self) -> bool:
        """Discard the unsent item, counting it; True when there was one."""
        if self._item is None:
            return False
        self._item = None
        self.dropped += 1
        return True

    def __bool__(self) -> bool:
        return self._item is not None


@dataclass(frozen=True)
class LostWorker(Generic[T]):
    """A worker given up on, and the frames it held (oldest first)."""

    worker: bytes
    frames: list[tuple[int, T]]


@dataclass
class _Worker(Generic[T]):
    #: None until a request says (a heartbeat does not); 0 from a worker that never says.
    started_at_ns: int | None
    heard_at: float
    #: seq -> (frame, when it was handed out); only for workers that report what they finish.
    frames: OrderedDict[int, tuple[T, float]]


class InFlight(Generic[T]):
    """Which frames each worker holds, and when each worker was last heard from.

    A worker is tracked from its first message. Frames are kept (at most ``max_per_worker``
    per worker, the oldest forgotten first) only for workers that say when they started:
    those also report the seqs they finished, so what they still hold is known and can be
    handed to another worker if they are lost. A worker that says nothing of the kind
    (``started_at_ns`` 0, an older worker) is only watched for silence.
    """

    def __init__(self, max_per_worker: int) -> None:
        if max_per_worker < 1:
            raise ValueError(f"max_per_worker: expected >= 1, found {max_per_worker}")
        self._max = max_per_worker
        self._workers: dict[bytes, _Worker[T]] = {}
        #: Frames forgotten because a worker held more than max_per_worker (it never said done).
        self.evicted = 0

    def heard(
        self, worker: bytes, now: float, started_at_ns: int | None = None
    ) -> LostWorker[T] | None:
        """A message came from ``worker``; ``started_at_ns`` when it was a request.

        A start time other than the one seen before means the worker restarted under the same
        identity: what the old process held is returned as lost.
        """
        state = self._workers.get(worker)
        lost = None
        if (
            state is not None
            and started_at_ns is not None
            and state.started_at_ns is not None
            and started_at_ns != state.started_at_ns
        ):
            lost = self.lose(worker)
            state = None
        if state is None:
            state = _Worker(started_at_ns, now, OrderedDict())
            self._workers[worker] = state
        elif state.started_at_ns is None:
            state.started_at_ns = started_at_ns
        state.heard_at = now
        return lost

    def sent(self, worker: bytes, seq: int, frame: T, now: float) -> None:
        """``frame`` (number ``seq``) went to ``worker``."""
        state = self._workers.get(worker)
        if state is None or not state.started_at_ns:
            return
        state.frames[seq] = (frame, now)
        while len(state.frames) > self._max:
            state.frames.popitem(last=False)
            self.evicted += 1

    def done(self, worker: bytes, seqs: tuple[int, ...], now: float) -> list[float]:
        """``worker`` finished ``seqs``; the seconds each known one was in flight."""
        state = self._workers.get(worker)
        if state is None:
            return []
        spans = []
        for seq in seqs:
            held = state.frames.pop(seq, None)
            if held is not None:
                spans.append(now - held[1])
        return spans

    def silent(self, now: float, timeout_s: float) -> list[bytes]:
        """Workers not heard from for ``timeout_s`` or longer."""
        return [w for w, state in self._workers.items() if now - state.heard_at >= timeout_s]

    def lose(self, worker: bytes) -> LostWorker[T]:
        """Stop tracking ``worker``; the frames it held, oldest first."""
        state = self._workers.pop(worker, None)
        frames = [] if state is None else [(seq, held[0]) for seq, held in state.frames.items()]
        return LostWorker(worker, frames)

    def held_by(self, worker: bytes) -> list[int]:
        state = self._workers.get(worker)
        return [] if state is None else list(state.frames)

    def __contains__(self, worker: bytes) -> bool:
        return worker in self._workers

    @property
    def workers(self) -> int:
        return len(self._workers)

    @property
    def total(self) -> int:
        return sum(len(state.frames) for state in self._workers.values())
