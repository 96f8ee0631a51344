"""Early-warning cases: one per buyer, gathering its open alerts, with the colour a reviewer
acts on, its action, and an outcome once resolved. Stored beside the alerts in
``WORKSPACE/monitoring/alerts.db``.

A case opens on a buyer's first open alert. Its colour follows ``cases.red`` in
``configs/monitoring.yaml``: red for a knock-out signal, or a high PD with fresh
deterioration; yellow otherwise; a case below the materiality floor is listed (yellow, never
red). A case red for a knock-out stays red while open; one red for a high PD turns yellow once
the PD is no longer high. It closes when a reviewer resolves it (``resolve_case``)
or after ``close_after_quiet_runs`` runs in a row with no open alert (hysteresis: a signal
that flickers for a run does not close and reopen it). A resolved case stays closed until a
signal is raised or escalated after the day it was resolved. Rerunning a date changes nothing.
"""

from __future__ import annotations

import contextlib
import json
import sqlite3
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Literal

import polars as pl

from tradecredit.errors import StageError
from tradecredit.monitoring.alerts import immediate_transaction
from tradecredit.monitoring.config import CasesConfig

CaseColour = Literal["red", "yellow"]
CASE_COLOUR_RANK = {"yellow": 1, "red": 2}


@dataclass(frozen=True)
class CaseVerdict:
    """What one run says of a buyer with open alerts."""

    buyer_id: str
    colour: CaseColour
    material: bool
    reason: str  # why this colour, in a sentence
    knockout: str | None  # the knock-out signal, if any
    signals: list[dict]  # the open alerts: signal, colour, evidence, raised_on, escalated_on
    pd_12m: float | None
    grade: int | None
    exposure: float
    newest_signal_on: date  # the latest day a signal was raised or escalated

    @property
    def kind(self) -> str:
        """red, yellow or listed (a yellow case below the materiality floor)."""
        return self.colour if self.material or self.colour == "red" else "listed"


@dataclass(frozen=True)
class CaseRunOutcome:
    as_of: date
    opened: int
    escalated: int
    closed_quiet: int
    open_red: int
    open_yellow: int
    open_listed: int

    def describe(self) -> str:
        return (f"Cases: {self.opened} opened, {self.escalated} escalated to red, {self.closed_quiet} closed after quiet runs; "
                f"open now {self.open_red} red, {self.open_yellow} yellow, {self.open_listed} listed below the materiality floor.")


def case_verdicts(open_alerts: pl.DataFrame, metrics: pl.DataFrame, granted: dict[str, float], cfg: CasesConfig, as_of: date) -> list[CaseVerdict]:
    """One verdict per buyer with an open alert after the run. ``metrics`` are the run's alert
    metrics (pd_12m, grade, grade_change, open_balance); ``granted`` each buyer's granted lines
    across sellers."""
    if open_alerts.height == 0:
        return []
    rows = {r["buyer_id"]: r for r in metrics.select("buyer_id", "pd_12m", "grade", "grade_change", "open_balance").iter_rows(named=True)}
    red, floor = cfg.red, cfg.materiality
    fresh_from = as_of - timedelta(days=red.fresh_days)
    out = []
    for (buyer,), alerts in open_alerts.sort("signal").group_by("buyer_id", maintain_order=True):
        row = rows.get(buyer, {})
        signals = [
            {k: a[k] for k in ("signal", "colour", "evidence", "raised_on", "escalated_on")} for a in alerts.iter_rows(named=True)
        ]
        moved = [date.fromisoformat(s["escalated_on"] or s["raised_on"]) for s in signals]
        knockout = next((s["signal"] for s in signals if s["signal"] in red.knockouts and s["colour"] == "red"), None)
        grade, change = row.get("grade"), row.get("grade_change")
        fresh = [s["signal"] for s, day in zip(signals, moved, strict=True) if day >= fresh_from]
        worse = change is not None and change >= red.grade_steps
        exposure = float(row.get("open_balance") or 0.0)
        line = granted.get(buyer, 0.0)
        material = exposure >= floor.min_exposure or (line > 0 and exposure >= floor.min_limit_share * line)
        if knockout is not None:
            colour, reason = "red", f"knock-out: {knockout.replace('_', ' ')}"
        elif grade is not None and grade >= red.high_pd_grade and (fresh or worse):
            why = f"grade {change:+d} since the last run" if worse else "new " + ", ".join(fresh).replace("_", " ")
            colour, reason = "red", f"high PD (grade {grade}) with fresh deterioration ({why})"
        else:
            colour = "yellow"
            reason = f"{len(signals)} signal(s)" + ("" if grade is None else f" at grade {grade}")
            reason += "; not red: no knock-out" + ("" if grade is None or grade < red.high_pd_grade else " and no fresh deterioration")
        if not material:
            if colour == "red":
                reason += f"; listed, not red: exposure {exposure:,.0f} is below the materiality floor"
            colour = "yellow"
        out.append(CaseVerdict(buyer, colour, material, reason, knockout, signals, row.get("pd_12m"), grade, exposure, max(moved)))
    return out


_SCHEMA = """
CREATE TABLE IF NOT EXISTS cases (
    case_id INTEGER PRIMARY KEY,
    buyer_id TEXT NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('open', 'closed')),
    colour TEXT NOT NULL CHECK (colour IN ('yellow', 'red')),
    kind TEXT NOT NULL CHECK (kind IN ('red', 'yellow', 'listed')),
    opened_on TEXT NOT NULL,
    escalated_on TEXT,
    last_run_on TEXT NOT NULL,
    last_signal_on TEXT NOT NULL,
    quiet_runs INTEGER NOT NULL DEFAULT 0,
    reason TEXT NOT NULL,
    action TEXT NOT NULL,
    knockout TEXT,
    signals_json TEXT NOT NULL,
    pd_12m REAL,
    grade INTEGER,
    exposure REAL NOT NULL,
    closed_on TEXT,
    outcome TEXT,
    resolved_by TEXT,
    resolved_at TEXT,
    resolution_note TEXT
);
CREATE UNIQUE INDEX IF NOT EXISTS one_open_case ON cases (buyer_id) WHERE status = 'open';
CREATE TABLE IF NOT EXISTS case_snapshots (
    as_of TEXT NOT NULL,
    buyer_id TEXT NOT NULL,
    case_id INTEGER NOT NULL,
    colour TEXT NOT NULL,
    kind TEXT NOT NULL,
    opened_on TEXT NOT NULL,
    PRIMARY KEY (as_of, buyer_id)
);
CREATE TABLE IF NOT EXISTS case_runs (
    as_of TEXT PRIMARY KEY,
    opened INTEGER NOT NULL,
    escalated INTEGER NOT NULL,
    closed_quiet INTEGER NOT NULL
);
"""

CASE_COLUMNS = {
    "case_id": pl.Int64, "buyer_id": pl.String, "status": pl.String, "colour": pl.String, "kind": pl.String, "opened_on": pl.String,
    "escalated_on": pl.String, "last_run_on": pl.String, "last_signal_on": pl.String, "quiet_runs": pl.Int64, "reason": pl.String,
    "action": pl.String, "knockout": pl.String, "signals_json": pl.String, "pd_12m": pl.Float64, "grade": pl.Int64, "exposure": pl.Float64,
    "closed_on": pl.String, "outcome": pl.String, "resolved_by": pl.String, "resolved_at": pl.String, "resolution_note": pl.String,
}
SNAPSHOT_COLUMNS = {"as_of": pl.String, "buyer_id": pl.String, "case_id": pl.Int64, "colour": pl.String, "kind": pl.String, "opened_on": pl.String}


class CaseError(StageError):
    """A resolution the case book refuses (no such open case, an unknown outcome)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


class CaseBook:
    """The cases of a workspace (SQLite, in the alerts' database). Each run's changes commit together."""

    def __init__(self, path: Path, read_only: bool = False) -> None:
        self.path = path
        if read_only:
            self._con = sqlite3.connect(f"file:{path}?mode=ro", uri=True, isolation_level=None)
        else:
            path.parent.mkdir(parents=True, exist_ok=True)
            self._con = sqlite3.connect(path, isolation_level=None)
            self._con.executescript(_SCHEMA)
        self._con.row_factory = sqlite3.Row

    def close(self) -> None:
        self._con.close()

    def _transaction(self) -> contextlib.AbstractContextManager[sqlite3.Connection]:
        return immediate_transaction(self._con)

    def apply(self, as_of: date, verdicts: list[CaseVerdict], cfg: CasesConfig) -> CaseRunOutcome:
        """Record one run's verdicts: open, update or escalate cases; count a quiet run for each
        open case without a verdict and close it after ``close_after_quiet_runs``."""
        day = as_of.isoformat()
        latest = self._con.execute("SELECT max(as_of) FROM case_runs").fetchone()[0]
        if latest is not None and day < latest:
            raise StageError(f"cases were last updated for {latest}; a run for {day} cannot be applied after it (run monitoring dates in order)")
        opened = escalated = closed = 0
        with self._transaction() as con:
            open_now = {r["buyer_id"]: r for r in con.execute("SELECT * FROM cases WHERE status = 'open'")}
            for v in verdicts:
                held = open_now.pop(v.buyer_id, None)
                values = dict(kind=v.kind, last_signal_on=v.newest_signal_on.isoformat(), reason=v.reason, action=cfg.actions[v.kind],
                              knockout=v.knockout, signals_json=json.dumps(v.signals), pd_12m=v.pd_12m, grade=v.grade, exposure=v.exposure)
                if held is None:
                    if not self._reopens(con, v):
                        continue
                    con.execute(
                        f"INSERT INTO cases (buyer_id, status, colour, opened_on, last_run_on, {', '.join(values)})"
                        f" VALUES (?, 'open', ?, ?, ?, {', '.join('?' * len(values))})",
                        (v.buyer_id, v.colour, day, day, *values.values()),
                    )
                    opened += 1
                    continue
                # A knock-out keeps a case red until it is resolved or goes quiet; a case red for a
                # high PD stays red while the PD is high, and turns yellow once it is not.
                still_high = v.grade is not None and v.grade >= cfg.red.high_pd_grade
                keeps_red = held["colour"] == "red" and (held["knockout"] is not None or still_high)
                colour = "red" if v.colour == "red" or keeps_red else "yellow"
                up = colour == "red" and held["colour"] != "red"
                if colour == "red" and v.colour != "red":
                    values |= dict(kind="red", reason=held["reason"], action=cfg.actions["red"], knockout=held["knockout"])
                con.execute(
                    f"UPDATE cases SET colour = ?, escalated_on = coalesce(?, escalated_on), last_run_on = ?, quiet_runs = 0, "
                    f"{', '.join(f'{k} = ?' for k in values)} WHERE case_id = ?",
                    (colour, day if up else None, day, *values.values(), held["case_id"]),
                )
                escalated += up
            for held in open_now.values():
                if held["last_run_on"] >= day:
                    continue  # this date was already counted (a rerun)
                quiet = held["quiet_runs"] + 1
                if quiet >= cfg.close_after_quiet_runs:
                    con.execute("UPDATE cases SET status = 'closed', closed_on = ?, outcome = 'quiet', quiet_runs = ?, last_run_on = ? WHERE case_id = ?",
                                (day, quiet, day, held["case_id"]))
                    closed += 1
                else:
                    con.execute("UPDATE cases SET quiet_runs = ?, last_run_on = ? WHERE case_id = ?", (quiet, day, held["case_id"]))
            con.execute("DELETE FROM case_snapshots WHERE as_of = ?", (day,))
            con.execute("INSERT INTO case_snapshots SELECT ?, buyer_id, case_id, colour, kind, opened_on FROM cases WHERE status = 'open'", (day,))
            con.execute(
                "INSERT INTO case_runs VALUES (?, ?, ?, ?) ON CONFLICT (as_of) DO UPDATE SET opened = opened + excluded.opened,"
                " escalated = escalated + excluded.escalated, closed_quiet = closed_quiet + excluded.closed_quiet",
                (day, opened, escalated, closed),
            )
        kinds = dict(con.execute("SELECT kind, count(*) FROM cases WHERE status = 'open' GROUP BY kind").fetchall())
        return CaseRunOutcome(as_of, opened, escalated, closed, kinds.get("red", 0), kinds.get("yellow", 0), kinds.get("listed", 0))

    @staticmethod
    def _reopens(con: sqlite3.Connection, v: CaseVerdict) -> bool:
        """A buyer whose last case a reviewer resolved gets a new one only for a signal raised or
        escalated after the resolution day; after a quiet close any signal opens one."""
        last = con.execute("SELECT outcome, closed_on FROM cases WHERE buyer_id = ? AND status = 'closed' ORDER BY case_id DESC LIMIT 1",
                           (v.buyer_id,)).fetchone()
        if last is None or last["outcome"] == "quiet":
            return True
        return v.newest_signal_on.isoformat() > last["closed_on"]

    def latest_run(self) -> date | None:
        day = self._con.execute("SELECT max(as_of) FROM case_runs").fetchone()[0]
        return None if day is None else date.fromisoformat(day)

    def resolve(self, case_id: int, outcome: str, reviewer: str, note: str, on: date, cfg: CasesConfig) -> dict:
        """Close an open case with a reviewer's outcome; returns the closed case."""
        if outcome not in cfg.resolutions:
            raise CaseError(422, f"outcome {outcome!r} is not one of {', '.join(cfg.resolutions)}")
        with self._transaction() as con:
            row = con.execute("SELECT * FROM cases WHERE case_id = ?", (case_id,)).fetchone()
            if row is None:
                raise CaseError(404, f"no case {case_id}")
            if row["status"] != "open":
                raise CaseError(409, f"case {case_id} is already closed ({row['outcome']} on {row['closed_on']})")
            con.execute(
                "UPDATE cases SET status = 'closed', closed_on = ?, outcome = ?, resolved_by = ?, resolved_at = ?, resolution_note = ? WHERE case_id = ?",
                (on.isoformat(), outcome, reviewer, datetime.now(UTC).isoformat(timespec="seconds"), note, case_id),
            )
            con.execute("DELETE FROM case_snapshots WHERE case_id = ? AND as_of > ?", (case_id, on.isoformat()))
        return dict(self._con.execute("SELECT * FROM cases WHERE case_id = ?", (case_id,)).fetchone())

    def cases(self, status: str | None = None, buyer_id: str | None = None, opened_by: date | None = None) -> pl.DataFrame:
        clauses, args = [], []
        for clause, value in (("status = ?", status), ("buyer_id = ?", buyer_id), ("opened_on <= ?", opened_by and opened_by.isoformat())):
            if value is not None:
                clauses.append(clause)
                args.append(value)
        where = f" WHERE {' AND '.join(clauses)}" if clauses else ""
        rows = [tuple(r) for r in self._con.execute(f"SELECT {', '.join(CASE_COLUMNS)} FROM cases{where} ORDER BY case_id", args)]
        return pl.DataFrame(rows, schema=CASE_COLUMNS, orient="row")

    def snapshots(self) -> pl.DataFrame:
        rows = [tuple(r) for r in self._con.execute(f"SELECT {', '.join(SNAPSHOT_COLUMNS)} FROM case_snapshots ORDER BY as_of, buyer_id")]
        return pl.DataFrame(rows, schema=SNAPSHOT_COLUMNS, orient="row")


def read_cases(path: Path, status: str | None = "open", buyer_id: str | None = None, opened_by: date | None = None) -> pl.DataFrame:
    """The cases in a workspace's alerts database, read only (empty before the first run)."""
    if not path.exists():
        return pl.DataFrame(schema=CASE_COLUMNS)
    book = CaseBook(path, read_only=True)
    try:
        has = book._con.execute("SELECT 1 FROM sqlite_master WHERE name = 'cases'").fetchone()
        return book.cases(status, buyer_id, opened_by) if has else pl.DataFrame(schema=CASE_COLUMNS)
    finally:
        book.close()


def red_case_buyers(path: Path, on: date) -> frozenset[str]:
    """Buyers with an open red case opened by ``on``: their orders are held."""
    cases = read_cases(path, "open", opened_by=on)
    return frozenset(cases.filter(pl.col("colour") == "red")["buyer_id"].to_list())


def run_cases(book: CaseBook, as_of: date, open_alerts: pl.DataFrame, metrics: pl.DataFrame, granted: dict[str, float], cfg: CasesConfig) -> CaseRunOutcome:
    """The case step of a monitoring run: verdicts from the open alerts, applied to the book."""
    return book.apply(as_of, case_verdicts(open_alerts, metrics, granted, cfg, as_of), cfg)
