"""The preview link: every frame read goes out on an XPUB socket, which also tells who listens.

PUB/SUB loses what is published before a subscription arrives (ZeroMQ's "slow joiner"). A
live camera does not mind; a lossless replay does, since its display must draw every frame.
XPUB hands capture the subscriptions themselves (``\\x01`` + topic when the first display
subscribes, ``\\x00`` + topic when the last one leaves), so a lossless run can hold its first
frame until a display listens.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Final

import zmq

from shared.transport import Socket, send_nowait

__all__ = ["SUBSCRIBE", "UNSUBSCRIBE", "PreviewLink"]

log = logging.getLogger(__name__)

SUBSCRIBE: Final = 1
UNSUBSCRIBE: Final = 0


class PreviewLink:
    """Publishes frames on an XPUB socket and keeps count of whether a display subscribes."""

    def __init__(self, socket: Socket) -> None:
        if socket.type != zmq.XPUB:
            raise ValueError("the preview socket must be an XPUB socket")
        self.socket = socket
        self.topics = 0
        self.ever_subscribed = False

    @property
    def listened_to(self) -> bool:
        """Whether at least one display is subscribed now."""
        return self.topics > 0

    def poll(self) -> None:
        """Take in the subscription messages that have arrived, without waiting."""
        while True:
            try:
                message = self.socket.recv(zmq.NOBLOCK)
            except zmq.Again:
                return
            if not message or message[0] not in (SUBSCRIBE, UNSUBSCRIBE):
                continue  # XPUB passes on anything a subscriber sends; only these mean anything
            if message[0] == SUBSCRIBE:
                self.topics += 1
                if not self.ever_subscribed:
                    log.info("a display subscribed to the preview")
                self.ever_subscribed = True
            else:
                self.topics = max(0, self.topics - 1)
                if not self.topics:
                    log.info("no display subscribed to the preview any more")

    def send(self, frames: Sequence[bytes]) -> bool:
        """Publish without waiting; False when a display's queue is full (it sees the gap)."""
        return send_nowait(self.socket, frames)
