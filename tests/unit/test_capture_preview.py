"""The preview link sees displays subscribe and leave, and publishes without blocking."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest
import zmq

from services.capture.preview import PreviewLink
from shared.transport import make_socket


@pytest.fixture
def ctx() -> Iterator[zmq.Context[Any]]:
    context: zmq.Context[Any] = zmq.Context()
    yield context
    context.destroy(linger=0)


def _until(condition: Any, link: PreviewLink, timeout_s: float = 5.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        link.poll()
        if condition():
            return
        link.socket.poll(50, zmq.POLLIN)
    raise AssertionError("the subscription change never arrived")


def test_a_display_subscribing_and_leaving_is_seen(ctx: zmq.Context[Any]) -> None:
    link = PreviewLink(make_socket(ctx, zmq.XPUB))
    link.socket.bind("inproc://preview")
    assert not link.listened_to and not link.ever_subscribed
    sub = make_socket(ctx, zmq.SUB)
    sub.connect("inproc://preview")
    sub.setsockopt(zmq.SUBSCRIBE, b"")
    _until(lambda: link.listened_to, link)
    assert link.send([b"header", b"payload"])
    assert sub.poll(5000) and sub.recv_multipart() == [b"header", b"payload"]
    sub.close(linger=0)
    _until(lambda: not link.listened_to, link)
    assert link.ever_subscribed


def test_a_plain_pub_socket_is_refused(ctx: zmq.Context[Any]) -> None:
    with pytest.raises(ValueError, match="XPUB"):
        PreviewLink(make_socket(ctx, zmq.PUB))
