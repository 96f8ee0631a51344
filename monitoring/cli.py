"""``tradecredit monitor``: score the portfolio as of a date and measure drift."""

from __future__ import annotations

import json
from dataclasses import asdict
from datetime import date
from pathlib import Path
from typing import Annotated, Any

import polars as pl
import typer

from tradecredit.cli_support import config_of, date_option, fail
from tradecredit.config import PlatformConfig
from tradecredit.workspace import Workspace


def runs_folder(ws: Workspace) -> Path:
    return ws.root / "monitoring" / "runs"


def score_history(ws: Workspace) -> pl.DataFrame:
    """Every monitoring run's scores, oldest first (each row carries its model version)."""
    files = sorted(runs_folder(ws).glob("*/scores.parquet"))
    if not files:
        raise FileNotFoundError(f"no monitoring runs in {runs_folder(ws)}: run `tradecredit monitor --as-of DATE`")
    return pl.concat([pl.read_parquet(f) for f in files]).sort("as_of_ts", "buyer_id")


def run_monitor(cfg: PlatformConfig, ws: Workspace, as_of: date) -> dict[str, Any]:
    """Score every active buyer as of ``as_of`` with the default champion; PSI of the score and
    of each feature against the champion's training rows. Writes ``WORKSPACE/monitoring/runs/DATE/``."""
    from tradecredit.features.cli import paths_of
    from tradecredit.features.store import historical_features, open_store
    from tradecredit.ledger import read_normalised_table
    from tradecredit.monitoring.portfolio import SCORE, drift, score_portfolio
    from tradecredit.training import registry
    from tradecredit.training.cli import registered_version, sliced_training_set
    from tradecredit.training.splits import SLICE, TRAIN

    name = cfg.training.default.registered_model
    client, champion, model = registered_version(cfg, ws, "default", None, registry.CHAMPION)
    buyers = read_normalised_table(ws.ledger, "buyers", ["buyer_id"])
    entities = buyers.with_columns(as_of_ts=pl.lit(as_of))
    features = historical_features(open_store(paths_of(ws), cfg.features), "default", entities)
    portfolio = score_portfolio(features, model, str(champion.version), as_of, cfg.policy)
    if portfolio.scores.height == 0:
        raise fail(f"no active buyer as of {as_of}: no feature snapshot then, or nothing invoiced in the year before")
    sliced, _, _, _ = sliced_training_set(client, champion, ws, "default")
    reference = sliced.filter(pl.col(SLICE) == TRAIN)
    results = drift(reference, model.predict(reference), portfolio, model, cfg.monitoring.drift)
    out = runs_folder(ws) / as_of.isoformat()
    out.mkdir(parents=True, exist_ok=True)
    portfolio.scores.write_parquet(out / "scores.parquet")
    summary = {
        "as_of": as_of.isoformat(), "model": name, "model_version": portfolio.model_version,
        "active_buyers": portfolio.scores.height, "inactive_buyers": portfolio.inactive,
        "mean_pd_12m": float(portfolio.scores[SCORE].mean()),  # type: ignore[arg-type]
        "buyers_by_tier": dict(portfolio.scores.group_by("tier").len().sort("tier").iter_rows()),
        "reference_rows": reference.height,
        "features_moderate_or_major": sum(r.band != "stable" for r in results if r.name != SCORE),
        "features_significant": sum(r.significant for r in results if r.name != SCORE),
    }
    (out / "drift.json").write_text(json.dumps([asdict(r) for r in results], indent=1), encoding="utf-8")
    (out / "summary.json").write_text(json.dumps(summary, indent=2), encoding="utf-8")
    score_psi = next(r for r in results if r.name == SCORE)
    typer.echo(
        f"Scored {summary['active_buyers']:,} active buyers as of {as_of} with {name} version {portfolio.model_version} "
        f"({summary['inactive_buyers']:,} inactive): mean PD {summary['mean_pd_12m']:.2%}. Score PSI {score_psi.psi:.3f} "
        f"({score_psi.band}, p = {score_psi.p_value:.2g}); {summary['features_moderate_or_major']} features moderate or major, "
        f"{summary['features_significant']} significant at {cfg.monitoring.drift.alpha}."
    )
    for r in [r for r in results if r.name != SCORE][:5]:
        typer.echo(f"  {r.name:<32} PSI {r.psi:.3f}  {r.band:<8} p = {r.p_value:.2g}  critical PSI {r.critical_psi:.3f}")
    typer.echo(f"Scores, drift and summary: {out}")
    return summary


def run_backtest(cfg: PlatformConfig, ws: Workspace) -> list[dict[str, Any]]:
    """Backtest every monitoring run whose 12-month label has matured by the ledger's end;
    writes ``WORKSPACE/monitoring/backtest.json``."""
    from tradecredit.features.cli import built_as_of, normalised_ledger
    from tradecredit.features.labels import default_dates
    from tradecredit.monitoring.backtest import backtest_runs
    from tradecredit.training import registry
    from tradecredit.training.cli import find_version

    try:
        history = score_history(ws)
    except FileNotFoundError as exc:
        raise fail(str(exc)) from None
    data_end = built_as_of(ws)
    defaults = default_dates(normalised_ledger(ws).tables, cfg.labels.default_days_past_due, data_end)
    client, champion = find_version(cfg, ws, "default", None, registry.CHAMPION)
    reference_auc = float(client.get_run(champion.run_id).data.metrics["test_auc"])
    results = backtest_runs(history, defaults, data_end, reference_auc, cfg.monitoring.backtest)
    if not results:
        typer.echo(f"No monitoring run has a matured 12-month label yet (the ledger ends {data_end}).")
    rows = []
    for b in results:
        auc = "n/a (one outcome class)" if b.auc is None else f"{b.auc:.3f}"
        verdict = "RETRAIN: " + "; ".join(b.reasons) if b.retrain else "no retraining needed"
        typer.echo(f"{b.as_of} (version {b.model_version}): {b.rows:,} buyers, {b.events} defaults ({b.observed_rate:.2%} observed, "
                   f"{b.mean_pd:.2%} predicted), AUC {auc}; {verdict}")
        rows.append({k: v for k, v in b.__dict__.items() if k != "grades"} | {"as_of": b.as_of.isoformat(), "grades": b.grades.to_dicts()})
    out = ws.root / "monitoring" / "backtest.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"reference_auc": reference_auc, "data_end": data_end.isoformat(), "runs": rows}, indent=1), encoding="utf-8")
    return rows


def register(app: typer.Typer) -> None:
    @app.command()
    def backtest(ctx: typer.Context) -> None:
        """Backtest past monitoring runs whose 12-month default label has matured: AUC, calibration by grade, a retraining verdict."""
        run_backtest(config_of(ctx), ctx.obj.workspace)

    @app.command()
    def monitor(
        ctx: typer.Context,
        as_of: Annotated[str, typer.Option("--as-of", help="Score the portfolio as known on this date (YYYY-MM-DD).")],
    ) -> None:
        """Score every active buyer as of a date and measure drift against the training reference."""
        run_monitor(config_of(ctx), ctx.obj.workspace, date_option(as_of))
