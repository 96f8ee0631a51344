"""``tradecredit features ...``: build, apply, materialize, get, online, training-set, docs."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from tradecredit.cli_support import config_of, date_option, read_table, stage, write_table
from tradecredit.features import pipeline
from tradecredit.features.catalog import feature_table_markdown

app = typer.Typer(help="Point-in-time buyer features and the Feast store that serves them.", no_args_is_help=True)

Service = Annotated[str, typer.Option("--service", help="Feature service: default (all views) or late.")]


@app.command()
def build(
    ctx: typer.Context,
    as_of: Annotated[str | None, typer.Option("--as-of", help="Last snapshot date (default: the ledger's last date).")] = None,
) -> None:
    """Compute every feature for every (buyer, snapshot date) from the loaded ledger."""
    as_of_date = date_option(as_of) if as_of else None
    with stage():
        typer.echo(pipeline.build(config_of(ctx), ctx.obj.workspace, as_of_date).describe())


@app.command()
def apply(ctx: typer.Context) -> None:
    """Register the entity, feature views and feature services in the Feast registry."""
    with stage():
        typer.echo(pipeline.apply(config_of(ctx), ctx.obj.workspace).describe())


@app.command("materialize")
def materialize_command(ctx: typer.Context) -> None:
    """Load each buyer's latest snapshot into the online store."""
    with stage():
        typer.echo(pipeline.materialize(config_of(ctx), ctx.obj.workspace).describe())


@app.command()
def get(
    ctx: typer.Context,
    entities: Annotated[Path, typer.Option("--entities", help="CSV or Parquet with columns buyer_id, as_of_ts.")],
    out: Annotated[Path, typer.Option("--out", help="CSV or Parquet to write.")],
    model: Service = "default",
) -> None:
    """Point-in-time features for each (buyer_id, as_of_ts) row, through Feast's historical retrieval."""
    with stage():
        pipeline.check_feature_service(model)
    cfg = config_of(ctx)
    frame = read_table(entities)
    with stage():
        result = pipeline.entity_features(cfg, ctx.obj.workspace, model, frame, entities.name)
    write_table(result, out)
    # The result is the entity file's columns plus the features.
    typer.echo(f"Wrote {result.height:,} rows x {result.width - frame.width} features: {out}")


@app.command()
def online(
    ctx: typer.Context,
    buyer_ids: Annotated[list[str], typer.Argument(help="Buyer ids to read.")],
    model: Service = "default",
) -> None:
    """Read buyers' online features, with their snapshot time and a staleness flag, as JSON."""
    with stage():
        pipeline.check_feature_service(model)
        rows = pipeline.online(config_of(ctx), ctx.obj.workspace, model, buyer_ids)
    for row in rows:
        typer.echo(json.dumps(row.as_dict(), default=str))


@app.command("training-set")
def training_set(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="default (monthly buyer rows, default_12m) or late (invoice rows, late_30d).")],
) -> None:
    """Build a model's training set: contract labels plus Feast point-in-time features."""
    with stage():
        pipeline.check_training_set_name(name)
        typer.echo(pipeline.training_set(config_of(ctx), ctx.obj.workspace, name).describe())


@app.command()
def docs(
    write: Annotated[Path | None, typer.Option("--write", help="Replace the feature table in this Markdown file (docs/features.md).")] = None,
) -> None:
    """Print the feature table generated from the catalogue, or write it into a Markdown file."""
    if write is None:
        typer.echo(feature_table_markdown())
        return
    with stage():
        count = pipeline.write_feature_table(write)
    typer.echo(f"Wrote the table of {count} features into {write}")
