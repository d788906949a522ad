"""Cost of input validation at scale: our engine (schema.screen) vs pandera's Ibis backend.

Builds an N-row canonical trades Parquet file with DuckDB (cached in $MS_BENCH_CACHE, default
/tmp/ms-bench; no simulator needed: validation cost depends on rows and columns, not on the market),
then times, on the clean file:

* ``engine``: :func:`market_surveillance.schema.screen_file` (all checks: types, nulls, finite positive
  numbers, enums, timestamp range, duplicate ids, exact duplicates);
* ``pandera``: ``pandera.ibis`` ``DataFrameModel.validate(lazy=True)`` of the same table on the Ibis
  DuckDB backend, with the equivalent declared checks (needs ``uv pip install 'pandera[ibis]'``).

It also runs both on a 1,000-row dirty sample (real NaN, +inf, a null, a duplicate id, a 1970 timestamp)
and prints which problems each one reports. Peak RSS is the process's own.

Usage: .venv/bin/python bench/validate.py [--rows 10000000] [--skip-pandera]
"""

import argparse
import os
import resource
import time
from pathlib import Path

import duckdb


def build(path: Path, n: int) -> None:
    if path.exists():
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    con = duckdb.connect()
    con.execute(
        f"""COPY (SELECT 'T' || i AS trade_id,
                 TIMESTAMPTZ '2024-03-01 00:00:00+00' + to_microseconds(i * 8000) AS ts,
                 'V' || (i % 3) AS venue, 'A' || (i % 400) || '-USD' AS asset,
                 100 + (hash(i) % 1000) / 100.0 AS price, 0.1 + (hash(i * 7) % 100) / 10.0 AS qty,
                 'acct' || (hash(i) % 5000) AS buyer_id, 'acct' || (hash(i * 3) % 5000) AS seller_id,
                 CASE WHEN i % 2 = 0 THEN 'buy' ELSE 'sell' END AS aggressor,
                 NULL::VARCHAR AS buy_order_id, NULL::VARCHAR AS sell_order_id
          FROM range({n}) t(i)) TO '{path}' (FORMAT parquet)"""
    )


def dirty(path: Path) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    t = pq.read_table(path).slice(0, 1000)
    price = t["price"].to_pylist()
    price[10], price[20], price[30] = float("nan"), float("inf"), None
    ids = t["trade_id"].to_pylist()
    ids[40] = ids[41]
    ts = t["ts"].to_pylist()
    ts[50] = ts[50].replace(year=1970)
    t = t.set_column(4, "price", pa.array(price, pa.float64()))
    t = t.set_column(0, "trade_id", pa.array(ids, pa.string()))
    t = t.set_column(1, "ts", pa.array(ts, t.schema.field("ts").type))
    pq.write_table(t, path.with_name("dirty.parquet"))


def engine(path: Path) -> tuple[float, list[str]]:
    from market_surveillance.io.canonical import connect
    from market_surveillance.schema import screen_file

    con = connect()
    t0 = time.perf_counter()
    s = screen_file(con, path, "trades")
    return time.perf_counter() - t0, [f"{p.column}: {p.reason} ({p.count})" for p in s.problems]


def pandera_model():  # type: ignore[no-untyped-def]
    import datetime as dt
    from typing import Annotated

    import pandera.ibis as pa_ibis
    from pandera.engines.ibis_engine import DateTime

    lo, hi = dt.datetime(2009, 1, 1, tzinfo=dt.UTC), dt.datetime.now(dt.UTC) + dt.timedelta(days=1)

    class Trades(pa_ibis.DataFrameModel):
        trade_id: str = pa_ibis.Field(unique=True)
        ts: Annotated[DateTime, "UTC", 6] = pa_ibis.Field(ge=lo, le=hi)
        venue: str
        asset: str
        price: float = pa_ibis.Field(gt=0)
        qty: float = pa_ibis.Field(gt=0)
        buyer_id: str = pa_ibis.Field(nullable=True)
        seller_id: str = pa_ibis.Field(nullable=True)
        aggressor: str = pa_ibis.Field(isin=["buy", "sell"])
        buy_order_id: str = pa_ibis.Field(nullable=True)
        sell_order_id: str = pa_ibis.Field(nullable=True)

        @pa_ibis.dataframe_check
        def finite_positive(cls, data):  # type: ignore[no-untyped-def]  # noqa: N805  (NaN, inf > 0 in SQL)
            t = data.table
            return ~(t.price.isnan() | t.price.isinf() | t.qty.isnan() | t.qty.isinf())

    return Trades


def pandera(path: Path) -> tuple[float, list[str]]:
    import ibis

    model = pandera_model()
    con = ibis.duckdb.connect()
    t = con.read_parquet(str(path))
    t0 = time.perf_counter()
    found: list[str] = []
    try:
        model.validate(t, lazy=True)
    except Exception as exc:  # SchemaErrors: the report is what we compare
        fc = getattr(exc, "failure_cases", None)
        if fc is not None:
            fc = fc.to_pandas() if hasattr(fc, "to_pandas") else fc
            for _, r in fc.drop_duplicates(["column", "check"]).iterrows():
                found.append(f"{r['column']}: {r['check']}")
        else:
            found.append(f"{type(exc).__name__}: {str(exc).splitlines()[0]}")
    return time.perf_counter() - t0, found


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--rows", type=int, default=10_000_000)
    ap.add_argument("--skip-pandera", action="store_true")
    args = ap.parse_args()
    cache = Path(os.environ.get("MS_BENCH_CACHE", "/tmp/ms-bench")) / f"validate-{args.rows}"
    path = cache / "trades.parquet"
    build(path, args.rows)
    dirty(path)
    print(f"{args.rows:,} trades, {path.stat().st_size / 2**20:.0f} MiB Parquet")
    secs, found = engine(path)
    print(f"engine  clean: {secs:.2f}s ({args.rows / secs:,.0f} rows/s), reports {found}")
    con = duckdb.connect()
    t0 = time.perf_counter()
    con.execute(f"SELECT count(*) FROM (SELECT trade_id FROM read_parquet('{path}') GROUP BY ALL HAVING count(*) > 1)")
    con.fetchall()
    print(f"        of which the duplicate-id group-by alone: {time.perf_counter() - t0:.2f}s")
    print(f"engine  dirty sample reports: {engine(path.with_name('dirty.parquet'))[1]}")
    if not args.skip_pandera:
        secs, found = pandera(path)
        print(f"pandera clean: {secs:.2f}s ({args.rows / secs:,.0f} rows/s), reports {found}")
        print(f"pandera dirty sample reports: {pandera(path.with_name('dirty.parquet'))[1]}")
    print(f"peak RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20:.2f} GiB")


if __name__ == "__main__":
    main()
