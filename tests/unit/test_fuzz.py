"""Fuzzing with a fixed budget of examples: the wire decoder and the page's HTTP handling.

Whatever bytes arrive, ``shared.wire.decode`` returns a message or raises ``WireError``, and
the page's server (uvicorn's h11 parser, our routes, the login form, the cookie and bearer
checks) answers with a status or closes the connection, and goes on serving. Each run draws
new examples; a failure prints the example and a ``@reproduce_failure`` line.
"""

from __future__ import annotations

import contextlib
import logging
import socket
import urllib.request
from collections.abc import Iterator
from http import HTTPStatus
from typing import Any

import msgpack
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from services.display.page_auth import PageAuth, protect
from shared.http_server import HttpServer, Request, Response, reply
from shared.messages import SCHEMA_VERSION
from shared.wire import MESSAGE_TYPES, WireError, decode
from tests.waiting import wait_for

# Hundreds of examples a test: part of `make test`, not of the quick loop (`make unit`).
pytestmark = pytest.mark.slow

FUZZ = settings(
    max_examples=300,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
HTTP_FUZZ = settings(FUZZ, max_examples=100)
#: Nested headers take longer to draw than to decode.
HEADER_FUZZ = settings(FUZZ, max_examples=150)

_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**63), max_value=2**64 - 1),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=80),
    st.binary(max_size=80),
)
_values = st.recursive(
    _scalars,
    lambda inner: (
        st.lists(inner, max_size=8) | st.dictionaries(st.text(max_size=12), inner, max_size=8)
    ),
    max_leaves=10,
)
_KNOWN_NAMES = sorted({name for model in MESSAGE_TYPES.values() for name in model.model_fields})
_field_names = st.sampled_from(
    [*_KNOWN_NAMES, "kind", "faces", "timings", "box_xywh", "probabilities", "label", "extra"]
)


@st.composite
def _headers(draw: st.DrawFn) -> dict[str, Any]:
    """Maps shaped like our headers (a known kind and version, known and unknown fields)."""
    fields: dict[str, Any] = {
        "kind": draw(st.sampled_from(sorted(MESSAGE_TYPES)) | st.text(max_size=8)),
        "schema_version": draw(st.just(SCHEMA_VERSION) | _scalars),
    }
    fields.update(draw(st.dictionaries(_field_names | st.text(max_size=12), _values, max_size=12)))
    return fields


def _decodes_or_refuses(frames: list[bytes]) -> None:
    with contextlib.suppress(WireError):
        decode(frames)


@FUZZ
@given(frames=st.lists(st.binary(max_size=512), max_size=4))
def test_decode_takes_any_bytes(frames: list[bytes]) -> None:
    _decodes_or_refuses(frames)


@HEADER_FUZZ
@given(header=_headers(), payload=st.binary(max_size=64))
def test_decode_takes_any_header_shaped_like_ours(header: dict[str, Any], payload: bytes) -> None:
    try:
        packed = msgpack.packb(header, use_bin_type=True)
    except (OverflowError, ValueError, TypeError):
        return  # not representable in msgpack: no peer could send it
    _decodes_or_refuses([packed, payload])


TOKEN = "fuzz-token-0123456789abcdef"


@pytest.fixture(scope="module")
def page() -> Iterator[HttpServer]:
    """A page with a login, a protected route and an open one, on 127.0.0.1."""

    async def hello(_request: Request) -> Response:
        return reply(HTTPStatus.OK, "text/plain", b"hello\n")

    auth = PageAuth(TOKEN, {}, max_checks=2)
    routes = protect({"/": hello, "/state.json": hello, "/healthz": hello}, auth)
    with HttpServer("fuzz", "127.0.0.1", 0, routes) as server:
        yield server


def _exchange(port: int, request: bytes) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(request)
        sock.shutdown(socket.SHUT_WR)
        answer = b""
        try:
            while chunk := sock.recv(65536):
                answer += chunk
        except ConnectionResetError:
            pass
    return answer


def test_a_client_gone_before_its_form_came_is_no_error(
    page: HttpServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    head = b"POST /login HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 100\r\n\r\n"
    assert _exchange(page.port, head + b"token=") == b""
    wait_for(lambda: "POST /login: the client went away" in caplog.text, 5.0, "the log line")
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert _exchange(page.port, b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")


_token = st.text(st.characters(min_codepoint=33, max_codepoint=126), max_size=24)
_line = st.binary(max_size=200).filter(lambda b: b"\r\n\r\n" not in b)


@st.composite
def _requests(draw: st.DrawFn) -> bytes:
    """Requests from well formed to broken: method, target, version, headers, a body."""
    method = draw(
        st.sampled_from([b"GET", b"POST", b"HEAD", b"PUT", b"get"]) | st.binary(max_size=8)
    )
    target = draw(
        st.sampled_from([b"/", b"/login", b"/state.json", b"/healthz", b"/x?stream=a&b"])
        | st.binary(max_size=40)
    )
    version = draw(st.sampled_from([b"HTTP/1.1", b"HTTP/1.0", b"HTTP/2", b""]))
    body = draw(
        st.sampled_from([b"", b"token=" + TOKEN.encode(), b"user=ada&password=x"])
        | st.binary(max_size=300)
    )
    headers = [b"Host: 127.0.0.1"]
    if draw(st.booleans()):
        headers.append(
            b"Content-Length: "
            + draw(st.sampled_from([str(len(body)).encode(), b"-1", b"99999999999", b"x"]))
        )
    if draw(st.booleans()):
        headers.append(b"Cookie: " + draw(_line))
    if draw(st.booleans()):
        headers.append(b"Authorization: Bearer " + draw(_token).encode())
    headers += draw(st.lists(_line, max_size=3))
    return (
        method
        + b" "
        + target
        + b" "
        + version
        + b"\r\n"
        + b"\r\n".join(headers)
        + b"\r\n\r\n"
        + body
    )


@HTTP_FUZZ
@given(request=_requests())
def test_the_page_answers_any_request_and_goes_on(
    page: HttpServer, request: bytes, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.ERROR)
    answer = _exchange(page.port, request)
    assert answer == b"" or answer.startswith(b"HTTP/1.1 "), answer[:60]
    if answer:
        status = int(answer[9:12])
        assert status < 500 or status == HTTPStatus.SERVICE_UNAVAILABLE, answer[:200]
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]
    with urllib.request.urlopen(page.url + "healthz", timeout=5) as response:
        assert response.status == 200
