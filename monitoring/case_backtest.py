"""How early warnings did: past monitoring runs' cases and signals against the defaults of the
12 months after each run (the PD's own label, ``label_default_12m``: buyers already in default
left out, runs whose year reaches past the data left out).

Per flag (a case colour, any case, each signal): how many buyer-runs it flagged, the share of
them that defaulted (precision) against the base rate (lift), the share of defaults it
flagged (recall), the share of defaults at least ``lead_days`` after the run it flagged
(recall at lead, counted in buyer-runs), the share of the buyers that defaulted that it flagged
at a run at least ``lead_days`` before their default (buyers flagged at lead: the issue's
measure, each defaulting buyer counted once), and the median days from the flag's first day (the case's opening, the
signal's raising) to the default. And per run, the red list against the expected number of
defaults (the sum of the run's PDs).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

import polars as pl

from tradecredit.features.labels import label_default_12m

NO_END = date(9000, 1, 1)  # in_default only: no window is censored
FLAG_SCHEMA = {"as_of_date": pl.Date, "buyer_id": pl.String, "flag": pl.String, "first_on": pl.Date}


@dataclass(frozen=True)
class CaseBacktest:
    runs: list[date]  # the matured runs measured
    base_rate: float | None
    defaults: int  # buyer-runs that defaulted within 12 months
    table: pl.DataFrame  # flag, flagged, hits, precision, lift, recall, recall_at_lead, buyer_recall_at_lead, median_lead_days
    red_list: pl.DataFrame  # as_of, red, red_in_default, expected_defaults, red_over_expected
    lead_days: int
    defaulted_buyers_at_lead: int = 0  # buyers that defaulted with a run at least lead_days before (the denominator)

    def to_json(self) -> dict:
        return {
            "runs": [d.isoformat() for d in self.runs], "base_rate": self.base_rate, "defaults": self.defaults, "lead_days": self.lead_days,
            "defaulted_buyers_at_lead": self.defaulted_buyers_at_lead,
            "table": self.table.to_dicts(), "red_list": self.red_list.with_columns(pl.col("as_of").cast(pl.String)).to_dicts(),
        }

    def describe(self) -> list[str]:
        if not self.runs:
            return ["Early warnings: no monitoring run has a matured 12-month window yet."]
        lines = [f"Early warnings on {len(self.runs)} matured run(s) ({', '.join(map(str, self.runs))}): {self.defaults} defaults within "
                 f"12 months, base rate {self.base_rate:.2%}; {self.defaulted_buyers_at_lead} buyers defaulted at least {self.lead_days} days after a run.",
                 f"  {'flag':<34}{'flagged':>8}{'hits':>6}{'precision':>10}{'lift':>6}{'recall':>8}{f'recall {self.lead_days}d+':>12}"
                 f"{f'buyers {self.lead_days}d+':>12}{'lead (days)':>12}"]
        for r in self.table.iter_rows(named=True):
            lift = "n/a" if r["lift"] is None else f"{r['lift']:.1f}"
            lead = "n/a" if r["median_lead_days"] is None else f"{r['median_lead_days']:.0f}"
            at_lead = "n/a" if r["recall_at_lead"] is None else f"{r['recall_at_lead']:.0%}"
            recall = "n/a" if r["recall"] is None else f"{r['recall']:.0%}"
            buyers = "n/a" if r["buyer_recall_at_lead"] is None else f"{r['buyer_recall_at_lead']:.0%}"
            lines.append(f"  {r['flag']:<34}{r['flagged']:>8,}{r['hits']:>6,}{r['precision']:>10.1%}{lift:>6}{recall:>8}{at_lead:>12}{buyers:>12}{lead:>12}")
        for r in self.red_list.iter_rows(named=True):
            ratio = "n/a" if r["red_over_expected"] is None else f"{r['red_over_expected']:.1f}x"
            lines.append(f"  red list on {r['as_of']}: {r['red']} ({r['red_in_default']} already in default) against "
                         f"{r['expected_defaults']:.1f} expected defaults: {ratio}")
        return lines


def signal_flags(alerts: pl.DataFrame, days: list[date]) -> pl.DataFrame:
    """(as_of_date, buyer_id, "signal NAME", raised_on) for each alert open on each day: raised
    by it and not yet cleared (an alert clears on the run that no longer sees it)."""
    if alerts.height == 0 or not days:
        return pl.DataFrame(schema=FLAG_SCHEMA)
    spans = alerts.select(
        "buyer_id", flag=pl.lit("signal ") + pl.col("signal"), first_on=pl.col("raised_on").str.to_date(),
        cleared=pl.col("cleared_on").str.to_date(),
    )
    return (
        pl.DataFrame({"as_of_date": days}, schema={"as_of_date": pl.Date}).join(spans, how="cross")
        .filter((pl.col("first_on") <= pl.col("as_of_date")) & (pl.col("cleared").is_null() | (pl.col("cleared") > pl.col("as_of_date"))))
        .select(*FLAG_SCHEMA)
    )


def case_flags(snapshots: pl.DataFrame) -> pl.DataFrame:
    """(as_of_date, buyer_id, "case KIND" and "case (any)", opened_on) for each run's open cases."""
    if snapshots.height == 0:
        return pl.DataFrame(schema=FLAG_SCHEMA)
    base = snapshots.select(as_of_date=pl.col("as_of").str.to_date(), buyer_id="buyer_id", kind="kind", first_on=pl.col("opened_on").str.to_date())
    return pl.concat([
        base.select("as_of_date", "buyer_id", flag=pl.lit("case ") + pl.col("kind"), first_on="first_on"),
        base.select("as_of_date", "buyer_id", flag=pl.lit("case (any colour)"), first_on="first_on"),
    ])


def case_backtest(history: pl.DataFrame, snapshots: pl.DataFrame, alerts: pl.DataFrame, spells: pl.DataFrame, data_end: date,
                  lead_days: int) -> CaseBacktest:
    """The backtest of every run in ``history`` (score history: as_of_ts, buyer_id, pd_12m)
    whose 12 months have matured by ``data_end``; ``snapshots`` are the case book's per-run
    open cases, ``alerts`` every alert, ``spells`` the defaults by ``data_end``."""
    scored = history.select("buyer_id", "pd_12m", as_of_date=pl.col("as_of_ts").dt.date())
    labelled = label_default_12m(scored, spells, data_end).filter(pl.col("default_12m").is_not_null())
    runs = sorted(labelled["as_of_date"].unique().to_list())
    after = (
        labelled.select("buyer_id", "as_of_date").join(spells.select("buyer_id", "default_on"), on="buyer_id")
        .filter(pl.col("default_on") > pl.col("as_of_date")).group_by("buyer_id", "as_of_date").agg(pl.col("default_on").min())
    )
    outcomes = labelled.join(after, on=["buyer_id", "as_of_date"], how="left").with_columns(
        days_to_default=pl.when("default_12m").then((pl.col("default_on") - pl.col("as_of_date")).dt.total_days()),
    )
    defaults = int(outcomes["default_12m"].sum()) if outcomes.height else 0
    ahead = pl.col("days_to_default") >= lead_days
    at_lead = outcomes.filter(ahead).height
    buyers_at_lead = outcomes.filter(ahead)["buyer_id"].n_unique()
    base_rate = defaults / outcomes.height if outcomes.height else None
    flags = pl.concat([case_flags(snapshots), signal_flags(alerts, runs)]).unique(["as_of_date", "buyer_id", "flag"])
    joined = flags.join(outcomes, on=["as_of_date", "buyer_id"], how="inner")
    table = (
        joined.group_by("flag").agg(
            flagged=pl.len(),
            hits=pl.col("default_12m").sum(),
            hits_at_lead=ahead.sum(),
            buyers_hit_at_lead=pl.col("buyer_id").filter(ahead).n_unique(),
            median_lead_days=(pl.col("default_on") - pl.col("first_on")).dt.total_days().filter(pl.col("default_12m")).median(),
        ).with_columns(
            precision=pl.col("hits") / pl.col("flagged"),
            recall=pl.col("hits") / defaults if defaults else pl.lit(None, pl.Float64),
            recall_at_lead=pl.col("hits_at_lead") / at_lead if at_lead else pl.lit(None, pl.Float64),
            buyer_recall_at_lead=pl.col("buyers_hit_at_lead") / buyers_at_lead if buyers_at_lead else pl.lit(None, pl.Float64),
        ).with_columns(lift=pl.col("precision") / base_rate if base_rate else pl.lit(None, pl.Float64))
        .with_columns(order=pl.when(pl.col("flag").str.starts_with("case")).then(0).otherwise(1))
        .sort("order", "flag").select("flag", "flagged", "hits", "precision", "lift", "recall", "recall_at_lead", "buyer_recall_at_lead", "median_lead_days")
    ) if joined.height else pl.DataFrame(schema={"flag": pl.String, "flagged": pl.UInt32, "hits": pl.UInt32, "precision": pl.Float64, "lift": pl.Float64,
                                                   "recall": pl.Float64, "recall_at_lead": pl.Float64, "buyer_recall_at_lead": pl.Float64,
                                                   "median_lead_days": pl.Float64})
    red_list = red_list_sizes(history, snapshots, spells)
    return CaseBacktest(runs, base_rate, defaults, table, red_list, lead_days, buyers_at_lead)


def red_list_sizes(history: pl.DataFrame, snapshots: pl.DataFrame, spells: pl.DataFrame) -> pl.DataFrame:
    """Per run: open red cases (and how many of those buyers were already in default), against
    the expected defaults of the next 12 months (the sum of the run's PDs)."""
    expected = history.group_by(as_of=pl.col("as_of_ts").dt.date()).agg(expected_defaults=pl.col("pd_12m").sum())
    red = snapshots.filter(pl.col("kind") == "red").select("buyer_id", as_of=pl.col("as_of").str.to_date())
    in_default = label_default_12m(red.rename({"as_of": "as_of_date"}), spells, NO_END)["in_default"] if red.height else pl.Series([], dtype=pl.Boolean)
    counted = red.with_columns(in_default=in_default).group_by("as_of").agg(red=pl.len(), red_in_default=pl.col("in_default").sum())
    return (
        expected.join(counted, on="as_of", how="left").with_columns(pl.col("red", "red_in_default").fill_null(0))
        .with_columns(red_over_expected=pl.when(pl.col("expected_defaults") > 0).then(pl.col("red") / pl.col("expected_defaults")))
        .sort("as_of").select("as_of", "red", "red_in_default", "expected_defaults", "red_over_expected")
    )
