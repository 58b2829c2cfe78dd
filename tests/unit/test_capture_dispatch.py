"""Capture's credit and in-flight bookkeeping and newest-frame slot, as tables of operations."""

from __future__ import annotations

from typing import Any

import pytest

from services.capture.dispatch import Credits, InFlight, NewestSlot

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


# In-flight bookkeeping. Operations, applied at time ``t`` (seconds):
#   ("heard", t, worker[, started_at_ns])  a heartbeat, or a request telling its start time
#   ("sent", t, worker, seq)               frame ``seq`` handed to ``worker``
#   ("done", t, worker, (seqs...))         ``worker`` reports them finished
#   ("lose", t, worker)                    give ``worker`` up
# ``expected``: per worker the seqs it still holds; ``lost`` the seqs of every lose (and of a
# restart found by "heard"), in order; ``silent``: workers silent for 3 s at the last t.
InOp = tuple[Any, ...]


def play_inflight(
    ops: list[InOp], max_per_worker: int = 2
) -> tuple[InFlight[str], list[list[int]], list[str]]:
    inflight: InFlight[str] = InFlight(max_per_worker)
    lost: list[list[int]] = []
    now = 0.0
    for op in ops:
        name, now, worker = op[0], float(op[1]), str(op[2]).encode()
        if name == "heard":
            restarted = inflight.heard(worker, now, *op[3:])
            if restarted is not None:
                lost.append([seq for seq, _ in restarted.frames])
        elif name == "sent":
            inflight.sent(worker, int(op[3]), f"frame-{op[3]}", now)
        elif name == "done":
            inflight.done(worker, tuple(op[3]), now)
        else:
            lost.append([seq for seq, _ in inflight.lose(worker).frames])
    silent = sorted(w.decode() for w in inflight.silent(now, 3.0))
    return inflight, lost, silent


@pytest.mark.parametrize(
    ("ops", "held", "lost", "silent"),
    [
        # a worker that says when it started is tracked; done frames leave
        ([("heard", 0, "a", 7), ("sent", 0, "a", 0), ("sent", 0, "a", 1), ("done", 1, "a", (0,))],
         {"a": [1]}, [], []),
        # losing it hands back what it held, oldest first, and forgets it
        ([("heard", 0, "a", 7), ("sent", 0, "a", 5), ("sent", 0, "a", 3), ("lose", 1, "a")],
         {"a": []}, [[5, 3]], []),
        # silent for 3 s: reported; a heartbeat keeps it alive
        ([("heard", 0, "a", 7), ("heard", 0, "b", 7), ("heard", 2, "b"), ("heard", 3, "c", 1)],
         {}, [], ["a"]),
        # a new start time under the same identity: the old process's frames are lost
        ([("heard", 0, "a", 7), ("sent", 0, "a", 0), ("heard", 1, "a", 8), ("sent", 1, "a", 1)],
         {"a": [1]}, [[0]], []),
        # the same start time again is the same process
        ([("heard", 0, "a", 7), ("sent", 0, "a", 0), ("heard", 1, "a", 7)],
         {"a": [0]}, [], []),
        # a heartbeat before the first request does not count as a restart
        ([("heard", 0, "a"), ("heard", 0, "a", 7), ("sent", 0, "a", 4)],
         {"a": [4]}, [], []),
        # an older worker (start time 0) is watched for silence but its frames are not kept
        ([("heard", 0, "a", 0), ("sent", 0, "a", 0), ("lose", 1, "a")],
         {"a": []}, [[]], []),
        # unknown workers: nothing kept, nothing lost
        ([("sent", 0, "x", 0), ("done", 0, "x", (0,)), ("lose", 0, "x")],
         {"x": []}, [[]], []),
        # more than max_per_worker (a worker whose done reports got lost): oldest forgotten
        ([("heard", 0, "a", 7), ("sent", 0, "a", 0), ("sent", 0, "a", 1), ("sent", 0, "a", 2)],
         {"a": [1, 2]}, [], []),
        # done for frames it does not hold (reported twice, or after a re-queue) is ignored
        ([("heard", 0, "a", 7), ("sent", 0, "a", 0), ("done", 0, "a", (9, 0, 0))],
         {"a": []}, [], []),
    ],
    ids=[
        "done-leaves", "lose-returns-frames", "silence", "restart", "same-process",
        "heartbeat-first", "old-worker", "unknown", "bounded", "done-unknown",
    ],
)  # fmt: skip
def test_inflight_table(
    ops: list[InOp], held: dict[str, list[int]], lost: list[list[int]], silent: list[str]
) -> None:
    inflight, found_lost, found_silent = play_inflight(ops)
    assert {w: inflight.held_by(w.encode()) for w in held} == held
    assert found_lost == lost
    assert found_silent == silent


def test_inflight_counts_and_spans() -> None:
    inflight: InFlight[str] = InFlight(2)
    inflight.heard(b"a", 0.0, 7)
    inflight.heard(b"b", 0.0, 8)
    inflight.sent(b"a", 0, "f0", 1.0)
    inflight.sent(b"b", 1, "f1", 1.5)
    inflight.sent(b"b", 2, "f2", 1.5)
    inflight.sent(b"b", 3, "f3", 1.5)
    assert (inflight.workers, inflight.total, inflight.evicted) == (2, 3, 1)
    assert inflight.done(b"a", (0,), 1.25) == [0.25]
    assert b"a" in inflight and b"c" not in inflight
    assert inflight.lose(b"b").frames == [(2, "f2"), (3, "f3")]
    assert (inflight.workers, inflight.total) == (1, 0)
    with pytest.raises(ValueError, match="expected >= 1"):
        InFlight(0)
