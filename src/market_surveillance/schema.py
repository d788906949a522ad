"""Canonical tables and their validation.

Every input — synthetic or real — is a folder with one file per table (``<table>.parquet`` or
``<table>.csv``). Validation runs in DuckDB over the files (no pandas copy of large tables) and
fails with a :class:`SchemaError` naming the file, the column and the offending rows.
The same checks are exposed as SQL predicates (:func:`row_checks`) so importers can quarantine
bad rows with a reason instead of failing.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from pathlib import Path

import duckdb
import pyarrow as pa

from market_surveillance.enums import LiquidityTier, OrderEvent, Segment, Side, Typology

TS = pa.timestamp("us", tz="UTC")


@dataclass(frozen=True)
class Column:
    name: str
    type: pa.DataType
    nullable: bool = False
    positive: bool = False  # > 0 and not NaN
    non_negative: bool = False  # >= 0 and not NaN
    choices: tuple[str, ...] | None = None
    description: str = ""


@dataclass(frozen=True)
class TableSpec:
    name: str
    columns: tuple[Column, ...]
    key: tuple[str, ...] = ()
    optional_columns: tuple[Column, ...] = ()
    description: str = ""
    required: bool = False  # only trades are required; rules needing an absent table are skipped

    @property
    def all_columns(self) -> tuple[Column, ...]:
        return self.columns + self.optional_columns

    def column(self, name: str) -> Column:
        for col in self.all_columns:
            if col.name == name:
                return col
        raise KeyError(f"{self.name} has no column {name!r}")

    @property
    def arrow_schema(self) -> pa.Schema:
        return pa.schema([pa.field(c.name, c.type, nullable=c.nullable) for c in self.all_columns])


def _choices(enum: type) -> tuple[str, ...]:
    return tuple(m.value for m in enum)


SCENARIO_COL = Column(
    "scenario_id",
    pa.string(),
    nullable=True,
    description="synthetic data only: injected scenario that made the row",
)

TRADES = TableSpec(
    "trades",
    (
        Column("trade_id", pa.string(), description="unique trade id"),
        Column("ts", TS, description="execution time, UTC, microseconds"),
        Column("venue", pa.string(), description="venue (exchange) code"),
        Column("asset", pa.string(), description="instrument, e.g. BTC-USD"),
        Column("price", pa.float64(), positive=True, description="price in quote currency"),
        Column("qty", pa.float64(), positive=True, description="quantity in base units"),
        Column("buyer_id", pa.string(), nullable=True, description="buying account (null in public data)"),
        Column("seller_id", pa.string(), nullable=True, description="selling account (null in public data)"),
        Column("aggressor", pa.string(), choices=_choices(Side), description="side that crossed the spread"),
        Column("buy_order_id", pa.string(), nullable=True, description="resting or aggressing buy order"),
        Column("sell_order_id", pa.string(), nullable=True, description="resting or aggressing sell order"),
    ),
    key=("trade_id",),
    optional_columns=(SCENARIO_COL,),
    description="executions",
    required=True,
)

ORDERS = TableSpec(
    "orders",
    (
        Column("event_id", pa.string(), description="unique event id"),
        Column("ts", TS, description="event time, UTC, microseconds"),
        Column("venue", pa.string()),
        Column("asset", pa.string()),
        Column(
            "account_id",
            pa.string(),
            nullable=True,
            description="account sending the order (null in public data)",
        ),
        Column("order_id", pa.string(), description="order the event belongs to"),
        Column("event", pa.string(), choices=_choices(OrderEvent), description="new | cancel | fill"),
        Column("side", pa.string(), choices=_choices(Side)),
        Column("price", pa.float64(), positive=True, description="limit price"),
        Column(
            "qty",
            pa.float64(),
            positive=True,
            description="order qty on new, remaining qty on cancel, filled qty on fill",
        ),
    ),
    key=("event_id",),
    optional_columns=(SCENARIO_COL,),
    description="order lifecycle events",
)

ACCOUNTS = TableSpec(
    "accounts",
    (
        Column("account_id", pa.string()),
        Column("segment", pa.string(), choices=_choices(Segment)),
        Column(
            "baseline_hourly_notional",
            pa.float64(),
            non_negative=True,
            description="stored historical norm of hourly traded notional, USD",
        ),
    ),
    key=("account_id",),
    optional_columns=(
        Column(
            "owner_id",
            pa.string(),
            nullable=True,
            description="beneficial owner / legal entity; several accounts may share one (null: unknown)",
        ),
    ),
    description="account reference data",
)

NETWORK = TableSpec(
    "network",
    (
        Column("account_id", pa.string()),
        Column("device_id", pa.string()),
        Column("ip_subnet", pa.string()),
    ),
    description="device fingerprints and IP subnets seen per account (many rows per account)",
)

POSITIONS = TableSpec(
    "positions",
    (
        Column("account_id", pa.string()),
        Column("asset", pa.string()),
        Column("net_qty", pa.float64(), description="signed net position in base units"),
        Column("as_of", TS),
    ),
    key=("account_id", "asset", "as_of"),
    description="position snapshots",
)

ASSETS = TableSpec(
    "assets",
    (
        Column("asset", pa.string()),
        Column("float_qty", pa.float64(), positive=True, description="free float in base units"),
    ),
    key=("asset",),
    description="instrument reference data",
)

LABELS = TableSpec(
    "labels",
    (
        Column("scenario_id", pa.string()),
        Column("typology", pa.string(), choices=_choices(Typology)),
        Column("asset", pa.string()),
        Column("venue", pa.string(), nullable=True),
        Column("accounts", pa.list_(pa.string()), description="accounts involved (empty for market-wide)"),
        Column("start_ts", TS),
        Column("end_ts", TS),
    ),
    key=("scenario_id",),
    optional_columns=(
        Column("variant", pa.string(), nullable=True, description="form of the typology the scenario takes"),
        Column(
            "tier",
            pa.string(),
            nullable=True,
            choices=_choices(LiquidityTier),
            description="liquidity tier of the scenario's asset",
        ),
    ),
    description="ground truth of injected scenarios (synthetic data only)",
)

BOOK = TableSpec(
    "book",
    (
        Column("ts", TS, description="time the level changed, UTC, microseconds"),
        Column("venue", pa.string()),
        Column("asset", pa.string()),
        Column("side", pa.string(), choices=_choices(Side), description="buy = bid level, sell = ask level"),
        Column("price", pa.float64(), positive=True, description="price of the level"),
        Column(
            "qty",
            pa.float64(),
            non_negative=True,
            description="resting quantity at the level after the change (0: the level is gone)",
        ),
        Column("seq", pa.int64(), description="order of changes within one timestamp (later wins)"),
    ),
    description="level-based (L2) order book changes, from feeds without order ids (Tardis)",
)

TABLES: dict[str, TableSpec] = {
    spec.name: spec for spec in (TRADES, ORDERS, ACCOUNTS, NETWORK, POSITIONS, ASSETS, LABELS, BOOK)
}


class InputError(ValueError):
    """Input that cannot be used at all (unreadable or corrupt file, empty input): one line naming the file."""


class SchemaError(ValueError):
    """An input table does not match the canonical schema."""

    def __init__(self, problems: Sequence[Problem]):
        self.problems = list(problems)
        super().__init__("\n".join(p.message() for p in self.problems))


@dataclass(frozen=True)
class Problem:
    file: str
    column: str | None
    reason: str
    rows: tuple[int, ...] = ()  # 1-based data row numbers (header excluded), first few only
    count: int = 0

    def message(self) -> str:
        where = f"{self.file}"
        if self.column:
            where += f", column {self.column!r}"
        if self.rows:
            shown = ", ".join(str(r) for r in self.rows)
            more = f" (+{self.count - len(self.rows)} more)" if self.count > len(self.rows) else ""
            return f"{where}: {self.reason} in {self.count} row(s): rows {shown}{more}"
        if self.count:
            return f"{where}: {self.reason} in {self.count} row(s)"
        return f"{where}: {self.reason}"


@dataclass(frozen=True)
class Limits:
    """Plausibility bounds of the validation engine; every run may set its own (``--ts-min``/``--ts-max``).

    Timestamps before ``ts_min`` (default 2009-01-01, before any crypto venue traded) or after ``ts_max``
    (default: now + one day) are bad rows: a trade dated 1970 is a unit or parsing error, not a trade.
    """

    ts_min: dt.datetime = dt.datetime(2009, 1, 1, tzinfo=dt.UTC)
    ts_max: dt.datetime | None = None

    def bounds(self) -> tuple[dt.datetime, dt.datetime]:
        hi = self.ts_max if self.ts_max is not None else dt.datetime.now(dt.UTC) + dt.timedelta(days=1)
        return _utc(self.ts_min), _utc(hi)


def _utc(t: dt.datetime) -> dt.datetime:
    return t.replace(tzinfo=dt.UTC) if t.tzinfo is None else t.astimezone(dt.UTC)


@dataclass(frozen=True)
class RowCheck:
    """One per-row check, as a SQL predicate that is TRUE for a bad row.

    ``window`` checks use window functions over the whole table (duplicate ids, order lifecycle) and may
    read ``__row`` (the 1-based source row)."""

    column: str | None
    reason: str
    bad_sql: str
    window: bool = False
    group_key: tuple[str, ...] = ()  # a duplicate-key check: counted with a group-by on these columns


def _q(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _lit(s: str) -> str:
    return "'" + s.replace("'", "''") + "'"


def _duck_type(t: pa.DataType) -> str:
    if pa.types.is_timestamp(t):
        return "TIMESTAMPTZ"
    if pa.types.is_floating(t):
        return "DOUBLE"
    if pa.types.is_integer(t):
        return "BIGINT"
    if pa.types.is_list(t):
        return "VARCHAR[]"
    return "VARCHAR"


_NUMERIC = (
    "DOUBLE",
    "FLOAT",
    "REAL",
    "BIGINT",
    "INTEGER",
    "SMALLINT",
    "TINYINT",
    "HUGEINT",
    "UBIGINT",
    "UINTEGER",
    "USMALLINT",
    "UTINYINT",
    "DECIMAL",
)


def _is_numeric(duck_type: str) -> bool:
    return duck_type.upper().startswith(_NUMERIC)


def parse_sql(col: Column, actual: str | None = None) -> str:
    """SQL giving the canonical-typed value of raw column ``col`` (NULL where the value cannot be parsed).

    ``actual`` is the column's type in the file (``VARCHAR`` for CSV). Validation and loading both use
    this one expression, so what was checked is exactly what is loaded. A list column in CSV is a JSON
    array of strings (``["a","b"]``, ``[]`` for none): see :func:`encode_csv`.
    """
    c = _q(col.name)
    target = _duck_type(col.type)
    a = (actual or "VARCHAR").upper()
    if target == "VARCHAR":
        return c if a == "VARCHAR" else f"CAST({c} AS VARCHAR)"
    if target == "VARCHAR[]":
        if a.endswith("[]"):
            return f"CAST({c} AS VARCHAR[])"
        if a == "VARCHAR":
            return (
                f"CASE WHEN json_valid({c}) THEN CASE WHEN json_type({c}) = 'ARRAY' "
                f"THEN from_json({c}, '[\"VARCHAR\"]') END END"
            )
        return "CAST(NULL AS VARCHAR[])"
    if target == "TIMESTAMPTZ":
        if a.startswith("TIMESTAMP") or a == "DATE":
            return f"CAST({c} AS TIMESTAMPTZ)"
        if a == "VARCHAR":
            return f"TRY_CAST({c} AS TIMESTAMPTZ)"
        return "CAST(NULL AS TIMESTAMPTZ)"  # a number is not a timestamp (see the epoch hint)
    if a == "VARCHAR":
        return f"TRY_CAST({c} AS {target})"
    if _is_numeric(a):
        return f"TRY_CAST({c} AS {target})"
    return f"CAST(NULL AS {target})"


def _ts_lit(t: dt.datetime) -> str:
    return f"TIMESTAMPTZ '{t.isoformat()}'"


def row_checks(
    spec: TableSpec,
    present: Mapping[str, str] | Sequence[str],
    limits: Limits | None = None,
) -> list[RowCheck]:
    """Per-row checks for the columns of ``spec`` that are present, in reporting order.

    ``present`` maps column → DuckDB type in the file (a plain list means all text, as in CSV).
    """
    types = dict(present) if isinstance(present, Mapping) else dict.fromkeys(present, "VARCHAR")
    lo, hi = (limits or Limits()).bounds()
    checks: list[RowCheck] = []
    for col in spec.all_columns:
        if col.name not in types:
            continue
        c = _q(col.name)
        dt_ = _duck_type(col.type)
        p = parse_sql(col, types[col.name])
        actual = types[col.name].upper()
        # a typed column (Parquet) cannot hold an unparseable value: its parse checks would cost a cast per row
        typed = (
            (dt_ == "TIMESTAMPTZ" and actual.startswith(("TIMESTAMP", "DATE")))
            or (dt_ == "DOUBLE" and _is_numeric(actual))
            or (dt_ == "VARCHAR[]" and actual.endswith("[]"))
        )
        if not col.nullable:
            if dt_ == "VARCHAR":
                # blank ids are missing too; the length test keeps trim() off ordinary values
                txt = c if actual == "VARCHAR" else f"CAST({c} AS VARCHAR)"
                missing = f"({c} IS NULL OR (length({txt}) < 4 AND trim({txt}) = ''))"
            else:
                missing = f"({c} IS NULL)"
            checks.append(RowCheck(col.name, "missing value", missing))
        if dt_ == "TIMESTAMPTZ" and not typed:
            checks.append(
                RowCheck(
                    col.name,
                    "epoch number where a timestamp is expected (13 digits = milliseconds since 1970: "
                    "write ISO-8601 UTC text or a Parquet timestamp)",
                    f"({c} IS NOT NULL AND {p} IS NULL AND "
                    f"regexp_full_match(trim(CAST({c} AS VARCHAR)), '-?[0-9]+([.][0-9]*)?([eE][0-9]+)?'))",
                )
            )
        if dt_ != "VARCHAR" and not typed:
            what = "JSON array of strings" if dt_ == "VARCHAR[]" else dt_.lower()
            checks.append(
                RowCheck(col.name, f"value not parseable as {what}", f"({c} IS NOT NULL AND {p} IS NULL)")
            )
        if dt_ == "TIMESTAMPTZ":
            if lo > dt.datetime(1971, 1, 1, tzinfo=dt.UTC):
                checks.append(
                    RowCheck(
                        col.name,
                        "timestamp in 1970 (epoch seconds or milliseconds read as microseconds?)",
                        f"({p} < TIMESTAMPTZ '1971-01-01 00:00:00+00')",
                    )
                )
            checks.append(
                RowCheck(
                    col.name,
                    f"timestamp outside the plausible range {lo:%Y-%m-%d %H:%M} – {hi:%Y-%m-%d %H:%M} UTC "
                    "(--ts-min/--ts-max)",
                    f"({p} < {_ts_lit(lo)} OR {p} > {_ts_lit(hi)})",
                )
            )
        if col.positive:
            checks.append(
                RowCheck(
                    col.name, "NaN, infinite or non-positive value", f"(isnan({p}) OR isinf({p}) OR {p} <= 0)"
                )
            )
        elif col.non_negative:
            checks.append(
                RowCheck(
                    col.name, "NaN, infinite or negative value", f"(isnan({p}) OR isinf({p}) OR {p} < 0)"
                )
            )
        elif dt_ == "DOUBLE":
            checks.append(RowCheck(col.name, "NaN or infinite value", f"(isnan({p}) OR isinf({p}))"))
        if col.choices:
            allowed = ", ".join(_lit(v) for v in col.choices)
            checks.append(
                RowCheck(
                    col.name,
                    f"unknown value (allowed: {', '.join(col.choices)})",
                    f"({c} IS NOT NULL AND CAST({c} AS VARCHAR) NOT IN ({allowed}))",
                )
            )
    return checks


#: order ids whose ``new`` event came in an earlier part of a stream (``watch --follow``): a fill or cancel of
#: one of them in a later part is no lifecycle error (see :func:`known_orders`)
_KNOWN_ORDERS: ContextVar[pa.Array | None] = ContextVar("ms_known_orders", default=None)
_KNOWN_ORDERS_VIEW = "__ms_known_orders"


@contextmanager
def known_orders(order_ids: pa.Array) -> Iterator[None]:
    """Within the block, the lifecycle check of an orders table accepts a fill or cancel of ``order_ids``
    without a ``new`` in the same table: orders submitted in an earlier part of a live stream."""
    token = _KNOWN_ORDERS.set(order_ids)
    try:
        yield
    finally:
        _KNOWN_ORDERS.reset(token)


def table_checks(
    spec: TableSpec, present: Mapping[str, str] | Sequence[str], *, known_view: str | None = None
) -> list[RowCheck]:
    """Checks across rows: duplicate ids (the first row of an id is kept) and, for orders, the lifecycle
    (``known_view``: a relation of order ids submitted before this table, see :func:`known_orders`)."""
    types = dict(present) if isinstance(present, Mapping) else dict.fromkeys(present, "VARCHAR")
    checks: list[RowCheck] = []
    if spec.key and all(k in types for k in spec.key):
        key = ", ".join(_q(k) for k in spec.key)
        checks.append(
            RowCheck(
                ", ".join(spec.key),
                "duplicate id (the same id with different values in an earlier row)",
                f"row_number() OVER (PARTITION BY {key} ORDER BY __row) > 1",
                window=True,
                group_key=spec.key,
            )
        )
    if spec.name == "orders" and {"order_id", "event", "ts"} <= types.keys():
        ts = parse_sql(ORDERS.column("ts"), types["ts"])
        ev = "CAST(event AS VARCHAR)"
        earlier = (
            "" if known_view is None else f" AND CAST(order_id AS VARCHAR) NOT IN (SELECT id FROM {known_view})"
        )
        checks.append(
            RowCheck(
                "order_id",
                "fill/cancel without an earlier `new` event of its order",
                f"({ev} IN ('fill', 'cancel') AND NOT coalesce(min(CASE WHEN {ev} = 'new' THEN {ts} END) "
                f"OVER (PARTITION BY order_id) <= {ts}, false){earlier})",
                window=True,
            )
        )
    return checks


def find_table_file(data_dir: str | Path, table: str) -> Path | None:
    """The file holding ``table`` in ``data_dir`` (Parquet preferred over CSV), or the folder of a
    date-partitioned Parquet dataset (``<table>/date=YYYY-MM-DD/*.parquet``)."""
    base = Path(data_dir)
    for ext in (".parquet", ".csv"):
        p = base / f"{table}{ext}"
        if p.exists():
            return p
    folder = base / table
    if folder.is_dir() and any(folder.glob("date=*/*.parquet")):
        return folder
    return None


#: the UTC dates ``detect --since/--until`` selects; partitions outside are never opened
_DATE_WINDOW: ContextVar[tuple[dt.date | None, dt.date | None]] = ContextVar(
    "ms_date_window", default=(None, None)
)


@contextmanager
def date_window(since: dt.date | None, until: dt.date | None) -> Iterator[None]:
    """Within the block, date-partitioned tables are read from the partitions in ``[since, until]`` only.

    The file list is fixed when a table's relation is built (views made inside the block keep it), so the
    pruning is by file: DuckDB never opens the other partitions.
    """
    if since is not None and until is not None and since > until:
        raise InputError(f"--since {since} is after --until {until}")
    token = _DATE_WINDOW.set((since, until))
    try:
        yield
    finally:
        _DATE_WINDOW.reset(token)


def partition_files(folder: Path) -> list[Path]:
    """Parquet files of a ``date=YYYY-MM-DD`` partitioned folder inside the current :func:`date_window`."""
    since, until = _DATE_WINDOW.get()
    files: list[Path] = []
    for part in sorted(folder.glob("date=*")):
        try:
            day = dt.date.fromisoformat(part.name.split("=", 1)[1])
        except ValueError as exc:
            raise InputError(f"{part}: partition folder name is not date=YYYY-MM-DD") from exc
        if (since is None or day >= since) and (until is None or day <= until):
            files += sorted(part.glob("*.parquet"))
    return files


def csv_relation_sql(path: Path, *, header: bool = True) -> str:
    """DuckDB relation reading a CSV file as text; short rows (a truncated last line) are padded with NULLs
    so they are reported per row instead of breaking the CSV sniffer."""
    return f"read_csv({_lit(str(path))}, header={str(header).lower()}, all_varchar=true, null_padding=true)"


def _raw_relation_sql(path: Path) -> str:
    if path.is_dir():  # date-partitioned dataset: only the partitions of the date window
        files = partition_files(path)
        if not files:  # nothing in the window: the schema of any partition, no rows
            any_file = next(iter(sorted(path.glob("date=*/*.parquet"))))
            return f"(SELECT * FROM read_parquet({_lit(str(any_file))}) LIMIT 0)"
        listed = ", ".join(_lit(str(f)) for f in files)
        return f"read_parquet([{listed}], union_by_name=true)"
    if path.suffix == ".parquet":
        return f"read_parquet({_lit(str(path))})"
    # all_varchar so a bad value is reported per row instead of failing type sniffing
    return csv_relation_sql(path)


def truncated_last_line(path: Path) -> tuple[int, int] | None:
    """``(fields, header fields)`` when a CSV file's last line has no newline and fewer fields than its
    header (a download or copy cut short), else None."""
    import csv

    with path.open("rb") as f:
        f.seek(0, 2)
        size = f.tell()
        if size == 0:
            return None
        f.seek(max(0, size - 65536))
        tail = f.read()
        if tail.endswith(b"\n"):
            return None
        f.seek(0)
        head = f.readline()
    last = tail.rsplit(b"\n", 1)[-1].decode("utf-8", "replace")
    try:
        n_head = len(next(csv.reader([head.decode("utf-8-sig", "replace").strip("\r\n")]), []))
        n_last = len(next(csv.reader([last.strip("\r")]), []))
    except csv.Error:  # not CSV at all: the reader reports that, not this check
        return None
    return (n_last, n_head) if n_last < n_head else None


def describe(con: duckdb.DuckDBPyConnection, relation_sql: str, file_label: str) -> dict[str, str]:
    """Column → DuckDB type of a relation; an unreadable file is one :class:`InputError` line."""
    try:
        rows = con.execute(f"DESCRIBE SELECT * FROM {relation_sql}").fetchall()
    except duckdb.Error as exc:
        raise InputError(f"{file_label}: cannot read: {one_line(exc)}") from exc
    return {r[0]: r[1] for r in rows}


def one_line(exc: BaseException) -> str:
    """The first meaningful line of an exception message (engines add context lines and carets)."""
    for line in str(exc).splitlines():
        if line.strip():
            return line.strip()
    return type(exc).__name__


@dataclass
class Screened:
    """What the validation engine made of one table: accepted rows and the account of every other row."""

    relation: str  # SQL relation of the accepted rows (source columns, no helper columns)
    types: dict[str, str]
    rows_in: int = 0
    quarantined: int = 0
    duplicates: int = 0  # exact repeats of an earlier row, removed
    problems: list[Problem] = field(default_factory=list)
    bad_rows: pa.Table | None = None  # quarantined rows: source columns as text + source_file/row + reason

    @property
    def accepted(self) -> int:
        return self.rows_in - self.quarantined - self.duplicates

    def counts(self) -> dict[str, int]:
        return {
            "rows_in": self.rows_in,
            "accepted": self.accepted,
            "quarantined": self.quarantined,
            "duplicates": self.duplicates,
        }


_counter = iter(range(1 << 62))


def screen(
    con: duckdb.DuckDBPyConnection,
    spec: TableSpec,
    relation_sql: str,
    file_label: str,
    *,
    limits: Limits | None = None,
    quarantine: bool = False,
    extra_checks: Sequence[RowCheck] = (),
    labels: Mapping[str, str] | None = None,
    max_rows: int = 5,
) -> Screened:
    """The validation engine: check one table and return its accepted rows.

    ``relation_sql`` is a DuckDB relation (table function, view or subquery) with the canonical column
    names; it may carry ``__row`` (1-based source row) and ``__file`` (source file) helper columns, else
    rows are numbered in scan order and labelled ``file_label``. Steps:

    1. required columns present (else :class:`SchemaError`, whatever ``quarantine`` says);
    2. exact repeats of an earlier row are removed and counted (``duplicates``);
    3. count queries, one per check (parallel aggregates; the whole cost when the data is clean);
    4. only when a count is non-zero: without ``quarantine`` the row-naming query lists, per check, the
       count and first rows (its counts are the count queries' counts: a test holds them equal); with
       ``quarantine`` each bad row is set aside with its first failing check as the reason.

    ``labels`` renames canonical columns to the source's own names in messages (ccxt ``amount`` for
    ``qty``); ``extra_checks`` are source-specific checks run first.
    """
    try:
        return _screen(
            con, spec, relation_sql, file_label, limits, quarantine, extra_checks, labels, max_rows
        )
    except duckdb.Error as exc:  # a corrupt page, bytes that are no CSV, ...: one line naming the file
        raise InputError(f"{file_label}: cannot read: {one_line(exc)}") from exc


def _screen(
    con: duckdb.DuckDBPyConnection,
    spec: TableSpec,
    relation_sql: str,
    file_label: str,
    limits: Limits | None,
    quarantine: bool,
    extra_checks: Sequence[RowCheck],
    labels: Mapping[str, str] | None,
    max_rows: int,
) -> Screened:
    labels = dict(labels or {})
    tag = f"__ms{next(_counter)}"
    types = describe(con, relation_sql, file_label)
    missing = [c.name for c in spec.columns if c.name not in types]
    if missing:
        raise SchemaError([Problem(file_label, labels.get(c, c), "missing column") for c in missing])
    data_cols = [c for c in types if not c.startswith("__")]
    known = _KNOWN_ORDERS.get() if spec.name == "orders" else None
    if known is not None:
        con.register(_KNOWN_ORDERS_VIEW, pa.table({"id": known.cast(pa.string())}))
    known_view = _KNOWN_ORDERS_VIEW if known is not None else None
    checks = [
        *extra_checks,
        *row_checks(spec, types, limits),
        *table_checks(spec, types, known_view=known_view),
    ]
    has_row, has_file = "__row" in types, "__file" in types
    extra = []
    if not has_row:
        extra.append("row_number() OVER () AS __row")
    if not has_file:
        extra.append(f"{_lit(file_label)} AS __file")
    numbered = f"(SELECT *, {', '.join(extra)} FROM {relation_sql})" if extra else relation_sql
    src = relation_sql  # what the count queries scan: the file itself while nothing needs numbering
    if any("__row" in ch.bad_sql or "__file" in ch.bad_sql for ch in extra_checks):
        src = numbered
    out = Screened(relation_sql, types)

    # 2. exact duplicates: a duplicate key is necessary for one, so a key-less scan settles the clean case
    cols = ", ".join(_q(c) for c in data_cols)
    key_repeats = None  # rows repeating an earlier row's key (exact repeats included)
    if spec.key and all(k in types for k in spec.key):
        key = ", ".join(_q(k) for k in spec.key)
        key_repeats = _scalar(
            con, f"SELECT coalesce(sum(n - 1), 0) FROM (SELECT count(*) AS n FROM {src} GROUP BY {key})"
        )
    if key_repeats is None or key_repeats:
        out.duplicates = _scalar(
            con, f"SELECT coalesce(sum(n - 1), 0) FROM (SELECT count(*) AS n FROM {src} GROUP BY {cols})"
        )
    if out.duplicates:
        numbered = (
            f"(SELECT * EXCLUDE (__dn) FROM (SELECT *, row_number() OVER (PARTITION BY {cols} ORDER BY __row) "
            f"AS __dn FROM {numbered}) WHERE __dn = 1)"
        )
        src = numbered

    # 3. count queries, in reporting order (a row's quarantine reason is its first failing check)
    plain = [i for i, ch in enumerate(checks) if not ch.window]
    aggs = ["count(*)", *(f"count(*) FILTER (WHERE {checks[i].bad_sql})" for i in plain)]
    res = con.execute(f"SELECT {', '.join(aggs)} FROM {src}").fetchall()[0]
    n_rows, counts = int(res[0]), [0] * len(checks)
    for i, n in zip(plain, res[1:], strict=True):
        counts[i] = int(n)
    for i, ch in enumerate(checks):
        if not ch.window:
            continue
        if ch.group_key and key_repeats is not None and ch.group_key == spec.key:
            # counted above with a parallel group-by; each exact repeat is also a key repeat
            counts[i] = key_repeats - out.duplicates
            continue
        if ch.group_key:
            key = ", ".join(_q(k) for k in ch.group_key)
            sql = f"SELECT coalesce(sum(n - 1), 0) FROM (SELECT count(*) AS n FROM {src} GROUP BY {key})"
        else:
            body = numbered if "__row" in ch.bad_sql or "__file" in ch.bad_sql else src
            sql = f"SELECT count(*) FROM (SELECT ({ch.bad_sql}) AS __b FROM {body}) WHERE __b"
        counts[i] = _scalar(con, sql)
    ordered = checks
    out.rows_in = n_rows + out.duplicates
    if not any(counts):
        if out.duplicates:
            out.relation = f"(SELECT {cols} FROM {numbered})"
        return out

    # 4. name the rows (same predicates, over numbered rows; window checks as precomputed columns)
    wide_cols = ", ".join(f"({ch.bad_sql}) AS __w{i}" for i, ch in enumerate(checks) if ch.window)
    wide = f"(SELECT *{', ' + wide_cols if wide_cols else ''} FROM {numbered})"
    preds = [f"__w{i}" if ch.window else ch.bad_sql for i, ch in enumerate(checks)]
    if not quarantine:
        for ch, pred, n_count in zip(ordered, preds, counts, strict=True):
            if not n_count:
                continue
            rows = con.execute(
                f"SELECT __file, count(*), list(__row ORDER BY __row)[1:{max_rows}] FROM {wide} "
                f"WHERE {pred} GROUP BY __file ORDER BY min(__row)"
            ).fetchall()
            named = sum(int(r[1]) for r in rows)
            for f, n, first in rows:
                # the count query is the authority on how many; the naming query only says which
                n_report = int(n) if named == n_count else max(int(n), n_count if len(rows) == 1 else int(n))
                out.problems.append(
                    Problem(
                        str(f),
                        labels.get(ch.column or "", ch.column),
                        ch.reason,
                        tuple(first or ()),
                        n_report,
                    )
                )
            if not rows:
                out.problems.append(
                    Problem(file_label, labels.get(ch.column or "", ch.column), ch.reason, (), n_count)
                )
        return out

    cases = " ".join(f"WHEN {pred} THEN {i}" for i, pred in enumerate(preds))
    tagged = f"{tag}_tagged"
    con.execute(f"CREATE OR REPLACE TEMP TABLE {tagged} AS SELECT *, CASE {cases} END AS __bad FROM {wide}")
    reasons = (
        "CASE __bad "
        + " ".join(
            f"WHEN {i} THEN {_lit((labels.get(ch.column, ch.column) + ': ' if ch.column else '') + ch.reason)}"
            for i, ch in enumerate(ordered)
        )
        + " END"
    )
    sel = ", ".join(f"CAST({_q(c)} AS VARCHAR) AS {_q(labels.get(c, c))}" for c in data_cols)
    out.bad_rows = con.sql(
        f"SELECT {sel}, __file AS source_file, __row AS source_row, {reasons} AS reason "
        f"FROM {tagged} WHERE __bad IS NOT NULL ORDER BY __file, __row"
    ).to_arrow_table()
    out.quarantined = out.bad_rows.num_rows
    out.relation = f"(SELECT {cols} FROM {tagged} WHERE __bad IS NULL)"
    return out


def _scalar(con: duckdb.DuckDBPyConnection, sql: str) -> int:
    res = con.execute(sql).fetchall()
    return int(res[0][0]) if res and res[0][0] is not None else 0


def validate_relation(
    con: duckdb.DuckDBPyConnection,
    spec: TableSpec,
    relation_sql: str,
    file_label: str,
    *,
    limits: Limits | None = None,
    max_rows: int = 5,
) -> list[Problem]:
    """All problems of one table given as a DuckDB relation expression (a table function or view)."""
    try:
        return screen(con, spec, relation_sql, file_label, limits=limits, max_rows=max_rows).problems
    except SchemaError as exc:
        return exc.problems


def validate_file(
    path: str | Path,
    table: str,
    con: duckdb.DuckDBPyConnection | None = None,
    *,
    limits: Limits | None = None,
) -> list[Problem]:
    """Problems found in one table file (empty list if valid)."""
    path = Path(path)
    con = con or _utc_connection()
    return validate_relation(con, TABLES[table], table_relation_sql(path), str(path), limits=limits)


def table_relation_sql(path: Path) -> str:
    """The raw relation of a table file, with a truncated last CSV line marked for the engine.

    A cut-short last line is padded with NULLs by the reader; the engine reports it through
    :func:`truncation_check` (see :func:`screen_file`)."""
    return _raw_relation_sql(path)


def truncation_check(path: Path) -> RowCheck | None:
    """A check naming the last row of a CSV file whose last line was cut short, or None."""
    if path.suffix.lower() != ".csv":
        return None
    cut = truncated_last_line(path)
    if cut is None:
        return None
    return RowCheck(
        None,
        f"truncated last line ({cut[0]} of {cut[1]} fields; the file was cut short)",
        f"(__file = {_lit(str(path))} AND __row = max(__row) OVER ())",
        window=True,
    )


def screen_file(
    con: duckdb.DuckDBPyConnection,
    path: Path,
    table: str,
    *,
    limits: Limits | None = None,
    quarantine: bool = False,
    load_text: bool = False,
) -> Screened:
    """:func:`screen` over one canonical table file (CSV or Parquet).

    ``load_text`` parses a CSV file once into a DuckDB temp table (its text as read) that every check and
    the returned relation then scan, instead of re-parsing the file per query: for callers that read the
    accepted rows again (``detect``). Parquet is always scanned in place.
    """
    if path.stat().st_size == 0:
        raise InputError(f"{path}: empty file (not even a header)")
    cut = truncation_check(path)
    relation = _raw_relation_sql(path)
    if load_text and path.is_file() and path.suffix.lower() != ".parquet":
        loaded = f"__ms_text_{table}"
        typed = None if quarantine else _typed_csv_sql(path, TABLES[table])
        if typed is not None:
            try:
                con.execute(f"CREATE OR REPLACE TEMP TABLE {loaded} AS SELECT * FROM {typed}")
            except duckdb.Error:
                typed = None  # a value the typed reader refuses: the text path below names its row
        if typed is None:
            try:
                con.execute(f"CREATE OR REPLACE TEMP TABLE {loaded} AS SELECT * FROM {relation}")
            except duckdb.Error as exc:  # the same one line as a failing check query would give
                raise InputError(f"{path}: cannot read: {one_line(exc)}") from exc
        relation = loaded
    return screen(
        con,
        TABLES[table],
        relation,
        str(path),
        limits=limits,
        quarantine=quarantine,
        extra_checks=[cut] if cut else (),
    )


def _typed_csv_sql(path: Path, spec: TableSpec) -> str | None:
    """A CSV reader that parses the canonical numeric and timestamp columns while it reads (the others stay
    text, as :func:`csv_relation_sql` reads them), or None when no such column is in the header.

    The fast path of :func:`screen_file` (``load_text``, no quarantine): a clean file loads already typed, its
    parse checks have nothing left to find (a typed column cannot hold an unparseable value) and the loaded
    copy needs no cast per row afterwards. The reader refuses the whole file at the first value it cannot
    parse; the caller then loads the text, so bad values are reported by row exactly as before, and
    quarantined rows always keep their text (the caller passes no typed reader with ``quarantine``).
    """
    import csv

    # the header as Python's csv module reads it: a name DuckDB does not find (another delimiter, say) fails
    # the typed read and the caller falls back to the text path, so this guess is never trusted blindly; it
    # spares a second sniff of the file
    try:
        with path.open(encoding="utf-8-sig", newline="") as f:
            names = next(csv.reader([f.readline()]), [])
    except (OSError, UnicodeDecodeError, csv.Error):
        return None
    wanted = {c.name: _duck_type(c.type) for c in spec.all_columns}
    types = {n: wanted[n] for n in names if wanted.get(n) in ("DOUBLE", "BIGINT", "TIMESTAMPTZ")}
    if not types:
        return None
    listed = ", ".join(f"{_lit(n)}: {_lit(t)}" for n, t in types.items())
    return csv_relation_sql(path)[:-1] + f", types={{{listed}}})"


def _utc_connection() -> duckdb.DuckDBPyConnection:
    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")
    return con


#: tables ``detect`` reads; ``labels`` is ground truth for ``evaluate`` only
DETECT_TABLES = ("trades", "orders", "accounts", "network", "positions", "assets", "book")


def validate_dir(
    data_dir: str | Path,
    tables: Sequence[str] | None = None,
    con: duckdb.DuckDBPyConnection | None = None,
    *,
    limits: Limits | None = None,
) -> None:
    """Validate every canonical table present in ``data_dir``; raise :class:`SchemaError` listing all problems.

    Required tables that are absent are problems too; ``tables`` limits the check to those names.
    """
    con = con or _utc_connection()
    problems: list[Problem] = []
    names = list(tables) if tables is not None else list(TABLES)
    for name in names:
        spec = TABLES[name]
        path = find_table_file(data_dir, name)
        if path is None:
            if spec.required and tables is None:
                problems.append(Problem(str(Path(data_dir) / f"{name}.parquet"), None, "table file missing"))
            continue
        try:
            problems.extend(screen_file(con, path, name, limits=limits).problems)
        except SchemaError as exc:
            problems.extend(exc.problems)
    if problems:
        raise SchemaError(problems)


def cast_select_sql(spec: TableSpec, present: Mapping[str, str] | Sequence[str], relation_sql: str) -> str:
    """SELECT that casts the present canonical columns of a raw relation to their canonical types."""
    types = dict(present) if isinstance(present, Mapping) else dict.fromkeys(present, "VARCHAR")
    parts = []
    for col in spec.all_columns:
        if col.name in types:
            parts.append(
                f"CAST({parse_sql(col, types[col.name])} AS {_duck_type(col.type)}) AS {_q(col.name)}"
            )
        elif col in spec.optional_columns:
            parts.append(f"CAST(NULL AS {_duck_type(col.type)}) AS {_q(col.name)}")
    return f"SELECT {', '.join(parts)} FROM {relation_sql}"


def register_dir(
    con: duckdb.DuckDBPyConnection,
    data_dir: str | Path,
    *,
    validate: bool = True,
    tables: Sequence[str] = DETECT_TABLES,
    limits: Limits | None = None,
    quarantine: bool = False,
) -> dict[str, Screened]:
    """Create one DuckDB view per table file in ``data_dir`` with canonical types; returns table → screening.

    Views scan Parquet files lazily, so tables larger than memory are never loaded whole (with ``quarantine``
    and bad rows present the table is materialised once, tagged); a validated CSV file is parsed once into a
    temp table of its text (``screen_file(load_text=True)``). ``validate=False`` trusts the files.
    Raises :class:`SchemaError` listing every table's problems.
    """
    con.execute("SET TimeZone = 'UTC'")
    out: dict[str, Screened] = {}
    problems: list[Problem] = []
    for name in tables:
        spec = TABLES[name]
        path = find_table_file(data_dir, name)
        if path is None:
            if spec.required:
                problems.append(Problem(str(Path(data_dir) / f"{name}.parquet"), None, "table file missing"))
            continue
        if validate:
            try:
                s = screen_file(con, path, name, limits=limits, quarantine=quarantine, load_text=True)
            except SchemaError as exc:
                problems.extend(exc.problems)
                continue
            problems.extend(s.problems)
        else:
            raw = _raw_relation_sql(path)
            s = Screened(raw, describe(con, raw, str(path)))
        out[name] = s
    if problems:
        raise SchemaError(problems)
    for name, s in out.items():
        con.execute(
            f"CREATE OR REPLACE VIEW {_q(name)} AS {cast_select_sql(TABLES[name], s.types, s.relation)}"
        )
    return out


def encode_csv(table: pa.Table) -> pa.Table:
    """A canonical table ready for CSV: list columns become JSON arrays of strings (``[]`` when empty).

    This is the one CSV encoding of list columns (``labels.accounts``); :func:`parse_sql` reads it back
    identically, empty lists and ids holding ``;`` or ``,`` included."""
    import json

    for i, f in enumerate(table.schema):
        if pa.types.is_list(f.type):
            enc = [
                None if v is None else json.dumps(v, ensure_ascii=False) for v in table.column(i).to_pylist()
            ]
            table = table.set_column(i, f.name, pa.array(enc, pa.string()))
    return table


def read_table(
    data_dir: str | Path,
    name: str,
    *,
    limits: Limits | None = None,
    con: duckdb.DuckDBPyConnection | None = None,
) -> pa.Table | None:
    """One validated table of a canonical folder as Arrow with canonical types (None when absent)."""
    path = find_table_file(data_dir, name)
    if path is None:
        return None
    con = con or _utc_connection()
    s = screen_file(con, path, name, limits=limits)
    if s.problems:
        raise SchemaError(s.problems)
    return conform(name, con.sql(cast_select_sql(TABLES[name], s.types, s.relation)).to_arrow_table())


def empty_table(name: str) -> pa.Table:
    """An empty Arrow table with the canonical schema of ``name`` (optional columns included)."""
    return TABLES[name].arrow_schema.empty_table()


def conform(name: str, table: pa.Table | Mapping[str, object]) -> pa.Table:
    """Cast an Arrow table (or column mapping) to the canonical schema, adding absent optional columns."""
    spec = TABLES[name]
    if not isinstance(table, pa.Table):
        table = pa.table(table)
    arrays = []
    for col in spec.all_columns:
        if col.name in table.column_names:
            arrays.append(table.column(col.name).cast(col.type))
        elif col in spec.optional_columns:
            arrays.append(pa.nulls(table.num_rows, col.type))
        else:
            raise SchemaError([Problem(f"<{name} in memory>", col.name, "missing column")])
    return pa.Table.from_arrays(arrays, schema=spec.arrow_schema)


VALIDATION_MARKDOWN = """
## Validation: one engine for every input

`schema.screen` is the one validation engine. Every path runs it: a canonical folder (`detect --data DIR`,
`import canonical`), every adapter (ccxt and Tardis map their columns to the canonical ones and are checked
as such; LOBSTER's canonical output too), the Spark engine (DuckDB validates the files before Spark reads
them) and `evaluate` (the labels table). `detect` reads trades, orders, accounts, network, positions and
assets; it never reads or validates `labels` (ground truth is for `evaluate` only).

Checks, per row: required column present; value parseable as the column type; no missing value in a
non-null column (blank ids included); prices and quantities finite and > 0 (IEEE NaN, +inf and -inf are
caught in Parquet and CSV alike); timestamps inside a plausible range, by default not before 2009-01-01 and
not after now + 1 day (`detect --ts-min/--ts-max`, `Limits` in Python), with a hint for epoch numbers
(`1709251200000` in a timestamp column: "13 digits = milliseconds since 1970") and for dates in 1970
(epoch seconds or milliseconds read as microseconds); enum values known. Across rows: unique ids (the first
row of an id is kept, later rows with the same id and other values are bad) and, for orders, the
lifecycle: a fill or cancel needs a `new` event of its order at or before it (a fill without any `new`,
a cancel before its `new`). Exact repeats of an earlier row (every column equal) are removed and counted
as `duplicates`, not treated as errors. A CSV whose last line was cut short (no newline, fewer fields than
the header) has that row named "truncated last line"; a file that cannot be read at all (corrupt Parquet,
bytes that are no CSV, an empty file) is one error line naming the file.

How it runs: count queries first (one parallel aggregate over all per-row checks, one group-by for
duplicate ids, one window for the order lifecycle); on clean data that is the whole cost. Only when a
count is non-zero does the row-naming query run, with the same predicates over numbered rows. The count
query is the authority on how many rows are bad (a test with real NaN, ±inf and nulls over many row
groups holds the count, the named rows and the quarantine tagging equal).

What happens to bad rows: without `--quarantine`, one `SchemaError` naming, per failing check, the file,
the column, the reason and the first rows (`trades.csv, column 'price': NaN, infinite or non-positive value
in 2 row(s): rows 2, 5`); the CLI prints it on one line and exits 2. With `--quarantine DIR` each bad row
goes to `DIR/<table>.parquet` (source columns as text, `source_file`, `source_row`, `reason` = its first
failing check) and is counted. `detect` prints, per table, rows in / accepted / quarantined (and
duplicates removed, rows sorted), then fails (exit 2, before any rule runs) when a table's quarantined share
passes `--max-quarantined` (default 1 %). An input with no trades or order events accepted (a header-only
file) is an error unless `--allow-empty`.

List columns in CSV (`labels.accounts`) are JSON arrays of strings: `["acct-1","acct-2"]`, `[]` for an
empty list (the cell is quoted by the CSV writer). It round-trips ids holding `;` or `,`; anything else in
the cell is a bad row ("value not parseable as JSON array of strings"). `schema.encode_csv` writes it.

### Why a hand-written engine and not pandera

pandera's Ibis backend (0.35.0) was tried first, with the trades table declared as a `DataFrameModel`
(`bench/validate.py` holds the declaration). It was faster only by skipping a check, and it reported less:

| 10M trades, 150 MiB Parquet, clean | wall s | reports on the dirty sample (NaN, +inf, null, duplicate id, 1970) |
| --- | --- | --- |
| our engine (`schema.screen_file`) | 14.1 (of which 9.1 the duplicate-id group-by) | all five, with rows |
| pandera 0.35 `DataFrameModel.validate(lazy=True)` on Ibis/DuckDB | 4.4 | four: the duplicate id passed; values, no rows |

`.venv/bin/python bench/validate.py --rows 10000000` (pandera installed with `uv pip install
'pandera[ibis]'`), on the shared 2-core machine at load ≈ 14, so the seconds are loose; one earlier run
under heavier load gave 26.6 s vs 16.3 s. Without the duplicate-id check the two cost about the same
(≈ 5 s vs 4.4 s); the difference is the check pandera skips.

Its column `unique=True` did not report the duplicate id on the Ibis table, `gt=0` lets NaN and +inf through
(SQL orders NaN above every number, so a custom check is needed anyway), failures are reported as values
without source row numbers (an analyst needs file, row and column to fix a file), and it has no quarantine. Cross-table
and cross-row checks (order lifecycle, exact duplicates) would stay ours in any case. So one hand-written
engine remains; the column declarations above (`TableSpec`) are its single source, as a pandera model
would have been.
"""


def schema_markdown() -> str:
    """The canonical tables as Markdown (``docs/schema.md`` is this text; a test keeps them equal)."""
    lines = [
        "# Canonical schema",
        "",
        "Every input is a folder with one file per table: `<table>.parquet` or `<table>.csv` (Parquet wins when",
        "both exist). Timestamps are UTC with microsecond precision (naive timestamps are read as UTC).",
        "",
        "Generated by `python -c 'from market_surveillance.schema import schema_markdown as m; print(m(), end=\"\")'"
        " > docs/schema.md`.",
        "",
        *VALIDATION_MARKDOWN.strip("\n").splitlines(),
    ]
    for spec in TABLES.values():
        lines += ["", f"## `{spec.name}` — {spec.description}", ""]
        lines.append(
            "Required table."
            if spec.required
            else "Optional: rules that need it are skipped (with the reason) without it."
        )
        if spec.key:
            lines.append(f"Unique key: {', '.join(f'`{k}`' for k in spec.key)}.")
        lines += ["", "| column | type | null | constraint | meaning |", "| --- | --- | --- | --- | --- |"]
        for col in spec.all_columns:
            cons = []
            if col.positive:
                cons.append("> 0, finite")
            if col.non_negative:
                cons.append(">= 0, finite")
            if pa.types.is_timestamp(col.type):
                cons.append("plausible range")
            if pa.types.is_list(col.type):
                cons.append('CSV: JSON array, e.g. `["a","b"]`, `[]`')
            if col.choices:
                cons.append(" \\| ".join(col.choices))
            optional = " (optional column)" if col in spec.optional_columns else ""
            lines.append(
                f"| `{col.name}` | {_duck_type(col.type).lower()} | {'yes' if col.nullable else 'no'} | "
                f"{'; '.join(cons)} | {col.description}{optional} |"
            )
    return "\n".join(lines) + "\n"


@dataclass(frozen=True)
class DataProfile:
    """What a dataset offers, so rules that cannot run on it are skipped with a reason."""

    tables: frozenset[str]
    has_trade_accounts: bool = True
    has_order_accounts: bool = True
    has_order_ids: bool = True
