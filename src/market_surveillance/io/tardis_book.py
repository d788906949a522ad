"""Tardis order-book CSVs (``incremental_book_L2``, ``book_snapshot_25`` / ``_5``) → the canonical ``book`` table.

Both are level-based (market by price, no order ids): a ``book`` row says "from ``ts`` the ``side`` level at
``price`` holds ``qty``" (0 = gone). Formats, as documented at docs.tardis.dev (downloadable CSV data types):

incremental_book_L2
    ``exchange, symbol, timestamp, local_timestamp, is_snapshot, side (bid|ask), price, amount``; ``amount``
    is the level's new total, not a delta, 0 removes the level. Rows before the first snapshot are updates
    buffered before the feed's snapshot and are skipped (counted). A snapshot that follows updates means the
    connection restarted (or a new day began): the book is discarded, so every level live before it and not
    restated by it is written as a 0 row at the snapshot's time.
book_snapshot_25 / book_snapshot_5
    ``exchange, symbol, timestamp, local_timestamp, asks[0].price, asks[0].amount, bids[0].price,
    bids[0].amount, asks[1].price, ...``: the top N levels after every change. Consecutive snapshots are
    diffed into level changes; a level that leaves the top N is written as 0 (out of view), so the table
    describes the visible top-N book.

``timestamp`` (exchange time, µs; Tardis falls back to ``local_timestamp`` when the exchange gives none) is
``ts``; the symbol becomes ``BASE-QUOTE`` exactly as Tardis trades do
(:func:`market_surveillance.io.adapters.asset_name`: ``NULSBTC`` → ``NULS-BTC``), the venue lower case.
"""

from __future__ import annotations

import re
from pathlib import Path

import duckdb
import pyarrow as pa

from market_surveillance.schema import Problem, SchemaError

BOOK_KINDS = ("incremental_book_L2", "book_snapshot")


def _lit(s: str) -> str:
    return "'" + s.replace("'", "''") + "'"


def tardis_kind(con: duckdb.DuckDBPyConnection, path: Path) -> str:
    """``trades``, ``incremental_book_L2``, ``book_snapshot`` or ``unsupported: <columns>`` from the header."""
    cols = [
        r[0]
        for r in con.execute(
            f"DESCRIBE SELECT * FROM read_csv({_lit(str(path))}, header=true, all_varchar=true)"
        ).fetchall()
    ]
    if "is_snapshot" in cols and "side" in cols and "amount" in cols:
        return "incremental_book_L2"
    if "asks[0].price" in cols and "bids[0].price" in cols:
        return "book_snapshot"
    if "id" in cols and "side" in cols and "amount" in cols:
        return "trades"
    return "unsupported: " + ",".join(cols[:8])


def tardis_files(src: Path) -> list[Path]:
    if src.is_dir():
        files = sorted(
            p
            for p in src.iterdir()
            if p.is_file() and (p.name.endswith(".csv") or p.name.endswith(".csv.gz"))
        )
        if not files:
            raise ValueError(f"{src}: no .csv or .csv.gz files in this folder")
        return files
    if not src.exists():
        raise ValueError(f"{src}: no such file or folder")
    return [src]


def _asset(con: duckdb.DuckDBPyConnection, view: str) -> str:
    """The market of each row's symbol, named as the Tardis trades adapter names it (one lookup per symbol)."""
    from market_surveillance.io.adapters import _asset_sql

    return _asset_sql(con, view, "symbol", split_concatenated=True)


def _bad(con: duckdb.DuckDBPyConnection, view: str, path: Path, checks: list[tuple[str, str, str]]) -> None:
    problems = []
    for col, reason, sql in checks:
        n, rows = con.execute(
            f"SELECT count(*), list(__row ORDER BY __row)[1:5] FROM {view} WHERE {sql}"
        ).fetchall()[0]
        if n:
            problems.append(Problem(str(path), col, reason, tuple(rows), int(n)))
    if problems:
        raise SchemaError(problems)


def _incremental(con: duckdb.DuckDBPyConnection, path: Path, k: int, venue: str | None) -> tuple[str, int]:
    raw = f"l2raw{k}"
    con.execute(
        f"CREATE OR REPLACE TEMP TABLE {raw} AS SELECT row_number() OVER () AS __row, * FROM "
        f"read_csv({_lit(str(path))}, header=true, all_varchar=true)"
    )
    ts = "TRY_CAST(trim(timestamp) AS BIGINT)"
    _bad(
        con,
        raw,
        path,
        [
            ("timestamp", "timestamp not parseable (µs since epoch)", f"{ts} IS NULL"),
            ("is_snapshot", "unknown value (allowed: true, false)", "lower(trim(is_snapshot)) NOT IN ('true', 'false')"),
            ("side", "unknown value (allowed: bid, ask)", "lower(trim(side)) NOT IN ('bid', 'ask')"),
            ("price", "NaN, non-positive or not a number", "NOT coalesce(TRY_CAST(price AS DOUBLE) > 0, false)"),
            ("amount", "NaN, negative or not a number", "NOT coalesce(TRY_CAST(amount AS DOUBLE) >= 0, false)"),
        ],
    )  # fmt: skip
    ven = f"lower(trim({_lit(venue)}))" if venue else "lower(trim(exchange))"
    con.execute(
        f"""
        CREATE OR REPLACE TEMP TABLE {raw}_p AS
        WITH p AS (
            SELECT __row, {ven} AS venue, {_asset(con, raw)} AS asset, {ts} AS ts_us,
                   lower(trim(is_snapshot)) = 'true' AS snap,
                   CASE lower(trim(side)) WHEN 'bid' THEN 'buy' ELSE 'sell' END AS side,
                   CAST(price AS DOUBLE) AS price, CAST(amount AS DOUBLE) AS qty
            FROM {raw}
        ),
        s AS (
            SELECT *, coalesce(lag(snap) OVER w, false) AS prev_snap FROM p
            WINDOW w AS (PARTITION BY venue, asset ORDER BY __row)
        )
        -- epoch k starts at the k-th snapshot block; epoch 0 holds updates before the first snapshot
        SELECT *, sum(CASE WHEN snap AND NOT prev_snap THEN 1 ELSE 0 END)
                  OVER (PARTITION BY venue, asset ORDER BY __row) AS epoch
        FROM s
        """
    )
    skipped = con.execute(f"SELECT count(*) FROM {raw}_p WHERE epoch = 0").fetchall()[0][0]
    # levels live at the end of an epoch and not restated by the next snapshot are gone at its start
    con.execute(
        f"""
        CREATE OR REPLACE TEMP TABLE {raw}_z AS
        WITH last AS (
            SELECT venue, asset, epoch, side, price, arg_max(qty, __row) AS qty
            FROM {raw}_p WHERE epoch > 0 GROUP BY ALL
        ),
        starts AS (
            SELECT venue, asset, epoch, min(ts_us) FILTER (WHERE snap) AS ts_us, min(__row) AS first_row
            FROM {raw}_p WHERE epoch > 1 GROUP BY ALL
        ),
        restated AS (SELECT DISTINCT venue, asset, epoch, side, price FROM {raw}_p WHERE snap AND epoch > 1)
        SELECT st.venue, st.asset, st.ts_us, l.side, l.price, 0.0 AS qty, st.first_row * 2 - 1 AS seq
        FROM last l JOIN starts st ON st.venue = l.venue AND st.asset = l.asset AND st.epoch = l.epoch + 1
        WHERE l.qty > 0 AND NOT EXISTS (
            SELECT 1 FROM restated r WHERE r.venue = l.venue AND r.asset = l.asset AND r.epoch = st.epoch
              AND r.side = l.side AND r.price = l.price)
        """
    )
    sql = (
        f"SELECT venue, asset, ts_us, side, price, qty, __row * 2 AS seq FROM {raw}_p WHERE epoch > 0 "
        f"UNION ALL SELECT venue, asset, ts_us, side, price, qty, seq FROM {raw}_z"
    )
    return sql, int(skipped)


def _snapshots(con: duckdb.DuckDBPyConnection, path: Path, k: int, venue: str | None) -> str:
    raw = f"snraw{k}"
    con.execute(
        f"CREATE OR REPLACE TEMP TABLE {raw} AS SELECT row_number() OVER () AS __row, * FROM "
        f"read_csv({_lit(str(path))}, header=true, all_varchar=true)"
    )
    cols = [r[0] for r in con.execute(f"DESCRIBE SELECT * FROM {raw}").fetchall()]
    n = max(int(m[1]) for c in cols if (m := re.fullmatch(r"asks\[(\d+)\]\.price", c))) + 1
    ts = "TRY_CAST(trim(timestamp) AS BIGINT)"
    _bad(con, raw, path, [("timestamp", "timestamp not parseable (µs since epoch)", f"{ts} IS NULL")])
    ven = f"lower(trim({_lit(venue)}))" if venue else "lower(trim(exchange))"
    parts = []
    for i in range(n):
        for name, side in (("asks", "sell"), ("bids", "buy")):
            pc, ac = f'"{name}[{i}].price"', f'"{name}[{i}].amount"'
            parts.append(
                f"SELECT __row, {ven} AS venue, {_asset(con, raw)} AS asset, {ts} AS ts_us, '{side}' AS side, "
                f"TRY_CAST({pc} AS DOUBLE) AS price, TRY_CAST({ac} AS DOUBLE) AS qty, {pc} AS __p, {ac} AS __a "
                f"FROM {raw}"
            )
    con.execute(f"CREATE OR REPLACE TEMP TABLE {raw}_l AS " + " UNION ALL ".join(parts))
    # an empty level is an empty cell; a present one must be a positive price with a non-negative amount
    _bad(
        con,
        f"{raw}_l",
        path,
        [
            ("asks/bids[i].price", "NaN, non-positive or not a number",
             "coalesce(trim(__p), '') <> '' AND NOT coalesce(price > 0, false)"),
            ("asks/bids[i].amount", "NaN, negative or not a number",
             "coalesce(trim(__p), '') <> '' AND NOT coalesce(qty >= 0, false)"),
        ],
    )  # fmt: skip
    con.execute(
        f"""
        CREATE OR REPLACE TEMP TABLE {raw}_s AS
        SELECT venue, asset, __row, ts_us, side, price, sum(qty) AS qty FROM {raw}_l
        WHERE price IS NOT NULL AND qty > 0 GROUP BY ALL
        """
    )
    # diff each snapshot with the one before it (per venue/asset): changed, new and vanished levels
    return f"""
        WITH snaps AS (
            SELECT __row, {ven} AS venue, {_asset(con, raw)} AS asset, {ts} AS ts_us FROM {raw}
        ),
        seqd AS (
            SELECT *, lag(__row) OVER (PARTITION BY venue, asset ORDER BY __row) AS prev_row FROM snaps
        ),
        cur AS (SELECT s.*, q.prev_row FROM {raw}_s s JOIN seqd q USING (venue, asset, __row)),
        prev AS (
            SELECT q.venue, q.asset, q.__row, q.ts_us, s.side, s.price, s.qty
            FROM seqd q JOIN {raw}_s s ON s.venue = q.venue AND s.asset = q.asset AND s.__row = q.prev_row
        )
        SELECT coalesce(c.venue, p.venue) AS venue, coalesce(c.asset, p.asset) AS asset,
               coalesce(c.ts_us, p.ts_us) AS ts_us, coalesce(c.side, p.side) AS side,
               coalesce(c.price, p.price) AS price, coalesce(c.qty, 0.0) AS qty,
               coalesce(c.__row, p.__row) * 2 AS seq
        FROM cur c FULL OUTER JOIN prev p
          ON c.venue = p.venue AND c.asset = p.asset AND c.__row = p.__row AND c.side = p.side AND c.price = p.price
        WHERE c.qty IS DISTINCT FROM p.qty
    """


def split_tardis(src: Path) -> tuple[list[Path], list[Path]]:
    """Tardis files of ``src`` split into (book files, everything else) as ``(others, books)``."""
    from market_surveillance.io.canonical import connect

    con = connect()
    trades, books = [], []
    for path in tardis_files(src):
        # book files are ours; everything else goes to the trades reader, which names other data types
        (books if tardis_kind(con, path) in BOOK_KINDS else trades).append(path)
    con.close()
    return trades, books


def read_tardis_book(files: list[Path], *, venue: str | None = None) -> tuple[pa.Table, dict[str, int]]:
    """Canonical ``book`` rows from Tardis book files; returns the table and its counts."""
    from market_surveillance.io.canonical import connect

    con = connect()
    con.execute("SET TimeZone = 'UTC'")
    selects, rows_in, skipped = [], 0, 0
    for k, path in enumerate(files):
        kind = tardis_kind(con, path)
        n = con.execute(
            f"SELECT count(*) FROM read_csv({_lit(str(path))}, header=true, all_varchar=true)"
        ).fetchall()[0][0]
        rows_in += int(n)
        if kind == "incremental_book_L2":
            sql, s = _incremental(con, path, k, venue)
            skipped += s
        elif kind == "book_snapshot":
            sql = _snapshots(con, path, k, venue)
        else:
            raise ValueError(f"{path}: not a Tardis order-book file ({kind})")
        # the file index keeps seq increasing across files of one market
        selects.append(f"SELECT *, {k} AS __file FROM ({sql})")
    tab = con.sql(
        "SELECT make_timestamptz(ts_us) AS ts, venue, asset, side, price, qty, "
        "CAST(row_number() OVER (ORDER BY ts_us, __file, seq) AS BIGINT) AS seq "
        f"FROM ({' UNION ALL '.join(selects)}) ORDER BY ts_us, seq"
    ).to_arrow_table()
    con.close()
    counts = {
        "rows_in": rows_in,
        "level_changes_out": tab.num_rows,
        "skipped_before_first_snapshot": skipped,
        "files": len(files),
    }
    return tab, counts
