"""``tradecredit insurance``: a seller's policy quote (and what-ifs), and the pricing backtest."""

from __future__ import annotations

import json
from typing import Annotated

import typer

from tradecredit.cli_support import config_of, date_option, stage
from tradecredit.insurance import pipeline

app = typer.Typer(help="Trade-credit insurance: one policy per seller priced on exposure at default, and its backtest.", no_args_is_help=True)


@app.command()
def quote(
    ctx: typer.Context,
    seller: Annotated[str, typer.Option("--seller", help="The seller whose policy is quoted (all its insurable buyers).")],
    as_of: Annotated[str | None, typer.Option("--as-of", help="Quote as of this date (YYYY-MM-DD); default: the latest monitoring run's.")] = None,
    add: Annotated[list[str] | None, typer.Option("--add", help="What-if: insure BUYER[:TURNOVER[:TERMS]] too (repeat).")] = None,
    remove: Annotated[list[str] | None, typer.Option("--remove", help="What-if: leave BUYER out (repeat).")] = None,
    terms_days: Annotated[float | None, typer.Option("--terms-days", help="What-if: every insured buyer on these terms.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the whole quote as JSON.")] = False,
) -> None:
    """Quote a seller's policy; the quote (not a what-if) is saved, and the service prices the seller's orders at its rate."""
    with stage():
        what_if = pipeline.parse_what_if(add or [], remove or [], terms_days)
        result = pipeline.quote_and_save(config_of(ctx), ctx.obj.workspace, seller, date_option(as_of) if as_of else None, what_if)
    if as_json:
        typer.echo(json.dumps(result.to_json(), indent=2))
    else:
        for line in pipeline.describe_quote(result):
            typer.echo(line)


@app.command()
def backtest(
    ctx: typer.Context,
    as_of: Annotated[str | None, typer.Option("--as-of", help="Quote date to backtest (a monitoring run's); default: the latest whose year has matured.")] = None,
) -> None:
    """Quote every seller's policy at a past date and compare with the insured losses of the next 12 months."""
    with stage():
        result = pipeline.backtest_with_register(config_of(ctx), ctx.obj.workspace, date_option(as_of) if as_of else None)
    for line in pipeline.describe_backtest(result):
        typer.echo(line)
