"""``tradecredit``: the one command-line program. Each command is a thin wrapper over a stage."""

from __future__ import annotations

import os
from datetime import date
from pathlib import Path
from typing import Annotated

import typer
from pydantic import ValidationError

from tradecredit.cli_support import Context, config_of, fail
from tradecredit.config import (
    PROFILE_ENV,
    PlatformConfig,
    SimulatorConfig,
    default_config_dir,
    describe_validation_error,
)
from tradecredit.features import cli as features_cli
from tradecredit.monitoring import cli as monitoring_cli
from tradecredit.serving import cli as serving_cli
from tradecredit.serving.console import cli as console_cli
from tradecredit.training import cli as training_cli
from tradecredit.ledger import LedgerError, LoadSummary, format_summary, load_ledger, load_mapping, write_loaded_ledger
from tradecredit.simulator import SimulationPaths, simulate_portfolio, write_portfolio
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


def _simulator_config(
    base: SimulatorConfig,
    buyers: int | None,
    sellers: int | None,
    months: int | None,
    start: date | None,
    seed: int | None,
    output_format: str | None,
) -> SimulatorConfig:
    overrides = {
        "buyers": buyers,
        "sellers": sellers,
        "months": months,
        "start": start,
        "seed": seed,
        "output_format": output_format,
    }
    merged = base.model_dump() | {k: v for k, v in overrides.items() if v is not None}
    try:
        return SimulatorConfig.model_validate(merged)
    except ValidationError as exc:
        raise fail(f"simulator options: {describe_validation_error(exc)}") from None


def run_simulation(cfg: SimulatorConfig, out: Path) -> SimulationPaths:
    """Simulate a portfolio and write ledger and truth under ``out``; print what it produced."""
    portfolio = simulate_portfolio(cfg)
    paths = write_portfolio(portfolio, out, cfg.output_format)
    s = portfolio.summary
    typer.echo(
        f"Simulated {s['buyers']:,} buyers, {s['sellers']} sellers, {s['months']} months ({s['start']} .. {s['data_end']}): "
        f"{s['invoices']:,} invoices, {s['payments']:,} payments, {s['registry_events']:,} registry events, "
        f"{s['financial_statements']:,} statements, {s['defaults']:,} defaults "
        f"(annual default rate {float(s['annual_default_rate']):.2%}, "
        f"{float(s['late_30d_share']):.1%} of invoices paid 30+ days late)."
    )
    typer.echo(f"Ledger: {paths.ledger_dir}\nTruth (never loaded): {paths.truth_dir}")
    return paths


def run_load(cfg: PlatformConfig, ledger_dir: Path, workspace: Workspace, mapping_file: Path | None) -> LoadSummary:
    """Load a ledger folder into the workspace and print the load summary."""
    mapping = load_mapping(mapping_file) if mapping_file else None
    loaded = load_ledger(ledger_dir, cfg.ledger, mapping)
    out = write_loaded_ledger(loaded, workspace.ledger)
    typer.echo(format_summary(loaded.summary))
    typer.echo(f"Normalised tables, rejects.csv and load_summary.json: {out}")
    return loaded.summary


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
    try:
        start_date = date.fromisoformat(start) if start else None
    except ValueError:
        raise fail(f"--start: '{start}' is not a date (YYYY-MM-01)") from None
    sim_cfg = _simulator_config(cfg.simulator, buyers, sellers, months, start_date, seed, output_format)
    run_simulation(sim_cfg, out)


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
    try:
        summary = run_load(cfg, ledger_dir, ctx.obj.workspace, mapping)
    except LedgerError as exc:
        raise fail(str(exc)) from None
    if strict and summary.rows_rejected:
        typer.echo(f"{summary.rows_rejected:,} rows rejected (--strict): see rejects.csv", err=True)
        raise typer.Exit(code=1)


@app.command()
def demo(
    ctx: typer.Context,
    buyers: Annotated[int | None, typer.Option(help="Number of buyers (default from configs/simulator.yaml).")] = None,
    months: Annotated[int | None, typer.Option(help="Months of history.")] = None,
) -> None:
    """The main job, end to end on the built-in simulated portfolio."""
    cfg = config_of(ctx)
    ws: Workspace = ctx.obj.workspace
    typer.echo(f"Workspace: {ws.root}")
    sim_cfg = _simulator_config(cfg.simulator, buyers, None, months, None, None, None)
    typer.echo("\n== 1. Simulate a portfolio")
    paths = run_simulation(sim_cfg, ws.simulated)
    typer.echo("\n== 2. Load the ledger")
    try:
        summary = run_load(cfg, paths.ledger_dir, ws, None)
    except LedgerError as exc:
        raise fail(str(exc)) from None
    if summary.rows_rejected:
        raise fail(f"the simulated ledger had {summary.rows_rejected} rejected rows: a simulator or loader bug")
    typer.echo("\n== 3. Build point-in-time features")
    features_cli.run_build(cfg, ws, None)
    typer.echo("\n== 4. Register them in Feast and load the online store")
    features_cli.run_apply(cfg, ws)
    features_cli.run_materialize(cfg, ws)
    typer.echo("\n== 5. Training sets (Feast point-in-time retrieval + contract labels)")
    for name in features_cli.TRAINING_SETS:
        features_cli.run_training_set(cfg, ws, name)
    typer.echo("\n== 6. Train, evaluate and promote both models (Optuna + LightGBM, MLflow registry)")
    for name in training_cli.MODELS:
        training_cli.run_train(cfg, ws, name, config_dir=ctx.obj.config_dir)
        training_cli.run_evaluate(cfg, ws, name)
        training_cli.run_promote(cfg, ws, name)
    typer.echo(f"MLflow runs, model cards and plots: mlflow ui --backend-store-uri {training_cli.tracking_uri_of(ws, cfg)}")
    typer.echo("\n== 7. Start the scoring service (BentoML) and assess a few buyers over HTTP")
    serving_cli.run_demo_service(cfg, ws, ctx.obj.config_dir)
    typer.echo("\n== 8. Monitor the portfolio: drift, early warnings, backtests, the portfolio view and its report")
    report = monitoring_cli.run_demo_monitoring(cfg, ws)
    typer.echo(f"\nMonitoring report (open it in a browser): {report}")
    typer.echo("\n== 9. The risk reviewer console: log in and read the portfolio over HTTP")
    serving_cli.run_demo_console(cfg, ws, ctx.obj.config_dir)
    typer.echo("\nDemo complete.")


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
