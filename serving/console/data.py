"""What the console shows, read where the rest of the platform keeps it: no second source of truth.

- The portfolio table: every buyer scored by the service's own :class:`Assessor` parts (its
  champion models, its Feast online reader, ``decide``) at the service clock; open alerts from
  monitoring's alert store.
- Early-warning cases: monitoring's case book (``monitoring/cases.py``), in the same database.
- A buyer's history: PD and grade from monitoring runs; payment behaviour, aging and filed
  statements from the feature build's snapshots; registry events from the loaded ledger;
  decisions and reviews from the decision log.

Point in time: every reader takes the service clock ``now`` and returns only facts known by
then (a snapshot by its ``known_at_ts``, an event by its ``event_on``, a run by its date), so a
replayed date shows what a reviewer could have seen that day.
"""

from __future__ import annotations

import json
import math
import sqlite3
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import polars as pl

from tradecredit.serving.config import ConsoleConfig
from tradecredit.features.build import KNOWN_AT_TS, SNAPSHOT_TS
from tradecredit.features.catalog import AGING_COLUMNS
from tradecredit.monitoring.alerts import COLOUR_RANK
from tradecredit.monitoring.cases import read_cases
from tradecredit.policy import buyer_facts, decide
from tradecredit.serving.engine import Assessor, freshness

# Columns a reviewer can sort the portfolio by, and the filters it takes.
SORTABLE = (
    "buyer_id", "industry", "country", "pd_12m", "grade", "tier", "recommended_limit", "exposure", "available_limit",
    "premium_rate", "open_alerts",
)
ALERT_FILTERS = ("red", "yellow", "any", "none")
TIERS = ("low", "medium", "high")


# --------------------------------------------------------------------------- portfolio


@dataclass(frozen=True)
class PortfolioTable:
    frame: pl.DataFrame  # one row per buyer with features online
    clock: datetime  # the service clock it was scored at
    built_at: float  # time.monotonic() when built
    build_seconds: float
    model_version: str
    unscored: int  # ledger buyers without features in the online store


def score_online(assessor: Assessor, buyer_ids: list[str], now: datetime, chunk: int = 1000) -> pl.DataFrame:
    """Every buyer's PD, grade, limit, exposure and premium rate exactly as ``/assess`` with
    nothing requested would give them (same models, same online rows, same policy), without the
    explanations. Buyers without features are left out."""
    model = assessor.models["default"].model
    records: list[dict[str, Any]] = []
    for start in range(0, len(buyer_ids), chunk):
        part = buyer_ids[start : start + chunk]
        online = assessor.reader.read(part, now)
        fresh = freshness(online, now)
        known = [(b, row, f) for b, row, f in zip(part, online.rows(), fresh, strict=True) if f.known]
        if not known:
            continue
        pds = model.predict_rows([row for _, row, _ in known])
        for (buyer, row, f), pd_12m in zip(known, pds, strict=True):
            decision = decide(float(pd_12m), buyer_facts(row), None, assessor.cfg.policy, refer_because="stale features" if f.stale else None)
            records.append(
                {
                    "buyer_id": buyer, "industry": row.get("industry"), "country": row.get("country"), "pd_12m": float(pd_12m),
                    "grade": decision.grade, "tier": decision.tier, "recommended_limit": decision.recommended_limit,
                    "exposure": decision.exposure, "available_limit": decision.available_limit,
                    "premium_rate": decision.premium_rate, "stale": bool(f.stale),
                }
            )
    schema = {
        "buyer_id": pl.String, "industry": pl.String, "country": pl.String, "pd_12m": pl.Float64, "grade": pl.Int64,
        "tier": pl.String, "recommended_limit": pl.Float64, "exposure": pl.Float64, "available_limit": pl.Float64,
        "premium_rate": pl.Float64, "stale": pl.Boolean,
    }
    return pl.DataFrame(records, schema=schema)


def alerts_by_buyer(open_alerts: pl.DataFrame) -> pl.DataFrame:
    """Per buyer: the number of open alerts and the worst colour among them."""
    if open_alerts.height == 0:
        return pl.DataFrame(schema={"buyer_id": pl.String, "open_alerts": pl.UInt32, "alert_colour": pl.String})
    return (
        open_alerts.with_columns(rank=pl.col("colour").replace_strict(COLOUR_RANK, return_dtype=pl.Int8))
        .group_by("buyer_id")
        .agg(open_alerts=pl.len(), alert_colour=pl.col("colour").sort_by("rank").last())
    )


def build_portfolio(assessor: Assessor, buyer_ids: list[str], open_alerts: pl.DataFrame, now: datetime) -> PortfolioTable:
    started = time.monotonic()
    scored = score_online(assessor, buyer_ids, now)
    frame = (
        scored.join(alerts_by_buyer(open_alerts), on="buyer_id", how="left")
        .with_columns(pl.col("open_alerts").fill_null(0).cast(pl.Int64))
        .sort("buyer_id")
    )
    return PortfolioTable(
        frame, now, time.monotonic(), time.monotonic() - started, assessor.models["default"].version, len(buyer_ids) - scored.height
    )


def write_portfolio_table(table: PortfolioTable, file: Path, meta_file: Path, key: dict[str, Any]) -> None:
    """Share a built table with the other workers: the frame as Parquet, beside it its key and
    when it was built (wall clock: the workers' monotonic clocks are their own)."""
    table.frame.write_parquet(file.with_suffix(".tmp"))
    file.with_suffix(".tmp").replace(file)
    meta = {"key": key, "clock": table.clock.isoformat(), "built_wall": time.time(), "build_seconds": table.build_seconds,
            "model_version": table.model_version, "unscored": table.unscored}
    meta_file.write_text(json.dumps(meta), encoding="utf-8")


def read_portfolio_table(file: Path, meta_file: Path, key: dict[str, Any], max_age_seconds: float) -> PortfolioTable | None:
    """A table another worker shared, if it was built from the same ``key`` and is younger than
    ``max_age_seconds``; otherwise None (this worker builds its own)."""
    if not file.exists() or not meta_file.exists():
        return None
    meta = json.loads(meta_file.read_text(encoding="utf-8"))
    age = time.time() - float(meta["built_wall"])
    if meta.get("key") != key or not 0 <= age < max_age_seconds:
        return None
    return PortfolioTable(pl.read_parquet(file), datetime.fromisoformat(meta["clock"]), time.monotonic() - age,
                          float(meta["build_seconds"]), str(meta["model_version"]), int(meta["unscored"]))


class QueryError(ValueError):
    """A portfolio or alerts query the console cannot answer; names the parameter."""

    def __init__(self, parameter: str, message: str) -> None:
        super().__init__(message)
        self.parameter = parameter


@dataclass(frozen=True)
class PortfolioQuery:
    page: int = 1
    size: int = 50
    sort: str = "pd_12m"
    descending: bool = True
    grades: tuple[int, ...] = ()
    tiers: tuple[str, ...] = ()
    industries: tuple[str, ...] = ()
    countries: tuple[str, ...] = ()
    alert: str | None = None
    search: str | None = None

    def params(self, **changes: Any) -> dict[str, Any]:
        """The query as URL parameters (with changes), for links to other pages and sorts."""
        merged = {
            "page": self.page, "size": self.size, "sort": self.sort, "desc": int(self.descending), "grade": list(self.grades),
            "tier": list(self.tiers), "industry": list(self.industries), "country": list(self.countries),
            "alert": self.alert or "", "q": self.search or "",
        } | changes
        return {k: v for k, v in merged.items() if v not in ("", [], None)}


def _one(params: Mapping[str, list[str]], name: str) -> str | None:
    values = [v for v in params.get(name, []) if v != ""]
    if len(values) > 1:
        raise QueryError(name, f"'{name}' was given {len(values)} times; give it once")
    return values[0] if values else None


def _positive_int(params: Mapping[str, list[str]], name: str, default: int, upper: int | None = None) -> int:
    text = _one(params, name)
    if text is None:
        return default
    if not text.isdigit() or int(text) < 1:
        raise QueryError(name, f"'{name}' must be a whole number of 1 or more")
    if upper is not None and int(text) > upper:
        raise QueryError(name, f"'{name}' is at most {upper}")
    return int(text)


QUERY_PARAMETERS = ("page", "size", "sort", "desc", "grade", "tier", "industry", "country", "alert", "q")


def parse_portfolio_query(params: Mapping[str, list[str]], cfg: ConsoleConfig, grades: int) -> PortfolioQuery:
    """A portfolio query from URL parameters (each name to its values); a bad one is a
    :class:`QueryError` naming it."""
    unknown = sorted(set(params) - set(QUERY_PARAMETERS))
    if unknown:
        # A misspelt filter ('grde=9') must not quietly show the whole portfolio.
        raise QueryError(unknown[0], f"'{unknown[0]}' is not a portfolio parameter: {', '.join(QUERY_PARAMETERS)}")
    sort = _one(params, "sort") or "pd_12m"
    if sort not in SORTABLE:
        raise QueryError("sort", f"cannot sort by '{sort}': one of {', '.join(SORTABLE)}")
    desc = _one(params, "desc")
    if desc not in (None, "0", "1"):
        raise QueryError("desc", "'desc' is 0 or 1")
    chosen_grades = []
    for text in [v for v in params.get("grade", []) if v]:
        if not text.isdigit() or not 1 <= int(text) <= grades:
            raise QueryError("grade", f"grades run from 1 to {grades}")
        chosen_grades.append(int(text))
    tiers = tuple(v for v in params.get("tier", []) if v)
    for tier in tiers:
        if tier not in TIERS:
            raise QueryError("tier", f"tier is one of {', '.join(TIERS)}")
    alert = _one(params, "alert")
    if alert is not None and alert not in ALERT_FILTERS:
        raise QueryError("alert", f"alert is one of {', '.join(ALERT_FILTERS)}")
    search = _one(params, "q")
    return PortfolioQuery(
        page=_positive_int(params, "page", 1), size=_positive_int(params, "size", cfg.page_size, cfg.max_page_size), sort=sort,
        descending=desc != "0" if desc is not None else sort in ("pd_12m", "grade", "exposure", "open_alerts", "premium_rate"),
        grades=tuple(sorted(set(chosen_grades))), tiers=tiers,
        industries=tuple(v for v in params.get("industry", []) if v), countries=tuple(v for v in params.get("country", []) if v),
        alert=alert, search=search.strip() if search else None,
    )


@dataclass(frozen=True)
class PortfolioPage:
    rows: list[dict[str, Any]]
    total: int  # buyers in the table
    matched: int  # buyers the filters keep
    page: int
    pages: int
    query: PortfolioQuery
    sums: dict[str, float] = field(default_factory=dict)  # exposure and limits of the matched buyers


def portfolio_page(frame: pl.DataFrame, query: PortfolioQuery) -> PortfolioPage:
    """One page of the filtered, sorted table (the server does the paging: the browser gets
    ``size`` rows, whatever the portfolio's size)."""
    conditions = []
    if query.grades:
        conditions.append(pl.col("grade").is_in(query.grades))
    if query.tiers:
        conditions.append(pl.col("tier").is_in(query.tiers))
    if query.industries:
        conditions.append(pl.col("industry").is_in(query.industries))
    if query.countries:
        conditions.append(pl.col("country").is_in(query.countries))
    if query.alert == "any":
        conditions.append(pl.col("open_alerts") > 0)
    elif query.alert == "none":
        conditions.append(pl.col("open_alerts") == 0)
    elif query.alert in ("red", "yellow"):
        conditions.append(pl.col("alert_colour") == query.alert)
    if query.search:
        conditions.append(pl.col("buyer_id").str.to_lowercase().str.contains(query.search.lower(), literal=True))
    matched = frame.filter(pl.all_horizontal(conditions)) if conditions else frame
    pages = max(1, math.ceil(matched.height / query.size))
    page = min(query.page, pages)
    # buyer_id breaks ties, so paging through equal values never repeats or skips a buyer.
    ordered = matched.sort([query.sort, "buyer_id"], descending=[query.descending, False], nulls_last=True)
    rows = ordered.slice((page - 1) * query.size, query.size).to_dicts()
    sums = {"exposure": float(matched["exposure"].sum()), "recommended_limit": float(matched["recommended_limit"].sum())}
    return PortfolioPage(rows, frame.height, matched.height, page, pages, query, sums)


def filter_options(frame: pl.DataFrame) -> dict[str, list[str]]:
    return {c: sorted(v for v in frame[c].unique().to_list() if v is not None) for c in ("industry", "country")}


# --------------------------------------------------------------------------- alerts


def read_alerts(path: Path, now: date, status: str | None = "open", buyer_id: str | None = None) -> pl.DataFrame:
    """Alerts from monitoring's store raised by ``now`` (read-only; empty when monitoring has
    not run). A monitoring run dated after the clock is not the clock's news."""
    schema = {
        "alert_id": pl.Int64, "buyer_id": pl.String, "signal": pl.String, "colour": pl.String, "status": pl.String,
        "raised_on": pl.String, "last_seen_on": pl.String, "escalated_on": pl.String, "cleared_on": pl.String,
        "evidence": pl.String, "action": pl.String, "model_version": pl.String,
    }
    if not path.exists():
        return pl.DataFrame(schema=schema)
    con = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        clauses, args = ["raised_on <= ?"], [now.isoformat()]
        if status is not None:
            clauses.append("status = ?")
            args.append(status)
        if buyer_id is not None:
            clauses.append("buyer_id = ?")
            args.append(buyer_id)
        rows = con.execute(f"SELECT {','.join(schema)} FROM alerts WHERE {' AND '.join(clauses)} ORDER BY alert_id", args).fetchall()
    finally:
        con.close()
    return pl.DataFrame(rows, schema=schema, orient="row")


def with_acknowledgements(alerts: pl.DataFrame, reviews: list[dict[str, Any]]) -> pl.DataFrame:
    """Each alert with who acknowledged it and when (the latest acknowledgement of that very
    alert: same id, signal and raising day)."""
    acks = pl.DataFrame(
        [
            {"alert_id": r["alert_id"], "signal": r["alert_signal"], "raised_on": r["alert_raised_on"], "acknowledged_by": r["reviewer"],
             "acknowledged_at": r["logged_at"], "acknowledged_note": r["reason"]}
            for r in reviews if r["action"] == "acknowledge"
        ],
        schema={"alert_id": pl.Int64, "signal": pl.String, "raised_on": pl.String, "acknowledged_by": pl.String,
                "acknowledged_at": pl.String, "acknowledged_note": pl.String},
    ).unique(["alert_id", "signal", "raised_on"], keep="last", maintain_order=True)
    return alerts.join(acks, on=["alert_id", "signal", "raised_on"], how="left")


# Red cases are acted on first; listed ones (below the materiality floor) are for the record.
CASE_KINDS = ("red", "yellow", "listed")


def sort_cases(cases: pl.DataFrame) -> pl.DataFrame:
    """Red, then yellow, then listed; the newest opened first within a kind (then the newest case)."""
    rank = pl.col("kind").replace_strict({kind: i for i, kind in enumerate(CASE_KINDS)}, return_dtype=pl.Int8)
    return cases.with_columns(rank=rank).sort(["rank", "opened_on", "case_id"], descending=[False, True, True]).drop("rank")


def case_rows(cases: pl.DataFrame) -> list[dict[str, Any]]:
    """Cases as the pages show them, each with its signals (stored as JSON) as a list."""
    return [row | {"signals": json.loads(row["signals_json"])} for row in cases.to_dicts()]


def open_case(path: Path, buyer_id: str, now: date) -> dict[str, Any] | None:
    """The buyer's open case opened by ``now``, if it has one (a buyer has at most one open case)."""
    rows = case_rows(read_cases(path, "open", buyer_id=buyer_id, opened_by=now))
    return rows[0] if rows else None


# --------------------------------------------------------------------------- one buyer


def _cut(now: datetime) -> datetime:
    return now.astimezone(UTC)


def pd_history(score_files: list[Path], buyer_id: str, now: datetime) -> pl.DataFrame:
    """The buyer's PD and grade in every monitoring run dated by ``now``."""
    schema = {"as_of_ts": pl.Datetime("us", "UTC"), "pd_12m": pl.Float64, "grade": pl.Int64, "model_version": pl.String}
    if not score_files:
        return pl.DataFrame(schema=schema)
    return (
        pl.scan_parquet(score_files)
        .filter((pl.col("buyer_id") == buyer_id) & (pl.col("as_of_ts") <= _cut(now)))
        .select(*schema)
        .sort("as_of_ts")
        .collect()
    )


def payment_history(payment_snapshots: Path, buyer_id: str, now: datetime, months: int) -> pl.DataFrame:
    """Month-start snapshots of the buyer's payment behaviour known by ``now`` (the last
    ``months``): days beyond terms, PAYDEX, late share, DSO and the aging buckets."""
    cut = _cut(now)
    return (
        pl.scan_parquet(payment_snapshots)
        .filter(
            (pl.col("buyer_id") == buyer_id) & (pl.col(SNAPSHOT_TS) <= cut) & (pl.col(KNOWN_AT_TS) <= cut)
            & (pl.col(SNAPSHOT_TS).dt.day() == 1)
        )
        .select(
            pl.col(SNAPSHOT_TS).dt.date().alias("month"), "dbt_weighted_90d", "dbt_max_90d", "paydex_90d", "late_share_90d",
            "dso_90d", "open_balance", *AGING_COLUMNS,
        )
        .sort("month")
        .collect()
        .tail(months)
    )


RATIOS = ("revenue", "equity", "debt_ratio", "current_ratio", "cash_ratio", "net_margin", "roa", "revenue_growth")


def statements(financial_snapshots: Path, buyer_id: str, now: datetime) -> pl.DataFrame:
    """The buyer's filed statements known by ``now``, newest first, with the ratios the
    features computed from them (one row per statement: the first snapshot that saw it)."""
    cut = _cut(now)
    seen = (
        pl.scan_parquet(financial_snapshots)
        .filter((pl.col("buyer_id") == buyer_id) & (pl.col(SNAPSHOT_TS) <= cut) & (pl.col(KNOWN_AT_TS) <= cut) & (pl.col("has_statement") == 1))
        .select(
            (pl.col(SNAPSHOT_TS).dt.date() - pl.duration(days=pl.col("days_since_statement"))).alias("published_on"), *RATIOS,
        )
        .collect()
    )
    return seen.unique("published_on", keep="first").sort("published_on", descending=True)


def registry_timeline(registry_events: Path, buyer_id: str, now: datetime) -> pl.DataFrame:
    """The buyer's registry, court and news events public by ``now``, oldest first."""
    schema = {"event_on": pl.Date, "event_type": pl.String, "detail": pl.String}
    if not registry_events.exists():
        return pl.DataFrame(schema=schema)
    return (
        pl.scan_parquet(registry_events)
        .filter((pl.col("buyer_id") == buyer_id) & (pl.col("event_on") <= _cut(now).date()))
        .select(*schema)
        .sort("event_on")
        .collect()
    )
