"""The wire format, owned here alone: multipart [msgpack header, raw payload] with validation."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from types import MappingProxyType
from typing import Any, Final, TypeVar

import msgpack
from pydantic import ValidationError

from shared.messages import (
    SCHEMA_VERSION,
    EndOfStream,
    FrameHeader,
    Heartbeat,
    Message,
    ResultHeader,
    WireModel,
    WorkRequest,
)

__all__ = [
    "MAX_HEADER_BYTES",
    "MAX_IDENTITY_BYTES",
    "MAX_PAYLOAD_BYTES",
    "MESSAGE_TYPES",
    "WireError",
    "decode",
    "decode_as",
    "encode",
    "split_envelope",
]

MAX_HEADER_BYTES: Final = 64 * 1024
MAX_PAYLOAD_BYTES: Final = 16 * 1024 * 1024
#: ZeroMQ routing ids are at most 255 bytes.
MAX_IDENTITY_BYTES: Final = 255

_MODELS: Final = (FrameHeader, ResultHeader, EndOfStream, WorkRequest, Heartbeat)
MESSAGE_TYPES: Final[Mapping[str, type[WireModel]]] = MappingProxyType(
    {model.kind: model for model in _MODELS}
)

M = TypeVar("M", FrameHeader, ResultHeader, EndOfStream, WorkRequest, Heartbeat)


class WireError(ValueError):
    """A message that breaks the wire format; receivers count it, log it and drop it."""


def _check_payload(kind: str, has_payload: bool, payload: bytes) -> None:
    if len(payload) > MAX_PAYLOAD_BYTES:
        raise WireError(
            f"{kind!r} payload too big: expected at most {MAX_PAYLOAD_BYTES} bytes, "
            f"found {len(payload)}"
        )
    if has_payload and not payload:
        raise WireError(f"{kind!r} message needs a payload: expected JPEG bytes, found none")
    if not has_payload and payload:
        raise WireError(
            f"{kind!r} message takes no payload: expected 0 bytes, found {len(payload)}"
        )


def encode(message: Message, payload: bytes = b"") -> list[bytes]:
    """Frames ``[header, payload]`` for ``message``; raises WireError if they would not decode."""
    kind = type(message).kind
    _check_payload(kind, type(message).has_payload, payload)
    fields = message.model_dump(mode="python")
    header: bytes = msgpack.packb({"kind": kind, **fields}, use_bin_type=True)
    if len(header) > MAX_HEADER_BYTES:
        raise WireError(
            f"{kind!r} header too big: expected at most {MAX_HEADER_BYTES} bytes, "
            f"found {len(header)}"
        )
    return [header, bytes(payload)]


def _unpack_header(header: bytes) -> dict[str, Any]:
    if len(header) > MAX_HEADER_BYTES:
        raise WireError(
            f"header too big: expected at most {MAX_HEADER_BYTES} bytes, found {len(header)}"
        )
    try:
        # use_list=False so arrays arrive as tuples and strict validation accepts them; the
        # explicit limits (besides the size check above) bound what a hostile header can allocate.
        obj = msgpack.unpackb(
            header,
            raw=False,
            strict_map_key=True,
            use_list=False,
            max_str_len=MAX_HEADER_BYTES,
            max_bin_len=0,
            max_array_len=1024,
            max_map_len=64,
            max_ext_len=0,
        )
    except (ValueError, TypeError, msgpack.UnpackException) as error:
        raise WireError(
            f"header is not valid msgpack ({len(header)} bytes): {type(error).__name__} {error}"
        ) from error
    if not isinstance(obj, dict):
        raise WireError(f"header must be a msgpack map, found {type(obj).__name__}")
    return obj


def _describe(error: ValidationError) -> str:
    parts = []
    for item in error.errors(include_url=False):
        location = ".".join(str(part) for part in item["loc"]) or "<header>"
        found = repr(item.get("input"))
        if len(found) > 80:
            found = found[:77] + "..."
        parts.append(f"{location}: {item['msg']} (found {found})")
    return "; ".join(parts)


def decode(frames: Sequence[bytes]) -> tuple[Message, bytes]:
    """Validate frames ``[header, payload]`` into a message and its payload, or raise WireError."""
    if len(frames) != 2:
        raise WireError(f"expected 2 frames [header, payload], found {len(frames)}")
    header, payload = (bytes(frame) for frame in frames)
    fields = _unpack_header(header)
    kind = fields.pop("kind", None)
    if not isinstance(kind, str):
        raise WireError(f"header needs a string 'kind', found {kind!r}")
    model = MESSAGE_TYPES.get(kind)
    if model is None:
        raise WireError(f"unknown kind: expected one of {sorted(MESSAGE_TYPES)}, found {kind!r}")
    version = fields.get("schema_version")
    if version != SCHEMA_VERSION:
        raise WireError(
            f"unsupported schema_version of {kind!r}: expected {SCHEMA_VERSION}, found {version!r}"
        )
    _check_payload(kind, model.has_payload, payload)
    try:
        # strict: a sender that puts "5" where an int belongs has a bug we want to see.
        message = model.model_validate(fields, strict=True)
    except ValidationError as error:
        raise WireError(f"invalid {kind!r} header: {_describe(error)}") from error
    assert isinstance(message, _MODELS)
    return message, payload


def decode_as(frames: Sequence[bytes], expected: type[M]) -> tuple[M, bytes]:
    """Like ``decode`` but also raises WireError unless the message is of type ``expected``."""
    message, payload = decode(frames)
    if not isinstance(message, expected):
        raise WireError(f"expected a {expected.kind!r} message, found {type(message).kind!r}")
    return message, payload


def split_envelope(frames: Sequence[bytes]) -> tuple[bytes, list[bytes]]:
    """Split what a ROUTER receives from a DEALER, ``[identity, header, payload]``."""
    if len(frames) != 3:
        raise WireError(f"expected 3 frames [identity, header, payload], found {len(frames)}")
    identity = bytes(frames[0])
    if not 0 < len(identity) <= MAX_IDENTITY_BYTES:
        raise WireError(
            f"expected a routing identity of 1..{MAX_IDENTITY_BYTES} bytes, found {len(identity)}"
        )
    return identity, [bytes(frame) for frame in frames[1:]]
