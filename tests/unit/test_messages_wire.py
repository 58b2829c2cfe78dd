"""Messages and the wire format: every kind round-trips, every malformed input is refused."""

from __future__ import annotations

from typing import Any

import msgpack
import pytest
from pydantic import ValidationError

from shared.messages import (
    EMOTIONS,
    MAX_DONE,
    SCHEMA_VERSION,
    EndOfStream,
    Face,
    FrameHeader,
    Heartbeat,
    Message,
    ResultHeader,
    StageTimings,
    WorkRequest,
)
from shared.wire import (
    MAX_HEADER_BYTES,
    MAX_PAYLOAD_BYTES,
    WireError,
    decode,
    decode_as,
    encode,
    split_envelope,
)

JPEG = b"\xff\xd8fake-jpeg\xff\xd9"
PROBS = (0.05, 0.0, 0.05, 0.7, 0.1, 0.05, 0.05)


def make_face(**overrides: Any) -> Face:
    fields: dict[str, Any] = {
        "box_xywh": (10, 20, 30, 40),
        "probabilities": PROBS,
        "label": "happy",
        "score": 0.7,
    }
    return Face(**{**fields, **overrides})


FRAME = FrameHeader(
    stream_id="cam0", seq=3, captured_at_ns=1_700_000_000_000_000_000, width=640, height=480
)
RESULT = ResultHeader(
    stream_id="cam0",
    seq=3,
    captured_at_ns=1,
    worker_id="worker-1",
    model_version="cnn-abcdef123456",
    faces=(make_face(), make_face(box_xywh=(0, 0, 5, 5), track_id=7)),
    timings=StageTimings(decode_ms=1.5, detect_ms=10.0, classify_ms=3.25, total_ms=15.0),
    completed_at_ns=2,
)
ERROR_RESULT = ResultHeader(
    stream_id="cam0",
    seq=4,
    captured_at_ns=1,
    worker_id="w",
    model_version="m",
    faces=(),
    timings=StageTimings(),
    error="corrupt JPEG",
    completed_at_ns=2,
)
END = EndOfStream(stream_id="cam0", frame_count=10, dropped=2)
READY = WorkRequest(worker_id="worker-1", credit=2)
BEAT = Heartbeat(sender="display", sent_at_ns=5)


def header_of(message: Message, **changes: Any) -> dict[str, Any]:
    fields: dict[str, Any] = {"kind": type(message).kind, **message.model_dump()}
    fields.update(changes)
    return fields


def pack(fields: object) -> bytes:
    packed: bytes = msgpack.packb(fields, use_bin_type=True)
    return packed


@pytest.mark.parametrize(
    ("message", "payload"),
    [(FRAME, JPEG), (RESULT, b""), (ERROR_RESULT, b""), (END, b""), (READY, b""), (BEAT, b"")],
    ids=["frame", "result", "error-result", "end", "ready", "heartbeat"],
)
def test_round_trip(message: Message, payload: bytes) -> None:
    frames = encode(message, payload)
    assert len(frames) == 2
    assert all(isinstance(frame, bytes) for frame in frames)
    decoded, decoded_payload = decode(frames)
    assert decoded == message
    assert type(decoded) is type(message)
    assert decoded_payload == payload
    assert decoded.schema_version == SCHEMA_VERSION


def test_header_holds_kind_and_fields_and_no_pixels() -> None:
    header, payload = encode(FRAME, JPEG)
    fields = msgpack.unpackb(header, raw=False)
    assert fields["kind"] == "frame"
    assert fields["seq"] == 3
    assert JPEG not in header
    assert payload == JPEG


def test_tuples_survive_the_round_trip() -> None:
    decoded, _ = decode_as(encode(RESULT), ResultHeader)
    assert isinstance(decoded.faces, tuple)
    assert isinstance(decoded.faces[0].box_xywh, tuple)
    assert isinstance(decoded.faces[0].probabilities, tuple)
    assert decoded.faces[1].track_id == 7


def test_decode_as_refuses_other_kind() -> None:
    with pytest.raises(WireError, match="expected a 'result' message, found 'ready'"):
        decode_as(encode(READY), ResultHeader)


def test_messages_are_frozen() -> None:
    with pytest.raises(ValidationError):
        FRAME.seq = 4  # type: ignore[misc]


def test_face_from_probabilities_picks_argmax() -> None:
    face = Face.from_probabilities((1, 2, 3, 4), list(PROBS))
    assert face.label == "happy"
    assert face.score == pytest.approx(0.7)


VALID_FRAME = header_of(FRAME)
VALID_FACE = make_face().model_dump()


@pytest.mark.parametrize(
    ("frames", "expected"),
    [
        ([pack(VALID_FRAME)], "expected 2 frames"),
        ([pack(VALID_FRAME), JPEG, b""], "expected 2 frames"),
        ([b"\xc1", JPEG], "not valid msgpack"),
        ([pack(VALID_FRAME) + b"\x00", JPEG], "not valid msgpack"),
        ([pack([1, 2, 3]), JPEG], "must be a msgpack map, found tuple"),
        ([pack("frame"), JPEG], "must be a msgpack map, found str"),
        ([pack({**VALID_FRAME, "kind": "bogus"}), JPEG], "unknown kind"),
        ([pack({k: v for k, v in VALID_FRAME.items() if k != "kind"}), JPEG], "string 'kind'"),
        ([pack({**VALID_FRAME, "schema_version": 2}), JPEG], "schema_version 2 .* upgrade this"),
        ([pack({**VALID_FRAME, "schema_version": "1"}), JPEG], "expected 1, found '1'"),
        ([pack({**VALID_FRAME, "seq": "3"}), JPEG], "seq"),
        ([pack({**VALID_FRAME, "seq": 3.0}), JPEG], "seq"),
        ([pack({**VALID_FRAME, "seq": -1}), JPEG], "seq"),
        ([pack({**VALID_FRAME, "width": 0}), JPEG], "width"),
        ([pack({**VALID_FRAME, "height": 9000}), JPEG], "height"),
        ([pack({**VALID_FRAME, "stream_id": "cam 0"}), JPEG], "stream_id"),
        ([pack({**VALID_FRAME, "encoding": "png"}), JPEG], "encoding"),
        ([pack({**VALID_FRAME, "stream_id": b"cam0"}), JPEG], "not valid msgpack"),
        ([pack(header_of(READY, credit=0)), b""], "credit"),
        ([pack(header_of(READY, credit=17)), b""], "credit"),
        ([pack(header_of(END, frame_count=-1)), b""], "frame_count"),
        ([pack(header_of(RESULT, worker_id="")), b""], "worker_id"),
        ([pack(header_of(RESULT, model_version="m" * 129)), b""], "model_version"),
        ([pack(header_of(RESULT, faces=[VALID_FACE] * 65)), b""], "faces"),
        (
            [pack(header_of(RESULT, faces=[{**VALID_FACE, "probabilities": [*PROBS, 0.0]}])), b""],
            "expected 7 probabilities",
        ),
        (
            [
                pack(header_of(RESULT, faces=[{**VALID_FACE, "probabilities": [1.5, *PROBS[1:]]}])),
                b"",
            ],
            "within 0..1",
        ),
        (
            [
                pack(
                    header_of(
                        RESULT, faces=[{**VALID_FACE, "probabilities": [float("nan"), *PROBS[1:]]}]
                    )
                ),
                b"",
            ],
            "probabilities",
        ),
        ([pack(header_of(RESULT, faces=[{**VALID_FACE, "label": "bored"}])), b""], "bored"),
        ([pack(header_of(RESULT, faces=[{**VALID_FACE, "score": 0.2}])), b""], "score"),
        (
            [pack(header_of(RESULT, faces=[{**VALID_FACE, "box_xywh": [0, 0, 0, 5]}])), b""],
            "width and height",
        ),
        ([pack(header_of(RESULT, faces=[{**VALID_FACE, "box_xywh": [0, 0, 5]}])), b""], "box_xywh"),
        ([pack(header_of(RESULT, timings={"decode_ms": -1.0})), b""], "decode_ms"),
        ([b"\x80" + b" " * MAX_HEADER_BYTES, b""], "header too big"),
        ([pack(VALID_FRAME), b"x" * (MAX_PAYLOAD_BYTES + 1)], "payload too big"),
        ([pack(VALID_FRAME), b""], "needs a payload"),
        ([pack(header_of(READY)), b"x"], "takes no payload"),
        ([pack(header_of(RESULT)), JPEG], "takes no payload"),
    ],
)
def test_decode_rejects(frames: list[bytes], expected: str) -> None:
    with pytest.raises(WireError, match=expected):
        decode(frames)


def test_encode_refuses_what_decode_would_refuse() -> None:
    with pytest.raises(WireError, match="needs a payload"):
        encode(FRAME)
    with pytest.raises(WireError, match="takes no payload"):
        encode(READY, b"x")
    with pytest.raises(WireError, match="payload too big"):
        encode(FRAME, b"x" * (MAX_PAYLOAD_BYTES + 1))
    # model_copy skips validation, like a sender with a bug would.
    huge = RESULT.model_copy(update={"model_version": "m" * MAX_HEADER_BYTES})
    with pytest.raises(WireError, match="header too big"):
        encode(huge)


@pytest.mark.parametrize(
    "fields",
    [
        {"probabilities": PROBS[:6]},
        {"probabilities": (*PROBS, 0.0)},
        {"probabilities": (-0.1, *PROBS[1:])},
        {"label": "Happy"},
        {"score": 1.5},
        {"box_xywh": (0, 0, -1, 4)},
    ],
)
def test_face_validation(fields: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        make_face(**fields)


def test_labels_are_fer2013_order() -> None:
    assert EMOTIONS == ("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral")


def test_envelope_split_and_join() -> None:
    frames = encode(READY)
    identity, rest = split_envelope([b"worker-1", *frames])
    assert identity == b"worker-1"
    assert decode(rest)[0] == READY


@pytest.mark.parametrize(
    "frames",
    [
        [],
        [b"id"],
        [b"id", b"h"],
        [b"", b"h", b""],
        [b"x" * 256, b"h", b""],
        [b"id", b"", b"h", b""],
    ],
)
def test_split_envelope_rejects(frames: list[bytes]) -> None:
    with pytest.raises(WireError):
        split_envelope(frames)


def test_work_request_reports_done_seqs_and_start_time() -> None:
    request = WorkRequest(worker_id="w", credit=1, done=(4, 5, 7), started_at_ns=123)
    decoded, _ = decode_as(encode(request), WorkRequest)
    assert decoded == request
    assert decoded.done == (4, 5, 7) and isinstance(decoded.done, tuple)


def test_work_request_from_a_sender_that_predates_done_still_decodes() -> None:
    # What a worker built before `done` and `started_at_ns` existed puts on the wire.
    old = msgpack.packb(
        {"kind": "ready", "schema_version": 1, "worker_id": "old-worker", "credit": 2},
        use_bin_type=True,
    )
    decoded, _ = decode_as([old, b""], WorkRequest)
    assert decoded == WorkRequest(worker_id="old-worker", credit=2)
    assert (decoded.done, decoded.started_at_ns) == ((), 0)


@pytest.mark.parametrize(
    ("changes", "expected"),
    [
        ({"done": (-1,)}, r"done\.0"),
        ({"done": tuple(range(MAX_DONE + 1))}, r"done: Tuple should have at most"),
        ({"done": ("3",)}, r"done\.0"),
        ({"started_at_ns": -5}, r"started_at_ns"),
    ],
    ids=["negative-seq", "too-many", "string-seq", "negative-start"],
)
def test_work_request_done_is_validated(changes: dict[str, Any], expected: str) -> None:
    header = msgpack.packb(header_of(READY, **changes), use_bin_type=True)
    with pytest.raises(WireError, match=expected):
        decode([header, b""])
