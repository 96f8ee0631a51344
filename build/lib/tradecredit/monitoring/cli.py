"""``tradecredit monitor``: score the portfolio as of a date, measure drift, raise early
warnings, backtest matured runs and write the report; ``tradecredit backtest``."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from datetime import date, timedelta
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


def previous_run(ws: Workspace, as_of: date) -> pl.DataFrame | None:
    """The scores of the latest monitoring run dated before ``as_of`` (None if there is none)."""
    earlier = [f for f in sorted(runs_folder(ws).glob("*/scores.parquet")) if f.parent.name < as_of.isoformat()]
    return pl.read_parquet(earlier[-1]) if earlier else None


def late_history(ws: Workspace, upto: date) -> pl.DataFrame | None:
    """Every run's late-payment scores up to ``upto`` (invoice_id, run_as_of, p_late, model_version)."""
    files = [f for f in sorted(runs_folder(ws).glob("*/late_scores.parquet")) if f.parent.name <= upto.isoformat()]
    return pl.concat([pl.read_parquet(f) for f in files]) if files else None


@dataclass(frozen=True)
class Backtests:
    default: list[Any]
    late: list[Any]
    reference_auc: float
    late_reference_auc: float | None
    data_end: date


def compute_backtests(cfg: PlatformConfig, ws: Workspace, tables: dict[str, pl.DataFrame], upto: date) -> Backtests:
    """Backtests of the runs dated up to ``upto`` whose labels have matured by then (or by the
    ledger's end, if earlier): what a reviewer could have known at ``upto``."""
    from tradecredit.features.cli import built_as_of
    from tradecredit.features.labels import default_dates
    from tradecredit.monitoring.backtest import backtest_runs, late_backtest_runs
    from tradecredit.training import registry
    from tradecredit.training.cli import find_version

    data_end = min(upto, built_as_of(ws))
    client, champion = find_version(cfg, ws, "default", None, registry.CHAMPION)
    reference_auc = float(client.get_run(champion.run_id).data.metrics["test_auc"])
    try:
        history = score_history(ws).filter(pl.col("as_of_ts").dt.date() <= upto)
    except FileNotFoundError:
        history = None
    defaults = default_dates(tables, cfg.labels.default_days_past_due, data_end)
    default = backtest_runs(history, defaults, data_end, reference_auc, cfg.monitoring.backtest) if history is not None and history.height else []
    late, late_auc = [], None
    late_scores = late_history(ws, upto)
    late_champion = champion_or_none(cfg, ws, "late")
    if late_scores is not None and late_champion is not None:
        late_client, found = late_champion
        late_auc = float(late_client.get_run(found.run_id).data.metrics["test_auc"])
        late = late_backtest_runs(late_scores, tables["invoices"], cfg.labels.late_days, data_end, late_auc, cfg.monitoring.backtest)
    return Backtests(default, late, reference_auc, late_auc, data_end)


def champion_or_none(cfg: PlatformConfig, ws: Workspace, model: str) -> tuple[Any, Any] | None:
    """(client, champion version) of a model, or None when it has no champion."""
    from tradecredit.training import registry

    client = registry.connect(ws, cfg.backends)
    try:
        return client, registry.version_by(client, cfg.training.model(model).registered_model, None, registry.CHAMPION)
    except registry.RegistryError:
        return None


def score_recent_invoices(cfg: PlatformConfig, ws: Workspace, store: Any, invoices: pl.DataFrame, as_of: date) -> tuple[pl.DataFrame, str] | None:
    """The late-payment champion's probabilities for the invoices issued in the window up to
    ``as_of`` (each with its buyer's features as of the day before issue), or None without a champion."""
    from tradecredit.features.training_sets import late_rows
    from tradecredit.training import registry

    found = champion_or_none(cfg, ws, "late")
    if found is None:
        return None
    client, champion = found
    model = registry.load_version(client, champion.name, champion.version)
    window = invoices.filter(pl.col("issued_on").is_between(as_of - timedelta(days=cfg.monitoring.late_window_days - 1), as_of))
    rows = late_rows(store, window.select("invoice_id", "buyer_id", "issued_on", "amount", "terms_days").sort("issued_on", "invoice_id"))
    scored = rows.select("invoice_id", "buyer_id", "issued_on").with_columns(
        pl.lit(as_of).alias("run_as_of"),
        pl.Series("p_late", model.predict(rows) if rows.height else [], dtype=pl.Float64),
        pl.lit(str(champion.version)).alias("model_version"),
    )
    return scored, str(champion.version)


def run_monitor(cfg: PlatformConfig, ws: Workspace, as_of: date) -> dict[str, Any]:
    """Score every active buyer as of ``as_of`` with the default champion (and the invoices of
    the last ``late_window_days`` with the late-payment champion); drift against the champion's
    training rows; early-warning alerts; the portfolio view; backtests of matured runs; the
    report. Writes ``WORKSPACE/monitoring/runs/DATE/``."""
    from tradecredit.features.cli import normalised_ledger, paths_of
    from tradecredit.features.store import historical_features, open_store
    from tradecredit.monitoring.alerts import AlertOrderError, AlertStore, alert_metrics, run_alerts
    from tradecredit.monitoring.portfolio import SCORE, active, drift, score_portfolio
    from tradecredit.monitoring.portfolio_view import portfolio_view
    from tradecredit.monitoring.report import ReportInputs, render_report, summary_of
    from tradecredit.training import registry
    from tradecredit.training.cli import registered_version, sliced_training_set
    from tradecredit.training.splits import SLICE, TRAIN

    mon = cfg.monitoring
    name = cfg.training.default.registered_model
    client, champion, model = registered_version(cfg, ws, "default", None, registry.CHAMPION)
    tables = normalised_ledger(ws).tables
    store = open_store(paths_of(ws), cfg.features, cfg.backends)
    entities = tables["buyers"].select("buyer_id").with_columns(as_of_ts=pl.lit(as_of))
    features = historical_features(store, "default", entities)
    portfolio = score_portfolio(features, model, str(champion.version), as_of, cfg.policy)
    if portfolio.scores.height == 0:
        raise fail(f"no active buyer as of {as_of}: no feature snapshot then, or nothing invoiced in the year before")
    sliced, _, _, _ = sliced_training_set(client, champion, ws, "default")
    # Like with like: the training rows of buyers that were active then, as the run scores only
    # active buyers (the training set also holds months before a buyer's first invoice).
    train_rows = sliced.filter(pl.col(SLICE) == TRAIN)
    reference = train_rows.filter(active(train_rows, model))
    results = drift(reference, model.predict(reference), portfolio, model, mon.drift)
    out = runs_folder(ws) / as_of.isoformat()
    out.mkdir(parents=True, exist_ok=True)
    portfolio.scores.write_parquet(out / "scores.parquet")
    (out / "drift.json").write_text(json.dumps([asdict(r) for r in results], indent=1), encoding="utf-8")

    late = score_recent_invoices(cfg, ws, store, tables["invoices"], as_of)
    if late is not None:
        late[0].write_parquet(out / "late_scores.parquet")

    active_features = features.filter(pl.col("buyer_id").is_in(portfolio.scores["buyer_id"].implode()))
    previous = previous_run(ws, as_of)
    metrics = alert_metrics(active_features, portfolio.scores, None if previous is None else previous.select("buyer_id", previous_grade="grade"))
    alert_store = AlertStore(ws.root / "monitoring" / "alerts.db")
    try:
        outcome, note = run_alerts(alert_store, as_of, metrics, mon.alerts, portfolio.model_version), None
    except AlertOrderError as exc:
        outcome, note = None, f"Alerts not evaluated: {exc} (run monitoring dates in order)."
    open_alerts = alert_store.alerts("open")
    alert_store.close()

    view = portfolio_view(portfolio.scores, active_features, paths_of(ws).view_file("payment_behaviour"), as_of, cfg.policy, mon.portfolio)
    backtests = compute_backtests(cfg, ws, tables, as_of)
    inputs = ReportInputs(
        as_of=as_of.isoformat(), model=name, model_version=portfolio.model_version, late_model_version=None if late is None else late[1],
        active_buyers=portfolio.scores.height, inactive_buyers=portfolio.inactive, drift=results, view=view, alerts=outcome,
        alert_note=note, open_alerts=open_alerts, backtests=backtests.default, late_backtests=backtests.late,
        late_scored_invoices=0 if late is None else late[0].height, top_features=mon.report_top_features,
    )
    summary = summary_of(inputs, mon.drift.moderate_psi) | {"reference_rows": reference.height}
    (out / "summary.json").write_text(json.dumps(summary, indent=2, default=str), encoding="utf-8")
    view.positions.write_parquet(out / "positions.parquet")
    (out / "report.html").write_text(render_report(inputs, summary, mon.drift.moderate_psi, mon.drift.major_psi), encoding="utf-8")

    score_psi = next(r for r in results if r.name == SCORE)
    typer.echo(
        f"Scored {summary['active_buyers']:,} active buyers as of {as_of} with {name} version {portfolio.model_version} "
        f"({summary['inactive_buyers']:,} inactive): mean PD {summary['mean_pd_12m']:.2%}. Score PSI {score_psi.psi:.3f} "
        f"({score_psi.band}, p = {score_psi.p_value:.2g}); {summary['features_moderate_or_major']} features moderate or major, "
        f"{summary['features_significant']} significant at {mon.drift.alpha}."
    )
    for r in [r for r in results if r.name != SCORE][:5]:
        typer.echo(f"  {r.name:<32} PSI {r.psi:.3f}  {r.band:<8} p = {r.p_value:.2g}  critical PSI {r.critical_psi:.3f}")
    if late is not None:
        typer.echo(f"Late-payment model version {late[1]}: {late[0].height:,} invoices of the last {mon.late_window_days} days scored.")
    if outcome is not None:
        typer.echo(
            f"Alerts: {outcome.raised} raised, {outcome.escalated} escalated, {outcome.continued} still open, {outcome.cleared} cleared; "
            f"open now {outcome.open_red} red, {outcome.open_yellow} yellow."
            + (f" Webhook: {outcome.delivered} posted." if outcome.delivered else "")
        )
        if outcome.delivery_error:
            typer.echo(outcome.delivery_error, err=True)
    else:
        typer.echo(note, err=True)
    c = view.concentration
    typer.echo(
        f"Exposure {c.total_exposure:,.0f}: largest buyer {c.largest_share:.1%}, top-{c.top_n} {c.top_n_share:.1%}, HHI {c.hhi * 10_000:,.0f} points; "
        f"expected loss {view.expected_loss:,.0f}, premium {view.premium:,.0f}."
    )
    if summary["retrain_recommended"]:
        typer.echo("Retraining recommended: see the report's backtest section.")
    typer.echo(f"Report: {out / 'report.html'}\nScores, drift, positions and summary: {out}")
    return summary


def _auc_and_verdict(b: Any) -> tuple[str, str]:
    """A backtest's AUC and retraining verdict as printed (either model's backtest)."""
    auc = "n/a (one outcome class)" if b.auc is None else f"{b.auc:.3f}"
    return auc, "RETRAIN: " + "; ".join(b.reasons) if b.retrain else "no retraining needed"


def run_backtest(cfg: PlatformConfig, ws: Workspace) -> list[dict[str, Any]]:
    """Backtest every monitoring run whose label has matured by the ledger's end (default and
    late-payment models); writes ``WORKSPACE/monitoring/backtest.json``."""
    from tradecredit.features.cli import built_as_of, normalised_ledger

    if not list(runs_folder(ws).glob("*/scores.parquet")):
        raise fail(f"no monitoring runs in {runs_folder(ws)}: run `tradecredit monitor --as-of DATE`")
    found = compute_backtests(cfg, ws, normalised_ledger(ws).tables, built_as_of(ws))
    if not found.default:
        typer.echo(f"No monitoring run has a matured 12-month label yet (the ledger ends {found.data_end}).")
    rows = []
    for b in found.default:
        auc, verdict = _auc_and_verdict(b)
        typer.echo(f"{b.as_of} (version {b.model_version}): {b.rows:,} buyers, {b.events} defaults ({b.observed_rate:.2%} observed, "
                   f"{b.mean_pd:.2%} predicted), AUC {auc}; {verdict}")
        rows.append({k: v for k, v in b.__dict__.items() if k != "grades"} | {"as_of": b.as_of.isoformat(), "grades": b.grades.to_dicts()})
    late_rows = []
    for b in found.late:
        auc, verdict = _auc_and_verdict(b)
        typer.echo(f"late-payment model, run {b.as_of} (version {b.model_version}): {b.rows:,} decided invoices, {b.events} late "
                   f"({b.observed_rate:.2%} observed, {b.mean_predicted:.2%} predicted), AUC {auc}; {verdict}")
        late_rows.append({k: v for k, v in b.__dict__.items() if k != "deciles"} | {"as_of": b.as_of.isoformat(), "deciles": b.deciles.to_dicts()})
    out = ws.root / "monitoring" / "backtest.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    report = {
        "reference_auc": found.reference_auc, "data_end": found.data_end.isoformat(), "runs": rows,
        "late": {"reference_auc": found.late_reference_auc, "runs": late_rows},
    }
    out.write_text(json.dumps(report, indent=1), encoding="utf-8")
    return rows


def demo_dates(end: date) -> list[date]:
    """The demo's monitoring runs: a year before the data end (its 12-month label has matured,
    so the report has a backtest), the start of the last month (the run before), and the end."""
    return sorted({date(end.year - 1, end.month, 1), date(end.year, end.month, 1), end})


def run_demo_monitoring(cfg: PlatformConfig, ws: Workspace) -> Path:
    """Demo step: monitoring runs in date order on a fresh alert store; returns the last report."""
    import shutil

    from tradecredit.features.cli import built_as_of

    # The demo simulated a new portfolio: alerts and runs of an earlier one describe other buyers.
    shutil.rmtree(ws.root / "monitoring", ignore_errors=True)
    dates = demo_dates(built_as_of(ws))
    for day in dates:
        typer.echo(f"-- monitor --as-of {day}")
        run_monitor(cfg, ws, day)
    return runs_folder(ws) / dates[-1].isoformat() / "report.html"


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
