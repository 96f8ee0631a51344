"""What every command module shares: the context object, config loading and error exits."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import polars as pl
import typer

from tradecredit.config import PlatformConfig, load_config
from tradecredit.config_base import ConfigError
from tradecredit.errors import StageError
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


@contextmanager
def stage() -> Iterator[None]:
    """Run a pipeline call: its :class:`StageError` becomes the usual ``error:`` line and exit 2."""
    try:
        yield
    except StageError as exc:
        for warning in exc.warnings:
            typer.echo(warning, err=True)
        raise fail(str(exc)) from None


def date_option(text: str, option: str = "--as-of") -> date:
    """A YYYY-MM-DD option value, or the usual error naming the option."""
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise fail(f"{option}: '{text}' is not a date (YYYY-MM-DD)") from None


def config_of(ctx: typer.Context) -> PlatformConfig:
    try:
        return ctx.obj.config()
    except ConfigError as exc:
        raise fail(str(exc)) from None


def read_table(path: Path) -> pl.DataFrame:
    """A user's CSV (every column read as text, parsed later with row-level errors) or Parquet file."""
    if not path.exists():
        raise fail(f"{path} does not exist")
    if path.suffix == ".parquet":
        return pl.read_parquet(path)
    if path.suffix == ".csv":
        return pl.read_csv(path, infer_schema=False)
    raise fail(f"{path.name}: use a .csv or .parquet file")


def write_table(frame: pl.DataFrame, path: Path) -> None:
    if path.suffix not in (".parquet", ".csv"):
        raise fail(f"{path.name}: use a .csv or .parquet file")
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix == ".parquet":
        frame.write_parquet(path)
    else:
        frame.write_csv(path)
