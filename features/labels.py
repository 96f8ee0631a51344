"""Targets from the data contract: ``default_12m`` per (buyer, as-of date), ``late_{N}d`` per invoice.

Both read the normalised ledger written by ``tradecredit load``. Rows whose outcome cannot be
known by the end of the data are returned with a null label and ``censored = True``, never
dropped, so a caller always sees every row it asked for.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any

import polars as pl

from tradecredit.errors import StageError
from tradecredit.features.config import DefaultDefinition, resolved_source

DEFAULT_HORIZON_DAYS = 365
SPELL_SCHEMA = {"buyer_id": pl.String, "default_on": pl.Date, "cured_on": pl.Date, "source": pl.String}


@dataclass(frozen=True)
class DefaultSpells:
    """Each default of each buyer: ``buyer_id, default_on, cured_on`` (null: still in default at
    the end of the data) and ``source`` (credit_events or days_past_due)."""

    spells: pl.DataFrame
    source: str  # the resolved definition: credit_events, days_past_due or both

    def counts(self) -> dict[str, int]:
        by_source = dict(self.spells.group_by("source").len().iter_rows())
        return {
            "defaults": self.spells.height,
            "buyers_defaulted": self.spells["buyer_id"].n_unique(),
            "from_credit_events": int(by_source.get("credit_events", 0)),
            "from_days_past_due": int(by_source.get("days_past_due", 0)),
            "cured": int(self.spells["cured_on"].is_not_null().sum()),
        }


def has_credit_events(tables: dict[str, pl.DataFrame]) -> bool:
    return "credit_events" in tables and tables["credit_events"].height > 0


def default_spells(tables: dict[str, pl.DataFrame], definition: DefaultDefinition, data_end: date) -> DefaultSpells:
    """Every default by ``data_end`` under ``definition`` (``configs/labels.yaml``, data contract: Targets).

    A default starts with a credit event, or (derived) on the first day the buyer's amount at
    least ``days_past_due`` days past due is material: above the absolute amount and the share
    of its open exposure, disputed invoices left out while disputed (the trade-credit reading
    of "90 days past due": a chronic slow payer whose invoices are each paid at 80 days late
    is late, not in default). It ends (cure) once the buyer has gone ``probation_days``
    without that trigger or a credit event (the EBA's probation), unless a terminal credit
    event (insolvency, write-off) came in the spell.
    """
    source = resolved_source(definition.source, has_credit_events(tables))
    if source != "credit_events" and not tables.get("payments", pl.DataFrame()).height:
        raise StageError("the ledger has no payment information (no payments table and no paid_on): days past due "
                         "cannot be counted, so no default can be derived; load payments or credit_events")
    arrears = _arrears(tables, definition, data_end)
    runs = _runs(arrears, data_end)
    starts = []
    if source in ("days_past_due", "both"):
        starts.append(
            runs.filter("material")
            .select("buyer_id", day="run_start", source=pl.lit("days_past_due"), terminal=pl.lit(False))
        )
    if source in ("credit_events", "both") and "credit_events" in tables:
        starts.append(
            tables["credit_events"].select(
                "buyer_id", day="event_on", source=pl.lit("credit_events"),
                terminal=pl.col("event_type").is_in(list(definition.terminal_event_types)),
            )
        )
    events = pl.concat(starts).filter(pl.col("day") <= data_end) if starts else pl.DataFrame(schema={
        "buyer_id": pl.String, "day": pl.Date, "source": pl.String, "terminal": pl.Boolean})
    defaulted = pl.col("buyer_id").is_in(events["buyer_id"].unique().implode())
    quiet = runs.filter(defaulted & ~pl.col("material"))
    quiet_by_buyer = _by_buyer(quiet, lambda f: list(zip(f["run_start"], f["run_end"], strict=True)))
    issues = tables["invoices"].filter(pl.col("buyer_id").is_in(events["buyer_id"].unique().implode())).sort("issued_on")
    issue_days = _by_buyer(issues, lambda f: f["issued_on"].to_list())
    rows = []
    # Same-day events: a terminal one first, then credit events before the derived one (stable).
    ordered = events.sort("day", "terminal", "source", descending=[False, True, False])
    for (buyer,), frame in ordered.partition_by("buyer_id", as_dict=True, maintain_order=True).items():
        rows += _spells_of_buyer(buyer, list(frame.iter_rows(named=True)), quiet_by_buyer.get(buyer, []),
                                 issue_days.get(buyer, []), definition.probation_days, data_end)
    return DefaultSpells(pl.DataFrame(rows, schema=SPELL_SCHEMA, orient="row").sort("buyer_id", "default_on"), source)


def _by_buyer(frame: pl.DataFrame, value: Callable[[pl.DataFrame], Any]) -> dict[str, Any]:
    return {key[0]: value(part) for key, part in frame.partition_by("buyer_id", as_dict=True).items()}


def _spells_of_buyer(buyer: str, events: list[dict], quiet_runs: list[tuple[date, date]], issue_days: list[date],
                     probation: int, data_end: date) -> list[tuple[str, date, date | None, str]]:
    """The buyer's spells from its default-starting events (sorted by day): a spell opens on an
    event outside a spell; an event inside it (before its cure) extends it; it never cures
    after a terminal event."""
    spells = []
    pending = list(events)
    while pending:
        opened = pending.pop(0)
        last, terminal, from_event = opened["day"], opened["terminal"], opened["source"] == "credit_events"
        while True:
            cured_on = None if terminal else _cure_day(quiet_runs, issue_days, last, from_event, probation, data_end)
            inside = [e for e in pending if cured_on is None or e["day"] < cured_on]
            if not inside:
                break
            pending = pending[len(inside):]
            last = max(last, *(e["day"] for e in inside))
            terminal = terminal or any(e["terminal"] for e in inside)
            from_event = from_event or any(e["source"] == "credit_events" for e in inside)
        spells.append((buyer, opened["day"], cured_on, opened["source"]))
        if cured_on is None:
            break
    return spells


def _cure_day(quiet_runs: list[tuple[date, date]], issue_days: list[date], last_event: date, from_event: bool,
              probation: int, data_end: date) -> date | None:
    """The first day after ``probation`` consecutive days without the default trigger, counted
    from the day after ``last_event``. After a credit event the count starts only once the
    buyer trades again (its next invoice): a failed company that stopped buying has no
    arrears with this ledger, yet it has not cured."""
    not_before = last_event + timedelta(days=1)
    if from_event:
        later = [d for d in issue_days if d >= not_before]
        if not later:
            return None
        not_before = later[0]
    for run_start, run_end in quiet_runs:
        start = max(run_start, not_before)
        cured_on = start + timedelta(days=probation)
        if run_end >= cured_on - timedelta(days=1):
            return cured_on if cured_on <= data_end else None
    return None


def dispute_shield_until(before_days: int, lasts_days: int) -> pl.Expr:
    """The day (exclusive) until which an invoice's dispute keeps it out of the arrears: a dispute
    raised before the invoice is ``before_days`` past due shields it for ``lasts_days``; a later
    one (a failing buyer's stalling tactic), or none, gives null. The default label and the
    ledger positions (the knock-out, early warnings) read disputes with this one rule."""
    early = pl.col("disputed_on").is_not_null() & (pl.col("disputed_on") < pl.col("due_on") + pl.duration(days=before_days))
    return pl.when(early).then(pl.col("disputed_on") + pl.duration(days=lasts_days))


def _arrears(tables: dict[str, pl.DataFrame], definition: DefaultDefinition, data_end: date) -> pl.DataFrame:
    """Per buyer and day on which anything changed (to ``data_end``): ``material``, whether its
    amount at least ``days_past_due`` days past due is material (above the absolute amount and
    the share of its open exposure). A payment on day t counts that day; a payment that leaves
    at most ``residual_share`` of the invoice, or at most ``materiality.small_balance``, unpaid
    settles it (a short payment), and an invoice of at most that amount never counts (the
    small-balance write-off every credit department has). An invoice
    disputed before it reaches the threshold counts only once the dispute is ``max_dispute_days``
    old; a dispute raised later changes nothing (a failing buyer's stalling tactic).
    """
    invoices = tables["invoices"].filter(pl.col("issued_on") <= data_end)
    payments = tables.get("payments", pl.DataFrame(schema={"invoice_id": pl.String, "paid_on": pl.Date, "amount": pl.Float64}))
    threshold = pl.col("due_on") + pl.duration(days=definition.days_past_due)
    count_from = threshold
    if definition.exclude_disputed:  # max_horizontal skips the null of an invoice no dispute shields
        count_from = pl.max_horizontal(threshold, dispute_shield_until(definition.days_past_due, definition.max_dispute_days))
    inv = invoices.select("invoice_id", "buyer_id", "issued_on", invoice_amount="amount", count_from=count_from)
    # Payments capped at the invoice's amount (an overpayment never makes arrears negative),
    # and a short payment's residue or a small balance forgiven.
    m = definition.materiality
    paid_in_full = pl.min_horizontal(pl.col("invoice_amount") * (1 - definition.residual_share), pl.col("invoice_amount") - m.small_balance)
    paid = (
        payments.filter(pl.col("paid_on") <= data_end)
        .join(inv, on="invoice_id")
        .sort("invoice_id", "paid_on")
        .with_columns(to_date=pl.col("amount").cum_sum().over("invoice_id"))
        .with_columns(to_date=pl.when(pl.col("to_date") >= paid_in_full).then("invoice_amount").otherwise("to_date"))
        .with_columns(effective=pl.col("to_date") - pl.col("to_date").shift(1, fill_value=0.0).over("invoice_id"))
    )
    parts = [
        inv.select("buyer_id", day="issued_on", exposure="invoice_amount"),
        paid.select("buyer_id", day="paid_on", exposure=-pl.col("effective")),
        inv.filter(pl.col("invoice_amount") > m.small_balance).select("buyer_id", day="count_from", aged="invoice_amount"),
        paid.filter(pl.col("invoice_amount") > m.small_balance)
        .select("buyer_id", day=pl.max_horizontal("paid_on", "count_from"), aged=-pl.col("effective")),
    ]
    return (
        pl.concat(parts, how="diagonal")
        .filter(pl.col("day") <= data_end)
        .with_columns(pl.col("exposure", "aged").fill_null(0.0))
        .group_by("buyer_id", "day").agg(pl.col("exposure", "aged").sum())
        .sort("buyer_id", "day")
        # Running totals, to the cent: a paid-off balance is 0, not 1e-10.
        .with_columns(pl.col("exposure", "aged").cum_sum().over("buyer_id").round(2))
        .select("buyer_id", "day", material=(pl.col("aged") > m.absolute) & (pl.col("aged") > m.relative * pl.col("exposure")))
    )


def _runs(arrears: pl.DataFrame, data_end: date) -> pl.DataFrame:
    """Stretches of days (``run_start``..``run_end``, inclusive) with or without ``material`` arrears."""
    return (
        arrears.with_columns(run=pl.col("material").rle_id().over("buyer_id"))
        .group_by("buyer_id", "run", maintain_order=True)
        .agg(run_start=pl.col("day").first(), material=pl.col("material").first())
        .with_columns(run_end=(pl.col("run_start").shift(-1).over("buyer_id") - pl.duration(days=1)).fill_null(data_end))
        .select("buyer_id", "run_start", "run_end", "material")
    )


def label_default_12m(entities: pl.DataFrame, spells: pl.DataFrame, data_end: date) -> pl.DataFrame:
    """``default_12m`` for each (buyer_id, as_of_date): a default starts in (as_of, as_of + 365 days].

    ``spells`` is :attr:`DefaultSpells.spells` (``buyer_id, default_on, cured_on``). Adds
    ``in_default`` (in a default spell on the as-of date: not scored), ``censored`` (the window
    reaches past the data) and ``default_12m`` (null where either holds).
    """
    horizon_end = pl.col("as_of_date") + pl.duration(days=DEFAULT_HORIZON_DAYS)
    keyed = entities.with_row_index("_row")
    flags = (
        keyed.select("_row", "buyer_id", "as_of_date")
        .join(spells.select("buyer_id", "default_on", "cured_on"), on="buyer_id", how="inner")
        .group_by("_row")
        .agg(
            in_default=((pl.col("default_on") <= pl.col("as_of_date"))
                        & (pl.col("cured_on").is_null() | (pl.col("cured_on") > pl.col("as_of_date")))).any(),
            starts=((pl.col("default_on") > pl.col("as_of_date")) & (pl.col("default_on") <= horizon_end)).any(),
        )
    )
    joined = keyed.join(flags, on="_row", how="left", maintain_order="left").with_columns(
        pl.col("in_default", "starts").fill_null(False)
    )
    censored = horizon_end > pl.lit(data_end)
    return joined.with_columns(censored=censored).with_columns(
        default_12m=pl.when(pl.col("in_default") | pl.col("censored")).then(None).otherwise(pl.col("starts"))
    ).drop("_row", "starts")


def label_late(invoices: pl.DataFrame, late_days: int, data_end: date) -> pl.DataFrame:
    """``late_{late_days}d`` per invoice as of its issue date (``late_days`` beyond due: 30 by default, 0 any day).

    Late: settled more than ``late_days`` after ``due_on``, or still unsettled then. Known
    on time: settled within that many days, by the end of the data. Otherwise ``censored``.
    """
    deadline = pl.col("due_on") + pl.duration(days=late_days)
    settled_in_time = pl.col("settled_on").is_not_null() & (pl.col("settled_on") <= deadline)
    decided = settled_in_time | (deadline <= pl.lit(data_end))
    return invoices.select("invoice_id", "buyer_id", "issued_on", "due_on", "settled_on").with_columns(
        censored=~decided,
        late=pl.when(decided).then(~settled_in_time).otherwise(None),
    ).rename({"late": f"late_{late_days}d"})


def late_definition(late_days: int) -> str:
    """The late-payment label in words, as the model card states it."""
    when = "after its due date" if late_days == 0 else f"more than {late_days} days after its due date"
    return f"late_{late_days}d = 1 if the invoice is settled {when}, or is still unsettled then."
