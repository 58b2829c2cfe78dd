"""Capture's credit bookkeeping and newest-frame slot, as tables of operations."""

from __future__ import annotations

import pytest

from services.capture.dispatch import Credits, NewestSlot

# Operations: ("add", worker, n) | ("send", expected_worker_or_None) | ("forget", worker)
Op = tuple[str | int, ...]


def play(credits: Credits, ops: list[Op]) -> list[str | None]:
    """Apply ``ops``; 'send' picks a worker, uses its credit, and records who got the frame."""
    served: list[str | None] = []
    for op in ops:
        if op[0] == "add":
            credits.add(str(op[1]).encode(), int(op[2]))
        elif op[0] == "forget":
            credits.forget(str(op[1]).encode())
        else:
            worker = credits.pick()
            if worker is not None:
                credits.use(worker)
            served.append(None if worker is None else worker.decode())
    return served


@pytest.mark.parametrize(
    ("max_credit", "ops", "expected"),
    [
        ([4, [("send",)], [None]]),
        ([4, [("add", "a", 2), ("send",), ("send",), ("send",)], ["a", "a", None]]),
        # capped at max_credit: asking for 10 gives 4
        ([4, [("add", "a", 10)] + [("send",)] * 5, ["a", "a", "a", "a", None]]),
        ([2, [("add", "a", 1), ("add", "a", 1), ("add", "a", 1)] + [("send",)] * 3,
          ["a", "a", None]]),
        # round-robin among workers with credit
        ([4, [("add", "a", 2), ("add", "b", 2)] + [("send",)] * 5, ["b", "a", "b", "a", None]]),
        ([4, [("add", "a", 3), ("add", "b", 1)] + [("send",)] * 5, ["b", "a", "a", "a", None]]),
        # a newcomer is served first; an exhausted worker is skipped
        ([4, [("add", "a", 2), ("send",), ("add", "c", 1), ("send",), ("send",)],
          ["a", "c", "a"]]),
        # forgetting a worker drops its credit; it comes back only by asking again
        ([4, [("add", "a", 2), ("add", "b", 2), ("forget", "b"), ("send",), ("send",), ("send",)],
          ["a", "a", None]]),
        ([4, [("add", "a", 1), ("forget", "a"), ("send",), ("add", "a", 1), ("send",)],
          [None, "a"]]),
        ([4, [("forget", "ghost"), ("send",)], [None]]),
    ],
    ids=[
        "no-workers", "uses-credit", "capped", "capped-accumulating", "alternates",
        "uneven", "newcomer-first", "forget", "forget-then-return", "forget-unknown",
    ],
)  # fmt: skip
def test_credit_table(max_credit: int, ops: list[Op], expected: list[str | None]) -> None:
    assert play(Credits(max_credit), ops) == expected


def test_counts() -> None:
    credits = Credits(4)
    assert credits.add(b"a", 3) == 3
    assert credits.add(b"a", 3) == 4
    credits.add(b"b", 1)
    assert (credits.workers_with_credit, credits.total) == (2, 5)
    credits.use(b"b")
    assert (credits.workers_with_credit, credits.total, credits.credit_of(b"b")) == (1, 4, 0)
    assert credits.forget(b"a") == 4
    assert credits.total == 0


@pytest.mark.parametrize("bad", [0, -1])
def test_rejects_bad_values(bad: int) -> None:
    with pytest.raises(ValueError, match="expected >= 1"):
        Credits(bad)
    with pytest.raises(ValueError, match="expected >= 1"):
        Credits(4).add(b"a", bad)
    with pytest.raises(ValueError, match="no credit"):
        Credits(4).use(b"a")


# Operations on the slot: ("put", item) | ("take", expected) | ("drop", expected_bool)
@pytest.mark.parametrize(
    ("ops", "dropped"),
    [
        ([("take", None)], 0),
        ([("put", 1), ("take", 1), ("take", None)], 0),
        ([("put", 1), ("put", 2), ("take", 2)], 1),
        ([("put", 1), ("put", 2), ("put", 3), ("take", 3), ("put", 4), ("take", 4)], 2),
        ([("put", 1), ("drop", True), ("drop", False), ("take", None)], 1),
    ],
    ids=["empty", "put-take", "replaced", "replaced-twice", "dropped-at-end"],
)
def test_newest_slot_table(ops: list[tuple[str, object]], dropped: int) -> None:
    slot: NewestSlot[object] = NewestSlot()
    for name, value in ops:
        if name == "put":
            slot.put(value)
            assert slot and slot.peek() == value
        elif name == "take":
            assert slot.take() == value
            assert not slot
        else:
            assert slot.drop() is value
    assert slot.dropped == dropped


def test_put_says_when_it_replaced() -> None:
    slot: NewestSlot[str] = NewestSlot()
    assert slot.put("a") is False
    assert slot.put("b") is True
