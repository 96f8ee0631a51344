"""``tradecredit monitor``, ``tradecredit backtest`` and ``tradecredit cases``: thin commands over the monitoring stages."""

from __future__ import annotations

from typing import Annotated

import typer

from tradecredit.cli_support import config_of, date_option, fail, stage
from tradecredit.monitoring import pipeline

cases_app = typer.Typer(help="Early-warning cases: list them, resolve one with its outcome.", no_args_is_help=True)


@cases_app.command("list")
def list_cases(
    ctx: typer.Context,
    show: Annotated[str, typer.Option("--show", help="open, closed or all.")] = "open",
    kind: Annotated[str | None, typer.Option("--kind", help="red, yellow or listed (below the materiality floor).")] = None,
) -> None:
    """The cases, red first, each with why, its action and its signals."""
    if show not in ("open", "closed", "all"):
        raise fail(f"--show: '{show}' is not one of open, closed, all")
    if kind is not None and kind not in ("red", "yellow", "listed"):
        raise fail(f"--kind: '{kind}' is not one of red, yellow, listed")
    with stage():
        found = pipeline.list_cases(ctx.obj.workspace, None if show == "all" else show, kind)
    for line in found.describe():
        typer.echo(line)


@cases_app.command()
def resolve(
    ctx: typer.Context,
    case_id: Annotated[int, typer.Argument(help="The case to close.")],
    outcome: Annotated[str, typer.Option("--outcome", help="action_taken, false_alarm or monitoring (configs/monitoring.yaml: cases.resolutions).")],
    by: Annotated[str, typer.Option("--by", help="Who resolves it (recorded on the case).")],
    note: Annotated[str, typer.Option("--note", help="Why.")] = "",
    on: Annotated[str | None, typer.Option("--on", help="Resolution date (YYYY-MM-DD); default: the latest monitoring run's.")] = None,
) -> None:
    """Close an open case with its outcome: a red case's orders are no longer held."""
    day = date_option(on, "--on") if on else None
    with stage():
        case = pipeline.resolve_case(config_of(ctx), ctx.obj.workspace, case_id, outcome, by, note, day)
    typer.echo(f"Case {case['case_id']} ({case['buyer_id']}) closed on {case['closed_on']}: {case['outcome']} by {case['resolved_by']}.")


def register(app: typer.Typer) -> None:
    app.add_typer(cases_app, name="cases")

    @app.command()
    def backtest(ctx: typer.Context) -> None:
        """Backtest past monitoring runs whose 12-month default label has matured: AUC, calibration by grade, a retraining verdict."""
        with stage():
            result = pipeline.backtest(config_of(ctx), ctx.obj.workspace)
        for line in result.describe():
            typer.echo(line)

    @app.command()
    def monitor(
        ctx: typer.Context,
        as_of: Annotated[str, typer.Option("--as-of", help="Score the portfolio as known on this date (YYYY-MM-DD).")],
    ) -> None:
        """Score every active buyer as of a date and measure drift against the training reference."""
        day = date_option(as_of)
        with stage():
            result = pipeline.monitor(config_of(ctx), ctx.obj.workspace, day)
        for line, to_stderr in result.describe():
            typer.echo(line, err=to_stderr)
