"""Transport helpers on real sockets bound to random loopback ports."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest
import zmq

from shared.messages import WorkRequest
from shared.transport import (
    Socket,
    TransportError,
    bind,
    connect,
    is_loopback_endpoint,
    make_socket,
    recv_multipart_timeout,
    send_nowait,
    set_heartbeats,
)
from shared.wire import decode, encode, split_envelope

pytestmark = pytest.mark.timeout(10)


@pytest.fixture
def ctx() -> Iterator[zmq.Context[Any]]:
    context: zmq.Context[Any] = zmq.Context()
    yield context
    context.destroy(linger=0)


def router_dealer(ctx: zmq.Context[Any]) -> tuple[Socket, Socket]:
    router = make_socket(ctx, zmq.ROUTER)
    port = router.bind_to_random_port("tcp://127.0.0.1")
    dealer = make_socket(ctx, zmq.DEALER, identity=b"worker-1")
    set_heartbeats(dealer, 100, 1000)
    connect(dealer, f"tcp://127.0.0.1:{port}")
    return router, dealer


def test_dealer_router_round_trip(ctx: zmq.Context[Any]) -> None:
    router, dealer = router_dealer(ctx)
    request = WorkRequest(worker_id="worker-1", credit=2)
    assert send_nowait(dealer, encode(request))
    frames = recv_multipart_timeout(router, 2000)
    assert frames is not None
    identity, rest = split_envelope(frames)
    assert identity == b"worker-1"
    assert decode(rest)[0] == request
    assert send_nowait(router, [identity, *encode(request)])
    reply = recv_multipart_timeout(dealer, 2000)
    assert reply is not None
    assert decode(reply)[0] == request


def test_recv_timeout_returns_none_in_bounded_time(ctx: zmq.Context[Any]) -> None:
    router, _ = router_dealer(ctx)
    started = time.monotonic()
    assert recv_multipart_timeout(router, 100) is None
    elapsed = time.monotonic() - started
    assert 0.05 <= elapsed < 1.0


def test_send_nowait_reports_full_queue(ctx: zmq.Context[Any]) -> None:
    # A DEALER with no peer has nowhere to queue, so a non-blocking send would block.
    dealer = make_socket(ctx, zmq.DEALER, sndhwm=1)
    assert send_nowait(dealer, [b"h", b""]) is False


def test_make_socket_options(ctx: zmq.Context[Any]) -> None:
    socket = make_socket(ctx, zmq.PUB, linger=5, sndhwm=3, rcvhwm=4, identity=b"x")
    assert socket.getsockopt(zmq.LINGER) == 5
    assert socket.getsockopt(zmq.SNDHWM) == 3
    assert socket.getsockopt(zmq.RCVHWM) == 4
    with pytest.raises(TransportError, match="identity"):
        make_socket(ctx, zmq.DEALER, identity=b"")


def test_bind_returns_endpoint_and_names_it_on_error(ctx: zmq.Context[Any]) -> None:
    first = make_socket(ctx, zmq.PAIR)
    endpoint = bind(first, "tcp://127.0.0.1:*")
    assert endpoint.startswith("tcp://127.0.0.1:")
    second = make_socket(ctx, zmq.PAIR)
    with pytest.raises(TransportError, match=endpoint):
        bind(second, endpoint)
    with pytest.raises(TransportError, match="nonsense://x"):
        connect(second, "nonsense://x")


def test_heartbeat_options(ctx: zmq.Context[Any]) -> None:
    socket = make_socket(ctx, zmq.DEALER)
    set_heartbeats(socket, 250, 2000)
    assert socket.getsockopt(zmq.HEARTBEAT_IVL) == 250
    assert socket.getsockopt(zmq.HEARTBEAT_TIMEOUT) == 2000
    with pytest.raises(ValueError):
        set_heartbeats(socket, 0, 10)


@pytest.mark.parametrize(
    ("endpoint", "expected"),
    [
        ("tcp://127.0.0.1:5555", True),
        ("tcp://127.0.0.2:5555", True),
        ("tcp://localhost:5555", True),
        ("tcp://[::1]:5555", True),
        ("tcp://127.0.0.1:*", True),
        ("ipc:///tmp/emojify.sock", True),
        ("inproc://frames", True),
        ("tcp://*:5555", False),
        ("tcp://0.0.0.0:5555", False),
        ("tcp://192.168.1.10:5555", False),
        ("tcp://gpu-box:5555", False),
        ("tcp://eth0:5555", False),
        ("tcp://127.0.0.1;10.0.0.5:5555", False),
        ("127.0.0.1:5555", False),
    ],
)
def test_is_loopback_endpoint(endpoint: str, expected: bool) -> None:
    assert is_loopback_endpoint(endpoint) is expected
