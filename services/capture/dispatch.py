"""Credit bookkeeping and the live-mode newest-frame slot: pure, no sockets, no clocks."""

from __future__ import annotations

from typing import Generic, TypeVar

__all__ = ["Credits", "NewestSlot"]

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
