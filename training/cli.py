"""``tradecredit tune | train | evaluate | promote | score``: thin commands over the training stages."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from tradecredit.cli_support import config_of, read_table, stage, write_table
from tradecredit.training import pipeline

ModelName = Annotated[str, typer.Argument(help="Which model: default (12-month PD) or late (late_{N}d of an order, labels.late_days).")]
Version = Annotated[str | None, typer.Option("--model-version", help="A registered version number (default: the alias's).")]
Truth = Annotated[
    Path | None,
    typer.Option("--truth", help="Simulator truth folder for oracle metrics (default: WORKSPACE/simulated/truth when it matches)."),
]

score_app = typer.Typer(help="Score entity rows or invoices in batch with a registered model.", no_args_is_help=True)


def _warn(warnings: tuple[str, ...]) -> None:
    for line in warnings:
        typer.echo(line, err=True)


def register(app: typer.Typer) -> None:
    """Add tune, train, evaluate, promote and score to the main program."""

    @app.command()
    def tune(
        ctx: typer.Context,
        model: ModelName,
        study: Annotated[str, typer.Option("--study", help="Name of the shared Optuna study to start or join.")],
        workers: Annotated[int, typer.Option("--workers", help="Tuning processes to run on this machine.")] = 1,
        worker_index: Annotated[int, typer.Option("--worker-index", hidden=True)] = 0,
        threads: Annotated[int | None, typer.Option("--threads", hidden=True)] = None,
    ) -> None:
        """Tune MODEL on a shared Optuna study (production profile): run it on several machines
        with the same --study, then 'train MODEL --study NAME'."""
        with stage():
            result = pipeline.tune(config_of(ctx), ctx.obj.workspace, model, study, workers, worker_index, threads, ctx.obj.config_dir)
        _warn(result.warnings)
        typer.echo(result.describe())

    @app.command()
    def train(
        ctx: typer.Context,
        model: ModelName,
        truth: Truth = None,
        study: Annotated[
            str | None, typer.Option("--study", help="Tune on this shared Optuna study (it may already hold trials from 'tune').")
        ] = None,
    ) -> None:
        """Tune, train, calibrate and evaluate a model; log it to MLflow and register it as challenger."""
        with stage():
            result = pipeline.train(config_of(ctx), ctx.obj.workspace, model, truth, study, ctx.obj.config_dir)
        _warn(result.warnings)
        typer.echo(result.describe())

    @app.command()
    def evaluate(ctx: typer.Context, model: ModelName, version: Version = None, truth: Truth = None) -> None:
        """Evaluate a registered version (default: the challenger) on its out-of-time test slice."""
        with stage():
            typer.echo(pipeline.evaluate(config_of(ctx), ctx.obj.workspace, model, version, truth).describe())

    @app.command()
    def promote(
        ctx: typer.Context, model: ModelName,
        override: Annotated[str | None, typer.Option("--override", help="Promote a refused challenger anyway, for this reason (recorded with your user name and the time).")] = None,
    ) -> None:
        """Make the challenger champion if it passes the gate (AUC, calibration, monotonicity, SHAP), or with --override."""
        with stage():
            result = pipeline.promote(config_of(ctx), ctx.obj.workspace, model, override)
        typer.echo(result.describe(), err=not result.promoted)
        if not result.promoted:
            raise typer.Exit(code=1)

    app.add_typer(score_app, name="score")


@score_app.command("default")
def score_default(
    ctx: typer.Context,
    entities: Annotated[Path, typer.Option("--entities", help="CSV or Parquet with buyer_id, as_of_ts.")],
    out: Annotated[Path, typer.Option("--out", help="CSV or Parquet to write: buyer_id, as_of_ts, pd_12m, grade, model_version.")],
    version: Version = None,
) -> None:
    """12-month PD and grade for each (buyer_id, as_of_ts), with the champion or --model-version."""
    cfg, frame = config_of(ctx), read_table(entities)
    with stage():
        _write_scores(pipeline.score_default(cfg, ctx.obj.workspace, frame, version), out)


@score_app.command("late")
def score_late(
    ctx: typer.Context,
    invoices: Annotated[Path, typer.Option("--invoices", help="CSV or Parquet with an invoice_id column (invoices of the loaded ledger).")],
    out: Annotated[Path, typer.Option("--out", help="CSV or Parquet to write: invoice_id, p_late, model_version.")],
    version: Version = None,
) -> None:
    """Probability that each invoice is paid 30+ days late, as of the day before its issue date."""
    cfg, frame = config_of(ctx), read_table(invoices)
    with stage():
        _write_scores(pipeline.score_late(cfg, ctx.obj.workspace, frame, version), out)


def _write_scores(scored: pipeline.ScoreResult, out: Path) -> None:
    _warn(scored.warnings)
    write_table(scored.frame, out)
    version = scored.model_version if scored.frame.height else "-"
    typer.echo(f"Scored {scored.frame.height:,} rows with model version {version}: {out}")
