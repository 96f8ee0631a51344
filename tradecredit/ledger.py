"""Ledger loader: validate a ledger folder against the data contract and normalise it.

``load_ledger(folder, cfg, mapping)`` returns typed tables, the rejected rows with their
reasons and a load summary; ``write_loaded_ledger`` puts them in the workspace. Nothing is
dropped silently: every row read is either accepted or appears in the rejects with the source
file, its row number (1 = first data row, so CSV line = row + 1) and every reason it broke.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path

import pandera.polars as pa
import polars as pl
import yaml
from pydantic import BaseModel, ConfigDict, ValidationError

from tradecredit.ledger_config import LedgerConfig
from tradecredit.contract import (
    CREDIT_EVENT_TYPES,
    FILE_SUFFIXES,
    OTHER_EVENT_TYPE,
    REGISTRY_EVENT_TYPES,
    TABLES,
    TableSpec,
)

ROW = "_row"
# Timestamps are accepted and cut to their UTC date; offsets are honoured, naive ones are UTC.
_ZONED_FORMATS = ("%Y-%m-%dT%H:%M:%S%.f%z", "%Y-%m-%d %H:%M:%S%.f%z")
_NAIVE_FORMATS = ("%Y-%m-%dT%H:%M:%S%.f", "%Y-%m-%d %H:%M:%S%.f", "%Y-%m-%dT%H:%M:%S", "%Y-%m-%d %H:%M:%S")
_TIME_DIRECTIVES = ("%H", "%M", "%S", "%z", "%T", "%R")


class LedgerError(ValueError):
    """The ledger folder cannot be loaded at all (missing file or column, unreadable file)."""


# --------------------------------------------------------------------------- column mapping


class _MappingModel(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class TableMapping(_MappingModel):
    file: str | None = None
    columns: dict[str, str] = {}
    date_format: str | None = None
    date_formats: dict[str, str] = {}


class LedgerMapping(_MappingModel):
    """How a user's export maps onto the contract: file names, column names, date formats."""

    date_format: str | None = None
    tables: dict[str, TableMapping] = {}

    def for_table(self, name: str) -> TableMapping:
        return self.tables.get(name, TableMapping())

    def date_format_of(self, table: str, column: str) -> str | None:
        mapping = self.for_table(table)
        return mapping.date_formats.get(column) or mapping.date_format or self.date_format


def load_mapping(path: Path) -> LedgerMapping:
    """Read a mapping YAML file; unknown keys, tables and target columns are errors that name them."""
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        mapping = LedgerMapping.model_validate(raw)
    except (OSError, yaml.YAMLError) as exc:
        raise LedgerError(f"mapping file {path}: {exc}") from exc
    except ValidationError as exc:
        problems = "; ".join(f"'{'.'.join(map(str, e['loc']))}': {e['msg']}" for e in exc.errors())
        raise LedgerError(f"mapping file {path}: {problems}") from None
    for table, tm in mapping.tables.items():
        if table not in TABLES:
            raise LedgerError(f"mapping file {path}: unknown table '{table}' (known: {', '.join(TABLES)})")
        targets = set(tm.columns.values()) | set(tm.date_formats)
        unknown = sorted(targets - set(TABLES[table].column_names))
        if unknown:
            raise LedgerError(f"mapping file {path}: table '{table}' maps to unknown column(s) {unknown}")
    return mapping


# --------------------------------------------------------------------------- results


@dataclass(frozen=True)
class TableSummary:
    file: str | None
    rows_read: int
    accepted: int
    rejected: int
    reasons: dict[str, int]
    ignored_columns: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class LoadSummary:
    source_dir: str
    tables: dict[str, TableSummary]
    other_event_types: dict[str, int]
    ignored_files: list[str]
    overpaid_invoices: int
    data_start: str | None
    data_end: str | None
    sources: dict[str, bool] = field(default_factory=dict)  # ledger_sources: which optional sources have data

    @property
    def rows_rejected(self) -> int:
        return sum(t.rejected for t in self.tables.values())

    def to_json(self) -> str:
        return json.dumps(asdict(self) | {"rows_rejected": self.rows_rejected}, indent=2) + "\n"


@dataclass(frozen=True)
class LoadedLedger:
    tables: dict[str, pl.DataFrame]
    rejects: pl.DataFrame
    summary: LoadSummary


REJECTS_SCHEMA = {
    "table": pl.String,
    "source_file": pl.String,
    "row_number": pl.Int64,
    "reason_codes": pl.String,
    "reasons": pl.String,
    "record": pl.String,
}


# --------------------------------------------------------------------------- reading


def _find_file(folder: Path, spec: TableSpec, mapping: TableMapping) -> Path | None:
    if mapping.file is not None:
        path = folder / mapping.file
        if not path.is_file():
            raise LedgerError(f"{spec.name}: mapped file {path} does not exist")
        if path.suffix.lower() not in FILE_SUFFIXES:
            raise LedgerError(f"{path.name}: unsupported file type '{path.suffix}'; use .csv or .parquet")
        return path
    candidates = sorted(p for p in folder.iterdir() if p.is_file() and p.stem == spec.name)
    supported = [p for p in candidates if p.suffix.lower() in FILE_SUFFIXES]
    if len(supported) > 1:
        raise LedgerError(f"{spec.name}: both {supported[0].name} and {supported[1].name} exist; keep one")
    if not supported and candidates:
        raise LedgerError(
            f"{candidates[0].name}: unsupported file type '{candidates[0].suffix}' for table {spec.name}; "
            "use .csv or .parquet"
        )
    if not supported:
        if spec.required:
            raise LedgerError(f"required file {spec.name}.csv or {spec.name}.parquet is missing from {folder}")
        return None
    return supported[0]


def _read(path: Path) -> pl.DataFrame:
    if path.stat().st_size == 0:
        raise LedgerError(f"{path.name} is empty: expected a header row naming the columns")
    try:
        if path.suffix.lower() == ".csv":
            # Everything as text: we parse each column ourselves so a bad value rejects its row.
            return pl.read_csv(path, infer_schema=False)
        return pl.read_parquet(path)
    except (pl.exceptions.ComputeError, pl.exceptions.NoDataError, OSError) as exc:
        raise LedgerError(f"{path.name} cannot be read: {exc}") from exc


# --------------------------------------------------------------------------- parsing


def _as_text(series: pl.Series) -> pl.Series:
    text = series.cast(pl.String) if series.dtype != pl.String else series
    text = text.str.strip_chars()
    return text.set(text == "", None)  # type: ignore[arg-type]


def _parse_date(series: pl.Series, fmt: str | None) -> pl.Series:
    if series.dtype == pl.Date:
        return series
    if isinstance(series.dtype, pl.Datetime):
        if series.dtype.time_zone is not None:  # type: ignore[union-attr]
            series = series.dt.convert_time_zone("UTC")
        return series.dt.date()
    text = _as_text(series)
    if fmt is not None:
        if any(d in fmt for d in _TIME_DIRECTIVES):
            parsed = text.str.to_datetime(fmt, strict=False)
            if isinstance(parsed.dtype, pl.Datetime) and parsed.dtype.time_zone is not None:  # type: ignore[union-attr]
                parsed = parsed.dt.convert_time_zone("UTC")
            return parsed.dt.date()
        return text.str.to_date(fmt, strict=False)
    parsed = text.str.to_date("%Y-%m-%d", strict=False)
    if parsed.null_count() == text.null_count():
        return parsed
    # Some values are not plain dates: try timestamps, only where needed (it is slower).
    zoned = text.str.replace(r"Z$", "+00:00")
    candidates = [parsed]
    for f in _ZONED_FORMATS:
        candidates.append(zoned.str.to_datetime(f, strict=False, time_zone="UTC").dt.date())
    for f in _NAIVE_FORMATS:
        candidates.append(text.str.to_datetime(f, strict=False).dt.date())
    return pl.select(pl.coalesce(candidates)).to_series().alias(series.name)


def _parse_number(series: pl.Series) -> pl.Series:
    values = series.cast(pl.Float64, strict=False) if series.dtype.is_numeric() else _as_text(series).cast(
        pl.Float64, strict=False
    )
    # nan and inf parse as floats but are not amounts anyone can act on.
    return values.set(~values.is_finite(), None)  # type: ignore[arg-type]


class _Checks:
    """Boolean failure flags per row, each with a reason code and message."""

    def __init__(self, height: int) -> None:
        self.height = height
        self.flags: list[tuple[str, str, pl.Series]] = []

    def add(self, code: str, message: str, failed: pl.Series) -> None:
        failed = failed.fill_null(False)
        if failed.any():
            self.flags.append((code, message, failed))

    def any_failed(self) -> pl.Series:
        if not self.flags:
            return pl.Series("failed", [False] * self.height, dtype=pl.Boolean)
        return pl.select(pl.any_horizontal([f for _, _, f in self.flags])).to_series()


def _parse_table(
    spec: TableSpec, raw: pl.DataFrame, mapping: LedgerMapping, file_name: str
) -> tuple[pl.DataFrame, _Checks, list[str]]:
    """Rename, type and check each column; return typed frame, per-row failures and ignored columns."""
    table_mapping = mapping.for_table(spec.name)
    unmapped = [c for c in table_mapping.columns if c not in raw.columns]
    if unmapped:
        raise LedgerError(f"{file_name}: mapped source column(s) {unmapped} not found; columns are {raw.columns}")
    raw = raw.rename(table_mapping.columns)
    missing = [c for c in spec.required_columns if c not in raw.columns]
    if missing:
        raise LedgerError(f"{file_name}: missing required column(s) {', '.join(missing)}")
    ignored = [c for c in raw.columns if c not in spec.column_names]

    checks = _Checks(raw.height)
    columns: list[pl.Series] = [pl.Series(ROW, range(1, raw.height + 1), dtype=pl.Int64)]
    for col in spec.columns:
        if col.name not in raw.columns:
            dtype = {"string": pl.String, "date": pl.Date, "number": pl.Float64, "integer": pl.Int64}[col.kind]
            columns.append(pl.Series(col.name, [None] * raw.height, dtype=dtype))
            continue
        source = raw[col.name]
        present = _as_text(source).is_not_null() if source.dtype == pl.String else source.is_not_null()
        if col.kind == "string":
            parsed = _as_text(source)
        elif col.kind == "date":
            fmt = mapping.date_format_of(spec.name, col.name)
            parsed = _parse_date(source, fmt)
            checks.add(f"bad_date:{col.name}", f"{col.name} is not a date ({fmt or 'YYYY-MM-DD'})", present & parsed.is_null())
        else:
            parsed = _parse_number(source)
            checks.add(f"not_a_number:{col.name}", f"{col.name} is not a number", present & parsed.is_null())
            if col.kind == "integer":
                fractional = parsed.is_not_null() & (parsed != parsed.floor())
                checks.add(f"not_an_integer:{col.name}", f"{col.name} is not a whole number", fractional)
                parsed = parsed.set(fractional, None).cast(pl.Int64)  # type: ignore[arg-type]
        if col.required:
            checks.add(f"missing:{col.name}", f"{col.name} is empty", ~present)
        columns.append(parsed.alias(col.name))
    return pl.DataFrame(columns), checks, ignored


def _record_json(raw: pl.DataFrame, rows: pl.Series) -> pl.Series:
    picked = raw[rows.to_numpy() - 1]
    return picked.select(pl.struct(pl.all().cast(pl.String)).struct.json_encode()).to_series()


def _split(
    spec: TableSpec,
    file_name: str,
    raw: pl.DataFrame,
    typed: pl.DataFrame,
    checks: _Checks,
    ignored_columns: list[str],
) -> tuple[pl.DataFrame, pl.DataFrame, TableSummary]:
    failed = checks.any_failed()
    accepted = typed.filter(~failed).drop(ROW)
    rejected_rows = typed[ROW].filter(failed)
    if rejected_rows.len():
        # Each rejected row lists every rule it broke, in the order they were checked.
        flag_frame = pl.DataFrame({f"f{i}": f for i, (_, _, f) in enumerate(checks.flags)}).filter(failed)
        codes = pl.concat_str(
            [pl.when(pl.col(f"f{i}")).then(pl.lit(c)) for i, (c, _, _) in enumerate(checks.flags)],
            separator=";",
            ignore_nulls=True,
        )
        messages = pl.concat_str(
            [pl.when(pl.col(f"f{i}")).then(pl.lit(m)) for i, (_, m, _) in enumerate(checks.flags)],
            separator="; ",
            ignore_nulls=True,
        )
        reasons = flag_frame.select(codes.alias("reason_codes"), messages.alias("reasons"))
        rejects = pl.DataFrame(
            {
                "table": [spec.name] * rejected_rows.len(),
                "source_file": [file_name] * rejected_rows.len(),
                "row_number": rejected_rows,
            }
        ).with_columns(reasons, record=_record_json(raw, rejected_rows))
    else:
        rejects = pl.DataFrame(schema=REJECTS_SCHEMA)
    summary = TableSummary(
        file=file_name,
        rows_read=typed.height,
        accepted=accepted.height,
        rejected=int(failed.sum()),
        reasons={code: int(flag.sum()) for code, _, flag in checks.flags},
        ignored_columns=ignored_columns,
    )
    return accepted, rejects.select([pl.col(c).cast(t) for c, t in REJECTS_SCHEMA.items()]), summary


# --------------------------------------------------------------------------- rules


def _check_duplicates(spec: TableSpec, typed: pl.DataFrame, checks: _Checks) -> None:
    """Later rows repeating an earlier valid row's key are rejected; the first one stands."""
    if not spec.key:
        return
    valid = ~checks.any_failed()
    keyed = typed.select(ROW, *spec.key).with_columns(valid=valid)
    first = (
        keyed.filter(pl.col("valid"))
        .group_by(spec.key, maintain_order=True)
        .agg(pl.col(ROW).first().alias("_first"))
    )
    with_first = keyed.join(first, on=list(spec.key), how="left", nulls_equal=True, maintain_order="left")
    duplicate = with_first["valid"] & (with_first["_first"] != with_first[ROW])
    checks.add(f"duplicate_key:{'+'.join(spec.key)}", f"duplicate {' + '.join(spec.key)} (an earlier row has it)", duplicate)


def _check_reference(
    checks: _Checks, child: pl.Series, accepted: pl.Series, seen: pl.Series, column: str, parent: str
) -> None:
    """A reference must point at an accepted row; say whether the target is unknown or was rejected."""
    ok = child.is_in(accepted.implode())
    rejected_target = ~ok & child.is_in(seen.implode())
    checks.add(f"rejected_{parent}:{column}", f"{column} refers to a rejected {parent} row", rejected_target)
    checks.add(f"unknown_{parent}:{column}", f"unknown {column}", child.is_not_null() & ~ok & ~rejected_target)


def load_ledger(folder: Path, cfg: LedgerConfig, mapping: LedgerMapping | None = None) -> LoadedLedger:
    """Validate and normalise the ledger folder ``folder``; see the data contract."""
    mapping = mapping or LedgerMapping()
    if not folder.is_dir():
        raise LedgerError(f"ledger folder {folder} does not exist")
    files = {name: _find_file(folder, spec, mapping.for_table(name)) for name, spec in TABLES.items()}
    used = {p.name for p in files.values() if p is not None}
    ignored_files = sorted(p.name for p in folder.iterdir() if p.is_file() and p.name not in used)

    raws: dict[str, pl.DataFrame] = {}
    parsed: dict[str, tuple[pl.DataFrame, _Checks, list[str]]] = {}
    for name, path in files.items():
        if path is None:
            continue
        raws[name] = _read(path)
        parsed[name] = _parse_table(TABLES[name], raws[name], mapping, path.name)

    accepted: dict[str, pl.DataFrame] = {}
    rejects: list[pl.DataFrame] = []
    summaries: dict[str, TableSummary] = {}

    def finish(name: str) -> None:
        typed, checks, ignored = parsed[name]
        _check_duplicates(TABLES[name], typed, checks)
        frame, rej, summary = _split(TABLES[name], files[name].name, raws[name], typed, checks, ignored)  # type: ignore[union-attr]
        accepted[name], summaries[name] = frame, summary
        rejects.append(rej)

    # buyers
    b, bc, _ = parsed["buyers"]
    country = b["country"].str.to_uppercase()
    bc.add("bad_country", "country is not an ISO 3166-1 alpha-2 code", country.is_not_null() & ~country.str.contains(r"^[A-Z]{2}$"))
    for col in ("registered_capital", "paid_in_capital", "employees"):
        bc.add(f"negative:{col}", f"{col} is negative", b[col] < 0)
    parsed["buyers"] = (b.with_columns(country=country), bc, parsed["buyers"][2])
    finish("buyers")
    buyer_ids, all_buyer_ids = accepted["buyers"]["buyer_id"], parsed["buyers"][0]["buyer_id"]

    # invoices
    inv, ic, _ = parsed["invoices"]
    ic.add("non_positive:amount", "amount is not greater than 0", inv["amount"] <= 0)
    ic.add("due_before_issue", "due_on is before issued_on", inv["due_on"] < inv["issued_on"])
    ic.add("disputed_before_issue", "disputed_on is before issued_on", inv["disputed_on"] < inv["issued_on"])
    ic.add("payment_before_issue:paid_on", "paid_on is before issued_on", inv["paid_on"] < inv["issued_on"])
    _check_reference(ic, inv["buyer_id"], buyer_ids, all_buyer_ids, "buyer_id", "buyer")
    if "payments" in parsed:
        with_rows = parsed["payments"][0]["invoice_id"].drop_nulls().unique()
        ic.add(
            "paid_on_and_payments",
            "invoice has paid_on and also payment rows (use one or the other)",
            inv["paid_on"].is_not_null() & inv["invoice_id"].is_in(with_rows.implode()),
        )
    finish("invoices")
    invoices = accepted["invoices"]

    # payments
    if "payments" in parsed:
        pay, pc, _ = parsed["payments"]
        pc.add("non_positive:amount", "amount is not greater than 0", pay["amount"] <= 0)
        _check_reference(pc, pay["invoice_id"], invoices["invoice_id"], parsed["invoices"][0]["invoice_id"], "invoice_id", "invoice")
        issued = pay.select("invoice_id").join(
            invoices.select("invoice_id", "issued_on"), on="invoice_id", how="left", maintain_order="left"
        )["issued_on"]
        pc.add("payment_before_issue", "paid_on is before the invoice's issued_on", pay["paid_on"] < issued)
        finish("payments")

    # registry events: unknown types are kept as "other" and counted
    other_event_types: dict[str, int] = {}
    if "registry_events" in parsed:
        ev, ec, ign = parsed["registry_events"]
        _check_reference(ec, ev["buyer_id"], buyer_ids, all_buyer_ids, "buyer_id", "buyer")
        normalised = ev["event_type"].str.to_lowercase()
        unknown = normalised.is_not_null() & ~normalised.is_in(list(REGISTRY_EVENT_TYPES))
        other_event_types = dict(Counter(ev["event_type"].filter(unknown & ~ec.any_failed()).to_list()))
        ev = ev.with_columns(
            event_type_raw=ev["event_type"], event_type=pl.when(unknown).then(pl.lit(OTHER_EVENT_TYPE)).otherwise(normalised)
        )
        parsed["registry_events"] = (ev, ec, ign)
        finish("registry_events")

    # financials: a statement is known from its publication
    if "financials" in parsed:
        fin, fc, ign = parsed["financials"]
        _check_reference(fc, fin["buyer_id"], buyer_ids, all_buyer_ids, "buyer_id", "buyer")
        fc.add("published_before_period_end", "published_on is before period_end", fin["published_on"] < fin["period_end"])
        assumed = fin["published_on"].is_null() & fin["period_end"].is_not_null()
        fin = fin.with_columns(
            published_on=pl.coalesce(
                pl.col("published_on"), pl.col("period_end") + pl.duration(days=cfg.financials_publication_lag_days)
            ),
            published_on_assumed=assumed,
        )
        parsed["financials"] = (fin, fc, ign)
        finish("financials")

    if "credit_events" in parsed:
        ce, cc, ign = parsed["credit_events"]
        _check_reference(cc, ce["buyer_id"], buyer_ids, all_buyer_ids, "buyer_id", "buyer")
        etype = ce["event_type"].str.to_lowercase()
        cc.add("unknown_credit_event_type", f"event_type is not one of {', '.join(CREDIT_EVENT_TYPES)}", etype.is_not_null() & ~etype.is_in(list(CREDIT_EVENT_TYPES)))
        parsed["credit_events"] = (ce.with_columns(event_type=etype), cc, ign)
        finish("credit_events")

    tables, overpaid = _normalise(accepted, cfg)
    start, end = _data_span(tables)
    summary = LoadSummary(
        source_dir=str(folder),
        tables=summaries,
        other_event_types=other_event_types,
        ignored_files=ignored_files,
        overpaid_invoices=overpaid,
        data_start=str(start) if start else None,
        data_end=str(end) if end else None,
        sources=ledger_sources(tables),
    )
    return LoadedLedger(tables=tables, rejects=pl.concat(rejects), summary=summary)


# --------------------------------------------------------------------------- normalised output

_DATE_COLUMNS_KNOWN_FROM = {
    "invoices": ("issued_on", "disputed_on"),
    "payments": ("paid_on",),
    "registry_events": ("event_on",),
    "financials": ("published_on",),
    "credit_events": ("event_on",),
}


def _normalise(accepted: dict[str, pl.DataFrame], cfg: LedgerConfig) -> tuple[dict[str, pl.DataFrame], int]:
    """Derive payments from the paid_on shorthand, settlement dates and open amounts.

    Point in time: ``settled_on``, ``paid_amount`` and ``outstanding_amount`` describe each
    invoice as of the END of the data. They are for reporting and labels; a feature as of an
    earlier date must recompute them from ``payments`` up to that date, or it sees the future.
    """
    invoices = accepted["invoices"].with_columns(
        pl.col("seller_id").fill_null(cfg.default_seller_id),
        terms_days=(pl.col("due_on") - pl.col("issued_on")).dt.total_days().cast(pl.Int32),
    )
    shorthand = invoices.filter(pl.col("paid_on").is_not_null()).select(
        "invoice_id", "paid_on", "amount", source=pl.lit("invoice_paid_on")
    )
    recorded = accepted.get("payments", pl.DataFrame(schema={"invoice_id": pl.String, "paid_on": pl.Date, "amount": pl.Float64}))
    payments = pl.concat([recorded.with_columns(source=pl.lit("payments")), shorthand]).sort("invoice_id", "paid_on")

    # An invoice is settled on the date its payments reach its amount (payments are date-sorted).
    per_invoice = (
        payments.join(invoices.select("invoice_id", invoice_amount="amount"), on="invoice_id")
        .group_by("invoice_id")
        .agg(
            settled_on=pl.col("paid_on")
            .filter(pl.col("amount").cum_sum() >= pl.col("invoice_amount") - cfg.settlement_tolerance)
            .min(),
            paid_amount=pl.col("amount").sum(),
        )
    )
    invoices = (
        invoices.drop("paid_on")
        .join(per_invoice, on="invoice_id", how="left")
        .with_columns(pl.col("paid_amount").fill_null(0.0))
        .with_columns(outstanding_amount=(pl.col("amount") - pl.col("paid_amount")).clip(lower_bound=0.0))
    )
    overpaid = int((invoices["paid_amount"] > invoices["amount"] + cfg.settlement_tolerance).sum())
    tables = dict(accepted) | {"invoices": invoices, "payments": payments}
    for name, schema in OUTPUT_SCHEMAS.items():
        if name in tables:
            tables[name] = schema.validate(tables[name])
    return tables, overpaid


def _data_span(tables: dict[str, pl.DataFrame]) -> tuple[date | None, date | None]:
    lows, highs = [], []
    for name, columns in _DATE_COLUMNS_KNOWN_FROM.items():
        if name in tables:
            for col in columns:
                lows.append(tables[name][col].min())
                highs.append(tables[name][col].max())
    lows = [d for d in lows if d is not None]
    highs = [d for d in highs if d is not None]
    return (min(lows) if lows else None, max(highs) if highs else None)  # type: ignore[type-var]


# Normalised tables, as every later stage may rely on them.
OUTPUT_SCHEMAS: dict[str, pa.DataFrameSchema] = {
    "buyers": pa.DataFrameSchema(
        {
            "buyer_id": pa.Column(pl.String, unique=True, nullable=False),
            "country": pa.Column(pl.String, nullable=True),
            "founded_on": pa.Column(pl.Date, nullable=True),
            "employees": pa.Column(pl.Int64, pa.Check.ge(0), nullable=True),
        }
    ),
    "invoices": pa.DataFrameSchema(
        {
            "invoice_id": pa.Column(pl.String, unique=True, nullable=False),
            "buyer_id": pa.Column(pl.String, nullable=False),
            "seller_id": pa.Column(pl.String, nullable=False),
            "issued_on": pa.Column(pl.Date, nullable=False),
            "due_on": pa.Column(pl.Date, nullable=False),
            "amount": pa.Column(pl.Float64, pa.Check.gt(0), nullable=False),
            "settled_on": pa.Column(pl.Date, nullable=True),
            "outstanding_amount": pa.Column(pl.Float64, pa.Check.ge(0), nullable=False),
        }
    ),
    "payments": pa.DataFrameSchema(
        {
            "invoice_id": pa.Column(pl.String, nullable=False),
            "paid_on": pa.Column(pl.Date, nullable=False),
            "amount": pa.Column(pl.Float64, pa.Check.gt(0), nullable=False),
        }
    ),
}


def write_loaded_ledger(loaded: LoadedLedger, out_dir: Path) -> Path:
    """Write normalised tables (Parquet), ``rejects.csv`` and ``load_summary.json`` to ``out_dir``."""
    out_dir.mkdir(parents=True, exist_ok=True)
    for stale in out_dir.glob("*.parquet"):
        stale.unlink()
    for name, frame in loaded.tables.items():
        frame.write_parquet(out_dir / f"{name}.parquet")
    loaded.rejects.write_csv(out_dir / "rejects.csv")
    stamp = {"loaded_at": datetime.now(UTC).isoformat(timespec="seconds")}
    summary = json.loads(loaded.summary.to_json()) | stamp
    (out_dir / "load_summary.json").write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
    return out_dir


def format_summary(summary: LoadSummary) -> str:
    """The load summary as a plain-text table for the terminal."""
    lines = [f"Loaded {summary.source_dir}  (data {summary.data_start} .. {summary.data_end})"]
    lines.append(f"{'table':<16}{'file':<24}{'read':>10}{'accepted':>10}{'rejected':>10}")
    for name, t in summary.tables.items():
        lines.append(f"{name:<16}{t.file or '-':<24}{t.rows_read:>10,}{t.accepted:>10,}{t.rejected:>10,}")
        for code, count in sorted(t.reasons.items(), key=lambda kv: -kv[1]):
            lines.append(f"{'':<18}{code}: {count:,}")
        if t.ignored_columns:
            lines.append(f"{'':<18}ignored columns: {', '.join(t.ignored_columns)}")
    if summary.other_event_types:
        kept = ", ".join(f"{k} ({v})" for k, v in sorted(summary.other_event_types.items()))
        lines.append(f"registry event types kept as 'other': {kept}")
    if summary.ignored_files:
        lines.append(f"files ignored (not a contract table): {', '.join(summary.ignored_files)}")
    if summary.overpaid_invoices:
        lines.append(f"invoices paid more than their amount: {summary.overpaid_invoices:,}")
    absent = [name for name, present in summary.sources.items() if not present]
    if absent:
        lines.append(f"optional sources without data (their features are left out): {', '.join(absent)}")
    lines.append(f"rows rejected in all: {summary.rows_rejected:,}")
    return "\n".join(lines)


@dataclass(frozen=True)
class NormalisedLedger:
    """The normalised tables a previous ``load`` wrote, and the span of dates they cover."""

    tables: dict[str, pl.DataFrame]
    data_start: date
    data_end: date

    @property
    def sources(self) -> dict[str, bool]:
        return ledger_sources(self.tables)


# Optional buyer columns; each is a feature source of its own.
FIRMOGRAPHIC_COLUMNS = ("country", "industry", "legal_form", "founded_on", "registered_capital", "paid_in_capital", "employees")


def ledger_sources(tables: Mapping[str, pl.DataFrame | pl.LazyFrame]) -> dict[str, bool]:
    """Which optional sources of the data contract the normalised ledger has data for.

    An absent table, an empty one and a column with no value are all absent. ``seller_id``
    counts only with two or more sellers (one seller shows no cross-supplier behaviour);
    ``payments`` means payment rows of their own (partial payments are visible), while
    ``settlements`` means any payment information at all (payment rows or ``paid_on``).
    Lazy frames (the feature build's scans of the loaded files) are read column by column.
    """
    lazy = {name: frame.lazy() for name, frame in tables.items()}

    def rows(name: str) -> int:
        return int(lazy[name].select(pl.len()).collect().item()) if name in lazy else 0

    invoices = lazy["invoices"].select(sellers=pl.col("seller_id").n_unique(), disputed=pl.col("disputed_on").is_not_null().any()).collect()
    buyer_columns = [c for c in FIRMOGRAPHIC_COLUMNS if c in lazy["buyers"].collect_schema().names()]
    firmographics = lazy["buyers"].select(pl.col(c).is_not_null().any() for c in buyer_columns).collect().row(0, named=True) if buyer_columns else {}
    own_payments = "payments" in lazy and bool(lazy["payments"].select((pl.col("source") == "payments").any()).collect().item())
    return {
        "settlements": rows("payments") > 0,
        "payments": own_payments,
        "seller_id": invoices["sellers"].item() > 1,
        "disputed_on": bool(invoices["disputed"].item()),
        "registry_events": rows("registry_events") > 0,
        "financials": rows("financials") > 0,
        "credit_events": rows("credit_events") > 0,
        **{c: bool(firmographics.get(c, False)) for c in FIRMOGRAPHIC_COLUMNS},
    }


def _load_summary(folder: Path) -> dict[str, object]:
    summary_file = folder / "load_summary.json"
    if not summary_file.exists():
        raise LedgerError(f"no loaded ledger in {folder}: run 'tradecredit load LEDGER_DIR' first")
    return json.loads(summary_file.read_text(encoding="utf-8"))


def read_normalised_table(folder: Path, name: str, columns: list[str]) -> pl.DataFrame:
    """Some columns of one normalised table, without reading the others."""
    _load_summary(folder)
    path = folder / f"{name}.parquet"
    if not path.exists():
        raise LedgerError(f"{folder}: {name}.parquet is missing: run 'tradecredit load LEDGER_DIR' again")
    return pl.read_parquet(path, columns=columns)


def read_ledger_span(folder: Path) -> tuple[date, date]:
    """The first and last dated fact of the loaded ledger, from its summary (no table is read)."""
    summary = _load_summary(folder)
    if not summary.get("data_start") or not summary.get("data_end"):
        raise LedgerError(f"{folder / 'load_summary.json'}: the loaded ledger has no dated facts")
    for required in ("buyers", "invoices"):
        if not (folder / f"{required}.parquet").exists():
            raise LedgerError(f"{folder}: {required}.parquet is missing: run 'tradecredit load LEDGER_DIR' again")
    return date.fromisoformat(str(summary["data_start"])), date.fromisoformat(str(summary["data_end"]))


def scan_normalised_ledger(folder: Path) -> dict[str, pl.LazyFrame]:
    """Every normalised table as a lazy scan: nothing is read until asked."""
    read_ledger_span(folder)
    return {path.stem: pl.scan_parquet(path) for path in sorted(folder.glob("*.parquet"))}


def read_normalised_ledger(folder: Path) -> NormalisedLedger:
    """Read what :func:`write_loaded_ledger` wrote; an error says to run ``load`` first."""
    data_start, data_end = read_ledger_span(folder)
    tables = {path.stem: pl.read_parquet(path) for path in sorted(folder.glob("*.parquet"))}
    return NormalisedLedger(tables, data_start, data_end)