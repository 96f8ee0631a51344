"""What every command module shares: the context object, config loading and error exits."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import typer

from tradecredit.config import ConfigError, PlatformConfig, load_config
from tradecredit.workspace import Workspace


@dataclass(frozen=True)
class Context:
    workspace: Workspace
    config_dir: Path

    def config(self) -> PlatformConfig:
        return load_config(self.config_dir)


def fail(message: str) -> typer.Exit:
    """Print one ``error:`` line and return the exit (status 2) for the caller to raise."""
    typer.echo(f"error: {message}", err=True)
    return typer.Exit(code=2)


def config_of(ctx: typer.Context) -> PlatformConfig:
    try:
        return ctx.obj.config()
    except ConfigError as exc:
        raise fail(str(exc)) from None
