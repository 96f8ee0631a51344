"""The feature build: every catalogue feature for every (buyer, snapshot date), in DuckDB.

Point in time: a snapshot dated d uses facts dated on or before d, and nothing else. The
build never reads the loader's end-of-data invoice columns (``settled_on``, ``paid_amount``,
``outstanding_amount``); it derives settlement and open amounts from ``payments`` itself.

How it stays columnar: each additive quantity (counts, amounts, open and past-due amounts)
becomes a per-buyer running total over dated deltas, and a snapshot reads it with ASOF joins
at d and at d - W; a window's value is the difference. Amounts are whole cents so those
differences are exact (a paid-off invoice leaves 0, not 1e-10). Maxima and distinct counts
use DuckDB's RANGE window frames over the snapshot rows merged into the fact stream.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta

import duckdb
import numpy as np
import polars as pl

from tradecredit.features.config import FeaturesConfig, SnapshotConfig
from tradecredit.features.market import market_daily, market_view
from tradecredit.contract import FINANCIAL_FIELDS, REGISTRY_EVENT_TYPES
from tradecredit.features.catalog import (
    DAYS_SINCE_TYPES,
    EXECUTIVE_TURNOVER_TYPES,
    FEATURES_BY_VIEW,
    POLARS_TYPES,
    FeatureDef,
    features_without_source,
    REGISTRY_CHANGE_TYPES,
    REGISTRY_WINDOWS_DAYS,
    VIEW_NAMES,
    WINDOWS_DAYS,
)

SNAPSHOT_TS = "snapshot_ts"  # Feast event timestamp: the snapshot date at 00:00 UTC
KNOWN_AT_TS = "known_at_ts"  # Feast created timestamp: when every fact in the row was known
# Money is summed in whole cents (BIGINT): exact and fast, then served as doubles in units.
CENTS = "CAST(round({} * 100) AS BIGINT)"
# Past-due thresholds for the aging buckets: an open amount is k+ days past due from due_on + k.
PAST_DUE_FROM_DAYS = (1, 31, 61, 91)


@dataclass(frozen=True)
class FeatureTables:
    """One frame per feature view: ``buyer_id``, ``snapshot_ts``, ``known_at_ts``, then its features."""

    views: dict[str, pl.DataFrame]
    as_of_end: date
    without_source: tuple[str, ...] = ()  # features left null: the ledger lacks their source
    # The market view's input: per industry and settlement day, the settled totals of these
    # tables' buyers (a partitioned build sums every partition's before the market pass).
    market_daily: pl.DataFrame | None = None

    @property
    def snapshots(self) -> int:
        return next(iter(self.views.values())).height


def calendar_dates(start: date, end: date, calendar: str) -> list[date]:
    """The calendar snapshot dates in [start, end]: every day, every Monday or every first of the month."""
    if calendar == "daily":
        return [start + timedelta(days=i) for i in range((end - start).days + 1)]
    if calendar == "weekly":
        first = start + timedelta(days=(7 - start.weekday()) % 7)
        return [first + timedelta(weeks=i) for i in range((end - first).days // 7 + 1)] if first <= end else []
    first = start if start.day == 1 else (start.replace(day=28) + timedelta(days=4)).replace(day=1)
    out = []
    while first <= end:
        out.append(first)
        first = (first.replace(day=28) + timedelta(days=4)).replace(day=1)
    return out


def snapshot_grid(
    buyers: pl.DataFrame, invoices: pl.DataFrame, start: date, as_of_end: date, cfg: SnapshotConfig
) -> pl.DataFrame:
    """``buyer_id, as_of`` pairs to compute: the calendar for every buyer, ``as_of_end``, and
    (if configured) the day before each invoice, so a late-payment row sees the buyer as it
    stood when the order came in, before the invoice itself existed."""
    dates = pl.DataFrame({"as_of": [*calendar_dates(start, as_of_end, cfg.calendar), as_of_end]}, schema={"as_of": pl.Date})
    parts = [buyers.select("buyer_id").join(dates, how="cross")]
    if cfg.before_invoice_dates:
        parts.append(
            invoices.select("buyer_id", as_of=pl.col("issued_on") - pl.duration(days=1)).filter(pl.col("as_of") <= as_of_end)
        )
    return pl.concat(parts).unique().sort("buyer_id", "as_of")


def _empty(columns: dict[str, pl.DataType]) -> pl.DataFrame:
    return pl.DataFrame(schema=columns)


_OPTIONAL_TABLES = {
    "payments": {"invoice_id": pl.String, "paid_on": pl.Date, "amount": pl.Float64},
    "registry_events": {"buyer_id": pl.String, "event_on": pl.Date, "event_type": pl.String},
    "financials": {
        "buyer_id": pl.String,
        "period_end": pl.Date,
        "published_on": pl.Date,
        **dict.fromkeys(FINANCIAL_FIELDS, pl.Float64),
    },
}


def build_features(
    tables: dict[str, pl.DataFrame],
    cfg: FeaturesConfig,
    settlement_tolerance: float,
    data_start: date,
    as_of_end: date,
    sources: dict[str, bool] | None = None,
    duckdb_settings: dict[str, str] | None = None,
    market: bool = True,
) -> FeatureTables:
    """Compute every view's features on the snapshot grid.

    ``tables`` are the normalised ledger tables; facts dated after ``as_of_end`` never enter.
    ``sources`` (``ledger.ledger_sources``) says which optional sources have data; features
    of the others are null (a count of disputes in a ledger without dispute dates is not 0).
    ``duckdb_settings`` are DuckDB ``SET`` options (memory_limit, temp_directory, threads).
    ``market=False`` leaves the market view out (a partition: its market rows need every
    partition's totals, written by ``partitions.write_market_view``).
    """
    without_source = features_without_source(sources) if sources is not None else ()
    grid = snapshot_grid(tables["buyers"], tables["invoices"], data_start, as_of_end, cfg.snapshots)
    con = connect_duckdb(duckdb_settings or {})
    try:
        _register_inputs(con, tables, grid, as_of_end)
        tolerance_cents = round(settlement_tolerance * 100)
        _prepare_payments(con, tolerance_cents)
        views = {
            "payment_behaviour": _payment_behaviour(con, cfg, tolerance_cents),
            "registry_signals": _registry_signals(con),
            "firmographics": _firmographics(con),
            "financials": _financials(con),
        }
        daily = market_daily(con)
    finally:
        con.close()
    if market:  # these tables are the whole book
        views["market_conditions"] = market_view(views["firmographics"], daily, cfg.market.industry_prior_invoices)
    finished = {name: finish_view(views[name], name, without_source) for name in VIEW_NAMES if name in views}
    return FeatureTables(finished, as_of_end, without_source, daily)


def connect_duckdb(settings: dict[str, str]) -> duckdb.DuckDBPyConnection:
    """An in-memory DuckDB with ``settings`` applied; row order is never relied on, so DuckDB
    may stream and spill without preserving it."""
    con = duckdb.connect()
    con.execute("SET preserve_insertion_order = false")
    for name, value in settings.items():
        con.execute(f"SET {name} = '{value}'")
    return con


def _register_inputs(con: duckdb.DuckDBPyConnection, tables: dict[str, pl.DataFrame], grid: pl.DataFrame, as_of_end: date) -> None:
    def frame(name: str) -> pl.DataFrame:
        if name in tables:
            return tables[name]
        return _empty(_OPTIONAL_TABLES[name])

    inv = tables["invoices"].select("invoice_id", "buyer_id", "seller_id", "issued_on", "due_on", "amount", "disputed_on")
    con.register("grid_in", grid.select("buyer_id", "as_of"))
    con.register("buyers_in", tables["buyers"])
    con.register("inv_in", inv)
    con.register("pay_in", frame("payments").select("invoice_id", "paid_on", "amount"))
    con.register("reg_in", frame("registry_events").select("buyer_id", "event_on", "event_type"))
    con.register("fin_in", frame("financials"))
    end = f"DATE '{as_of_end.isoformat()}'"
    # Facts dated after the last snapshot can never be seen: drop them at the door.
    con.execute("CREATE TEMP TABLE snaps AS SELECT DISTINCT buyer_id, as_of FROM grid_in")
    con.execute(
        f"CREATE TEMP TABLE inv AS SELECT invoice_id, buyer_id, seller_id, issued_on, due_on, "
        f"{CENTS.format('amount')} AS amount, CASE WHEN disputed_on <= {end} THEN disputed_on END AS disputed_on "
        f"FROM inv_in WHERE issued_on <= {end}"
    )
    con.execute(
        f"CREATE TEMP TABLE pay AS SELECT p.invoice_id, p.paid_on, {CENTS.format('p.amount')} AS amount "
        f"FROM pay_in p SEMI JOIN inv USING (invoice_id) WHERE p.paid_on <= {end}"
    )
    con.execute(f"CREATE TEMP TABLE reg AS SELECT * FROM reg_in WHERE event_on <= {end}")
    con.execute(f"CREATE TEMP TABLE fin AS SELECT * FROM fin_in WHERE published_on <= {end}")


def _prepare_payments(con: duckdb.DuckDBPyConnection, tolerance: int) -> None:
    """Per invoice and payment day: the running paid amount, capped at the invoice amount
    (an overpayment never makes a balance negative), and each invoice's settlement day."""
    con.execute(
        f"""
        CREATE TEMP TABLE pay_eff AS
        WITH daily AS (
            SELECT invoice_id, paid_on AS day, sum(amount) AS amount FROM pay GROUP BY ALL
        ), running AS (
            SELECT d.invoice_id, d.day, i.buyer_id, i.due_on, i.amount AS invoice_amount,
                   sum(d.amount) OVER (PARTITION BY d.invoice_id ORDER BY d.day) AS paid_to_date
            FROM daily d JOIN inv i USING (invoice_id)
        ), capped AS (
            SELECT *, paid_to_date >= invoice_amount - {tolerance} AS settles,
                   CASE WHEN paid_to_date >= invoice_amount - {tolerance} THEN invoice_amount ELSE paid_to_date END AS eff_to_date
            FROM running
        )
        SELECT *, eff_to_date - coalesce(lag(eff_to_date) OVER (PARTITION BY invoice_id ORDER BY day), 0) AS eff_amount
        FROM capped
        """
    )
    con.execute(
        """
        CREATE TEMP TABLE inv_settled AS
        SELECT i.*, s.settled_on, s.settled_on - i.due_on AS days_after_due
        FROM inv i LEFT JOIN (
            SELECT invoice_id, min(day) AS settled_on FROM pay_eff WHERE settles GROUP BY ALL
        ) s USING (invoice_id)
        """
    )


def _running_totals(
    con: duckdb.DuckDBPyConnection,
    name: str,
    deltas_sql: str,
    sums: list[str],
    last_days: dict[str, str],
    keys: tuple[str, ...] = ("buyer_id",),
) -> None:
    """Table ``name``: per ``keys`` and day, the running total of each delta column in ``sums``
    and the latest day so far on which each condition in ``last_days`` held."""
    daily_cols = ", ".join([f"CAST(sum({c}) AS BIGINT) AS {c}" for c in sums] + [f"bool_or({cond}) AS {col}_hit" for col, cond in last_days.items()])
    key_list = ", ".join(keys)
    daily = con.sql(
        f"WITH deltas AS ({deltas_sql}) SELECT {key_list}, day, {daily_cols} FROM deltas GROUP BY {key_list}, day ORDER BY {key_list}, day"
    ).pl()
    if daily.is_empty():  # an absent or empty source: no totals, every snapshot reads nulls
        _create_table(con, name, daily.select(*keys, "day", *sums, *[pl.col("day").alias(c) for c in last_days]))
        return
    # Running sums restart at each key: one cumsum over the sorted column, minus the total
    # carried in from the keys before (DuckDB's partitioned running window is 4x slower here).
    group = daily.select(pl.struct(keys).rle_id()).to_series().to_numpy()
    starts = np.flatnonzero(np.r_[True, group[1:] != group[:-1]])
    lengths = np.diff(np.r_[starts, group.size])
    running = {}
    for col in sums:
        values = daily[col].fill_null(0).to_numpy()
        total = np.cumsum(values)
        running[col] = total - np.repeat(total[starts] - values[starts], lengths)
    last_seen = {col: pl.when(pl.col(f"{col}_hit")).then(pl.col("day")).forward_fill().over("group_id") for col in last_days}
    out = (
        daily.with_columns(pl.Series("group_id", group), **running)
        .with_columns(**last_seen)
        .select(*keys, "day", *sums, *last_days)
    )
    _create_table(con, name, out)


def _create_table(con: duckdb.DuckDBPyConnection, name: str, frame: pl.DataFrame) -> None:
    con.register(f"{name}_frame", frame)
    con.execute(f"CREATE TEMP TABLE {name} AS SELECT * FROM {name}_frame")
    con.unregister(f"{name}_frame")


def _asof_at_lags(table: str, lags: tuple[int, ...]) -> str:
    """FROM clause: each snapshot with ``table``'s running totals as of d (alias c0) and d - lag (c<lag>)."""
    lag_cols = "".join(f", as_of - {lag} AS as_of_m{lag}" for lag in lags)
    joins = [f"ASOF LEFT JOIN {table} c0 ON s.buyer_id = c0.buyer_id AND s.as_of >= c0.day"]
    joins += [f"ASOF LEFT JOIN {table} c{lag} ON s.buyer_id = c{lag}.buyer_id AND s.as_of_m{lag} >= c{lag}.day" for lag in lags]
    return f"(SELECT buyer_id, as_of{lag_cols} FROM snaps) s " + " ".join(joins)


def _in_window(col: str, lag: int) -> str:
    return f"(coalesce(c0.{col}, 0) - coalesce(c{lag}.{col}, 0))"


def _paydex(delay: pl.Expr, knots: list[tuple[float, float]]) -> pl.Expr:
    """Piecewise-linear interpolation between the knots, flat beyond the ends."""
    xs = np.array([d for d, _ in knots])
    ys = np.array([s for _, s in knots])
    return delay.map_batches(lambda s: pl.Series(np.interp(s.to_numpy(), xs, ys)).fill_nan(None), return_dtype=pl.Float64)


def _payment_behaviour(con: duckdb.DuckDBPyConnection, cfg: FeaturesConfig, tolerance: int) -> pl.DataFrame:
    past_due = [f"past_due_{k}" for k in PAST_DUE_FROM_DAYS]
    aging_deltas = "".join(
        f"""
        UNION ALL BY NAME SELECT buyer_id, due_on + {k} AS day, amount AS past_due_{k} FROM inv
        UNION ALL BY NAME SELECT buyer_id, greatest(day, due_on + {k}) AS day, -eff_amount AS past_due_{k} FROM pay_eff"""
        for k in PAST_DUE_FROM_DAYS
    )
    deltas = f"""
        SELECT buyer_id, issued_on AS day, 1 AS n_issued, amount AS amt_issued, amount AS open_amt, 1 AS open_n FROM inv
        UNION ALL BY NAME
        SELECT buyer_id, settled_on AS day, 1 AS n_settled, CAST(days_after_due > 0 AS INT) AS n_late,
               amount AS amt_settled, amount * greatest(days_after_due, 0) AS dbt_amt, amount * days_after_due AS delay_amt,
               -1 AS open_n
        FROM inv_settled WHERE settled_on IS NOT NULL
        UNION ALL BY NAME SELECT buyer_id, disputed_on AS day, 1 AS n_disputes FROM inv WHERE disputed_on IS NOT NULL
        UNION ALL BY NAME SELECT buyer_id, day, -eff_amount AS open_amt FROM pay_eff
        UNION ALL BY NAME
        SELECT i.buyer_id, p.paid_on AS day, 1 AS n_payments, CAST(p.amount < i.amount - {tolerance} AS INT) AS n_partial
        FROM pay p JOIN inv i USING (invoice_id)
        {aging_deltas}
    """
    sums = ["n_issued", "amt_issued", "open_amt", "open_n", "n_settled", "n_late", "amt_settled", "dbt_amt", "delay_amt", "n_disputes", "n_payments", "n_partial", *past_due]
    _running_totals(con, "pay_running", deltas, sums, {"last_payment_day": "n_payments > 0"})

    select: list[str] = ["s.buyer_id", "s.as_of"]
    for w in WINDOWS_DAYS:
        n_settled = _in_window("n_settled", w)
        select += [
            f"{_in_window('n_issued', w)} AS invoices_issued_{w}d",
            f"{_in_window('amt_issued', w)} / 100 AS amount_issued_{w}d",
            f"{n_settled} AS invoices_settled_{w}d",
            f"CASE WHEN {n_settled} > 0 THEN {_in_window('n_late', w)} / {n_settled} END AS late_share_{w}d",
            f"CASE WHEN {n_settled} > 0 THEN CAST({_in_window('dbt_amt', w)} / {_in_window('amt_settled', w)} AS DOUBLE) END AS dbt_weighted_{w}d",
            f"CASE WHEN {n_settled} > 0 THEN CAST({_in_window('delay_amt', w)} / {_in_window('amt_settled', w)} AS DOUBLE) END AS delay_weighted_{w}d",
            f"{_in_window('n_disputes', w)} AS disputes_{w}d",
            f"CASE WHEN {_in_window('n_payments', w)} > 0 THEN {_in_window('n_partial', w)} / {_in_window('n_payments', w)} END AS partial_payment_share_{w}d",
        ]
    open_amt = "coalesce(c0.open_amt, 0)"
    pd_ = {k: f"coalesce(c0.past_due_{k}, 0)" for k in PAST_DUE_FROM_DAYS}
    select += [
        f"CASE WHEN {_in_window('n_issued', 180)} > {_in_window('n_issued', 90)} "
        f"THEN CAST({_in_window('amt_issued', 90)} / ({_in_window('amt_issued', 180)} - {_in_window('amt_issued', 90)}) - 1 AS DOUBLE) END AS volume_change_90d",
        "coalesce(c0.open_n, 0) AS open_invoices",
        f"{open_amt} / 100 AS open_balance",
        f"({open_amt} - {pd_[1]}) / 100 AS open_current",
        f"({pd_[1]} - {pd_[31]}) / 100 AS open_1_30",
        f"({pd_[31]} - {pd_[61]}) / 100 AS open_31_60",
        f"({pd_[61]} - {pd_[91]}) / 100 AS open_61_90",
        f"{pd_[91]} / 100 AS open_90_plus",
        f"CASE WHEN {open_amt} > 0 THEN CAST({pd_[1]} / {open_amt} AS DOUBLE) END AS overdue_share",
        f"CASE WHEN {_in_window('n_issued', 90)} > 0 THEN CAST({open_amt} / {_in_window('amt_issued', 90)} * 90 AS DOUBLE) END AS dso_90d",
        "s.as_of - c0.last_payment_day AS days_since_last_payment",
    ]
    additive = con.sql(f"SELECT {', '.join(select)} FROM {_asof_at_lags('pay_running', WINDOWS_DAYS)}").pl()

    windowed = _dbt_max(con)
    sellers = _seller_signals(con)
    firsts = con.sql("SELECT buyer_id, min(issued_on) AS first_invoice FROM inv GROUP BY ALL").pl()
    out = (
        additive.join(windowed, on=["buyer_id", "as_of"], how="left")
        .join(sellers, on=["buyer_id", "as_of"], how="left")
        .with_columns(pl.col(f"sellers_{w}d").fill_null(0) for w in WINDOWS_DAYS)
        .join(firsts, on="buyer_id", how="left")
        .with_columns(
            dbt_trend_90d_vs_365d=pl.col("dbt_weighted_90d") - pl.col("dbt_weighted_365d"),
            **{f"paydex_{w}d": _paydex(pl.col(f"delay_weighted_{w}d"), cfg.paydex_knots) for w in WINDOWS_DAYS},
            days_since_first_invoice=pl.when(pl.col("first_invoice") <= pl.col("as_of")).then(
                (pl.col("as_of") - pl.col("first_invoice")).dt.total_days()
            ),
        )
    )
    return out


def _dbt_max(con: duckdb.DuckDBPyConnection) -> pl.DataFrame:
    """Largest days beyond terms in each window: RANGE frames over settlements and snapshots."""
    frames = ", ".join(
        f"w{w} AS (PARTITION BY buyer_id ORDER BY day RANGE BETWEEN INTERVAL {w - 1} DAY PRECEDING AND CURRENT ROW)"
        for w in WINDOWS_DAYS
    )
    cols = ", ".join(f"max(dbt) OVER w{w} AS dbt_max_{w}d" for w in WINDOWS_DAYS)
    return con.sql(
        f"""
        WITH stream AS (
            SELECT buyer_id, settled_on AS day, greatest(days_after_due, 0) AS dbt, FALSE AS is_snapshot
            FROM inv_settled WHERE settled_on IS NOT NULL
            UNION ALL SELECT buyer_id, as_of, NULL, TRUE FROM snaps
        )
        SELECT buyer_id, day AS as_of, {cols}
        FROM stream
        WINDOW {frames}
        QUALIFY is_snapshot
        """
    ).pl()


def _seller_signals(con: duckdb.DuckDBPyConnection) -> pl.DataFrame:
    """Per (buyer, seller): running issuance and settlement totals; per snapshot, the sellers
    that invoiced in each window and the worst seller's amount-weighted days beyond terms."""
    deltas = """
        SELECT buyer_id, seller_id, issued_on AS day, 1 AS n_issued FROM inv
        UNION ALL BY NAME
        SELECT buyer_id, seller_id, settled_on AS day, 1 AS n_settled, amount AS amt,
               amount * greatest(days_after_due, 0) AS dbt_amt
        FROM inv_settled WHERE settled_on IS NOT NULL
    """
    _running_totals(con, "seller_running", deltas, ["n_issued", "n_settled", "amt", "dbt_amt"], {}, keys=("buyer_id", "seller_id"))
    lag_cols = "".join(f", as_of - {w} AS as_of_m{w}" for w in WINDOWS_DAYS)
    joins = " ".join(
        f"ASOF LEFT JOIN seller_running c{lag} ON s.buyer_id = c{lag}.buyer_id AND s.seller_id = c{lag}.seller_id "
        f"AND s.{'as_of' if lag == 0 else f'as_of_m{lag}'} >= c{lag}.day"
        for lag in (0, *WINDOWS_DAYS)
    )
    cols = ", ".join(
        f"count(*) FILTER ({_in_window('n_issued', w)} > 0) AS sellers_{w}d, "
        f"max(CASE WHEN {_in_window('n_settled', w)} > 0 THEN {_in_window('dbt_amt', w)} / {_in_window('amt', w)} END) AS worst_seller_dbt_{w}d"
        for w in WINDOWS_DAYS
    )
    return con.sql(
        f"""
        SELECT s.buyer_id, s.as_of, {cols}
        FROM (
            SELECT g.buyer_id, g.as_of, bs.seller_id{lag_cols}
            FROM snaps g JOIN (SELECT DISTINCT buyer_id, seller_id FROM inv) bs USING (buyer_id)
        ) s {joins}
        GROUP BY s.buyer_id, s.as_of
        """
    ).pl()


def _registry_signals(con: duckdb.DuckDBPyConnection) -> pl.DataFrame:
    types = (*REGISTRY_EVENT_TYPES, "other")

    def in_list(names: tuple[str, ...]) -> str:
        return ", ".join(f"'{n}'" for n in names)

    deltas = "SELECT buyer_id, event_on AS day, " + ", ".join(
        [f"CAST(event_type = '{t}' AS INT) AS n_{t}" for t in types]
        + [
            f"CAST(event_type IN ({in_list(REGISTRY_CHANGE_TYPES)}) AS INT) AS n_changes",
            f"CAST(event_type IN ({in_list(EXECUTIVE_TURNOVER_TYPES)}) AS INT) AS n_turnover",
        ]
    ) + " FROM reg"
    sums = [f"n_{t}" for t in types] + ["n_changes", "n_turnover"]
    last_days = {f"last_{t}": f"n_{t} > 0" for t in DAYS_SINCE_TYPES}
    _running_totals(con, "reg_running", deltas, sums, last_days)
    select = ["s.buyer_id", "s.as_of"]
    for w in REGISTRY_WINDOWS_DAYS:
        select += [f"{_in_window(f'n_{t}', w)} AS {t}_{w}d" for t in types]
        select += [f"{_in_window('n_changes', w)} AS registry_changes_{w}d", f"{_in_window('n_turnover', w)} AS executive_turnover_{w}d"]
    select += [f"s.as_of - c0.last_{t} AS days_since_{short}" for t, short in DAYS_SINCE_TYPES.items()]
    return con.sql(f"SELECT {', '.join(select)} FROM {_asof_at_lags('reg_running', REGISTRY_WINDOWS_DAYS)}").pl()


def _firmographics(con: duckdb.DuckDBPyConnection) -> pl.DataFrame:
    # The buyers table carries no dates (data contract): its values count as known throughout.
    return con.sql(
        """
        SELECT s.buyer_id, s.as_of,
               (s.as_of - b.founded_on) / 365.25 AS company_age_years,
               CAST(b.registered_capital AS DOUBLE) AS registered_capital,
               b.paid_in_capital / nullif(b.registered_capital, 0) AS paid_in_ratio,
               b.employees, b.industry, b.country, b.legal_form
        FROM snaps s JOIN buyers_in b USING (buyer_id)
        """
    ).pl()


def _financials(con: duckdb.DuckDBPyConnection) -> pl.DataFrame:
    """The latest period's statement known at each snapshot (its latest publication, so a
    restatement replaces the original), and the previous period's, for revenue growth."""
    con.execute(
        """
        CREATE TEMP TABLE fin_state AS
        WITH known AS (
            SELECT p.buyer_id, p.day, f.*  EXCLUDE (buyer_id)
            FROM (SELECT DISTINCT buyer_id, published_on AS day FROM fin) p
            JOIN fin f ON f.buyer_id = p.buyer_id AND f.published_on <= p.day
        ), ranked AS (
            SELECT *, row_number() OVER (PARTITION BY buyer_id, day ORDER BY period_end DESC, published_on DESC) AS rank_in_day
            FROM known
        ), latest AS (SELECT * FROM ranked WHERE rank_in_day = 1),
        previous AS (
            SELECT k.buyer_id, k.day, k.revenue
            FROM known k JOIN latest l ON k.buyer_id = l.buyer_id AND k.day = l.day AND k.period_end < l.period_end
            QUALIFY row_number() OVER (PARTITION BY k.buyer_id, k.day ORDER BY k.period_end DESC, k.published_on DESC) = 1
        )
        SELECT l.*, p.revenue AS previous_revenue
        FROM latest l LEFT JOIN previous p USING (buyer_id, day)
        """
    )
    return con.sql(
        """
        SELECT s.buyer_id, s.as_of,
               CAST(f.day IS NOT NULL AS INT) AS has_statement,
               s.as_of - f.published_on AS days_since_statement,
               f.revenue, f.equity,
               f.total_liabilities / nullif(f.total_assets, 0) AS debt_ratio,
               f.current_assets / nullif(f.current_liabilities, 0) AS current_ratio,
               f.cash / nullif(f.current_liabilities, 0) AS cash_ratio,
               f.net_income / nullif(f.revenue, 0) AS net_margin,
               f.net_income / nullif(f.total_assets, 0) AS roa,
               f.revenue / nullif(f.previous_revenue, 0) - 1 AS revenue_growth
        FROM snaps s ASOF LEFT JOIN fin_state f ON s.buyer_id = f.buyer_id AND s.as_of >= f.day
        """
    ).pl()


def finish_view(frame: pl.DataFrame, view: str, without_source: tuple[str, ...]) -> pl.DataFrame:
    """Catalogue column order and types, Feast's timestamps, sorted by buyer and time; the
    features ``without_source`` null."""
    ts = pl.col("as_of").cast(pl.Datetime("us", "UTC"))

    def value(f: FeatureDef) -> pl.Expr:
        typed = POLARS_TYPES[f.dtype]
        return pl.lit(None, dtype=typed).alias(f.name) if f.name in without_source else pl.col(f.name).cast(typed)

    return (
        frame.select(
            "buyer_id",
            ts.alias(SNAPSHOT_TS),
            ts.alias(KNOWN_AT_TS),
            *[value(f) for f in FEATURES_BY_VIEW[view]],
        )
        # NaN is not a value a feature can have: ratios of 0/0 are nulls, never NaN.
        .with_columns(pl.selectors.float().fill_nan(None))
        .sort("buyer_id", SNAPSHOT_TS)
    )
