"""Worker settings: defaults, endpoint lists from CLI and environment, bounds exit 2."""

from __future__ import annotations

import re

import pytest

from services.inference.settings import (
    AUTO_BATCH_WAIT_MS,
    WorkerSettings,
    batch_wait_ms,
    default_worker_id,
)
from shared.settings import load_settings


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in WorkerSettings.model_fields:
        monkeypatch.delenv(f"EMOJIFY_WORKER_{name.upper()}", raising=False)


def test_defaults() -> None:
    settings = load_settings(WorkerSettings, [])
    assert settings.capture_endpoints == ["tcp://127.0.0.1:5555"]
    assert settings.results_endpoint == "tcp://127.0.0.1:5557"
    assert settings.credit == 2
    assert settings.detector == "blazeface_tracking"
    assert settings.full_every == 10
    assert settings.reload_check_s == 2.0
    assert settings.max_batch_wait_ms is None, "batching decided by the machine unless set"
    assert settings.label_hold_frames == 3
    assert 0.0 <= settings.smoothing < 1.0
    assert re.fullmatch(r"[A-Za-z0-9_.-]{1,64}", settings.worker_id)


def test_default_worker_id_fits_the_message_pattern(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("socket.gethostname", lambda: "a very/long host name " * 5)
    assert re.fullmatch(r"[A-Za-z0-9_.-]{1,64}", default_worker_id())


@pytest.mark.parametrize(
    ("env", "argv"),
    [
        ({"EMOJIFY_WORKER_CAPTURE_ENDPOINTS": "tcp://a:1, tcp://b:2"}, []),
        ({"EMOJIFY_WORKER_CAPTURE_ENDPOINTS": '["tcp://a:1", "tcp://b:2"]'}, []),
        ({}, ["--capture-endpoints", "tcp://a:1,tcp://b:2"]),
        ({}, ["--capture-endpoints", "tcp://a:1", "--capture-endpoints", "tcp://b:2"]),
    ],
    ids=["env-commas", "env-json", "cli-commas", "cli-repeated"],
)
def test_capture_endpoint_lists(
    monkeypatch: pytest.MonkeyPatch, env: dict[str, str], argv: list[str]
) -> None:
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    # Hosts a and b are off this host: without CURVE keys that needs the explicit opt-out.
    monkeypatch.setenv("EMOJIFY_WORKER_ALLOW_INSECURE_NETWORK", "true")
    assert load_settings(WorkerSettings, argv).capture_endpoints == ["tcp://a:1", "tcp://b:2"]


@pytest.mark.parametrize(
    ("argv", "field"),
    [
        (["--credit", "0"], "credit"),
        (["--credit", "17"], "credit"),
        (["--detector", "yolo"], "detector"),
        (["--face-margin", "0.6"], "face_margin"),
        (["--capture-endpoints", "localhost:5555"], "capture_endpoints"),
        (["--capture-endpoints", "tcp://a:1,tcp://a:1"], "capture_endpoints"),
        (["--worker-id", "bad id"], "worker_id"),
        (["--reload-check-s", "-1"], "reload_check_s"),
        (["--max-batch-wait-ms", "101"], "max_batch_wait_ms"),
        (["--max-batch-faces", "0"], "max_batch_faces"),
        (["--smoothing", "1"], "smoothing"),
        (["--label-hold-frames", "0"], "label_hold_frames"),
        (["--track-iou", "0"], "track_iou"),
        (["--track-max-missed", "-1"], "track_max_missed"),
    ],
)
def test_bad_values_exit_2_naming_the_field(
    argv: list[str], field: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as raised:
        load_settings(WorkerSettings, argv)
    assert raised.value.code == 2
    assert field in capsys.readouterr().err


@pytest.mark.parametrize(
    ("argv", "on_gpu", "expected"),
    [
        ([], False, 0.0),
        ([], True, AUTO_BATCH_WAIT_MS),
        (["--capture-endpoints", "tcp://127.0.0.1:1,tcp://127.0.0.1:2"], False, AUTO_BATCH_WAIT_MS),
        (["--max-batch-wait-ms", "0"], True, 0.0),
        (["--max-batch-wait-ms", "25"], False, 25.0),
    ],
)
def test_batching_wait_is_automatic_unless_set(
    argv: list[str], on_gpu: bool, expected: float
) -> None:
    settings = load_settings(WorkerSettings, argv)
    assert batch_wait_ms(settings, on_gpu) == expected
