"""Canonical tables and their validation.

Every input — synthetic or real — is a folder with one file per table (``<table>.parquet`` or
``<table>.csv``). Validation runs in DuckDB over the files (no pandas copy of large tables) and
fails with a :class:`SchemaError` naming the file, the column and the offending rows.
The same checks are exposed as SQL predicates (:func:`row_checks`) so importers can quarantine
bad rows with a reason instead of failing.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import duckdb
import pyarrow as pa

from market_surveillance.enums import OrderEvent, Segment, Side, Typology

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
        return f"{where}: {self.reason}"


@dataclass(frozen=True)
class RowCheck:
    """One per-row check, as a SQL predicate that is TRUE for a bad row."""

    column: str
    reason: str
    bad_sql: str


def _q(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


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


def row_checks(spec: TableSpec, present: Sequence[str]) -> list[RowCheck]:
    """Per-row checks for the columns of ``spec`` that are present, in reporting order."""
    checks: list[RowCheck] = []
    for col in spec.all_columns:
        if col.name not in present:
            continue
        c = _q(col.name)
        dt = _duck_type(col.type)
        if not col.nullable:
            checks.append(RowCheck(col.name, "missing value", f"{c} IS NULL"))
        if dt not in ("VARCHAR", "VARCHAR[]"):
            checks.append(
                RowCheck(
                    col.name,
                    f"value not parseable as {dt.lower()}",
                    f"({c} IS NOT NULL AND TRY_CAST({c} AS {dt}) IS NULL)",
                )
            )
        if col.positive:
            checks.append(
                RowCheck(
                    col.name,
                    "NaN or non-positive value",
                    f"(isnan(TRY_CAST({c} AS DOUBLE)) OR TRY_CAST({c} AS DOUBLE) <= 0)",
                )
            )
        elif col.non_negative:
            checks.append(
                RowCheck(
                    col.name,
                    "NaN or negative value",
                    f"(isnan(TRY_CAST({c} AS DOUBLE)) OR TRY_CAST({c} AS DOUBLE) < 0)",
                )
            )
        elif dt == "DOUBLE":
            checks.append(RowCheck(col.name, "NaN value", f"isnan(TRY_CAST({c} AS DOUBLE))"))
        if col.choices:
            allowed = ", ".join("'" + v + "'" for v in col.choices)
            checks.append(
                RowCheck(
                    col.name,
                    f"unknown value (allowed: {', '.join(col.choices)})",
                    f"({c} IS NOT NULL AND CAST({c} AS VARCHAR) NOT IN ({allowed}))",
                )
            )
    return checks


def find_table_file(data_dir: str | Path, table: str) -> Path | None:
    """The file holding ``table`` in ``data_dir`` (Parquet preferred over CSV)."""
    base = Path(data_dir)
    for ext in (".parquet", ".csv"):
        p = base / f"{table}{ext}"
        if p.exists():
            return p
    return None


def _raw_relation_sql(path: Path) -> str:
    p = str(path).replace("'", "''")
    if path.suffix == ".parquet":
        return f"read_parquet('{p}')"
    # all_varchar so a bad value is reported per row instead of failing type sniffing
    return f"read_csv('{p}', header=true, all_varchar=true)"


def validate_relation(
    con: duckdb.DuckDBPyConnection,
    spec: TableSpec,
    relation_sql: str,
    file_label: str,
    *,
    max_rows: int = 5,
) -> list[Problem]:
    """All problems of one table given as a DuckDB relation expression (a table function or view)."""
    cols = [r[0] for r in con.execute(f"DESCRIBE SELECT * FROM {relation_sql}").fetchall()]
    problems = [
        Problem(file_label, col.name, "missing column") for col in spec.columns if col.name not in cols
    ]
    if problems:
        return problems
    checks = row_checks(spec, cols)
    # happy path first: plain parallel aggregates; the row-numbered (single-ordered) scans that name the
    # bad rows run only when something is bad (at 10M trades they were most of the 11 s of validation)
    numbered = f"(SELECT *, row_number() OVER () AS __row FROM {relation_sql})"
    if checks:
        counts = con.execute(
            f"SELECT {', '.join(f'count(*) FILTER (WHERE {ch.bad_sql})' for ch in checks)} FROM {relation_sql}"
        ).fetchone()
        assert counts is not None
        if any(counts):
            agg = ", ".join(
                f"count(*) FILTER (WHERE {ch.bad_sql}), "
                f"list(__row ORDER BY __row) FILTER (WHERE {ch.bad_sql})[1:{max_rows}]"
                for ch in checks
            )
            res = con.execute(f"SELECT {agg} FROM {numbered}").fetchone()
            assert res is not None
            for i, ch in enumerate(checks):
                n, rows = res[2 * i], res[2 * i + 1]
                if n:
                    problems.append(Problem(file_label, ch.column, ch.reason, tuple(rows or ()), int(n)))
    if spec.key:
        key = ", ".join(_q(k) for k in spec.key)
        dup = con.execute(
            f"SELECT count(*) FROM (SELECT {key} FROM {relation_sql} GROUP BY ALL HAVING count(*) > 1)"
        ).fetchone()
        if dup and dup[0]:
            res = con.execute(
                f"SELECT count(*), list(__row ORDER BY __row)[1:{max_rows}] FROM "
                f"(SELECT __row, count(*) OVER (PARTITION BY {key}) AS __n FROM {numbered}) WHERE __n > 1"
            ).fetchone()
            if res and res[0]:
                problems.append(
                    Problem(file_label, ", ".join(spec.key), "duplicate id", tuple(res[1] or ()), int(res[0]))
                )
    return problems


def validate_file(
    path: str | Path, table: str, con: duckdb.DuckDBPyConnection | None = None
) -> list[Problem]:
    """Problems found in one table file (empty list if valid)."""
    path = Path(path)
    con = con or duckdb.connect()
    return validate_relation(con, TABLES[table], _raw_relation_sql(path), str(path))


def validate_dir(
    data_dir: str | Path,
    tables: Sequence[str] | None = None,
    con: duckdb.DuckDBPyConnection | None = None,
) -> None:
    """Validate every canonical table present in ``data_dir``; raise :class:`SchemaError` listing all problems.

    Required tables that are absent are problems too; ``tables`` limits the check to those names.
    """
    con = con or duckdb.connect()
    problems: list[Problem] = []
    names = list(tables) if tables is not None else list(TABLES)
    for name in names:
        spec = TABLES[name]
        path = find_table_file(data_dir, name)
        if path is None:
            if spec.required and tables is None:
                problems.append(Problem(str(Path(data_dir) / f"{name}.parquet"), None, "table file missing"))
            continue
        problems.extend(validate_relation(con, spec, _raw_relation_sql(path), str(path)))
    if problems:
        raise SchemaError(problems)


def cast_select_sql(spec: TableSpec, present: Sequence[str], relation_sql: str) -> str:
    """SELECT that casts the present canonical columns of a raw relation to their canonical types."""
    parts = []
    for col in spec.all_columns:
        if col.name in present:
            parts.append(f"CAST({_q(col.name)} AS {_duck_type(col.type)}) AS {_q(col.name)}")
        elif col in spec.optional_columns:
            parts.append(f"CAST(NULL AS {_duck_type(col.type)}) AS {_q(col.name)}")
    return f"SELECT {', '.join(parts)} FROM {relation_sql}"


def register_dir(
    con: duckdb.DuckDBPyConnection,
    data_dir: str | Path,
    *,
    validate: bool = True,
) -> dict[str, str]:
    """Create one DuckDB view per table file in ``data_dir`` with canonical types; returns table → view.

    Views scan the files lazily, so tables larger than memory are never loaded whole.
    """
    if validate:
        validate_dir(data_dir, con=con)
    views: dict[str, str] = {}
    for name, spec in TABLES.items():
        path = find_table_file(data_dir, name)
        if path is None:
            continue
        raw = _raw_relation_sql(path)
        present = [r[0] for r in con.execute(f"DESCRIBE SELECT * FROM {raw}").fetchall()]
        con.execute(f"CREATE OR REPLACE VIEW {_q(name)} AS {cast_select_sql(spec, present, raw)}")
        views[name] = name
    return views


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


def schema_markdown() -> str:
    """The canonical tables as Markdown (``docs/schema.md`` is this text; a test keeps them equal)."""
    lines = [
        "# Canonical schema",
        "",
        "Every input is a folder with one file per table: `<table>.parquet` or `<table>.csv` (Parquet wins when",
        "both exist). Timestamps are UTC with microsecond precision. Validation (`schema.validate_dir`, run by",
        "`detect` before any rule) reports every problem with the file, the column and the first rows",
        "(1-based data rows): missing column, value not parseable as the column type, missing value in a",
        "required column, NaN or non-positive price/quantity, unknown enum value, duplicate id.",
        "",
        "Generated by `python -c 'from market_surveillance.schema import schema_markdown as m; print(m(), end=\"\")'"
        " > docs/schema.md`.",
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
                cons.append("> 0, not NaN")
            if col.non_negative:
                cons.append(">= 0, not NaN")
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
