"""Binance public market-data dumps (data.binance.vision) → canonical ``trades``.

Binance publishes daily and monthly ZIPs, each holding one CSV named like the ZIP:
``<SYMBOL>-trades-<YYYY-MM-DD|YYYY-MM>.zip`` and ``<SYMBOL>-aggTrades-<...>.zip``. Older files have no
header; newer ones (and the futures dumps) may have one. The two layouts are told apart by their columns:

=========  ==============================================================================================
trades     ``id, price, qty, quoteQty, time, isBuyerMaker[, isBestMatch]`` (spot has 7 columns, futures 6)
aggTrades  ``agg_trade_id, price, quantity, first_trade_id, last_trade_id, transact_time, is_buyer_maker
           [, is_best_match]`` (spot 8, futures 7)
=========  ==============================================================================================

* Headerless 7-column files are the one ambiguous case (spot trades vs futures aggTrades): a futures
  aggTrades row has whole-number trade ids with ``last >= first`` in columns 4-5 and a timestamp in
  column 6; spot trades have a decimal quote quantity in column 4.
* ``time`` is milliseconds since the epoch (UTC); Binance switched spot dumps to microseconds in 2025, so
  values from 10¹⁴ up are read as microseconds.
* ``isBuyerMaker`` true means the resting order was the buy, so the taker (aggressor) sold.
* The market comes from the file name: ``NULSBTC`` → ``NULS-BTC`` by the quote currencies every adapter
  knows (:data:`market_surveillance.io.adapters.QUOTES`); ``--asset`` overrides it for a renamed file.
* A folder may hold a month of dailies, the monthly file, or both: rows that appear in several files are
  the same trade; exact repeats are removed and counted (``duplicates_removed``), while one trade id
  carrying different values in two files is a bad row (rejected, or quarantined with ``--quarantine``).
* ``trades`` and ``aggTrades`` of the same market and period are the same executions at two
  granularities: when both are given, the aggTrades files are skipped (counted, ``skipped_files``) so no
  trade is counted twice.
"""

from __future__ import annotations

import re
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa

from market_surveillance.io.adapters import QUOTES, asset_name
from market_surveillance.schema import Problem, SchemaError

_NAME = re.compile(
    r"^(?P<symbol>[A-Z0-9]+)-(?P<kind>trades|aggTrades)-(?P<period>\d{4}-\d{2}(?:-\d{2})?)$", re.IGNORECASE
)

_TRADES_COLS = ("id", "price", "qty", "quote_qty", "time", "is_buyer_maker", "is_best_match")
_AGG_COLS = (
    "agg_trade_id", "price", "quantity", "first_trade_id", "last_trade_id", "transact_time",
    "is_buyer_maker", "is_best_match",
)  # fmt: skip
# header spellings seen in Binance dumps (camelCase in the docs, snake_case in newer files)
_HEADER_ALIASES = {
    "a": "agg_trade_id", "aggtradeid": "agg_trade_id", "p": "price", "q": "quantity",
    "f": "first_trade_id", "firsttradeid": "first_trade_id", "l": "last_trade_id",
    "lasttradeid": "last_trade_id", "t": "transact_time", "transacttime": "transact_time",
    "m": "is_buyer_maker", "isbuyermaker": "is_buyer_maker", "isbestmatch": "is_best_match",
    "quoteqty": "quote_qty", "tradeid": "id", "timestamp": "time",
}  # fmt: skip


def market_of_symbol(symbol: str) -> str:
    """Canonical ``BASE-QUOTE`` of a Binance symbol: ``NULSBTC`` → ``NULS-BTC``.

    Raises ``ValueError`` when no known quote asset ends the symbol.
    """
    market = asset_name(symbol, split_concatenated=True)
    if "-" not in market:
        raise ValueError(
            f"{symbol!r}: cannot tell base from quote asset (known quotes: {', '.join(QUOTES)}); "
            "pass --asset BASE-QUOTE"
        )
    return market


@dataclass(frozen=True)
class BinanceFile:
    path: Path  # the ZIP or CSV given
    symbol: str
    kind: str | None  # trades | aggTrades from the file name (None when the name does not say)
    period: str | None


def parse_name(path: Path) -> BinanceFile:
    stem = path.name
    for suffix in (".zip", ".csv"):
        if stem.lower().endswith(suffix):
            stem = stem[: -len(suffix)]
    m = _NAME.match(stem)
    if m is None:
        return BinanceFile(path, stem.split("-")[0].upper(), None, None)
    kind = "aggTrades" if m["kind"].lower() == "aggtrades" else "trades"
    return BinanceFile(path, m["symbol"].upper(), kind, m["period"])


def _files(src: Path) -> list[Path]:
    if src.is_dir():
        files = sorted(p for p in src.iterdir() if p.is_file() and p.suffix.lower() in (".zip", ".csv"))
        if not files:
            raise ValueError(f"{src}: no .zip or .csv files in this folder")
        return files
    if not src.exists():
        raise ValueError(f"{src}: no such file or folder")
    return [src]


def _extract(path: Path, tmp: Path) -> Path:
    """The CSV inside a Binance ZIP (exactly one CSV member), extracted to ``tmp``; a CSV as is."""
    if path.suffix.lower() != ".zip":
        return path
    try:
        with zipfile.ZipFile(path) as zf:
            members = [n for n in zf.namelist() if n.lower().endswith(".csv")]
            if len(members) != 1:
                raise ValueError(f"{path}: expected one CSV inside the ZIP, found {len(members)}")
            out = tmp / f"{len(list(tmp.iterdir()))}_{Path(members[0]).name}"
            with zf.open(members[0]) as src, out.open("wb") as dst:
                while chunk := src.read(1 << 20):
                    dst.write(chunk)
            return out
    except zipfile.BadZipFile as exc:
        raise ValueError(f"{path}: not a readable ZIP file ({exc})") from exc


def _lit(s: str) -> str:
    return "'" + s.replace("'", "''") + "'"


def _first_line(csv: Path) -> list[str]:
    with csv.open("rb") as f:
        line = f.readline().decode("utf-8-sig", errors="replace")
    return [c.strip() for c in line.strip().split(",")]


def _is_number(s: str) -> bool:
    try:
        float(s)
    except ValueError:
        return False
    return True


def detect_layout(csv: Path, label: str) -> tuple[str, bool, tuple[str, ...]]:
    """``(layout, has_header, column names)`` of a Binance CSV, from its first line."""
    first = _first_line(csv)
    if first == [""]:
        raise ValueError(f"{label}: empty file")
    header = not _is_number(first[0])
    if header:
        names = tuple(
            _HEADER_ALIASES.get(re.sub(r"[^a-z]", "", c.lower()), re.sub(r"[^a-z_]", "", c.lower()))
            for c in first
        )
        names = tuple("quantity" if n == "qty" and "agg_trade_id" in names else n for n in names)
        if "agg_trade_id" in names or "first_trade_id" in names:
            layout = "aggTrades"
        elif "id" in names and "time" in names:
            layout = "trades"
        else:
            raise ValueError(f"{label}: header {','.join(first)} is neither a trades nor an aggTrades layout")
        return layout, True, names
    n = len(first)
    if n == 8:
        return "aggTrades", False, _AGG_COLS
    if n == 6:
        return "trades", False, _TRADES_COLS[:6]
    if n == 7:
        c = first
        ints = all(re.fullmatch(r"\d+", x) for x in (c[3], c[4], c[5]))
        if ints and int(c[4]) >= int(c[3]) and int(c[5]) > 10**11:  # futures aggTrades
            return "aggTrades", False, _AGG_COLS[:7]
        return "trades", False, _TRADES_COLS
    raise ValueError(
        f"{label}: {n} columns on the first line; Binance trades have 6-7 and aggTrades 7-8 columns"
    )


@dataclass
class BinanceRead:
    trades: pa.Table
    counts: dict[str, int]
    quarantined: pa.Table | None


def read_binance(
    src: Path, *, venue: str | None = None, asset: str | None = None, quarantine: bool = False
) -> BinanceRead:
    """Read Binance dump files (a ZIP, a CSV, or a folder of them) into canonical trades.

    Returns the trades (sorted by time, trade id), the row counts (``rows_in == accepted + quarantined +
    skipped``; ``skipped`` = ``duplicates_removed``; plus ``files`` and ``skipped_files``) and, with
    ``quarantine``, the bad rows with their reason. Without ``quarantine`` a bad row raises
    :class:`SchemaError` naming file, row and column.
    """
    from market_surveillance.io.canonical import connect

    files = [parse_name(p) for p in _files(src)]
    # both granularities of one market: keep trades, skip the aggTrades (same executions)
    with_trades = {f.symbol for f in files if f.kind == "trades"}
    skipped_files = [f for f in files if f.kind == "aggTrades" and f.symbol in with_trades]
    files = [f for f in files if f not in skipped_files]
    con = connect()
    con.execute("SET TimeZone = 'UTC'")
    selects: list[str] = []
    with tempfile.TemporaryDirectory(prefix="ms-binance-") as tmpdir:
        tmp = Path(tmpdir)
        for k, f in enumerate(files):
            label = str(f.path)
            market = asset or market_of_symbol(f.symbol)
            csv = _extract(f.path, tmp)
            layout, header, names = detect_layout(csv, label)
            if f.kind is not None and f.kind != layout:
                raise ValueError(f"{label}: the name says {f.kind} but the columns are the {layout} layout")
            cols = "{" + ", ".join(f"{_lit(n)}: 'VARCHAR'" for n in names) + "}"
            con.execute(
                f"CREATE OR REPLACE TEMP VIEW raw{k} AS SELECT row_number() OVER () AS __row, * FROM "
                f"read_csv({_lit(str(csv))}, header={str(header).lower()}, columns={cols}, "
                "all_varchar=true, null_padding=true)"
            )
            if layout == "trades":
                qty, t, tid = "qty", "time", f"{_lit('binance:' + market + ':')} || trim(id)"
                id_ok = "TRY_CAST(trim(id) AS BIGINT) IS NULL"
                id_col = "id"
            else:
                qty, t = "quantity", "transact_time"
                # aggregate ids restart in re-assembled files; the underlying trade range is the identity
                tid = f"{_lit('binance:' + market + ':agg:')} || trim(first_trade_id) || '-' || trim(last_trade_id)"
                id_ok = "(TRY_CAST(trim(first_trade_id) AS BIGINT) IS NULL OR TRY_CAST(trim(last_trade_id) AS BIGINT) IS NULL)"
                id_col = "first_trade_id"
            tnum = f"TRY_CAST(trim({t}) AS BIGINT)"
            ts_us = f"CASE WHEN {tnum} >= 100000000000000 THEN {tnum} ELSE {tnum} * 1000 END"
            maker = f"lower(trim({_q('is_buyer_maker')}))"
            selects.append(
                f"SELECT {_lit(label)} AS __file, __row, {tid} AS trade_id, {ts_us} AS __ts_us, "
                f"trim(price) AS __price, trim({qty}) AS __qty, {maker} AS __maker, "
                f"CASE WHEN {id_ok} THEN {_lit(id_col)} END AS __bad_id, {_lit(market)} AS asset, "
                f"{_lit(t)} AS __tcol, {_lit(qty)} AS __qcol FROM raw{k}"
            )
        if not selects:  # every file skipped is impossible: skipped ones have a trades twin
            raise ValueError(f"{src}: no Binance trades files")
        con.execute("CREATE OR REPLACE TEMP TABLE allrows AS " + " UNION ALL ".join(selects))
    price = "TRY_CAST(__price AS DOUBLE)"
    q = "TRY_CAST(__qty AS DOUBLE)"
    checks = [
        ("__bad_id", "value not parseable as an integer id", "__bad_id IS NOT NULL"),
        ("__tcol", "timestamp not parseable (ms or µs since epoch)", "__ts_us IS NULL OR __ts_us <= 0"),
        ("price", "missing or not a number", f"{price} IS NULL"),
        ("price", "NaN, infinite or non-positive value", f"(isnan({price}) OR isinf({price}) OR {price} <= 0)"),
        ("__qcol", "missing or not a number", f"{q} IS NULL"),
        ("__qcol", "NaN, infinite or non-positive value", f"(isnan({q}) OR isinf({q}) OR {q} <= 0)"),
        ("is_buyer_maker", "unknown value (allowed: true, false)", "coalesce(__maker, '') NOT IN ('true', 'false')"),
    ]  # fmt: skip
    # exact repeats (same trade in overlapping files) are dropped; the first file/row keeps it
    content = "__ts_us, __price, __qty, __maker"
    con.execute(
        "CREATE OR REPLACE TEMP TABLE ranked AS SELECT *, "
        "row_number() OVER (PARTITION BY trade_id, " + content + " ORDER BY __file, __row) AS __copy, "
        "count(DISTINCT (" + content + ")) OVER (PARTITION BY trade_id) AS __variants FROM allrows"
    )
    cases = " ".join(f"WHEN {sql} THEN {i}" for i, (_, _, sql) in enumerate(checks))
    conflict = len(checks)
    con.execute(
        f"CREATE OR REPLACE TEMP TABLE tagged AS SELECT *, CASE {cases} "
        f"WHEN __variants > 1 THEN {conflict} END AS __bad FROM ranked"
    )
    reasons = [r for _, r, _ in checks] + ["one trade id with different values in two rows or files"]
    n_in, n_dup, n_bad = con.execute(
        "SELECT count(*), count(*) FILTER (WHERE __copy > 1 AND __bad IS NULL), count(__bad) FROM tagged"
    ).fetchall()[0]
    quarantined = None
    if n_bad:
        if not quarantine:
            rows = con.execute(
                "SELECT __bad, __file, any_value(__tcol), any_value(__qcol), count(*), "
                "list(__row ORDER BY __row)[1:5] FROM tagged WHERE __bad IS NOT NULL "
                "GROUP BY __bad, __file ORDER BY __file, __bad"
            ).fetchall()
            problems = []
            for i, file, tcol, qcol, n, rr in rows:
                col = checks[i][0] if i < conflict else "id"
                col = {"__tcol": tcol, "__qcol": qcol, "__bad_id": "id"}.get(col, col)
                problems.append(Problem(file, col, reasons[i], tuple(rr), int(n)))
            raise SchemaError(problems)
        case_reason = " ".join(f"WHEN {i} THEN {_lit(r)}" for i, r in enumerate(reasons))
        quarantined = con.sql(
            "SELECT trade_id, CAST(__ts_us AS VARCHAR) AS time_us, __price AS price, __qty AS qty, "
            f"__maker AS is_buyer_maker, __file AS source_file, __row AS source_row, CASE __bad {case_reason} "
            "END AS reason FROM tagged WHERE __bad IS NOT NULL ORDER BY __file, __row"
        ).to_arrow_table()
    trades = con.sql(
        "SELECT trade_id, make_timestamptz(__ts_us) AS ts, "
        f"{_lit(venue or 'binance')} AS venue, asset, CAST(__price AS DOUBLE) AS price, "
        "CAST(__qty AS DOUBLE) AS qty, CAST(NULL AS VARCHAR) AS buyer_id, CAST(NULL AS VARCHAR) AS seller_id, "
        "CASE WHEN __maker = 'true' THEN 'sell' ELSE 'buy' END AS aggressor, "
        "CAST(NULL AS VARCHAR) AS buy_order_id, CAST(NULL AS VARCHAR) AS sell_order_id "
        "FROM tagged WHERE __bad IS NULL AND __copy = 1 ORDER BY ts, trade_id"
    ).to_arrow_table()
    con.close()
    counts = {
        "rows_in": int(n_in),
        "accepted": trades.num_rows,
        "quarantined": int(n_bad),
        "skipped": int(n_dup),
        "duplicates_removed": int(n_dup),
        "files": len(files),
        "skipped_files": len(skipped_files),
    }
    if counts["rows_in"] != counts["accepted"] + counts["quarantined"] + counts["skipped"]:
        raise AssertionError(f"row accounting broken: {counts}")
    return BinanceRead(trades, counts, quarantined)


def _q(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'
