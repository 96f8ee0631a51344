"""``tradecredit monitor`` and ``tradecredit backtest``: thin commands over the monitoring stages."""

from __future__ import annotations

from typing import Annotated

import typer

from tradecredit.cli_support import config_of, date_option, stage
from tradecredit.monitoring import pipeline


def register(app: typer.Typer) -> None:
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
