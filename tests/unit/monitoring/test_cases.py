"""Early-warning cases: hysteresis, resolution, materiality, what makes a case red, and a rerun
that changes nothing (a real SQLite case book)."""

from __future__ import annotations

from datetime import date, timedelta

import polars as pl
import pytest

from tradecredit.monitoring.cases import CaseBook, CaseError, case_verdicts, red_case_buyers, run_cases

DAY = date(2026, 3, 1)
ALERT_SCHEMA = {"buyer_id": pl.String, "signal": pl.String, "colour": pl.String, "evidence": pl.String, "raised_on": pl.String, "escalated_on": pl.String}


def alerts(*rows: tuple[str, str, str, date]) -> pl.DataFrame:
    """Open alerts as the alert store lists them: (buyer, signal, colour, raised on)."""
    return pl.DataFrame([(b, s, c, f"{s} {c}", d.isoformat(), None) for b, s, c, d in rows], schema=ALERT_SCHEMA, orient="row")


def metrics(**buyers: tuple[int, int | None, float]) -> pl.DataFrame:
    """Run metrics per buyer: (grade, grade change, open balance)."""
    return pl.DataFrame(
        [(b, 0.01 * g, g, change, balance) for b, (g, change, balance) in buyers.items()],
        schema={"buyer_id": pl.String, "pd_12m": pl.Float64, "grade": pl.Int64, "grade_change": pl.Int64, "open_balance": pl.Float64}, orient="row",
    )


@pytest.fixture
def cases_cfg(config):
    return config.monitoring.cases


@pytest.fixture
def book(tmp_path):
    b = CaseBook(tmp_path / "alerts.db")
    yield b
    b.close()


def verdict(found, cfg, *, on=DAY, granted=None):
    return {v.buyer_id: (v.kind, v.reason) for v in case_verdicts(found[0], found[1], granted or {}, cfg, on)}


def test_red_only_from_a_knock_out_or_a_high_pd_with_fresh_deterioration(cases_cfg):
    old = DAY - timedelta(days=cases_cfg.red.fresh_days + 30)
    found = (
        alerts(
            ("LAWSUITS", "lawsuits", "red", DAY),  # a red alert, grade 4: a yellow case
            ("KNOCKED", "insolvency_filing", "red", old),  # a knock-out, even at grade 1 and old
            ("HIGH_FRESH", "dbt_lengthening", "yellow", DAY - timedelta(days=10)),
            ("HIGH_STALE", "dbt_lengthening", "yellow", old),  # high PD, nothing fresh: yellow
            ("HIGH_WORSE", "dbt_lengthening", "yellow", old),  # ...but the grade moved 2 steps: red
            ("CREDIT", "credit_event", "red", DAY), ("OVERDUE", "overdue_beyond_extension", "red", DAY),
            ("ENFORCED", "enforcement_order", "red", DAY),
            ("OLD_ITEM", "overdue_beyond_extension", "yellow", DAY),  # a knock-out signal below its red level
        ),
        metrics(LAWSUITS=(4, 0, 50_000.0), KNOCKED=(1, 0, 50_000.0), HIGH_FRESH=(8, 0, 50_000.0), HIGH_STALE=(9, 0, 50_000.0),
                HIGH_WORSE=(8, 2, 50_000.0), CREDIT=(5, None, 50_000.0), OVERDUE=(5, None, 50_000.0), ENFORCED=(3, 0, 50_000.0),
                OLD_ITEM=(3, 0, 50_000.0)),
    )
    kinds = {b: k for b, (k, _) in verdict(found, cases_cfg).items()}
    assert kinds == {"LAWSUITS": "yellow", "KNOCKED": "red", "HIGH_FRESH": "red", "HIGH_STALE": "yellow", "HIGH_WORSE": "red",
                     "CREDIT": "red", "OVERDUE": "red", "ENFORCED": "red", "OLD_ITEM": "yellow"}
    reasons = verdict(found, cases_cfg)
    assert reasons["KNOCKED"][1] == "knock-out: insolvency filing"
    assert "fresh deterioration" in reasons["HIGH_FRESH"][1] and "grade +2" in reasons["HIGH_WORSE"][1]


def test_a_case_below_the_materiality_floor_is_listed_not_red(cases_cfg):
    floor = cases_cfg.materiality
    small = floor.min_exposure - 1
    found = (
        alerts(("SMALL", "insolvency_filing", "red", DAY), ("SMALL_LINE", "insolvency_filing", "red", DAY), ("BIG", "insolvency_filing", "red", DAY)),
        metrics(SMALL=(9, 0, small), SMALL_LINE=(9, 0, small), BIG=(9, 0, floor.min_exposure)),
    )
    # SMALL_LINE's small balance is most of its small granted line: material.
    got = verdict(found, cases_cfg, granted={"SMALL": 1_000_000.0, "SMALL_LINE": small / floor.min_limit_share})
    assert {b: k for b, (k, _) in got.items()} == {"SMALL": "listed", "SMALL_LINE": "red", "BIG": "red"}
    assert "below the materiality floor" in got["SMALL"][1]


def test_a_flickering_signal_keeps_its_case_and_quiet_runs_close_it(book, cases_cfg):
    quiet = cases_cfg.close_after_quiet_runs
    m = metrics(B1=(5, 0, 20_000.0))
    day = DAY
    run_cases(book, day, alerts(("B1", "lawsuits", "yellow", day)), m, {}, cases_cfg)
    for step in range(1, quiet):  # off, on, off... never `quiet` runs in a row
        day = DAY + timedelta(days=30 * step)
        signal = alerts() if step % 2 else alerts(("B1", "lawsuits", "yellow", day))
        run_cases(book, day, signal, m, {}, cases_cfg)
    assert book.cases()["case_id"].to_list() == [1] and book.cases("open").height == 1
    for step in range(quiet):
        day += timedelta(days=30)
        outcome = run_cases(book, day, alerts(), m, {}, cases_cfg)
    assert outcome.closed_quiet == 1 and book.cases("open").height == 0
    assert book.cases()["outcome"].to_list() == ["quiet"]
    # After a quiet close, the next signal opens a new case.
    day += timedelta(days=30)
    assert run_cases(book, day, alerts(("B1", "lawsuits", "yellow", day)), m, {}, cases_cfg).opened == 1
    assert book.cases()["case_id"].to_list() == [1, 2]


def test_a_resolved_case_stays_closed_until_a_new_signal(book, cases_cfg):
    m = metrics(B1=(9, 0, 20_000.0))
    first = alerts(("B1", "insolvency_filing", "red", DAY))
    run_cases(book, DAY, first, m, {}, cases_cfg)
    case_id = book.cases("open")["case_id"][0]
    assert red_case_buyers(book.path, DAY) == {"B1"}
    resolved = book.resolve(case_id, "false_alarm", "ana", "the filing was withdrawn", DAY + timedelta(days=5), cases_cfg)
    assert (resolved["status"], resolved["outcome"], resolved["resolved_by"]) == ("closed", "false_alarm", "ana")
    assert red_case_buyers(book.path, DAY + timedelta(days=5)) == frozenset()
    # The same alert is still open a month later: no new case.
    later = DAY + timedelta(days=30)
    assert run_cases(book, later, first, m, {}, cases_cfg).opened == 0
    assert book.cases("open").height == 0
    # A signal raised after the resolution opens one.
    fresh = alerts(("B1", "insolvency_filing", "red", DAY), ("B1", "lawsuits", "yellow", later + timedelta(days=30)))
    assert run_cases(book, later + timedelta(days=30), fresh, m, {}, cases_cfg).opened == 1
    with pytest.raises(CaseError, match="already closed") as closed:
        book.resolve(case_id, "monitoring", "ana", "", later, cases_cfg)
    assert closed.value.status == 409
    with pytest.raises(CaseError, match="not one of") as unknown:
        book.resolve(case_id + 1, "ignored", "ana", "", later, cases_cfg)
    assert unknown.value.status == 422
    with pytest.raises(CaseError, match="no case 99") as missing:
        book.resolve(99, "monitoring", "ana", "", later, cases_cfg)
    assert missing.value.status == 404


def test_a_case_escalates_and_never_lowers_while_open(book, cases_cfg):
    run_cases(book, DAY, alerts(("B1", "lawsuits", "yellow", DAY)), metrics(B1=(5, 0, 20_000.0)), {}, cases_cfg)
    later = DAY + timedelta(days=30)
    escalated = run_cases(book, later, alerts(("B1", "lawsuits", "yellow", DAY), ("B1", "enforcement_order", "red", later)),
                          metrics(B1=(5, 0, 20_000.0)), {}, cases_cfg)
    assert escalated.escalated == 1 and escalated.open_red == 1
    again = later + timedelta(days=30)
    run_cases(book, again, alerts(("B1", "lawsuits", "yellow", DAY)), metrics(B1=(5, 0, 20_000.0)), {}, cases_cfg)
    case = book.cases("open").row(0, named=True)
    assert (case["colour"], case["kind"], case["escalated_on"], case["opened_on"]) == ("red", "red", later.isoformat(), DAY.isoformat())
    assert case["reason"] == "knock-out: enforcement order" and case["action"] == cases_cfg.actions["red"]


def test_a_case_red_for_its_pd_turns_yellow_when_the_pd_is_no_longer_high(book, cases_cfg):
    high = cases_cfg.red.high_pd_grade
    signal = alerts(("B1", "dbt_lengthening", "yellow", DAY))
    assert run_cases(book, DAY, signal, metrics(B1=(high, 0, 20_000.0)), {}, cases_cfg).open_red == 1
    later = DAY + timedelta(days=30)
    assert run_cases(book, later, signal, metrics(B1=(high, 0, 20_000.0)), {}, cases_cfg).open_red == 1  # still high: red
    lower = run_cases(book, later + timedelta(days=30), signal, metrics(B1=(high - 2, -2, 20_000.0)), {}, cases_cfg)
    assert (lower.open_red, lower.open_yellow) == (0, 1)
    assert book.cases("open")["case_id"].to_list() == [1]  # the same case


def test_rerunning_a_date_changes_nothing(book, cases_cfg):
    m = metrics(B1=(5, 0, 20_000.0), B2=(9, 2, 20_000.0))
    found = alerts(("B1", "lawsuits", "yellow", DAY), ("B2", "dbt_lengthening", "yellow", DAY))
    run_cases(book, DAY, found, m, {}, cases_cfg)
    later = DAY + timedelta(days=30)
    first = run_cases(book, later, alerts(("B2", "dbt_lengthening", "yellow", DAY)), m, {}, cases_cfg)
    before = (book.cases(), book.snapshots())
    second = run_cases(book, later, alerts(("B2", "dbt_lengthening", "yellow", DAY)), m, {}, cases_cfg)
    assert (second.opened, second.escalated, second.closed_quiet) == (0, 0, 0)
    assert (second.open_red, second.open_yellow) == (first.open_red, first.open_yellow)
    assert book.cases().equals(before[0]) and book.snapshots().equals(before[1])
    assert book.cases().filter(pl.col("buyer_id") == "B1")["quiet_runs"].to_list() == [1]
    with pytest.raises(Exception, match="run monitoring dates in order"):
        run_cases(book, DAY, found, m, {}, cases_cfg)
