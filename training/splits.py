"""Out-of-time train / calibration / test slices with a label-horizon gap, and held-out buyers.

Counted back from the last date whose label is complete (data end minus the label horizon):

    [ train ..................... ][ calibration ]<-- gap_days -->[ test ]
      trained-on buyers only        held-out buyers               all buyers; the headline
                                                                  metrics use held-out ones

No calibration row's label window reaches into the test months, and training ends before
calibration, so neither the model nor its calibrator has seen an outcome from the test period.
This split tunes the hyperparameters; its test window is the latest of the walk-forward origins.

Walk forward (``origins``): the procedure (fit + cross-fitted calibration) is run again at each
origin on the rows of trained-on buyers labelled by then (as-of dates up to ``train_end``, a
gap before the origin's test months) and tested on the months after:

    origin 2: [ train ]<-gap->[ test ]
    origin 1: [ train ........ ]<-gap->[ test ]
    origin 0: [ train ................ ]<-gap->[ test ]     (the tuning split's test window)
    served:   [ every labelled row, every buyer ....................... ]  up to test_end
"""

from __future__ import annotations

import hashlib
from dataclasses import asdict, dataclass
from datetime import date, timedelta

import polars as pl

from tradecredit.training.config import SplitConfig

SLICE = "slice"
HOLDOUT = "holdout_buyer"
TRAIN, CALIBRATION, TEST, UNUSED = "train", "calibration", "test", "unused"
ORIGIN = "origin"  # the walk-forward origin a prediction row belongs to (0 = latest)


class SplitError(ValueError):
    """The data is too short for the configured slices, or a row cannot be placed."""


def _add_months(first_of_month: date, months: int) -> date:
    index = first_of_month.year * 12 + first_of_month.month - 1 + months
    return date(index // 12, index % 12 + 1, 1)


@dataclass(frozen=True)
class Origin:
    """One walk-forward origin: the procedure trains on as-of dates up to ``train_end``
    (inclusive) and is tested on ``test_start`` .. ``test_end``."""

    train_end: date
    test_start: date
    test_end: date

    def as_dict(self) -> dict[str, str]:
        return {k: v.isoformat() for k, v in asdict(self).items()}

    @classmethod
    def from_dict(cls, raw: dict[str, str]) -> Origin:
        return cls(**{k: date.fromisoformat(v) for k, v in raw.items()})


@dataclass(frozen=True)
class SplitPlan:
    date_column: str
    data_start: date
    train_end: date  # exclusive: the first calibration day
    calibration_start: date
    calibration_end: date  # inclusive
    test_start: date
    test_end: date  # inclusive: the last date whose label is complete
    gap_days: int
    label_horizon_days: int
    holdout_buyer_share: float
    holdout_salt: str
    origins: tuple[Origin, ...] = ()  # walk-forward origins, latest first (origins[0] tests test_start .. test_end)

    @property
    def production_end(self) -> date:
        """The last as-of date the served model trains on: the last complete label."""
        return self.test_end

    def as_dict(self) -> dict[str, object]:
        raw: dict[str, object] = {k: v.isoformat() if isinstance(v, date) else v for k, v in asdict(self).items() if k != "origins"}
        return raw | {"origins": [o.as_dict() for o in self.origins]}

    @classmethod
    def from_dict(cls, raw: dict[str, object]) -> SplitPlan:
        fields = {k: date.fromisoformat(str(v)) if k.endswith(("_start", "_end")) else v for k, v in raw.items() if k != "origins"}
        origins = tuple(Origin.from_dict(o) for o in raw.get("origins", []))  # type: ignore[union-attr]
        return cls(**fields, origins=origins)  # type: ignore[arg-type]

    def describe(self) -> str:
        return (
            f"train {self.data_start} .. {self.train_end - timedelta(days=1)} (trained-on buyers); "
            f"calibration {self.calibration_start} .. {self.calibration_end} (held-out buyers); "
            f"gap {self.gap_days} days; test {self.test_start} .. {self.test_end} "
            f"(held-out buyers for the headline, {self.holdout_buyer_share:.0%} of buyers)"
        )

    def describe_walk_forward(self) -> str:
        tests = "; ".join(f"trained to {o.train_end}, tested {o.test_start} .. {o.test_end}" for o in reversed(self.origins))
        return (f"{len(self.origins)} walk-forward origin(s): {tests}. Served model: every labelled row of every buyer, "
                f"{self.data_start} .. {self.production_end}")


def plan_split(dates: pl.Series, data_end: date, cfg: SplitConfig, date_column: str) -> SplitPlan:
    """Place the slices on the dates present; an error if the history is too short."""
    if dates.is_empty():
        raise SplitError("the training set has no rows")
    data_start, last = dates.min(), dates.max()
    test_end = min(last, data_end - timedelta(days=cfg.label_horizon_days))
    test_start = _add_months(test_end.replace(day=1), -(cfg.test_months - 1))
    calibration_end = test_start - timedelta(days=cfg.gap_days)
    calibration_start = _add_months(calibration_end.replace(day=1), -(cfg.calibration_months - 1))
    if calibration_start <= data_start:
        needed = cfg.test_months + cfg.calibration_months + cfg.gap_days // 30 + 1
        raise SplitError(
            f"not enough history for the split: rows from {data_start} to {last}, but {cfg.test_months} test months, "
            f"a {cfg.gap_days}-day gap and {cfg.calibration_months} calibration months leave no training months "
            f"(need about {needed} months of labelled dates)"
        )
    origins = walk_forward_origins(data_start, test_start, test_end, cfg)
    return SplitPlan(
        date_column=date_column,
        data_start=data_start,
        train_end=calibration_start,
        calibration_start=calibration_start,
        calibration_end=calibration_end,
        test_start=test_start,
        test_end=test_end,
        gap_days=cfg.gap_days,
        label_horizon_days=cfg.label_horizon_days,
        holdout_buyer_share=cfg.holdout_buyer_share,
        holdout_salt=cfg.holdout_salt,
        origins=origins,
    )


def walk_forward_origins(data_start: date, test_start: date, test_end: date, cfg: SplitConfig) -> tuple[Origin, ...]:
    """Up to ``cfg.origins`` test windows of ``test_months`` each, back to back and ending at the
    last complete label; an origin is kept while its training months (up to ``gap_days`` before
    its test) number at least ``min_train_months``. The latest always fits: the tuning split
    already has its training and calibration months."""
    origins = []
    for k in range(cfg.origins):
        start = _add_months(test_start, -k * cfg.test_months)
        end = test_end if k == 0 else _add_months(start, cfg.test_months) - timedelta(days=1)
        train_end = start - timedelta(days=cfg.gap_days)
        if k and train_end < _add_months(data_start.replace(day=1), cfg.min_train_months):
            break
        origins.append(Origin(train_end, start, end))
    return tuple(origins)


def holdout_buyers(buyer_ids: pl.Series, share: float, salt: str) -> pl.Series:
    """Whether each buyer is held out: a salted SHA-256 of its id, stable across runs and machines."""
    unique = buyer_ids.unique().to_list()
    chosen = {
        b: int.from_bytes(hashlib.sha256(f"{salt}:{b}".encode()).digest()[:8], "big") / 2**64 < share for b in unique
    }
    return buyer_ids.replace_strict(chosen, return_dtype=pl.Boolean)


def assign_slices(frame: pl.DataFrame, plan: SplitPlan) -> pl.DataFrame:
    """Add ``holdout_buyer`` and ``slice`` (train, calibration, test, unused) to each row."""
    day = pl.col(plan.date_column)
    if frame.schema[plan.date_column] != pl.Date:
        day = day.dt.date()
    held = holdout_buyers(frame["buyer_id"], plan.holdout_buyer_share, plan.holdout_salt)
    return frame.with_columns(held.alias(HOLDOUT)).with_columns(
        pl.when((day < plan.train_end) & ~pl.col(HOLDOUT))
        .then(pl.lit(TRAIN))
        .when(day.is_between(plan.calibration_start, plan.calibration_end) & pl.col(HOLDOUT))
        .then(pl.lit(CALIBRATION))
        .when(day.is_between(plan.test_start, plan.test_end))
        .then(pl.lit(TEST))
        .otherwise(pl.lit(UNUSED))
        .alias(SLICE)
    )
