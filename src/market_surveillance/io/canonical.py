"""Open canonical data (a folder of table files, or Arrow tables) as Ibis tables on a backend.

This is the one place where derived columns every rule relies on are added: ``ts_us`` (microseconds
since epoch, BIGINT) on trades and orders. Rules use it for time-range windows, because Ibis renders an
interval window end of 0 as ``... FOLLOWING`` (≈2.5× slower on DuckDB) while an integer 0 becomes
``CURRENT ROW``; integer ranges also compile identically on Spark.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import duckdb
import ibis
import ibis.expr.types as ir
import pyarrow as pa
import pyarrow.parquet as pq

from market_surveillance.schema import (
    TABLES,
    DataProfile,
    InputError,
    Limits,
    cast_select_sql,
    conform,
    find_table_file,
    register_dir,
)

TIMED = ("trades", "orders", "book")


def _arrow_with_ts_us(name: str, tab: pa.Table) -> pa.Table:
    # computed before the data reaches a backend: Ibis cannot extract microseconds on PySpark
    if name in TIMED:
        return tab.append_column("ts_us", tab["ts"].cast(pa.int64()))
    return tab


#: environment variable capping DuckDB's memory (e.g. ``6GB``); DuckDB's own default is 80 % of RAM, which it
#: fills lazily: at 10M trades the ML features reached 7.7 GiB RSS by default and 4.1 GiB at ``4GB``, equally fast
MEMORY_LIMIT_ENV = "MS_DUCKDB_MEMORY_LIMIT"


def connect() -> duckdb.DuckDBPyConnection:
    """A new in-memory DuckDB connection, capped at ``$MS_DUCKDB_MEMORY_LIMIT`` when set.

    Every connection that scans user data (detection, validation, imports) is made here, so the cap holds
    for all of them."""
    con = duckdb.connect()
    # naive timestamps in user files are UTC (docs/schema.md), whatever the machine's time zone
    con.execute("SET TimeZone = 'UTC'")
    limit = os.environ.get(MEMORY_LIMIT_ENV)
    if limit:
        try:
            con.execute(f"SET memory_limit = '{_memory_size(limit)}'")
        except duckdb.Error as exc:
            raise ValueError(f"${MEMORY_LIMIT_ENV}={limit!r}: {exc}") from exc
    return con


def duckdb_backend(con: duckdb.DuckDBPyConnection | None = None) -> ibis.BaseBackend:
    con = con or connect()
    # Ibis 12 still writes `x -> ...` lambdas (array filter/distinct); DuckDB 2 refuses them by default
    con.execute("SET lambda_syntax = 'ENABLE_SINGLE_ARROW'")
    return ibis.duckdb.from_connection(con)


def _memory_size(text: str) -> str:
    """A DuckDB memory size such as ``6GB`` or ``512MiB``; anything else is refused (it is spliced into SQL)."""
    if not re.fullmatch(r"\s*\d+(\.\d+)?\s*(B|KB|MB|GB|TB|KiB|MiB|GiB|TiB)\s*", text, flags=re.I):
        raise ValueError(f"${MEMORY_LIMIT_ENV}={text!r}: expected a size such as 6GB or 512MiB")
    return text.strip()


@dataclass
class OpenedSource:
    """A source opened as canonical Ibis tables, with what happened to its rows."""

    backend: ibis.BaseBackend
    tables: dict[str, ir.Table]
    profile: DataProfile
    #: per table: rows_in, accepted, quarantined, duplicates (removed), and source-specific extras
    counts: dict[str, dict[str, int]] = field(default_factory=dict)


def write_quarantine(quarantine_dir: Path | None, table: str, bad_rows: list[pa.Table]) -> None:
    """Append-free write of one table's quarantined rows to ``quarantine_dir/<table>.parquet``."""
    bad_rows = [b for b in bad_rows if b is not None and b.num_rows]
    if quarantine_dir is None or not bad_rows:
        return
    quarantine_dir.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.concat_tables(bad_rows, promote_options="default"), quarantine_dir / f"{table}.parquet")


def open_canonical(
    data_dir: str | Path,
    *,
    validate: bool = True,
    backend: ibis.BaseBackend | None = None,
    limits: Limits | None = None,
    quarantine_dir: str | Path | None = None,
) -> OpenedSource:
    """Validated, lazily scanned Ibis tables for a canonical data folder on DuckDB, with row counts.

    The tables ``detect`` reads (not ``labels``: ground truth is for ``evaluate``) go through the
    validation engine (:func:`market_surveillance.schema.screen`); with ``quarantine_dir`` bad rows are
    written there and counted instead of failing.
    """
    data_dir = Path(data_dir)
    if not data_dir.is_dir():
        raise InputError(f"{data_dir}: the canonical format is a folder of table files")
    if backend is None:
        backend = duckdb_backend()
    con = backend.con
    qdir = Path(quarantine_dir) if quarantine_dir is not None else None
    screened = register_dir(con, data_dir, validate=validate, limits=limits, quarantine=qdir is not None)
    counts: dict[str, dict[str, int]] = {}
    views: dict[str, str] = {}
    for name, s in screened.items():
        views[name] = name
        if validate:
            counts[name] = s.counts()
            write_quarantine(qdir, name, [s.bad_rows] if s.bad_rows is not None else [])
    # Tables read from text are parsed once into DuckDB tables: each rule scans its inputs again, and a view
    # over a CSV file re-parses every value (all_varchar + TRY_CAST) for every rule. Parquet stays a lazy
    # view (its scans are cheap and prune columns; a copy would only cost memory), and so does a CSV file
    # validation already loaded typed (``schema.screen_file``): its view only renames.
    text = {
        name
        for name, s in screened.items()
        if _is_text_file(find_table_file(data_dir, name)) and _parsed_per_scan(name, s.types)
    }
    for name in list(views):
        if name in TIMED:
            kind = "TEMP TABLE" if name in text else "VIEW"
            con.execute(f'CREATE OR REPLACE {kind} "{name}_us" AS SELECT *, epoch_us(ts) AS ts_us FROM "{name}"')
            views[name] = f"{name}_us"
        elif name in text:
            con.execute(f'CREATE OR REPLACE TEMP TABLE "{name}_tab" AS SELECT * FROM "{name}"')
            views[name] = f"{name}_tab"
    tables = {name: backend.table(view) for name, view in views.items()}
    return OpenedSource(backend, tables, profile_of(tables), counts)


def _parsed_per_scan(name: str, types: Mapping[str, str]) -> bool:
    """Whether the canonical view of a table parses text: a column typed in the canonical schema is text in
    the relation it reads."""
    return any(
        c.type != pa.string() and types.get(c.name, "").upper() == "VARCHAR" for c in TABLES[name].all_columns
    )


def _is_text_file(path: Path | None) -> bool:
    return path is not None and path.is_file() and path.suffix.lower() != ".parquet"


def open_dir(data_dir: str | Path, *, validate: bool = True, backend: ibis.BaseBackend | None = None):
    """Validated, lazily scanned Ibis tables for a canonical data folder on DuckDB.

    Returns ``(backend, tables, profile)``; :func:`open_canonical` also gives the row counts.
    """
    src = open_canonical(data_dir, validate=validate, backend=backend)
    return src.backend, src.tables, src.profile


def open_dir_spark(
    data_dir: str | Path,
    *,
    validate: bool = True,
    backend: ibis.BaseBackend | None = None,
    limits: Limits | None = None,
) -> OpenedSource:
    """The same canonical folder as Ibis tables on PySpark (files read by Spark, lazily, partitioned by Spark).

    The validation engine runs first with DuckDB over the files (a scan, no copy), so bad input fails the
    same way on both engines; exact duplicate rows it counted are dropped on the Spark side too.
    Quarantine needs the DuckDB engine (bad rows are set aside there). Returns an :class:`OpenedSource`.
    """
    from market_surveillance.schema import DETECT_TABLES

    data_dir = Path(data_dir)
    if not data_dir.is_dir():
        raise InputError(f"{data_dir}: the canonical format is a folder of table files")
    probe = connect()
    screened = register_dir(probe, data_dir, validate=validate, limits=limits)
    probe.close()
    backend = backend or spark_backend()
    session = backend._session
    tables: dict[str, ir.Table] = {}
    counts: dict[str, dict[str, int]] = {}
    for name in DETECT_TABLES:
        spec = TABLES[name]
        path = find_table_file(data_dir, name)
        if path is None or name not in screened:
            continue
        s = screened[name]
        if path.suffix == ".parquet":
            df = session.read.parquet(str(path))
        else:
            df = session.read.option("header", True).csv(str(path))
        if s.duplicates:
            df = df.dropDuplicates()
        present = {c: s.types.get(c, "VARCHAR") for c in df.columns}
        view = f"ms_raw_{name}"
        df.createOrReplaceTempView(view)
        # same canonical casts as DuckDB; Spark SQL understands these CASTs (TIMESTAMPTZ → TIMESTAMP)
        sql = cast_select_sql(spec, present, view)
        sql = sql.replace("TRY_CAST(", "CAST(").replace("TIMESTAMPTZ", "TIMESTAMP").replace('"', "`")
        sql = sql.replace("VARCHAR[]", "ARRAY<STRING>").replace("VARCHAR", "STRING")
        if name in TIMED:
            sql = f"SELECT *, unix_micros(ts) AS ts_us FROM ({sql})"
        session.sql(sql).createOrReplaceTempView(f"ms_{name}")
        tables[name] = backend.table(f"ms_{name}")
        if validate:
            counts[name] = s.counts()
    return OpenedSource(backend, tables, profile_of(tables), counts)


def from_arrow(data: Mapping[str, pa.Table], backend: ibis.BaseBackend | None = None):
    """Ibis tables from in-memory Arrow tables (tests, simulator output); returns ``(backend, tables, profile)``."""
    if backend is None:
        backend = duckdb_backend()
    tables: dict[str, ir.Table] = {}
    for name, tab in data.items():
        if name not in TABLES:
            continue
        tab = _arrow_with_ts_us(name, conform(name, tab))
        if backend.name == "pyspark":
            tables[name] = _spark_temp_view(backend, f"ms_{name}", tab)
        else:
            tables[name] = backend.create_table(f"ms_{name}", tab, overwrite=True)
    return backend, tables, profile_of(tables)


def spark_backend(master: str | None = None, *, app_name: str = "market-surveillance") -> ibis.BaseBackend:
    """An Ibis PySpark backend (local mode by default; ``master`` or ``MS_SPARK_MASTER`` for a cluster)."""
    import os

    from pyspark.sql import SparkSession

    master = master or os.environ.get("MS_SPARK_MASTER", "local[2]")
    session = (
        SparkSession.builder.master(master)
        .appName(app_name)
        .config("spark.sql.session.timeZone", "UTC")
        .config("spark.ui.enabled", "false")
        .config("spark.sql.shuffle.partitions", os.environ.get("MS_SPARK_SHUFFLE_PARTITIONS", "8"))
        .config("spark.sql.execution.arrow.pyspark.enabled", "true")
        # Spark's 1g default heap (driver and, in local mode, the executor too) thrashed in GC on the ML
        # feature query; applies only when this call starts the JVM
        .config("spark.driver.memory", os.environ.get("MS_SPARK_DRIVER_MEMORY", "4g"))
        .getOrCreate()
    )
    return ibis.pyspark.connect(session)


def _spark_temp_view(backend: ibis.BaseBackend, name: str, tab: pa.Table) -> ir.Table:
    # temp views keep test data out of the warehouse folder (create_table would write it to disk)
    session = backend._session
    df = session.createDataFrame(tab.to_pandas(types_mapper=None), schema=_spark_schema(tab.schema))
    df.createOrReplaceTempView(name)
    return backend.table(name)


def _spark_schema(schema: pa.Schema) -> str:
    def typ(t: pa.DataType) -> str:
        if pa.types.is_timestamp(t):
            return "timestamp"
        if pa.types.is_floating(t):
            return "double"
        if pa.types.is_integer(t):
            return "bigint"
        if pa.types.is_list(t):
            return f"array<{typ(t.value_type)}>"
        return "string"

    return ", ".join(f"`{f.name}` {typ(f.type)}" for f in schema)


def profile_of(tables: Mapping[str, ir.Table]) -> DataProfile:
    """What the data offers (which tables, whether trades/orders carry account ids)."""
    has_ta = has_oa = True
    if "trades" in tables:
        t = tables["trades"]
        has_ta = bool(t.filter(t.buyer_id.notnull() | t.seller_id.notnull()).count().execute() > 0) or (
            t.count().execute() == 0
        )
    if "orders" in tables:
        o = tables["orders"]
        has_oa = bool(o.filter(o.account_id.notnull()).count().execute() > 0) or o.count().execute() == 0
    return DataProfile(frozenset(tables), has_trade_accounts=has_ta, has_order_accounts=has_oa)
