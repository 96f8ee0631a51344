"""``tradecredit``: the one command-line program. Each command parses its options, calls one
pipeline function and prints its result; this module assembles the subcommands."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

import typer

from tradecredit import pipeline
from tradecredit.cli_support import Context, config_of, fail, stage
from tradecredit.config import PROFILE_ENV, default_config_dir
from tradecredit.demo import run_demo
from tradecredit.features import cli as features_cli
from tradecredit.insurance import cli as insurance_cli
from tradecredit.monitoring import cli as monitoring_cli
from tradecredit.serving import cli as serving_cli
from tradecredit.serving.console import cli as console_cli
from tradecredit.training import cli as training_cli
from tradecredit.workspace import WORKSPACE_ENV, Workspace

app = typer.Typer(
    help="Trade-credit risk platform: simulate or load a ledger, build features, train, serve and monitor.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
app.add_typer(features_cli.app, name="features")


@app.callback()
def main(
    ctx: typer.Context,
    workspace: Annotated[
        Path | None,
        typer.Option(
            "--workspace",
            envvar=WORKSPACE_ENV,
            help="Folder that holds everything a run produces.  [default: ./workspace]",
            show_default=False,
        ),
    ] = None,
    config_dir: Annotated[
        Path | None,
        typer.Option("--config-dir", envvar="TRADECREDIT_CONFIG_DIR", help="Folder of configs/*.yaml.", show_default=False),
    ] = None,
    profile: Annotated[
        str | None,
        typer.Option(
            "--profile",
            envvar=PROFILE_ENV,
            help="embedded (SQLite and files in the workspace) or a file of configs/profiles/, e.g. production "
            "(PostgreSQL, Redis, an MLflow server, Dask).  [default: embedded]",
            show_default=False,
        ),
    ] = None,
) -> None:
    if profile:
        # The processes a command starts (service workers, tuning workers) inherit the profile.
        os.environ[PROFILE_ENV] = profile
    ctx.obj = Context(workspace=Workspace.resolve(workspace), config_dir=config_dir or default_config_dir())


@app.command()
def simulate(
    ctx: typer.Context,
    out: Annotated[Path, typer.Option("--out", help="Folder to write; the ledger goes to OUT/ledger, the truth to OUT/truth.")],
    buyers: Annotated[int | None, typer.Option(help="Number of buyers (default from configs/simulator.yaml).")] = None,
    sellers: Annotated[int | None, typer.Option(help="Number of sellers.")] = None,
    months: Annotated[int | None, typer.Option(help="Months of history.")] = None,
    start: Annotated[str | None, typer.Option(help="First month, YYYY-MM-01.")] = None,
    seed: Annotated[int | None, typer.Option(help="Random seed: the same seed gives the same portfolio.")] = None,
    output_format: Annotated[
        str | None, typer.Option("--format", help="csv or parquet (default from configs/simulator.yaml).")
    ] = None,
) -> None:
    """Simulate a portfolio: a ledger folder in the data contract, and the truth beside it."""
    cfg = config_of(ctx)
    with stage():
        sim_cfg = pipeline.simulator_config(cfg.simulator, buyers=buyers, sellers=sellers, months=months,
                                            start=pipeline.parse_start(start), seed=seed, output_format=output_format)
        typer.echo(pipeline.simulate(sim_cfg, out).describe())


@app.command()
def load(
    ctx: typer.Context,
    ledger_dir: Annotated[Path, typer.Argument(help="Ledger folder: buyers and invoices files, optional others.")],
    mapping: Annotated[
        Path | None, typer.Option("--mapping", help="YAML mapping of your file and column names and date formats.")
    ] = None,
    strict: Annotated[bool, typer.Option(help="Exit with status 1 if any row is rejected.")] = False,
) -> None:
    """Validate and normalise a ledger folder into the workspace (rejects and summary beside it)."""
    cfg = config_of(ctx)
    with stage():
        result = pipeline.load(cfg, ledger_dir, ctx.obj.workspace, mapping)
    typer.echo(result.describe())
    if strict and result.summary.rows_rejected:
        typer.echo(f"{result.summary.rows_rejected:,} rows rejected (--strict): see rejects.csv", err=True)
        raise typer.Exit(code=1)


@app.command()
def demo(
    ctx: typer.Context,
    buyers: Annotated[int | None, typer.Option(help="Number of buyers (default from configs/simulator.yaml).")] = None,
    months: Annotated[int | None, typer.Option(help="Months of history.")] = None,
) -> None:
    """The main job, end to end on the built-in simulated portfolio."""
    cfg = config_of(ctx)
    with stage():
        run_demo(cfg, ctx.obj.workspace, ctx.obj.config_dir, typer.echo, lambda line: typer.echo(line, err=True), buyers, months)


@app.command()
def servers() -> None:
    """Start throwaway PostgreSQL, Redis and MLflow servers on loopback for the production
    profile, print the variables that point it at them, and keep them up until interrupted."""
    import signal
    import threading

    from tradecredit.local_servers import ServerError, start_production_servers

    try:
        started = start_production_servers()
    except (ServerError, OSError) as exc:
        raise fail(str(exc)) from None
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    try:
        typer.echo("Production-profile servers up (data in temporary folders, removed on exit). In another shell:")
        for name, value in {**started.environment(), PROFILE_ENV: "production"}.items():
            typer.echo(f"export {name}={value}")
        typer.echo("Ctrl-C stops them.", err=True)
        while not stop.wait(1):
            pass
    except KeyboardInterrupt:
        pass
    finally:
        started.stop()


# After the commands above, so --help lists the pipeline in order.
training_cli.register(app)
serving_cli.register(app)
monitoring_cli.register(app)
app.add_typer(console_cli.app, name="console")
app.add_typer(insurance_cli.app, name="insurance")
