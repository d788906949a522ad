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
from pathlib import Path

import duckdb
import ibis
import ibis.expr.types as ir
import pyarrow as pa

from market_surveillance.schema import TABLES, DataProfile, conform, register_dir

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


def open_dir(data_dir: str | Path, *, validate: bool = True, backend: ibis.BaseBackend | None = None):
    """Validated, lazily scanned Ibis tables for a canonical data folder on DuckDB.

    Returns ``(backend, tables, profile)``.
    """
    if backend is None:
        backend = duckdb_backend()
    con = backend.con
    views = register_dir(con, data_dir, validate=validate)
    for name in TIMED:
        if name in views:
            con.execute(
                f'CREATE OR REPLACE VIEW "{name}_us" AS SELECT *, epoch_us(ts) AS ts_us FROM "{name}"'
            )
            views[name] = f"{name}_us"
    tables = {name: backend.table(view) for name, view in views.items()}
    return backend, tables, profile_of(tables)


def open_dir_spark(data_dir: str | Path, *, validate: bool = True, backend: ibis.BaseBackend | None = None):
    """The same canonical folder as Ibis tables on PySpark (files read by Spark, lazily, partitioned by Spark).

    Validation runs first with DuckDB over the files (a scan, no copy), so bad input fails the same way on
    both engines. Returns ``(backend, tables, profile)``.
    """
    from market_surveillance.schema import cast_select_sql, find_table_file, validate_dir

    if validate:
        validate_dir(data_dir)
    backend = backend or spark_backend()
    session = backend._session
    probe = connect()
    tables: dict[str, ir.Table] = {}
    for name, spec in TABLES.items():
        path = find_table_file(data_dir, name)
        if path is None:
            continue
        if path.suffix == ".parquet":
            df = session.read.parquet(str(path))
        else:
            df = session.read.option("header", True).csv(str(path))
        present = df.columns
        view = f"ms_raw_{name}"
        df.createOrReplaceTempView(view)
        # same canonical casts as DuckDB; Spark SQL understands these CASTs (TIMESTAMPTZ → TIMESTAMP)
        sql = cast_select_sql(spec, present, view).replace("TIMESTAMPTZ", "TIMESTAMP").replace('"', "`")
        sql = sql.replace("VARCHAR[]", "ARRAY<STRING>").replace("VARCHAR", "STRING")
        if name in TIMED:
            sql = f"SELECT *, unix_micros(ts) AS ts_us FROM ({sql})"
        session.sql(sql).createOrReplaceTempView(f"ms_{name}")
        tables[name] = backend.table(f"ms_{name}")
    probe.close()
    return backend, tables, profile_of(tables)


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
        .config("spark.driver.memory", os.environ.get("MS_SPARK_DRIVER_MEMORY", "3g"))
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
