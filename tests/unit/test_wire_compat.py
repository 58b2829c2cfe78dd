"""Hosts one release apart: recorded messages of a release against today's code, today's
messages against a release's recorded rules, and the tolerance rules themselves.

``tests/fixtures/wire/v1/`` holds one header per message kind as a release of schema version 1
sent it (``<name>.msgpack``), what each means (``<name>.json``), and the fields each kind had
(``fields.json``: name -> msgpack type, and which were required). Record the current release's
set with ``python -m tests.unit.test_wire_compat DIR`` into a new folder when a release changes
the wire, and keep the old ones: each must still decode.
"""

from __future__ import annotations

import json
import logging
import sys
from pathlib import Path
from typing import Any

import msgpack
import pytest

from shared.messages import (
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
from shared.metrics import ServiceMetrics
from shared.wire import MESSAGE_TYPES, VersionError, decode, encode, ignored_fields

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "wire"
JPEG = b"\xff\xd8recorded\xff\xd9"
PROBS = (0.05, 0.0, 0.05, 0.7, 0.1, 0.05, 0.05)

#: What each recorded header is: every kind, a result with faces and one with an error.
MESSAGES: dict[str, Message] = {
    "frame": FrameHeader(
        stream_id="cam0", seq=41, captured_at_ns=1_796_000_000_000_000_000, width=640, height=480
    ),
    "result": ResultHeader(
        stream_id="cam0",
        seq=41,
        captured_at_ns=1_796_000_000_000_000_000,
        worker_id="worker-0",
        model_version="cnn-0123456789ab",
        faces=(
            Face.from_probabilities((100, 80, 120, 120), PROBS, track_id=3),
            Face.from_probabilities((400, 60, 90, 90), PROBS[::-1]),
        ),
        timings=StageTimings(decode_ms=2.0, detect_ms=11.5, classify_ms=7.25, total_ms=21.0),
        completed_at_ns=1_796_000_000_030_000_000,
    ),
    "result_error": ResultHeader(
        stream_id="cam0",
        seq=42,
        captured_at_ns=1,
        worker_id="worker-0",
        model_version="cnn-0123456789ab",
        error="corrupt JPEG: no SOI marker",
        completed_at_ns=2,
    ),
    "end": EndOfStream(stream_id="cam0", frame_count=300, dropped=4),
    "ready": WorkRequest(worker_id="worker-0", credit=2, done=(39, 40), started_at_ns=17),
    "heartbeat": Heartbeat(sender="display", sent_at_ns=1_796_000_000_000_000_000),
}


def _type_name(value: Any) -> str:
    return type(value).__name__


def record(folder: Path) -> None:
    """Write this release's message set and field table into ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    fields: dict[str, dict[str, Any]] = {}
    for name, message in MESSAGES.items():
        header = encode(message, JPEG if type(message).has_payload else b"")[0]
        (folder / f"{name}.msgpack").write_bytes(header)
        (folder / f"{name}.json").write_text(json.dumps(message.model_dump(mode="json")) + "\n")
        kind = type(message).kind
        unpacked = msgpack.unpackb(header, raw=False)
        model = MESSAGE_TYPES[kind]
        known = fields.setdefault(
            kind,
            {
                "types": {},
                "required": sorted(n for n, f in model.model_fields.items() if f.is_required()),
            },
        )
        known["types"].update({key: _type_name(value) for key, value in unpacked.items()})
    (folder / "fields.json").write_text(json.dumps(fields, indent=1, sort_keys=True) + "\n")


def _releases() -> list[Path]:
    return sorted(path for path in FIXTURES.iterdir() if path.is_dir())


def _payload(kind: str) -> bytes:
    return JPEG if MESSAGE_TYPES[kind].has_payload else b""


def test_every_recorded_release_of_this_schema_version_decodes_as_it_meant() -> None:
    releases = _releases()
    assert releases, f"no recorded message set under {FIXTURES}"
    for release in releases:
        for header in sorted(release.glob("*.msgpack")):
            kind = msgpack.unpackb(header.read_bytes(), raw=False)["kind"]
            message, _ = decode([header.read_bytes(), _payload(kind)])
            meant = json.loads(header.with_suffix(".json").read_text())
            assert message.model_dump(mode="json") == meant, header


def test_todays_messages_keep_every_field_a_recorded_release_needs() -> None:
    """What an older release requires is still sent, with the type it expects."""
    for release in _releases():
        recorded = json.loads((release / "fields.json").read_text())
        for name, message in MESSAGES.items():
            kind = type(message).kind
            if kind not in recorded:
                continue
            header = msgpack.unpackb(encode(message, _payload(kind))[0], raw=False)
            missing = set(recorded[kind]["required"]) - set(header)
            assert not missing, f"{name}: {release.name} needs {missing}"
            changed = {
                key: (recorded[kind]["types"][key], _type_name(value))
                for key, value in header.items()
                if key in recorded[kind]["types"]
                and recorded[kind]["types"][key] != _type_name(value)
                and recorded[kind]["types"][key] != "NoneType"
                and _type_name(value) != "NoneType"
            }
            assert not changed, f"{name}: fields changed type since {release.name}: {changed}"


def test_fields_of_a_newer_release_are_ignored_counted_and_logged_once(
    caplog: pytest.LogCaptureFixture,
) -> None:
    header = msgpack.unpackb((FIXTURES / "v1" / "result.msgpack").read_bytes(), raw=False)
    header["exposure_us"] = 8000
    header["timings"]["track_ms"] = 0.5
    header["faces"][0]["yaw_deg"] = 12.0
    before = ignored_fields().get("result", 0)
    with caplog.at_level(logging.INFO, logger="shared.wire"):
        for _ in range(3):
            message, _ = decode([msgpack.packb(header), b""])
    assert message == MESSAGES["result"]
    assert ignored_fields()["result"] == before + 9
    logged = [r.getMessage() for r in caplog.records if "ignoring field" in r.getMessage()]
    assert sum("'exposure_us'" in line for line in logged) <= 1
    exposition = ServiceMetrics("display").exposition().decode()
    assert f'emojify_display_wire_ignored_fields_total{{kind="result"}} {before + 9}.0' in (
        exposition
    )


def test_fields_an_older_release_did_not_send_take_their_defaults() -> None:
    """A worker of the release before ``done`` and ``started_at_ns`` (schema version 1 too)."""
    old = {"kind": "ready", "schema_version": 1, "worker_id": "worker-0", "credit": 2}
    message, _ = decode([msgpack.packb(old), b""])
    assert message == WorkRequest(worker_id="worker-0", credit=2, done=(), started_at_ns=0)
    face = {"box_xywh": [1, 2, 3, 4], "probabilities": list(PROBS), "label": "happy", "score": 0.7}
    result = {
        **msgpack.unpackb((FIXTURES / "v1" / "result.msgpack").read_bytes(), raw=False),
        "faces": [face],
    }
    del result["timings"]
    message, _ = decode([msgpack.packb(result), b""])
    assert isinstance(message, ResultHeader)
    assert message.faces[0].track_id is None and message.timings == StageTimings()


@pytest.mark.parametrize(
    ("version", "side"),
    [(SCHEMA_VERSION + 1, "upgrade this service"), (SCHEMA_VERSION - 1, "upgrade the peer")],
)
def test_another_schema_version_is_refused_naming_both_and_the_side_to_upgrade(
    version: int, side: str
) -> None:
    header = {
        **msgpack.unpackb((FIXTURES / "v1" / "frame.msgpack").read_bytes(), raw=False),
        "schema_version": version,
    }
    with pytest.raises(
        VersionError, match=f"schema_version {version} .* speaks {SCHEMA_VERSION}: {side}"
    ):
        decode([msgpack.packb(header), JPEG])


if __name__ == "__main__":
    record(Path(sys.argv[1]))
