"""Settings: command line beats environment beats defaults; bad values exit 2 naming the field."""

from __future__ import annotations

import pytest
from pydantic import Field
from pydantic_settings import SettingsConfigDict

from shared.settings import ServiceSettings, each_once, load_settings, split_list


class DemoSettings(ServiceSettings):
    """A tiny service's settings."""

    model_config = SettingsConfigDict(env_prefix="EMOJIFY_DEMO_")

    fps: float = Field(default=15.0, gt=0, le=120, description="Frames per second to capture.")
    endpoint: str = Field(default="tcp://127.0.0.1:5555", description="Where frames are bound.")
    live: bool = Field(default=True, description="Drop to the newest frame.")


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("FPS", "ENDPOINT", "LIVE", "LOG_LEVEL", "STATS_INTERVAL_S"):
        monkeypatch.delenv(f"EMOJIFY_DEMO_{name}", raising=False)


@pytest.mark.parametrize(
    ("env", "argv", "expected_fps"),
    [
        ({}, [], 15.0),
        ({"EMOJIFY_DEMO_FPS": "20"}, [], 20.0),
        ({}, ["--fps", "30"], 30.0),
        ({"EMOJIFY_DEMO_FPS": "20"}, ["--fps", "30"], 30.0),
        ({"EMOJIFY_DEMO_FPS": "20"}, ["--fps=25"], 25.0),
    ],
    ids=["default", "env", "cli", "cli-over-env", "cli-equals"],
)
def test_precedence(
    monkeypatch: pytest.MonkeyPatch, env: dict[str, str], argv: list[str], expected_fps: float
) -> None:
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    settings = load_settings(DemoSettings, argv)
    assert settings.fps == expected_fps
    assert settings.endpoint == "tcp://127.0.0.1:5555"


def test_common_fields_and_flags(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EMOJIFY_DEMO_LOG_LEVEL", "DEBUG")
    settings = load_settings(DemoSettings, ["--stats-interval-s", "2", "--no-live"])
    assert settings.log_level == "DEBUG"
    assert settings.stats_interval_s == 2.0
    assert settings.live is False


@pytest.mark.parametrize(
    ("env", "argv", "expected"),
    [
        ({}, ["--fps", "abc"], ("fps", "'abc'", "valid number")),
        ({}, ["--fps", "0"], ("fps", "'0'", "greater than 0")),
        ({"EMOJIFY_DEMO_FPS": "fast"}, [], ("EMOJIFY_DEMO_FPS", "'fast'")),
        ({}, ["--stats-interval-s", "0.1"], ("--stats-interval-s", "'0.1'", "0.5")),
        ({}, ["--log-level", "LOUD"], ("--log-level", "'LOUD'", "'DEBUG'")),
        ({}, ["--bogus", "1"], ("--bogus", "unrecognized")),
        ({}, ["--fps"], ("--fps", "expected one argument")),
    ],
)
def test_bad_value_exits_2_naming_the_field(
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    env: dict[str, str],
    argv: list[str],
    expected: tuple[str, ...],
) -> None:
    for name, env_value in env.items():
        monkeypatch.setenv(name, env_value)
    with pytest.raises(SystemExit) as exit_info:
        load_settings(DemoSettings, argv)
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    for part in expected:
        assert part in err
    assert len(err.strip().splitlines()) == 1


def test_help_lists_every_field(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        load_settings(DemoSettings, ["--help"])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    for flag in ("--log-level", "--stats-interval-s", "--fps", "--endpoint", "--live"):
        assert flag in out
    assert "Frames per second to capture." in out
    assert "Seconds between periodic stats lines." in out


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("tcp://a:1, tcp://b:2", ["tcp://a:1", "tcp://b:2"]),
        ('["tcp://a:1", "tcp://b:2"]', ["tcp://a:1", "tcp://b:2"]),
        (["tcp://a:1,tcp://b:2", "tcp://c:3"], ["tcp://a:1", "tcp://b:2", "tcp://c:3"]),
        (7, 7),
    ],
)
def test_split_list_reads_commas_and_json(value: object, expected: object) -> None:
    assert split_list(value) == expected


def test_split_list_and_each_once_reject_bad_lists() -> None:
    with pytest.raises(ValueError, match="JSON list"):
        split_list('["tcp://a:1",')
    with pytest.raises(ValueError, match=r"duplicates \['b'\]"):
        each_once(["a", "b", "b"])


def test_display_takes_several_preview_endpoints(monkeypatch: pytest.MonkeyPatch) -> None:
    from services.display.settings import DisplaySettings

    monkeypatch.setenv(
        "EMOJIFY_DISPLAY_PREVIEW_ENDPOINTS", "tcp://127.0.0.1:5556,tcp://127.0.0.1:6556"
    )
    settings = load_settings(DisplaySettings, ["--sinks", "jsonl", "--jsonl-path", "r.jsonl"])
    assert settings.preview_endpoints == ["tcp://127.0.0.1:5556", "tcp://127.0.0.1:6556"]
