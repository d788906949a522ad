"""Adapters from exchange exports and public market data to the canonical tables, with row validation.

Every source is read by DuckDB as text (``all_varchar``) with its 1-based data row number, each row is
checked once (SQL predicates, the first failing check is the row's reason) and then either

* rejected: without ``quarantine_dir`` any bad row raises :class:`~market_surveillance.schema.SchemaError`
  naming the file, the column, the reason and the first rows; or
* quarantined: with ``quarantine_dir`` bad rows go to ``quarantine_dir/<table>.parquet`` (raw text columns,
  ``source_file``, ``source_row``, ``reason``) and are counted.

Nothing is dropped silently: per table ``rows_in == accepted + quarantined + skipped`` where ``skipped``
only counts rows that carry no trade or order by design (LOBSTER trading-halt messages), each with its
reason. LOBSTER messages about orders submitted before the file starts give those orders a ``new`` event at
the file's first instant (counted as ``orders_before_file``).

Formats
-------
canonical  a canonical folder (``schema`` row checks, duplicate ids, fill/cancel of an unknown order).
ccxt       CSV or JSON trades (symbol, timestamp ms, datetime, side = aggressor, price, amount); a file or
           a folder of files. ``TNB/BTC`` → asset ``TNB-BTC``; venue from ``venue`` (default ``binance``).
tardis     trades CSV (exchange, symbol, timestamp µs, local_timestamp, id, side, price, amount).
binance    Binance public dumps (trades / aggTrades ZIP or CSV, or a folder): :mod:`.binance`.
lobster    message file (no header, or one header row; optional UTF-8 BOM; any line ending): time (s after
           midnight, exchange local time), type, order id, size, price × 10⁴, direction. The date comes from
           the file name (``TICKER_YYYY-MM-DD_..._message_N.csv``) and must agree with ``date`` when both
           are given; times are converted from ``tz`` (America/New_York for Nasdaq) to UTC. The
           orderbook file is checked against our reconstruction by :mod:`.lobster_book`.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import duckdb
import ibis
import ibis.expr.types as ir
import pyarrow as pa
import pyarrow.parquet as pq

from market_surveillance.io.canonical import connect, duckdb_backend, from_arrow
from market_surveillance.schema import (
    TABLES,
    DataProfile,
    Problem,
    SchemaError,
    _q,
    cast_select_sql,
    find_table_file,
    row_checks,
)

FORMATS = ("canonical", "ccxt", "tardis", "lobster", "binance")
MAX_ROWS_SHOWN = 5


@dataclass
class OpenedSource:
    """A source opened as canonical Ibis tables, with what happened to its rows."""

    backend: ibis.BaseBackend
    tables: dict[str, ir.Table]
    profile: DataProfile
    #: per canonical table: rows_in, accepted, quarantined, skipped (and skip reasons)
    counts: dict[str, dict[str, int]] = field(default_factory=dict)


@dataclass(frozen=True)
class Check:
    """A bad-row predicate over the raw text relation (TRUE = bad)."""

    column: str | None
    reason: str
    bad_sql: str


@dataclass
class _Split:
    rows_in: int = 0
    quarantined: list[pa.Table] = field(default_factory=list)
    n_quarantined: int = 0


# ---------------------------------------------------------------------------------------------
# shared machinery
# ---------------------------------------------------------------------------------------------


def _lit(s: str) -> str:
    return "'" + s.replace("'", "''") + "'"


def _connect() -> duckdb.DuckDBPyConnection:
    con = connect()
    con.execute("SET TimeZone = 'UTC'")
    return con


def _files(src: Path, exts: Sequence[str]) -> list[Path]:
    if src.is_dir():
        files = sorted(p for p in src.iterdir() if p.suffix.lower() in exts and p.is_file())
        if not files:
            raise ValueError(f"{src}: no {'/'.join(exts)} files in this folder")
        return files
    if not src.exists():
        raise ValueError(f"{src}: no such file or folder")
    return [src]


def _screen(
    con: duckdb.DuckDBPyConnection,
    view: str,
    checks: Sequence[Check],
    file_label: str,
    table: str,
    split: _Split,
    quarantine: bool,
) -> str:
    """Tag each row of ``view`` (which has ``__row``) with its first failing check; return the good rows' view.

    Raises :class:`SchemaError` listing every failing check when ``quarantine`` is off.
    """
    cases = " ".join(f"WHEN {c.bad_sql} THEN {i}" for i, c in enumerate(checks))
    tagged = f"{view}__tagged"
    expr = f"CASE {cases} END" if checks else "NULL"
    con.execute(f"CREATE OR REPLACE TEMP TABLE {tagged} AS SELECT *, {expr} AS __bad FROM {view}")
    n_in, n_bad = con.execute(f"SELECT count(*), count(__bad) FROM {tagged}").fetchall()[0]
    split.rows_in += int(n_in)
    if n_bad:
        if not quarantine:
            res = con.execute(
                f"SELECT __bad, count(*), list(__row ORDER BY __row)[1:{MAX_ROWS_SHOWN}] FROM {tagged} "
                "WHERE __bad IS NOT NULL GROUP BY __bad ORDER BY __bad"
            ).fetchall()
            raise SchemaError(
                [
                    Problem(file_label, checks[i].column, checks[i].reason, tuple(rows), int(n))
                    for i, n, rows in res
                ]
            )
        reasons = (
            "CASE __bad "
            + " ".join(
                f"WHEN {i} THEN {_lit((c.column + ': ' if c.column else '') + c.reason)}"
                for i, c in enumerate(checks)
            )
            + " END"
        )
        raw_cols = [
            r[0]
            for r in con.execute(f"DESCRIBE SELECT * FROM {view}").fetchall()
            if not r[0].startswith("__")
        ]
        sel = ", ".join(f"CAST({_q(c)} AS VARCHAR) AS {_q(c)}" for c in raw_cols)
        bad = con.sql(
            f"SELECT {sel}, {_lit(file_label)} AS source_file, __row AS source_row, {reasons} AS reason "
            f"FROM {tagged} WHERE __bad IS NOT NULL ORDER BY __row"
        ).to_arrow_table()
        split.quarantined.append(bad)
        split.n_quarantined += int(n_bad)
    good = f"{view}__good"
    con.execute(f"CREATE OR REPLACE TEMP VIEW {good} AS SELECT * FROM {tagged} WHERE __bad IS NULL")
    return good


def _write_quarantine(quarantine_dir: Path | None, table: str, split: _Split) -> None:
    if quarantine_dir is None or not split.quarantined:
        return
    quarantine_dir.mkdir(parents=True, exist_ok=True)
    tab = pa.concat_tables(split.quarantined, promote_options="default")
    pq.write_table(tab, quarantine_dir / f"{table}.parquet")


def _num_checks(cols: Sequence[tuple[str, str]], positive: bool = True) -> list[Check]:
    """Parseable, not NaN and > 0 for each (raw column, label)."""
    out = []
    for c, label in cols:
        q = _q(c)
        out.append(Check(label, "missing value", f"({q} IS NULL OR trim({q}) = '')"))
        out.append(Check(label, "value not parseable as double", f"TRY_CAST({q} AS DOUBLE) IS NULL"))
        if positive:
            out.append(
                Check(
                    label,
                    "NaN or non-positive value",
                    f"(isnan(TRY_CAST({q} AS DOUBLE)) OR TRY_CAST({q} AS DOUBLE) <= 0)",
                )
            )
    return out


def _order_check(ts_sql: str, label: str) -> Check:
    # a row earlier than any earlier parseable row of the same file is out of order
    prev_max = f"max({ts_sql}) OVER (ORDER BY __row ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING)"
    return Check(label, "out-of-order timestamp (earlier than a previous row)", f"{ts_sql} < {prev_max}")


def asset_name(symbol: str) -> str:
    """Canonical asset name of an exchange symbol: ``TNB/BTC`` → ``TNB-BTC`` (others kept, upper case)."""
    return re.sub(r"[/_:]", "-", symbol.strip()).upper()


def _asset_sql(col: str) -> str:
    return f"upper(regexp_replace(trim({_q(col)}), '[/_:]', '-', 'g'))"


# ---------------------------------------------------------------------------------------------
# trades formats: ccxt and tardis
# ---------------------------------------------------------------------------------------------


def _raw_view(con: duckdb.DuckDBPyConnection, path: Path, name: str, *, header: bool = True) -> None:
    p = _lit(str(path))
    if path.suffix.lower() in (".json", ".jsonl", ".ndjson"):
        rel = f"read_json({p}, format='auto')"
        cols = [r[0] for r in con.execute(f"DESCRIBE SELECT * FROM {rel}").fetchall()]
        sel = ", ".join(f"CAST({_q(c)} AS VARCHAR) AS {_q(c)}" for c in cols)
        src = f"SELECT {sel} FROM {rel}"
    else:
        src = f"SELECT * FROM read_csv({p}, header={str(header).lower()}, all_varchar=true)"
    con.execute(f"CREATE OR REPLACE TEMP VIEW {name} AS SELECT row_number() OVER () AS __row, * FROM ({src})")


def _require_columns(
    con: duckdb.DuckDBPyConnection, view: str, needed: Sequence[str], label: str
) -> set[str]:
    cols = {r[0] for r in con.execute(f"DESCRIBE SELECT * FROM {view}").fetchall()}
    missing = [c for c in needed if c not in cols]
    if missing:
        raise SchemaError([Problem(label, c, "missing column") for c in missing])
    return cols


def _trades_source(
    src: Path | list[Path], fmt: str, venue: str | None, quarantine: bool
) -> tuple[duckdb.DuckDBPyConnection, list[str], _Split]:
    con = _connect()
    split = _Split()
    selects: list[str] = []
    exts = (".csv", ".json", ".jsonl", ".ndjson") if fmt == "ccxt" else (".csv",)
    for k, path in enumerate(src if isinstance(src, list) else _files(src, exts)):
        raw = f"raw{k}"
        _raw_view(con, path, raw)
        if fmt == "ccxt":
            cols = _require_columns(con, raw, ("symbol", "timestamp", "side", "price", "amount"), str(path))
            ts = "make_timestamp(TRY_CAST(TRY_CAST(timestamp AS DOUBLE) AS BIGINT) * 1000)"
            if "datetime" in cols:
                # ccxt fills both; the ISO string is the fallback when the ms number is absent
                ts = f"coalesce({ts}, TRY_CAST(datetime AS TIMESTAMPTZ)::TIMESTAMP)"
            asset = _asset_sql("symbol")
            ven = _lit(venue or "binance")
            tid = (
                "CAST(id AS VARCHAR)"
                if "id" in cols
                else f"{_lit(path.stem + ':')} || CAST(__row AS VARCHAR)"
            )
            size_col = "amount"
        else:
            cols = _require_columns(
                con, raw, ("exchange", "symbol", "timestamp", "id", "side", "price", "amount"), str(path)
            )
            ts = "make_timestamp(TRY_CAST(timestamp AS BIGINT))"
            asset = _asset_sql("symbol")
            ven = _lit(venue) if venue else "CAST(exchange AS VARCHAR)"
            tid = f"CAST(exchange AS VARCHAR) || ':' || {asset} || ':' || CAST(id AS VARCHAR)"
            size_col = "amount"
        parsed = f"p{k}"
        con.execute(
            f"CREATE OR REPLACE TEMP VIEW {parsed} AS SELECT *, {ts} AS __ts, {tid} AS __tid, "
            f"{asset} AS __asset, {ven} AS __venue FROM {raw}"
        )
        checks = [
            Check("symbol", "missing value", "(symbol IS NULL OR trim(symbol) = '')"),
            # ccxt's ISO `datetime` stands in for a missing ms `timestamp`, so only both missing is bad
            Check("timestamp", "missing value", "(timestamp IS NULL AND __ts IS NULL)"),
            Check("timestamp", "timestamp not parseable", "__ts IS NULL"),
            *_num_checks([("price", "price"), (size_col, size_col)]),
            Check(
                "side",
                "unknown value (allowed: buy, sell)",
                "lower(coalesce(side, '')) NOT IN ('buy', 'sell')",
            ),
            _order_check("__ts", "timestamp"),
        ]
        if fmt == "tardis":
            checks[-1:-1] = [
                Check("id", "missing value", "__tid IS NULL"),
                Check(
                    "id", "duplicate trade id", "row_number() OVER (PARTITION BY __tid ORDER BY __row) > 1"
                ),
            ]
        good = _screen(con, parsed, checks, str(path), "trades", split, quarantine)
        selects.append(
            f"SELECT __tid AS trade_id, CAST(__ts AS TIMESTAMPTZ) AS ts, __venue AS venue, __asset AS asset, "
            f"CAST(price AS DOUBLE) AS price, CAST({_q(size_col)} AS DOUBLE) AS qty, "
            "CAST(NULL AS VARCHAR) AS buyer_id, CAST(NULL AS VARCHAR) AS seller_id, "
            "lower(side) AS aggressor, CAST(NULL AS VARCHAR) AS buy_order_id, "
            f"CAST(NULL AS VARCHAR) AS sell_order_id FROM {good}"
        )
    return con, selects, split


# ---------------------------------------------------------------------------------------------
# LOBSTER
# ---------------------------------------------------------------------------------------------

LOBSTER_COLS = ("time", "type", "order_id", "size", "price", "direction")


#: LOBSTER's file name: TICKER_YYYY-MM-DD_StartMs_EndMs_message_LEVEL.csv (its ReadMe)
LOBSTER_NAME = re.compile(
    r"^(?P<ticker>[^_]+)_(?P<date>\d{4}-\d{2}-\d{2})_(?P<start>\d+)_(?P<end>\d+)_(?P<kind>message|orderbook)_"
    r"(?P<levels>\d+)\.csv$",
    re.IGNORECASE,
)


def lobster_date(path: Path, date: str | None) -> str:
    """The trading date of a LOBSTER file: from its name, checked against ``date`` when both are known."""
    import datetime as _dt

    m = LOBSTER_NAME.match(path.name)
    named = m["date"] if m else None
    if date is not None:
        try:
            _dt.date.fromisoformat(date)
        except ValueError as exc:
            raise ValueError(f"--date must be YYYY-MM-DD, got {date!r}") from exc
        if named is not None and named != date:
            raise ValueError(f"{path.name}: the file name says {named}, --date says {date}; which is it?")
        return date
    if named is None:
        raise ValueError(
            f"{path.name}: lobster message files hold seconds after midnight and this name carries no date: "
            "give the trading date (--date)"
        )
    return named


def lobster_header(path: Path) -> bool:
    """Whether a LOBSTER CSV starts with a header row (a first field that is not a number).

    LOBSTER writes none; files passed through spreadsheets or pandas often gain one, with any line ending.
    """
    with path.open("rb") as f:
        head = f.read(4096).decode("utf-8-sig", errors="replace")
    first = re.split(r"[\r\n]", head.lstrip("\ufeff"), maxsplit=1)[0].split(",")[0].strip()
    if not first:
        return False
    try:
        float(first)
    except ValueError:
        return True
    return False


def _lobster(
    path: Path, date: str | None, venue: str | None, asset: str | None, tz: str, quarantine: bool
) -> tuple[duckdb.DuckDBPyConnection, str, str, _Split, dict[str, int]]:
    date = lobster_date(path, date)
    con = _connect()
    columns = "{" + ", ".join(f"'{c}': 'VARCHAR'" for c in LOBSTER_COLS) + "}"
    con.execute(
        "CREATE OR REPLACE TEMP VIEW raw AS SELECT row_number() OVER () AS __row, * FROM "
        f"read_csv({_lit(str(path))}, header=false, skip={int(lobster_header(path))}, columns={columns}, "
        "all_varchar=true)"
    )
    # DuckDB keeps a leading UTF-8 BOM in the first field; strip it (and stray blanks) before parsing
    t = "TRY_CAST(trim(replace(time, chr(65279), '')) AS DOUBLE)"
    ts = f"timezone({_lit(tz)}, DATE {_lit(date)} + to_microseconds(CAST(round({t} * 1e6) AS BIGINT)))"
    con.execute(
        f"CREATE OR REPLACE TEMP VIEW parsed AS SELECT *, {t} AS __t, "
        f"CASE WHEN {t} >= 0 AND {t} < 172800 THEN {ts} END AS __ts, "
        "TRY_CAST(type AS INTEGER) AS __type, TRY_CAST(order_id AS BIGINT) AS __oid, "
        "min(CASE WHEN TRY_CAST(type AS INTEGER) = 1 THEN __row END) "
        "OVER (PARTITION BY TRY_CAST(order_id AS BIGINT)) AS __new_row FROM raw"
    )
    trading = "__type BETWEEN 1 AND 6"
    checks = [
        Check("time", "timestamp not parseable", "(__t IS NULL OR isnan(__t) OR __ts IS NULL)"),
        Check("type", "unknown event type (allowed: 1-7)", "(__type IS NULL OR __type NOT BETWEEN 1 AND 7)"),
        Check("order_id", "value not parseable as bigint", f"({trading} AND __oid IS NULL)"),
        *[
            Check(c.column, c.reason, f"({trading} AND {c.bad_sql})")
            for c in _num_checks([("size", "size"), ("price", "price")])
        ],
        Check(
            "direction",
            "unknown value (allowed: 1, -1)",
            f"({trading} AND coalesce(trim(direction), '') NOT IN ('1', '-1'))",
        ),
        Check(
            "order_id",
            "fill/cancel of an unknown order (the order is submitted later in the file)",
            "(__type IN (2, 3, 4) AND __new_row > __row)",
        ),
        Check("order_id", "duplicate order id (submitted twice)", "(__type = 1 AND __new_row < __row)"),
        _order_check("__ts", "time"),
    ]
    split = _Split()
    good = _screen(con, "parsed", checks, str(path), "orders", split, quarantine)
    stem = path.name.split("_")[0] if asset is None else asset
    asset_lit, venue_lit, prefix = _lit(asset_name(stem)), _lit(venue or "NASDAQ"), _lit(path.stem + ":")
    side = "CASE WHEN trim(direction) = '1' THEN 'buy' ELSE 'sell' END"
    # LOBSTER rebuilds the book from the day's first order but writes only regular trading hours and the
    # requested price levels (its reconstruction FAQ), so a file can cancel or execute an order submitted
    # before it starts (or outside the levels). Such an order gets a `new` event at the file's first
    # instant, sized by everything later removed from it, so its events stay in the book and in the rules
    # (which do not judge the lifetime of orders from the first instant); they are counted.
    pre = "(__new_row IS NULL AND __type IN (2, 3, 4))"
    ev = "CASE __type WHEN 1 THEN 'new' WHEN 4 THEN 'fill' ELSE 'cancel' END"
    cols = (
        f"{venue_lit} AS venue, {asset_lit} AS asset, CAST(NULL AS VARCHAR) AS account_id, "
        "CAST(__oid AS VARCHAR) AS order_id"
    )
    orders_sql = (
        "SELECT * EXCLUDE (__seq) FROM ("
        f"SELECT {prefix} || CAST(__row AS VARCHAR) AS event_id, CAST(__ts AS TIMESTAMPTZ) AS ts, {cols}, "
        f"{ev} AS event, {side} AS side, CAST(price AS DOUBLE) / 10000 AS price, CAST(size AS DOUBLE) AS qty, "
        f"__row AS __seq FROM {good} WHERE __type BETWEEN 1 AND 4 "
        f"UNION ALL SELECT {prefix} || 'pre:' || CAST(__oid AS VARCHAR) AS event_id, "
        f"CAST((SELECT min(__ts) FROM {good}) AS TIMESTAMPTZ) AS ts, {cols}, 'new' AS event, "
        f"arg_min({side}, __row) AS side, arg_min(CAST(price AS DOUBLE), __row) / 10000 AS price, "
        f"sum(CAST(size AS DOUBLE)) AS qty, 0 AS __seq FROM {good} WHERE {pre} GROUP BY __oid"
        ") ORDER BY ts, __seq, order_id"
    )
    oid = "CASE WHEN __oid > 0 THEN CAST(__oid AS VARCHAR) END"
    trades_sql = (
        f"SELECT {prefix} || CAST(__row AS VARCHAR) AS trade_id, CAST(__ts AS TIMESTAMPTZ) AS ts, "
        f"{venue_lit} AS venue, {asset_lit} AS asset, CAST(CAST(price AS DOUBLE) / 10000 AS DOUBLE) AS price, "
        "CAST(size AS DOUBLE) AS qty, CAST(NULL AS VARCHAR) AS buyer_id, CAST(NULL AS VARCHAR) AS seller_id, "
        # direction is the side of the resting (executed) order; the aggressor is the other side
        "CASE WHEN trim(direction) = '1' THEN 'sell' ELSE 'buy' END AS aggressor, "
        f"CASE WHEN trim(direction) = '1' THEN {oid} END AS buy_order_id, "
        f"CASE WHEN trim(direction) = '-1' THEN {oid} END AS sell_order_id "
        f"FROM {good} WHERE __type IN (4, 5, 6)"
    )
    halts, n_pre, n_pre_msgs = con.execute(
        f"SELECT count(*) FILTER (WHERE __type = 7), count(DISTINCT __oid) FILTER (WHERE {pre}), "
        f"count(*) FILTER (WHERE {pre}) FROM {good}"
    ).fetchall()[0]
    skipped = {
        "skipped_trading_halt": int(halts),
        "orders_before_file": int(n_pre),
        "messages_of_orders_before_file": int(n_pre_msgs),
    }
    return con, orders_sql, trades_sql, split, skipped


# ---------------------------------------------------------------------------------------------
# canonical folder with quarantine
# ---------------------------------------------------------------------------------------------


def _canonical(
    src: Path, quarantine: bool
) -> tuple[duckdb.DuckDBPyConnection, dict[str, str], dict[str, _Split]]:
    con = _connect()
    out: dict[str, str] = {}
    splits: dict[str, _Split] = {}
    problems: list[Problem] = []
    for name, spec in TABLES.items():
        path = find_table_file(src, name)
        if path is None:
            continue
        p = _lit(str(path))
        rel = (
            f"read_parquet({p})"
            if path.suffix == ".parquet"
            else f"read_csv({p}, header=true, all_varchar=true)"
        )
        con.execute(
            f"CREATE OR REPLACE TEMP VIEW raw_{name} AS SELECT row_number() OVER () AS __row, * FROM {rel}"
        )
        present = [r[0] for r in con.execute(f"DESCRIBE SELECT * FROM {rel}").fetchall()]
        missing = [c.name for c in spec.columns if c.name not in present]
        if missing:
            raise SchemaError([Problem(str(path), c, "missing column") for c in missing])
        checks = [Check(c.column, c.reason, c.bad_sql) for c in row_checks(spec, present)]
        if spec.key:
            key = ", ".join(_q(k) for k in spec.key)
            # the first row of an id is kept, the repeats are bad
            checks.append(
                Check(
                    ", ".join(spec.key),
                    "duplicate id",
                    f"row_number() OVER (PARTITION BY {key} ORDER BY __row) > 1",
                )
            )
        if name == "orders":
            checks.append(
                Check(
                    "order_id",
                    "fill/cancel of an unknown order (no earlier `new` event)",
                    "(event IN ('fill', 'cancel') AND NOT coalesce(min(CASE WHEN event = 'new' THEN "
                    "TRY_CAST(ts AS TIMESTAMPTZ) END) OVER (PARTITION BY order_id) <= TRY_CAST(ts AS TIMESTAMPTZ), "
                    "false))",
                )
            )
        split = _Split()
        try:
            good = _screen(con, f"raw_{name}", checks, str(path), name, split, quarantine)
        except SchemaError as exc:  # report every table's problems at once
            problems.extend(exc.problems)
            continue
        out[name] = cast_select_sql(spec, present, good)
        splits[name] = split
    if problems:
        raise SchemaError(problems)
    if not out:
        raise ValueError(f"{src}: no canonical table files (trades.parquet/csv, orders.parquet/csv, ...)")
    return con, out, splits


# ---------------------------------------------------------------------------------------------
# entry points
# ---------------------------------------------------------------------------------------------


def read_source(
    src: str | Path,
    fmt: str,
    *,
    date: str | None = None,
    venue: str | None = None,
    asset: str | None = None,
    tz: str = "America/New_York",
    quarantine_dir: str | Path | None = None,
) -> tuple[dict[str, pa.Table], dict[str, dict[str, int]]]:
    """Read and validate a source into canonical Arrow tables; returns ``(tables, counts)``.

    Parameters
    ----------
    src
        File or folder.
    fmt
        One of :data:`FORMATS`.
    date, tz
        LOBSTER only: trading date (YYYY-MM-DD) and the exchange time zone of its times.
    venue, asset
        Override the venue (default: ``binance`` for ccxt, the ``exchange`` column for tardis, ``NASDAQ``
        for LOBSTER) and the LOBSTER asset (default: the file name's ticker).
    quarantine_dir
        Write bad rows there (``<table>.parquet`` with a ``reason``) instead of failing.
    """
    src = Path(src)
    qdir = Path(quarantine_dir) if quarantine_dir is not None else None
    quarantine = qdir is not None
    if fmt not in FORMATS:
        raise ValueError(f"unknown format {fmt!r}: use one of {', '.join(FORMATS)}")
    tables: dict[str, pa.Table] = {}
    counts: dict[str, dict[str, int]] = {}

    def fetch(con: duckdb.DuckDBPyConnection, sql: str) -> pa.Table:
        return con.sql(sql).to_arrow_table()

    if fmt in ("ccxt", "tardis"):
        trade_src: Path | list[Path] = src
        if fmt == "tardis":  # a Tardis folder may hold trades and order-book files side by side
            from market_surveillance.io.tardis_book import read_tardis_book, split_tardis

            trade_src, book_files = split_tardis(src)
            if book_files:
                tables["book"], counts["book"] = read_tardis_book(book_files, venue=venue)
        if trade_src:
            con, selects, split = _trades_source(trade_src, fmt, venue, quarantine)
            tab = fetch(con, " UNION ALL ".join(selects) + " ORDER BY ts, trade_id")
            tables["trades"] = tab
            counts["trades"] = _count(split, tab.num_rows)
            _write_quarantine(qdir, "trades", split)
    elif fmt == "binance":
        from market_surveillance.io.binance import read_binance

        got = read_binance(src, venue=venue, asset=asset, quarantine=quarantine)
        tables["trades"] = got.trades
        counts["trades"] = got.counts
        if qdir is not None and got.quarantined is not None:
            qdir.mkdir(parents=True, exist_ok=True)
            pq.write_table(got.quarantined, qdir / "trades.parquet")
    elif fmt == "lobster":
        if src.is_dir():
            raise ValueError(f"{src}: give one LOBSTER message file (…_message_N.csv), not a folder")
        if not src.exists():
            raise ValueError(f"{src}: no such file")
        con, orders_sql, trades_sql, split, skipped = _lobster(src, date, venue, asset, tz, quarantine)
        tables["orders"] = fetch(con, orders_sql)
        tables["trades"] = fetch(con, trades_sql)
        n_skip = skipped["skipped_trading_halt"]
        accepted = split.rows_in - split.n_quarantined - n_skip
        # counts are per source table: LOBSTER messages become order events and/or trades
        counts["messages"] = {
            "rows_in": split.rows_in,
            "accepted": accepted,
            "quarantined": split.n_quarantined,
            "skipped": n_skip,
            **skipped,
        }
        counts["orders"] = {
            "rows_out": tables["orders"].num_rows,
            "new_at_file_start_for_orders_before_file": skipped["orders_before_file"],
        }
        counts["trades"] = {"rows_out": tables["trades"].num_rows}
        _write_quarantine(qdir, "messages", split)
    else:
        if not src.is_dir():
            raise ValueError(f"{src}: the canonical format is a folder of table files")
        con, sqls, splits = _canonical(src, quarantine)
        for name, sql in sqls.items():
            tables[name] = fetch(con, sql)
            counts[name] = _count(splits[name], tables[name].num_rows)
            _write_quarantine(qdir, name, splits[name])
    return tables, counts


def _count(split: _Split, accepted: int) -> dict[str, int]:
    counts = {
        "rows_in": split.rows_in,
        "accepted": accepted,
        "quarantined": split.n_quarantined,
        "skipped": 0,
    }
    if counts["rows_in"] != accepted + split.n_quarantined:
        raise AssertionError(f"row accounting broken: {counts}")
    return counts


def open_source(
    src: Path,
    fmt: str,
    *,
    date: str | None = None,
    quarantine_dir: Path | None = None,
    venue: str | None = None,
    backend: ibis.BaseBackend | None = None,
) -> OpenedSource:
    """Read, validate and open a source as canonical Ibis tables (``ts_us`` added) on DuckDB."""
    tables, counts = read_source(src, fmt, date=date, venue=venue, quarantine_dir=quarantine_dir)
    be, itables, profile = from_arrow(tables, backend=backend or duckdb_backend())
    return OpenedSource(be, dict(itables), profile, counts)


def import_source(
    src: str | Path,
    fmt: str,
    out: str | Path,
    *,
    date: str | None = None,
    venue: str | None = None,
    quarantine_dir: str | Path | None = None,
) -> dict[str, dict[str, int]]:
    """Convert a source into a canonical folder (``<table>.parquet``); returns the row counts."""
    from market_surveillance.schema import conform

    tables, counts = read_source(src, fmt, date=date, venue=venue, quarantine_dir=quarantine_dir)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    for name, tab in tables.items():
        pq.write_table(conform(name, tab), out / f"{name}.parquet")
    return counts
