"""pyzmq helpers: socket setup with safe defaults, bounded receives, non-blocking sends."""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence
from typing import Any, Final

import zmq

__all__ = [
    "PREVIEW_QUEUE",
    "Socket",
    "TransportError",
    "bind",
    "connect",
    "is_loopback_endpoint",
    "is_loopback_host",
    "make_socket",
    "recv_multipart_timeout",
    "send_nowait",
    "set_heartbeats",
]

Socket = zmq.Socket[bytes]
Context = zmq.Context[Any]

#: Preview frames queued on each side of a capture-to-display link (capture's PUB, the
#: display's SUB): about 2 s at 15 fps. A display that falls behind loses frames instead of
#: costing capture memory, and counts them from the gaps in seq numbers (preview_missed).
PREVIEW_QUEUE: Final = 32


class TransportError(RuntimeError):
    """A socket could not be bound or connected as configured."""


def make_socket(
    ctx: Context,
    socket_type: int,
    *,
    linger: int = 0,
    sndhwm: int | None = None,
    rcvhwm: int | None = None,
    identity: bytes | None = None,
) -> Socket:
    """A socket with options set before bind/connect (where ZeroMQ requires them)."""
    socket: Socket = ctx.socket(socket_type)
    try:
        # linger=0: a stopping service must not hang on frames nobody will read.
        socket.setsockopt(zmq.LINGER, linger)
        if sndhwm is not None:
            socket.setsockopt(zmq.SNDHWM, sndhwm)
        if rcvhwm is not None:
            socket.setsockopt(zmq.RCVHWM, rcvhwm)
        if identity is not None:
            if not 0 < len(identity) <= 255 or identity.startswith(b"\x00"):
                raise TransportError(
                    f"identity: expected 1..255 bytes not starting with NUL, found {identity!r}"
                )
            socket.setsockopt(zmq.IDENTITY, identity)
    except BaseException:
        socket.close(linger=0)
        raise
    return socket


def bind(socket: Socket, endpoint: str) -> str:
    """Bind ``endpoint``; return the endpoint actually bound (resolves ``tcp://host:*``)."""
    try:
        socket.bind(endpoint)
    except zmq.ZMQError as error:
        raise TransportError(f"cannot bind {endpoint!r}: {error}") from error
    last = socket.getsockopt(zmq.LAST_ENDPOINT)
    return last.decode() if isinstance(last, bytes) else str(last)


def connect(socket: Socket, endpoint: str) -> None:
    """Connect to ``endpoint`` (ZeroMQ retries in the background until the peer is there)."""
    try:
        socket.connect(endpoint)
    except zmq.ZMQError as error:
        raise TransportError(f"cannot connect to {endpoint!r}: {error}") from error


def recv_multipart_timeout(socket: Socket, timeout_ms: int) -> list[bytes] | None:
    """The next multipart message, or None if none arrives within ``timeout_ms``.

    Polls first, never blocks in a bare ``recv``: a signal handler does not wake one, so loops
    that use this notice their stop event within ``timeout_ms``.
    """
    if not socket.poll(max(0, timeout_ms), zmq.POLLIN):
        return None
    try:
        frames: list[bytes] = socket.recv_multipart(flags=zmq.NOBLOCK)
    except zmq.Again:
        return None
    return frames


def send_nowait(socket: Socket, frames: Sequence[bytes]) -> bool:
    """Send without waiting; False when the peer's queue is full (count it as a drop)."""
    try:
        socket.send_multipart(list(frames), flags=zmq.NOBLOCK)
    except zmq.Again:
        return False
    return True


def set_heartbeats(socket: Socket, ivl_ms: int, timeout_ms: int) -> None:
    """ZMTP heartbeats: ping every ``ivl_ms``, drop the connection after ``timeout_ms`` silent.

    Call before connect/bind. Also sets the TTL the peer applies to us to ``timeout_ms``.
    """
    if ivl_ms <= 0 or timeout_ms < ivl_ms:
        raise ValueError(
            f"heartbeats: expected 0 < ivl_ms <= timeout_ms, found ivl_ms={ivl_ms}, "
            f"timeout_ms={timeout_ms}"
        )
    socket.setsockopt(zmq.HEARTBEAT_IVL, ivl_ms)
    socket.setsockopt(zmq.HEARTBEAT_TIMEOUT, timeout_ms)
    # ZMTP carries the TTL in deciseconds, capped at 6553.5 s.
    socket.setsockopt(zmq.HEARTBEAT_TTL, min(timeout_ms, 6_553_500))


def is_loopback_endpoint(endpoint: str) -> bool:
    """Whether traffic on ``endpoint`` stays on this host (inproc, ipc, tcp to loopback)."""
    scheme, sep, rest = endpoint.partition("://")
    if not sep:
        return False
    if scheme in ("inproc", "ipc"):
        return True
    if scheme != "tcp":
        return False
    # tcp://[source;]host:port; a source address does not change where packets go.
    return is_loopback_host(rest.rsplit(";", 1)[-1].rsplit(":", 1)[0])


def is_loopback_host(host: str) -> bool:
    """Whether ``host`` (a name or address, IPv6 in brackets or not) is this host only."""
    host = host.removeprefix("[").removesuffix("]")
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        # '*', interface names like eth0, other host names: assume the network.
        return False
