"""The wire format, owned here alone: multipart [msgpack header, raw payload] with validation.

Hosts one release apart understand each other: a field a newer sender adds is ignored (counted
in ``ignored_fields``, logged once per name), a field an older sender omits takes its default.
Only another ``schema_version`` (a change of meaning) is refused, naming the side to upgrade.
"""

from __future__ import annotations

import logging
import threading
import typing
from collections import Counter
from collections.abc import Mapping, Sequence
from types import MappingProxyType
from typing import Any, Final, TypeVar

import msgpack
from pydantic import BaseModel, ValidationError

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
    "VersionError",
    "WireError",
    "decode",
    "decode_as",
    "encode",
    "ignored_fields",
    "split_envelope",
]

log = logging.getLogger(__name__)

MAX_HEADER_BYTES: Final = 64 * 1024
MAX_PAYLOAD_BYTES: Final = 16 * 1024 * 1024
#: ZeroMQ routing ids are at most 255 bytes.
MAX_IDENTITY_BYTES: Final = 255

_MODELS: Final = (FrameHeader, ResultHeader, EndOfStream, WorkRequest, Heartbeat)
MESSAGE_TYPES: Final[Mapping[str, type[WireModel]]] = MappingProxyType(
    {model.kind: model for model in _MODELS}
)

M = TypeVar("M", FrameHeader, ResultHeader, EndOfStream, WorkRequest, Heartbeat)


#: Field names logged as ignored, at most: a hostile peer cannot fill the log with new names.
MAX_LOGGED_FIELDS: Final = 32


class WireError(ValueError):
    """A message that breaks the wire format; receivers count it, log it and drop it."""


class VersionError(WireError):
    """A message of another ``schema_version``: the message says which side to upgrade."""


class _Ignored:
    """Fields of newer releases ignored so far, per message kind (all threads)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counts: Counter[str] = Counter()
        self._logged: set[tuple[str, str]] = set()

    def add(self, kind: str, names: Sequence[str]) -> None:
        with self._lock:
            self._counts[kind] += len(names)
            new = [
                name
                for name in names
                if (kind, name) not in self._logged and len(self._logged) < MAX_LOGGED_FIELDS
            ]
            self._logged.update((kind, name) for name in new)
        for name in new:
            log.info(
                "ignoring field %r of %r messages: a peer of a newer release sends it (the "
                "wire's counter ignored_fields counts every one)",
                name[:64],
                kind,
            )

    def snapshot(self) -> dict[str, int]:
        with self._lock:
            return dict(self._counts)


_IGNORED: Final = _Ignored()


def ignored_fields() -> dict[str, int]:
    """How many fields of newer releases this process ignored, per message kind."""
    return _IGNORED.snapshot()


def _unknown(model: type[BaseModel], fields: Mapping[Any, Any], prefix: str = "") -> list[str]:
    """Dotted names of the keys in ``fields`` (and in its nested models) that ``model`` lacks."""
    names = [f"{prefix}{key}" for key in fields if key not in model.model_fields]
    for name, info in model.model_fields.items():
        value, inner = fields.get(name), _model_in(info.annotation)
        if inner is None:
            continue
        items = value if isinstance(value, tuple) else (value,)
        for item in items:
            if isinstance(item, Mapping):
                names += _unknown(inner, item, f"{prefix}{name}.")
    return names


def _model_in(annotation: Any) -> type[BaseModel] | None:
    """The model a field holds, alone or as ``tuple[Model, ...]``; None for other fields."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    if typing.get_origin(annotation) is tuple:
        args = [a for a in typing.get_args(annotation) if a is not Ellipsis]
        if len(args) == 1:
            return _model_in(args[0])
    return None


def _check_version(kind: str, version: object) -> None:
    if version == SCHEMA_VERSION:
        return
    if isinstance(version, int) and not isinstance(version, bool):
        newer = version > SCHEMA_VERSION
        raise VersionError(
            f"{kind!r} message of schema_version {version} from a peer, this service speaks "
            f"{SCHEMA_VERSION}: upgrade {'this service' if newer else 'the peer that sent it'} "
            "(hosts one schema_version apart cannot talk; within one they can)"
        )
    raise WireError(
        f"unsupported schema_version of {kind!r}: expected {SCHEMA_VERSION}, found {version!r}"
    )


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
    _check_version(kind, fields.get("schema_version"))
    _check_payload(kind, model.has_payload, payload)
    try:
        # strict: a sender that puts "5" where an int belongs has a bug we want to see.
        message = model.model_validate(fields, strict=True)
    except ValidationError as error:
        raise WireError(f"invalid {kind!r} header: {_describe(error)}") from error
    assert isinstance(message, _MODELS)
    unknown = _unknown(model, fields)
    if unknown:
        _IGNORED.add(kind, unknown)
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
