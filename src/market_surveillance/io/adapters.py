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
import pyarrow as pa
import pyarrow.parquet as pq

from market_surveillance.io.canonical import (
    OpenedSource,
    connect,
    duckdb_backend,
    from_arrow,
    write_quarantine,
)
from market_surveillance.schema import (
    TABLES,
    InputError,
    Limits,
    Problem,
    RowCheck,
    SchemaError,
    Screened,
    _q,
    _scalar,
    cast_select_sql,
    csv_relation_sql,
    describe,
    find_table_file,
    screen,
    screen_file,
    truncation_check,
)

FORMATS = ("canonical", "ccxt", "tardis", "lobster", "binance")
MAX_ROWS_SHOWN = 5


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
            raise InputError(f"{src}: no {'/'.join(exts)} files in this folder")
        return files
    if not src.exists():
        raise InputError(f"{src}: no such file or folder")
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


# ---------------------------------------------------------------------------------------------
# trades formats: ccxt and tardis
# ---------------------------------------------------------------------------------------------

#: quote currencies recognised at the end of a concatenated exchange symbol (``DLTBTC`` → ``DLT-BTC``),
#: longest first so ``BTCUSDT`` is BTC-USDT, not BTCUSD-T
QUOTES = tuple(
    sorted(
        (
            "USDT",
            "USDC",
            "BUSD",
            "TUSD",
            "FDUSD",
            "USDP",
            "DAI",
            "UST",
            "PAX",
            "USD",
            "EUR",
            "GBP",
            "JPY",
            "AUD",
            "CAD",
            "CHF",
            "TRY",
            "BRL",
            "RUB",
            "UAH",
            "NGN",
            "ZAR",
            "IDRT",
            "BIDR",
            "KRW",
            "BTC",
            "XBT",
            "ETH",
            "BNB",
            "TRX",
            "XRP",
            "DOGE",
        ),
        key=len,
        reverse=True,
    )
)
#: ccxt's common currency codes for exchange-specific ones, so every adapter names a coin alike
ALIASES = {"XBT": "BTC"}


def asset_name(symbol: str, *, split_concatenated: bool = False) -> str:
    """Canonical asset name ``BASE-QUOTE`` of an exchange symbol.

    ``TNB/BTC``, ``tnb_btc`` and ``TNB-BTC`` → ``TNB-BTC``; with ``split_concatenated`` (exchange-native
    symbols, e.g. Tardis) ``DLTBTC`` → ``DLT-BTC`` by its quote currency (:data:`QUOTES`). A derivative's
    settlement suffix is kept (``BTC/USDT:USDT`` → ``BTC-USDT:USDT``) so it never merges with the spot pair.
    """
    s = symbol.strip().upper()
    s, _, settle = s.partition(":")
    parts = [p for p in re.split(r"[/_\-]", s) if p]
    if len(parts) == 1 and split_concatenated:
        splits = [(s[: -len(q)], q) for q in QUOTES if s.endswith(q) and len(s) > len(q)]
        # XBTUSD ends in TUSD and in USD: the split whose base is itself a known currency wins
        known = [sp for sp in splits if sp[0] in QUOTES]
        if known or splits:
            parts = list((known or splits)[0])
    out = "-".join(ALIASES.get(p, p) for p in parts)
    return f"{out}:{settle}" if settle else out


def _asset_sql(
    con: duckdb.DuckDBPyConnection, view: str, col: str, *, split_concatenated: bool = False
) -> str:
    """:func:`asset_name` of every row's ``col``: computed once per distinct symbol, looked up per row."""
    symbols = [
        r[0] for r in con.execute(f"SELECT DISTINCT {_q(col)} FROM {view}").fetchall() if r[0] is not None
    ]
    if not symbols:
        return "CAST(NULL AS VARCHAR)"
    pairs = ", ".join(
        f"({_lit(sym)}, {_lit(asset_name(sym, split_concatenated=split_concatenated))})" for sym in symbols
    )
    return f"(SELECT m.a FROM (VALUES {pairs}) AS m(s, a) WHERE m.s = {_q(col)})"


def _raw_view(con: duckdb.DuckDBPyConnection, path: Path, name: str, *, header: bool = True) -> None:
    p = _lit(str(path))
    if path.suffix.lower() in (".json", ".jsonl", ".ndjson"):
        rel = f"read_json({p}, format='auto')"
        cols = describe(con, rel, str(path))
        sel = ", ".join(f"CAST({_q(c)} AS VARCHAR) AS {_q(c)}" for c in cols)
        src = f"SELECT {sel} FROM {rel}"
    else:
        if path.stat().st_size == 0:
            raise InputError(f"{path}: empty file (not even a header)")
        rel = csv_relation_sql(path, header=header)
        describe(con, rel, str(path))  # an unreadable file is one clear line, here
        src = f"SELECT * FROM {rel}"
    con.execute(
        f"CREATE OR REPLACE TEMP VIEW {name} AS SELECT row_number() OVER () AS __row, "
        f"{_lit(str(path))} AS __file, * FROM ({src})"
    )


def _require_columns(
    con: duckdb.DuckDBPyConnection, view: str, needed: Sequence[str], label: str
) -> set[str]:
    cols = {r[0] for r in con.execute(f"DESCRIBE SELECT * FROM {view}").fetchall()}
    missing = [c for c in needed if c not in cols]
    if missing:
        raise SchemaError([Problem(label, c, "missing column") for c in missing])
    return cols


#: Tardis datasets other than trades, recognised by their header (and liquidations by the file name,
#: since they share the trades columns)
TARDIS_KINDS = (
    ("incremental_book_L2", lambda cols: "is_snapshot" in cols),
    ("book_snapshot", lambda cols: any(c.startswith(("asks[", "bids[")) for c in cols)),
    ("quotes", lambda cols: {"ask_price", "bid_price"} <= cols),
    ("derivative_ticker", lambda cols: bool({"funding_rate", "open_interest", "mark_price"} & cols)),
    ("options_chain", lambda cols: bool({"strike_price", "option_type"} & cols)),
)


def _tardis_kind(cols: set[str], path: Path) -> str | None:
    for kind, match in TARDIS_KINDS:
        if match(cols):
            return kind
    if "liquidation" in path.name.lower():
        return "liquidations"
    return None


TRADE_LABELS = {
    "ccxt": {"qty": "amount", "ts": "timestamp", "aggressor": "side", "asset": "symbol"},
    "tardis": {
        "qty": "amount",
        "ts": "timestamp",
        "aggressor": "side",
        "asset": "symbol",
        "venue": "exchange",
        "trade_id": "id",
    },
}


def _trades_source(
    src: Path | list[Path], fmt: str, venue: str | None, quarantine: bool, limits: Limits | None
) -> tuple[duckdb.DuckDBPyConnection, Screened, int]:
    """Map every file to canonical trade columns (as text) and run the validation engine over them all.

    Returns the connection, the screening and the number of rows that were out of time order (sorted)."""
    con = _connect()
    selects: list[str] = []
    truncs: list[RowCheck] = []
    exts = (".csv", ".json", ".jsonl", ".ndjson", ".gz") if fmt == "ccxt" else (".csv", ".gz")
    for k, path in enumerate(src if isinstance(src, list) else _files(src, exts)):
        raw = f"raw{k}"
        _raw_view(con, path, raw)
        cut = truncation_check(path) if path.suffix.lower() == ".csv" else None
        if cut is not None:
            truncs.append(cut)
        if fmt == "ccxt":
            cols = _require_columns(con, raw, ("symbol", "timestamp", "side", "price", "amount"), str(path))
            ts = "try(make_timestamp(TRY_CAST(TRY_CAST(timestamp AS DOUBLE) AS BIGINT) * 1000))"
            if "datetime" in cols:
                # ccxt fills both; the ISO string is the fallback when the ms number is absent
                ts = f"coalesce({ts}, TRY_CAST(datetime AS TIMESTAMPTZ)::TIMESTAMP)"
            asset = _asset_sql(con, raw, "symbol")
            ven = f"lower(trim({_lit(venue or 'binance')}))"
            # without exchange ids a trade is its millisecond and its rank within it: same-millisecond fills
            # of equal size are real (601 of 13,680 rows of the TNB sample) and stay distinct, while the same
            # trade in two overlapping downloads gets the same id and is removed as an exact duplicate
            tid = (
                f"{asset} || ':' || CAST(id AS VARCHAR)"
                if "id" in cols
                else f"{asset} || ':' || trim(timestamp) || ':' || "
                "CAST(row_number() OVER (PARTITION BY symbol, trim(timestamp) ORDER BY __row) AS VARCHAR)"
            )
        else:
            cols = {r[0] for r in con.execute(f"DESCRIBE SELECT * FROM {raw}").fetchall()}
            kind = _tardis_kind(cols, path)
            if kind is not None:
                raise InputError(
                    f"{path}: a Tardis {kind} file; supported Tardis data types: trades, "
                    "incremental_book_L2, book_snapshot_25 and book_snapshot_5"
                )
            _require_columns(
                con, raw, ("exchange", "symbol", "timestamp", "id", "side", "price", "amount"), str(path)
            )
            ts = "try(make_timestamp(TRY_CAST(timestamp AS BIGINT)))"
            asset = _asset_sql(con, raw, "symbol", split_concatenated=True)
            ven = f"lower(trim({_lit(venue)}))" if venue else "lower(trim(exchange))"
            tid = f"{ven} || ':' || {asset} || ':' || NULLIF(trim(id), '')"
        ts_text = f"coalesce(CAST({ts} AS VARCHAR) || '+00', timestamp)"
        selects.append(
            f"SELECT {tid} AS trade_id, {ts_text} AS ts, {ven} AS venue, "
            f"NULLIF({asset}, '') AS asset, price, amount AS qty, CAST(NULL AS VARCHAR) AS buyer_id, "
            "CAST(NULL AS VARCHAR) AS seller_id, lower(trim(side)) AS aggressor, "
            "CAST(NULL AS VARCHAR) AS buy_order_id, CAST(NULL AS VARCHAR) AS sell_order_id, __row, __file "
            f"FROM {raw}"
        )
    con.execute("CREATE OR REPLACE TEMP VIEW mapped AS " + " UNION ALL ".join(selects))
    screened = screen(
        con,
        TABLES["trades"],
        "mapped",
        str(src),
        limits=limits,
        quarantine=quarantine,
        extra_checks=truncs,
        labels=TRADE_LABELS[fmt],
    )
    # files in reverse or shuffled order are sorted (the result is ordered by ts): count what moved
    out_of_order = _scalar(
        con,
        "SELECT count(*) FILTER (WHERE t < prev) FROM (SELECT t, max(t) OVER (PARTITION BY __file ORDER BY __row "
        "ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING) AS prev FROM "
        "(SELECT __file, __row, TRY_CAST(ts AS TIMESTAMPTZ) AS t FROM mapped))",
    )
    return con, screened, out_of_order


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
    limits: Limits | None = None,
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
    limits
        Plausibility bounds of the validation engine (timestamps).
    """
    src = Path(src)
    qdir = Path(quarantine_dir) if quarantine_dir is not None else None
    quarantine = qdir is not None
    if fmt not in FORMATS:
        raise InputError(f"unknown format {fmt!r}: use one of {', '.join(FORMATS)}")
    if not src.exists():
        raise InputError(f"{src}: no such file or folder")
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
                bcon = _connect()  # the book output passes the same engine as every source
                bcon.register("tardis_book", tables["book"])
                b = screen(bcon, TABLES["book"], "tardis_book", str(src), limits=limits)
                if b.problems:
                    raise SchemaError(b.problems)
        if trade_src:
            con, s, out_of_order = _trades_source(trade_src, fmt, venue, quarantine, limits)
            if s.problems:
                raise SchemaError(s.problems)
            tab = fetch(con, cast_select_sql(TABLES["trades"], s.types, s.relation) + " ORDER BY ts, trade_id")
            tables["trades"] = tab
            counts["trades"] = _count(s, tab.num_rows, out_of_order=out_of_order)
            write_quarantine(qdir, "trades", [s.bad_rows] if s.bad_rows is not None else [])
    elif fmt == "binance":
        from market_surveillance.io.binance import read_binance

        got = read_binance(src, venue=venue, asset=asset, quarantine=quarantine)
        # the reader's own row checks ran; its canonical output passes the same engine as every source
        con = _connect()
        con.register("binance_trades", got.trades)
        s = screen(con, TABLES["trades"], "binance_trades", str(src), limits=limits)
        if s.problems:
            raise SchemaError(s.problems)
        tables["trades"] = got.trades
        counts["trades"] = dict(got.counts)
        if s.duplicates:  # the same trade twice (overlapping dumps): removed and counted
            tables["trades"] = fetch(con, cast_select_sql(TABLES["trades"], s.types, s.relation))
            counts["trades"]["duplicates"] = s.duplicates
            counts["trades"]["accepted"] = counts["trades"].get("accepted", 0) - s.duplicates
        if qdir is not None and got.quarantined is not None:
            qdir.mkdir(parents=True, exist_ok=True)
            pq.write_table(got.quarantined, qdir / "trades.parquet")
    elif fmt == "lobster":
        if src.is_dir():
            raise InputError(f"{src}: give one LOBSTER message file (…_message_N.csv), not a folder")
        con, orders_sql, trades_sql, split, skipped = _lobster(src, date, venue, asset, tz, quarantine)
        # LOBSTER's own message checks ran; its canonical output passes the same engine as every source
        for name, sql in (("orders", orders_sql), ("trades", trades_sql)):
            s = screen(con, TABLES[name], f"({sql})", str(src), limits=limits)
            if s.problems:
                raise SchemaError(s.problems)
            tables[name] = fetch(con, cast_select_sql(TABLES[name], s.types, s.relation))
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
            raise InputError(f"{src}: the canonical format is a folder of table files")
        con = _connect()
        screened: dict[str, Screened] = {}
        problems: list[Problem] = []
        for name in TABLES:
            path = find_table_file(src, name)
            if path is None:
                continue
            try:
                s = screen_file(con, path, name, limits=limits, quarantine=quarantine)
            except SchemaError as exc:  # report every table's problems at once
                problems.extend(exc.problems)
                continue
            problems.extend(s.problems)
            screened[name] = s
        if problems:
            raise SchemaError(problems)
        if not screened:
            raise InputError(f"{src}: no canonical table files (trades.parquet/csv, orders.parquet/csv, ...)")
        for name, s in screened.items():
            tables[name] = fetch(con, cast_select_sql(TABLES[name], s.types, s.relation))
            counts[name] = _count(s, tables[name].num_rows)
            write_quarantine(qdir, name, [s.bad_rows] if s.bad_rows is not None else [])
    return tables, counts


def _count(s: Screened, accepted: int, **extra: int) -> dict[str, int]:
    counts = {**s.counts(), "skipped": 0, **extra}
    if counts["accepted"] != accepted:
        raise AssertionError(f"row accounting broken: {counts}, {accepted} rows out")
    return counts


def open_source(
    src: Path,
    fmt: str,
    *,
    date: str | None = None,
    quarantine_dir: Path | None = None,
    venue: str | None = None,
    backend: ibis.BaseBackend | None = None,
    limits: Limits | None = None,
) -> OpenedSource:
    """Read, validate and open a source as canonical Ibis tables (``ts_us`` added) on DuckDB."""
    tables, counts = read_source(
        src, fmt, date=date, venue=venue, quarantine_dir=quarantine_dir, limits=limits
    )
    tables.pop("labels", None)  # ground truth is for `evaluate`, never an input of detection
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
    limits: Limits | None = None,
) -> dict[str, dict[str, int]]:
    """Convert a source into a canonical folder (``<table>.parquet``); returns the row counts."""
    from market_surveillance.schema import conform

    tables, counts = read_source(
        src, fmt, date=date, venue=venue, quarantine_dir=quarantine_dir, limits=limits
    )
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    for name, tab in tables.items():
        pq.write_table(conform(name, tab), out / f"{name}.parquet")
    return counts
