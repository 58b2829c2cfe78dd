"""Settings bases for every service and command: command line > environment > defaults,
validated at start. Every option of the project (services, commands, training, benches) is one
pydantic field with its description, read by ``load_settings``."""

from __future__ import annotations

import inspect
import json
import sys
from collections.abc import Sequence
from typing import Annotated, Any, Literal, TextIO, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError
from pydantic_settings import BaseSettings, SettingsConfigDict, SettingsError

__all__ = [
    "EXIT_CANNOT_START",
    "CommandSettings",
    "Endpoint",
    "ServiceSettings",
    "Subcommand",
    "each_once",
    "load_settings",
    "split_list",
]

#: Exit code of a service that cannot start: a bad setting, key, model file, source or asset,
#: or an address it cannot bind. 0 is a clean stop, 1 a failure while running.
EXIT_CANNOT_START = 2

#: A ZeroMQ endpoint setting.
Endpoint = Annotated[str, Field(pattern=r"^(tcp|ipc|inproc)://\S+$", max_length=256)]


def split_list(value: Any) -> Any:
    """A list setting from the environment or command line: a JSON list or comma-separated
    items (also inside repeated flags) become a list; anything else is left to validation.

    Use with ``NoDecode`` on the field and as a ``mode="before"`` validator.
    """
    if isinstance(value, str):
        text = value.strip()
        if text.startswith("["):
            try:
                return json.loads(text)
            except json.JSONDecodeError as error:
                raise ValueError(
                    f"expected a JSON list or comma-separated items: {error}"
                ) from error
        return [part.strip() for part in text.split(",") if part.strip()]
    if isinstance(value, list | tuple) and all(isinstance(item, str) for item in value):
        return [part.strip() for item in value for part in item.split(",") if part.strip()]
    return value


def each_once(items: list[str]) -> list[str]:
    """``items`` unchanged, or ValueError naming the ones given twice."""
    duplicates = sorted({item for item in items if items.count(item) > 1})
    if duplicates:
        raise ValueError(f"expected each item once, found duplicates {duplicates}")
    return items


class CommandSettings(BaseSettings):
    """Options of a command (training, a bench, keys): one field each, from the command line
    (``--kebab-case``), the environment (``env_prefix`` + the name) or the default. Subclasses
    set ``env_prefix`` and ``cli_prog_name``."""

    model_config = SettingsConfigDict(
        env_prefix="EMOJIFY_",
        extra="forbid",
        cli_parse_args=False,
        cli_kebab_case=True,
        # We print one clear line ourselves instead of argparse's usage dump.
        cli_exit_on_error=False,
        cli_implicit_flags=True,
        cli_hide_none_type=True,
        cli_avoid_json=True,
        validate_default=True,
        case_sensitive=False,
    )

    @classmethod
    def __pydantic_init_subclass__(cls, **kwargs: Any) -> None:
        super().__pydantic_init_subclass__(**kwargs)
        _clean_doc(cls)


class Subcommand(BaseModel):
    """The options of one subcommand of a command (``CliSubCommand[...]`` on its settings)."""

    model_config = ConfigDict(extra="forbid")

    @classmethod
    def __pydantic_init_subclass__(cls, **kwargs: Any) -> None:
        super().__pydantic_init_subclass__(**kwargs)
        _clean_doc(cls)


def _clean_doc(cls: type) -> None:
    """The class's docstring without its indentation: ``--help`` prints it as it is."""
    if cls.__doc__:
        cls.__doc__ = inspect.cleandoc(cls.__doc__)


class ServiceSettings(CommandSettings):
    """Settings every service has; subclasses add theirs and set ``env_prefix``."""

    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = Field(
        default="INFO", description="Logging threshold."
    )
    stats_interval_s: float = Field(
        default=10.0, ge=0.5, le=3600.0, description="Seconds between periodic stats lines."
    )
    status_host: str = Field(
        default="127.0.0.1",
        min_length=1,
        max_length=253,
        description="Address of the /metrics and /healthz endpoint (loopback unless a "
        "monitoring host must reach it).",
    )
    status_port: int = Field(
        default=0,
        ge=0,
        le=65535,
        description="Port of the /metrics (Prometheus) and /healthz endpoint; 0 = off.",
    )


S = TypeVar("S", bound=CommandSettings)


def _flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def _describe(cls: type[CommandSettings], error: ValidationError) -> str:
    prefix = str(cls.model_config.get("env_prefix", ""))
    lines = []
    for item in error.errors(include_url=False):
        loc = item["loc"]
        if not loc:
            # A check across settings: its message names them; the input is every setting.
            lines.append(str(item["msg"]).removeprefix("Value error, "))
            continue
        field = str(loc[0])
        where = (
            f"{field} ({_flag(field)} / {prefix}{field.upper()})"
            if field in cls.model_fields
            else field
        )
        lines.append(f"{where}: found {item.get('input')!r}; expected: {item['msg']}")
    return "; ".join(lines)


def _default_prog(cls: type[CommandSettings]) -> str:
    module = cls.__module__.removesuffix(".settings").removesuffix(".__main__")
    return cls.__name__ if module == "__main__" else module


def load_settings(
    cls: type[S], argv: Sequence[str] | None = None, *, stderr: TextIO | None = None
) -> S:
    """Build ``cls`` from ``argv`` (``sys.argv[1:]`` when None), the environment and defaults.

    Bad settings print one message naming the setting, the value and what was expected, then
    raise ``SystemExit(2)``; ``--help`` prints every setting and raises ``SystemExit(0)``.
    """
    args = list(sys.argv[1:] if argv is None else argv)
    out = sys.stderr if stderr is None else stderr
    prog = str(cls.model_config.get("cli_prog_name") or _default_prog(cls))
    try:
        return cls(_cli_parse_args=args, _cli_prog_name=prog)
    except ValidationError as error:
        print(f"{prog}: invalid setting: {_describe(cls, error)}", file=out)
    except SettingsError as error:
        # Unknown options, missing values, environment values that do not parse.
        cause = f" ({error.__cause__})" if error.__cause__ else ""
        print(f"{prog}: invalid command line or environment: {error}{cause}", file=out)
    raise SystemExit(EXIT_CANNOT_START)
