"""The display's outputs as the settings name them: frame sinks (window, page, video file) and
the JSON lines file, with the page's credentials and TLS."""

from __future__ import annotations

import logging
import ssl
import threading
from collections.abc import Mapping, Sequence

from shared.file_sinks import FrameSink, JsonLinesSink, SinkError, VideoFileSink
from shared.http_server import HttpLimits, Route
from shared.transport import is_loopback_host
from stages.render import placeholder_frame

from .page_auth import AuthError, PageAuth, load_page_auth
from .settings import DisplaySettings
from .sinks import PLACEHOLDER_WH, HttpSink, WindowSink

__all__ = ["close_sinks", "open_sinks"]

log = logging.getLogger(__name__)


def open_sinks(
    settings: DisplaySettings, stop: threading.Event, routes: Mapping[str, Route]
) -> tuple[list[FrameSink], JsonLinesSink | None]:
    """The sinks the settings name: frame sinks, and the JSON lines file if any (its results
    are written as they come, not drawn). Raises SinkError; nothing stays open on failure."""
    frame_sinks: list[FrameSink] = []
    jsonl: JsonLinesSink | None = None
    try:
        for name in settings.sinks:
            if name == "window":
                frame_sinks.append(WindowSink(settings.window_title, stop))
            elif name == "http":
                auth, tls = _page_access(settings)
                http = HttpSink(
                    settings.http_host,
                    settings.http_port,
                    title=settings.window_title,
                    placeholder_bgr=placeholder_frame(PLACEHOLDER_WH, "waiting for frames"),
                    jpeg_quality=settings.jpeg_quality,
                    max_clients=settings.http_max_clients,
                    limits=HttpLimits(max_connections=settings.http_max_connections),
                    routes=routes,
                    auth=auth,
                    tls=tls,
                )
                frame_sinks.append(http)
                print(f"display: open {http.url}", flush=True)
                log.info("display: open %s", http.url)
            elif name == "video" and settings.video_path is not None:
                frame_sinks.append(VideoFileSink(settings.video_path, settings.video_fps))
            elif name == "jsonl" and settings.jsonl_path is not None:
                jsonl = JsonLinesSink(settings.jsonl_path)
    except BaseException:
        close_sinks(frame_sinks, jsonl)
        raise
    return frame_sinks, jsonl


def _page_access(settings: DisplaySettings) -> tuple[PageAuth | None, ssl.SSLContext | None]:
    """The page's credentials and TLS context from the settings; SinkError when unusable."""
    try:
        auth = load_page_auth(
            settings.http_token_file, settings.http_users_file, settings.http_max_sign_ins
        )
    except AuthError as error:
        raise SinkError(f"http sink: {error}") from error
    tls = None
    if settings.http_tls_cert_file is not None and settings.http_tls_key_file is not None:
        tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        try:
            tls.load_cert_chain(settings.http_tls_cert_file, settings.http_tls_key_file)
        except (OSError, ssl.SSLError) as error:
            raise SinkError(
                f"http sink: cannot load the TLS certificate and key: {error}"
            ) from error
    if not is_loopback_host(settings.http_host):
        if auth is None:
            log.warning(
                "the page on %s is open to the network WITHOUT a login "
                "(allow_insecure_network is set)",
                settings.http_host,
            )
        if tls is None:
            log.warning(
                "the page on %s is served over plain http: credentials and faces cross the "
                "network unencrypted (set http_tls_cert_file and http_tls_key_file)",
                settings.http_host,
            )
    return auth, tls


def close_sinks(frame_sinks: Sequence[FrameSink], jsonl: JsonLinesSink | None) -> None:
    """Close every sink; one that fails to close is logged and the others still close."""
    for sink in frame_sinks:
        try:
            sink.close()
        except Exception:
            log.exception("closing %s failed", type(sink).__name__)
    if jsonl is not None:
        jsonl.close()
