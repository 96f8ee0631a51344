"""The monitoring stages: a monitoring run as of a date (scores, drift, early warnings, the
portfolio view, backtests of matured runs and the report) and the backtest of past runs. Plain
functions from the config and the workspace to frozen results; the command line prints them."""

from __future__ import annotations

import json
import shutil
from dataclasses import asdict, dataclass
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import polars as pl

from tradecredit.config import PlatformConfig
from tradecredit.errors import MissingArtefact, StageError
from tradecredit.model_specs import model_spec
from tradecredit.workspace import MonitoringRunFiles, Workspace


@dataclass(frozen=True)
class Backtests:
    default: list[Any]
    late: list[Any]
    reference_auc: float
    late_reference_auc: float | None
    data_end: date
    spells: pl.DataFrame | None = None  # the defaults by data_end, for the pricing backtest
    cases: Any = None  # CaseBacktest of the early warnings


def compute_backtests(cfg: PlatformConfig, ws: Workspace, tables: dict[str, pl.DataFrame], upto: date) -> Backtests:
    """Backtests of the runs dated up to ``upto`` whose labels have matured by then (or by the
    ledger's end, if earlier): what a reviewer could have known at ``upto``."""
    from tradecredit.features.labels import default_spells
    from tradecredit.monitoring.backtest import backtest_runs, late_backtest_runs
    from tradecredit.training import registry

    data_end = min(upto, ws.built_as_of())
    client, champion = registry.find_version(cfg, ws, "default", None, registry.CHAMPION)
    reference_auc = registry.run_metric(client, champion.run_id, "test_auc")
    try:
        history = ws.score_history().filter(pl.col("as_of_ts").dt.date() <= upto)
    except MissingArtefact:
        history = None
    defaults = default_spells(tables, cfg.labels.default, data_end).spells
    default = backtest_runs(history, defaults, data_end, reference_auc, cfg.monitoring.backtest) if history is not None and history.height else []
    late, late_auc = [], None
    late_scores = ws.late_score_history(upto)
    late_champion = registry.champion_or_none(cfg, ws, "late")
    if late_scores is not None and late_champion is not None:
        late_client, found = late_champion
        late_auc = registry.run_metric(late_client, found.run_id, "test_auc")
        # The champion's own label, whatever labels.late_days says now.
        label = registry.run_tag(late_client, found.run_id, "label")
        late_days = model_spec("late").late_days_of(label) if label else cfg.labels.late_days
        late = late_backtest_runs(late_scores, tables["invoices"], late_days, data_end, late_auc, cfg.monitoring.backtest)
    cases = warning_backtest(ws, history, defaults, data_end, upto, cfg.monitoring.cases.lead_days)
    return Backtests(default, late, reference_auc, late_auc, data_end, defaults, cases)


def warning_backtest(ws: Workspace, history: pl.DataFrame | None, spells: pl.DataFrame, data_end: date, upto: date, lead_days: int) -> Any:
    """The early warnings' backtest: the cases and alerts of the runs up to ``upto`` against the defaults since."""
    from tradecredit.monitoring.case_backtest import case_backtest
    from tradecredit.monitoring.cases import CaseBook

    if history is None or history.height == 0 or not ws.alerts_db.exists():
        return None
    book = CaseBook(ws.alerts_db)
    try:
        snapshots = book.snapshots().filter(pl.col("as_of") <= upto.isoformat())
    finally:
        book.close()
    alerts = read_alerts_upto(ws, upto)
    return case_backtest(history, snapshots, alerts, spells, data_end, lead_days)


def read_alerts_upto(ws: Workspace, upto: date) -> pl.DataFrame:
    """Every alert raised by ``upto``, as known then (a clearing after ``upto`` not yet seen)."""
    from tradecredit.monitoring.alerts import AlertStore

    store = AlertStore(ws.alerts_db)
    try:
        alerts = store.alerts()
    finally:
        store.close()
    day = upto.isoformat()
    return alerts.filter(pl.col("raised_on") <= day).with_columns(
        cleared_on=pl.when(pl.col("cleared_on") <= day).then(pl.col("cleared_on")))


def pricing_backtest_of(cfg: PlatformConfig, ws: Workspace, tables: dict[str, pl.DataFrame], backtests: Backtests) -> tuple[Any, str]:
    """The insurance pricing backtest of the latest run whose year has matured by the run's
    date: premiums quoted then against the insured losses since; or None and why there is none."""
    from tradecredit.credit.pipeline import open_register
    from tradecredit.insurance.pipeline import matured_run, pricing_backtest

    quoted_on = matured_run(ws, backtests.data_end)
    if quoted_on is None or backtests.spells is None:
        return None, "No monitoring run a year before this one yet: the pricing backtest needs a matured year."
    register = open_register(cfg, ws)
    try:
        return pricing_backtest(cfg, ws, quoted_on, tables, backtests.spells, register), ""
    except StageError as exc:
        return None, f"No pricing backtest: {str(exc).rstrip('.')}."  # e.g. nothing insurable on that date
    finally:
        register.close()


def score_recent_invoices(cfg: PlatformConfig, ws: Workspace, store: Any, invoices: pl.DataFrame, as_of: date) -> tuple[pl.DataFrame, str] | None:
    """The late-payment champion's probabilities for the invoices issued in the window up to
    ``as_of`` (each with its buyer's features as of the day before issue), or None without a champion."""
    from tradecredit.features.training_sets import late_rows
    from tradecredit.training import registry

    found = registry.champion_or_none(cfg, ws, "late")
    if found is None:
        return None
    client, champion = found
    model = registry.load_version(client, champion.name, champion.version)
    window = invoices.filter(pl.col("issued_on").is_between(as_of - timedelta(days=cfg.monitoring.late_window_days - 1), as_of))
    rows = late_rows(store, window.select("invoice_id", "buyer_id", "issued_on", "amount", "terms_days").sort("issued_on", "invoice_id"))
    scored = rows.select("invoice_id", "buyer_id", "issued_on").with_columns(
        pl.lit(as_of).alias("run_as_of"),
        pl.Series("p_late", model.predict_proba(rows) if rows.height else [], dtype=pl.Float64),
        pl.lit(str(champion.version)).alias("model_version"),
    )
    return scored, str(champion.version)


@dataclass(frozen=True)
class MonitorResult:
    as_of: date
    registered_model: str
    summary: dict[str, Any]
    drift: list[Any]  # PsiResult, largest first
    late_version: str | None
    late_scored: int
    alerts: Any  # AlertRunOutcome, or None when the run was out of order
    cases: Any  # CaseRunOutcome, or None likewise
    alert_note: str | None
    view: Any  # PortfolioView
    files: MonitoringRunFiles
    limits: str  # what the run did to the limit register

    def describe(self) -> list[tuple[str, bool]]:
        """The lines to print, each with whether it goes to standard error."""
        from tradecredit.monitoring.portfolio import SCORE

        s, mon_lines = self.summary, []
        score_psi = next(r for r in self.drift if r.name == SCORE)
        mon_lines.append((
            f"Scored {s['active_buyers']:,} active buyers as of {self.as_of} with {self.registered_model} version {s['model_version']} "
            f"({s['inactive_buyers']:,} inactive): mean PD {s['mean_pd_12m']:.2%}. Score PSI {score_psi.psi:.3f} "
            f"({score_psi.band}, p = {score_psi.p_value:.2g}); {s['features_moderate_or_major']} features moderate or major, "
            f"{s['features_significant']} significant at {s['drift_alpha']}.", False))
        beyond = [m for m in s.get("market_conditions", []) if m["outside"]]
        if beyond:
            mon_lines.append((f"Market conditions beyond the model's training range: "
                              + ", ".join(f"{m['name']} {m['value']:.3g} (trained on {m['reference_low']:.3g}-{m['reference_high']:.3g})" for m in beyond)
                              + ". The model's PDs were learnt in other conditions: retrain when the outcomes are in, or quote under stress.", True))
        for r in [r for r in self.drift if r.name != SCORE][:5]:
            mon_lines.append((f"  {r.name:<32} PSI {r.psi:.3f}  {r.band:<8} p = {r.p_value:.2g}  critical PSI {r.critical_psi:.3f}", False))
        if self.late_version is not None:
            mon_lines.append((f"Late-payment model version {self.late_version}: {self.late_scored:,} invoices of the last "
                              f"{s['late_window_days']} days scored.", False))
        o = self.alerts
        if o is not None:
            mon_lines.append((
                f"Alerts: {o.raised} raised, {o.escalated} escalated, {o.continued} still open, {o.cleared} cleared; "
                f"open now {o.open_red} red, {o.open_yellow} yellow." + (f" Webhook: {o.delivered} posted." if o.delivered else ""), False))
            if o.delivery_error:
                mon_lines.append((o.delivery_error, True))
            if self.cases is not None:
                mon_lines.append((self.cases.describe(), False))
        else:
            mon_lines.append((str(self.alert_note), True))
        c = self.view.concentration
        mon_lines.append((
            f"Exposure {c.total_exposure:,.0f}: largest buyer {c.largest_share:.1%}, top-{c.top_n} {c.top_n_share:.1%}, HHI {c.hhi * 10_000:,.0f} points; "
            f"expected loss {self.view.expected_loss:,.0f}, premium {self.view.premium:,.0f}.", False))
        mon_lines.append((self.limits, False))
        pricing = s.get("pricing_backtest")
        if pricing is not None:
            t = pricing["total"]
            mon_lines.append((
                f"Insurance pricing backtest (policies quoted on {pricing['quoted_on']}): {t['defaults']} defaults among {t['buyers']:,} insured buyers; "
                f"loss ratio {t['realised_loss_ratio']:.0%} realised against {t['expected_loss_ratio']:.0%} expected "
                f"({'within' if t['within_interval'] else 'outside'} its 90% interval {t['interval'][0]:.0%}-{t['interval'][1]:.0%}).", False))
        if s["retrain_recommended"]:
            mon_lines.append(("Retraining recommended: see the report's backtest section.", False))
        mon_lines.append((f"Report: {self.files.report}\nScores, drift, positions and summary: {self.files.folder}", False))
        return mon_lines


def monitor(cfg: PlatformConfig, ws: Workspace, as_of: date) -> MonitorResult:
    """Score every active buyer as of ``as_of`` with the default champion (and the invoices of
    the last ``late_window_days`` with the late-payment champion); drift against the champion's
    training rows; early-warning alerts; the portfolio view; backtests of matured runs; the
    report. Writes ``WORKSPACE/monitoring/runs/DATE/``."""
    from tradecredit.features.pipeline import open_feature_store
    from tradecredit.features.store import historical_features
    from tradecredit.credit.pipeline import granted_by_buyer
    from tradecredit.credit.positions import arrears_rules, ledger_positions
    from tradecredit.monitoring.alerts import AlertOrderError, AlertStore, alert_metrics, run_alerts
    from tradecredit.monitoring.cases import CaseBook, run_cases
    from tradecredit.monitoring.portfolio import active, drift, market_readings, score_portfolio
    from tradecredit.monitoring.portfolio_view import portfolio_view
    from tradecredit.monitoring.report import ReportInputs, render_report, summary_of
    from tradecredit.credit.pipeline import review_register
    from tradecredit.training import registry
    from tradecredit.training.pipeline import sliced_training_set

    mon = cfg.monitoring
    name = registry.registered_name(cfg, "default")
    champion = registry.load_registered(cfg, ws, "default", None, registry.CHAMPION)
    model = champion.model
    tables = ws.read_ledger().tables
    entities = tables["buyers"].select("buyer_id").with_columns(as_of_ts=pl.lit(as_of))
    store = open_feature_store(cfg, ws)
    features = historical_features(store, model_spec("default").feature_service, entities)
    portfolio = score_portfolio(features, model, str(champion.version.version), as_of, cfg.policy)
    if portfolio.scores.height == 0:
        raise StageError(f"no active buyer as of {as_of}: no feature snapshot then, or nothing invoiced in the year before")
    sliced = sliced_training_set(ws, champion, "default")
    # Like with like: the served model's training rows (every labelled month) of buyers that were
    # active then, as the run scores only active buyers (the training set also holds months
    # before a buyer's first invoice).
    train_rows = sliced.frame.filter(pl.col("as_of_ts").dt.date() <= sliced.plan.production_end)
    reference = train_rows.filter(active(train_rows, model))
    results = drift(reference, model.predict_proba(reference), portfolio, model, mon.drift)
    market = market_readings(reference, portfolio)
    out = ws.monitoring_run(as_of)
    out.folder.mkdir(parents=True, exist_ok=True)
    portfolio.scores.write_parquet(out.scores)
    out.drift.write_text(json.dumps([asdict(r) for r in results], indent=1), encoding="utf-8")

    late = score_recent_invoices(cfg, ws, store, tables["invoices"], as_of)
    if late is not None:
        late[0].write_parquet(out.late_scores)

    active_features = features.filter(pl.col("buyer_id").is_in(portfolio.scores["buyer_id"].implode()))
    previous = ws.previous_run_scores(as_of)
    knock_facts = ledger_positions(tables, as_of, **arrears_rules(cfg.labels.default)).buyers
    metrics = alert_metrics(active_features, portfolio.scores, None if previous is None else previous.select("buyer_id", previous_grade="grade"),
                            knock_facts, as_of)
    alert_store = AlertStore(ws.alerts_db)
    case_book = CaseBook(ws.alerts_db)
    try:
        outcome, note = run_alerts(alert_store, as_of, metrics, mon.alerts, portfolio.model_version), None
        open_alerts = alert_store.alerts("open")
        cases = run_cases(case_book, as_of, open_alerts, metrics, granted_by_buyer(cfg, ws, as_of), mon.cases)
    except AlertOrderError as exc:
        outcome, note, cases = None, f"Alerts not evaluated: {exc} (run monitoring dates in order).", None
        open_alerts = alert_store.alerts("open")
    finally:
        alert_store.close()
    open_cases = case_book.cases("open")
    case_book.close()

    view = portfolio_view(portfolio.scores, active_features, ws.feature_view_dataset("payment_behaviour"), as_of, cfg.policy, mon.portfolio)
    # Granted limits follow the risk: reductions proposed with notice for red cases, reviews for
    # yellow ones (not the listed ones below the materiality floor), increases for approval.
    red_buyers = set(open_cases.filter(pl.col("kind") == "red")["buyer_id"].to_list())
    review_buyers = set(open_cases.filter(pl.col("kind") == "yellow")["buyer_id"].to_list())
    limits = review_register(cfg, ws, as_of, view.positions, red_buyers, review_buyers)
    backtests = compute_backtests(cfg, ws, tables, as_of)
    pricing, pricing_note = pricing_backtest_of(cfg, ws, tables, backtests)
    inputs = ReportInputs(
        as_of=as_of.isoformat(), model=name, model_version=portfolio.model_version, late_model_version=None if late is None else late[1],
        active_buyers=portfolio.scores.height, inactive_buyers=portfolio.inactive, drift=results, view=view, alerts=outcome,
        alert_note=note, open_alerts=open_alerts, backtests=backtests.default, late_backtests=backtests.late,
        late_scored_invoices=0 if late is None else late[0].height, top_features=mon.report_top_features,
        cases=cases, open_cases=open_cases, case_backtest=backtests.cases, market=market,
    )
    summary = summary_of(inputs, mon.drift.moderate_psi) | {"reference_rows": reference.height} | limits.summary() | {
        "pricing_backtest": None if pricing is None else pricing.to_json(), "pricing_backtest_note": pricing_note}
    out.summary.write_text(json.dumps(summary, indent=2, default=str), encoding="utf-8")
    view.positions.write_parquet(out.positions)
    out.report.write_text(render_report(inputs, summary, mon.drift.moderate_psi, mon.drift.major_psi), encoding="utf-8")
    printed = summary | {"drift_alpha": mon.drift.alpha, "late_window_days": mon.late_window_days}
    return MonitorResult(as_of, name, printed, results, None if late is None else late[1], 0 if late is None else late[0].height,
                         outcome, cases, note, view, out, limits.describe())


@dataclass(frozen=True)
class BacktestResult:
    found: Backtests
    document: dict[str, Any]
    path: Path

    def describe(self) -> list[str]:
        lines = []
        if not self.found.default:
            lines.append(f"No monitoring run has a matured 12-month label yet (the ledger ends {self.found.data_end}).")
        for b in self.found.default:
            auc, verdict = _auc_and_verdict(b)
            lines.append(f"{b.as_of} (version {b.model_version}): {b.rows:,} buyers, {b.events} defaults ({b.observed_rate:.2%} observed, "
                         f"{b.mean_pd:.2%} predicted), AUC {auc}; {verdict}")
        for b in self.found.late:
            auc, verdict = _auc_and_verdict(b)
            lines.append(f"late-payment model, run {b.as_of} (version {b.model_version}): {b.rows:,} decided invoices, {b.events} late "
                         f"({b.observed_rate:.2%} observed, {b.mean_predicted:.2%} predicted), AUC {auc}; {verdict}")
        if self.found.cases is not None:
            lines += self.found.cases.describe()
        return lines


def _auc_and_verdict(b: Any) -> tuple[str, str]:
    """A backtest's AUC and retraining verdict as printed (either model's backtest)."""
    auc = "n/a (one outcome class)" if b.auc is None else f"{b.auc:.3f}"
    return auc, "RETRAIN: " + "; ".join(b.reasons) if b.retrain else "no retraining needed"


def backtest(cfg: PlatformConfig, ws: Workspace) -> BacktestResult:
    """Backtest every monitoring run whose label has matured by the ledger's end (default and
    late-payment models); writes ``WORKSPACE/monitoring/backtest.json``."""
    if not ws.run_score_files():
        raise MissingArtefact(f"no monitoring runs in {ws.monitoring_runs}: run `tradecredit monitor --as-of DATE`")
    found = compute_backtests(cfg, ws, ws.read_ledger().tables, ws.built_as_of())
    rows = [{k: v for k, v in b.__dict__.items() if k != "grades"} | {"as_of": b.as_of.isoformat(), "grades": b.grades.to_dicts()}
            for b in found.default]
    late_rows = [{k: v for k, v in b.__dict__.items() if k != "deciles"} | {"as_of": b.as_of.isoformat(), "deciles": b.deciles.to_dicts()}
                 for b in found.late]
    document = {
        "reference_auc": found.reference_auc, "data_end": found.data_end.isoformat(), "runs": rows,
        "late": {"reference_auc": found.late_reference_auc, "runs": late_rows},
        "early_warnings": None if found.cases is None else found.cases.to_json(),
    }
    ws.backtest_report.parent.mkdir(parents=True, exist_ok=True)
    ws.backtest_report.write_text(json.dumps(document, indent=1), encoding="utf-8")
    return BacktestResult(found, document, ws.backtest_report)


@dataclass(frozen=True)
class CaseList:
    cases: pl.DataFrame

    def describe(self) -> list[str]:
        if self.cases.height == 0:
            return ["No case."]
        lines = []
        for c in self.cases.iter_rows(named=True):
            signals = ", ".join(s["signal"] for s in json.loads(c["signals_json"]))
            state = f"open since {c['opened_on']}" if c["status"] == "open" else f"closed {c['closed_on']} ({c['outcome']}" + (
                f" by {c['resolved_by']}: {c['resolution_note']})" if c["resolved_by"] else ")")
            lines.append(f"case {c['case_id']} {c['kind']:<7} {c['buyer_id']}: {c['reason']}. Action: {c['action']}. Signals: {signals}. "
                         f"Exposure {c['exposure']:,.0f}; {state}.")
        return lines


def list_cases(ws: Workspace, status: str | None, kind: str | None) -> CaseList:
    """The workspace's early-warning cases, red first (``status`` open/closed or None for all)."""
    from tradecredit.monitoring.cases import read_cases

    if not ws.alerts_db.exists():
        raise MissingArtefact(f"no early-warning cases yet in {ws.alerts_db}: run `tradecredit monitor --as-of DATE`")
    cases = read_cases(ws.alerts_db, status)
    if kind is not None:
        cases = cases.filter(pl.col("kind") == kind)
    order = pl.col("kind").replace_strict({"red": 0, "yellow": 1, "listed": 2}, return_dtype=pl.Int8)
    return CaseList(cases.sort(order, pl.col("case_id")))


def resolve_case(cfg: PlatformConfig, ws: Workspace, case_id: int, outcome: str, reviewer: str, note: str, on: date | None) -> dict[str, Any]:
    """Close an open case with a reviewer's outcome, dated ``on`` (default: the latest monitoring run's date)."""
    from tradecredit.monitoring.cases import CaseBook

    if not ws.alerts_db.exists():
        raise MissingArtefact(f"no early-warning cases yet in {ws.alerts_db}: run `tradecredit monitor --as-of DATE`")
    book = CaseBook(ws.alerts_db)
    try:
        day = on or book.latest_run() or ws.built_as_of()
        return book.resolve(case_id, outcome, reviewer, note, day, cfg.monitoring.cases)
    finally:
        book.close()


def demo_dates(end: date) -> list[date]:
    """The demo's monitoring runs: a year before the data end (its 12-month label has matured,
    so the report has a backtest), the start of the last month (the run before), and the end."""
    return sorted({date(end.year - 1, end.month, 1), date(end.year, end.month, 1), end})


def reset_monitoring(ws: Workspace) -> None:
    """Forget every monitoring run and alert (the demo simulated a new portfolio: alerts and runs
    of an earlier one describe other buyers)."""
    shutil.rmtree(ws.monitoring, ignore_errors=True)

