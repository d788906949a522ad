"""LOBSTER orderbook files: check our book reconstruction against LOBSTER's own, and book features from it.

A LOBSTER orderbook file has one row per message-file row: the book *after* that message, top ``L`` levels,
columns ``ask price 1, ask size 1, bid price 1, bid size 1, ask price 2, ...`` (prices × 10⁴; an empty
level is ``±9999999999`` with size 0). See ``LOBSTER_SampleFiles_ReadMe.txt``.

:func:`check_book` rebuilds the book from the canonical order events the LOBSTER adapter made of the message
file (:mod:`market_surveillance.book`, on a message clock: the event of message ``i`` is placed at
microsecond ``i`` so every message is its own book state) and compares the top ``L`` levels after every
message with the orderbook row. Orders resting from before the file that no message touches are invisible
in the message file; the orderbook's first row shows them, so the check seeds them (one ``new`` per level at
the file's start, counted as ``seeded_levels``) before comparing. Messages without an order event (hidden
executions, cross trades, halts) leave the book as it was: they are compared with the last state before.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass, field
from pathlib import Path

import duckdb
import pyarrow as pa

from market_surveillance.book import book_levels, level_changes
from market_surveillance.io.adapters import lobster_header

DUMMY = 9_999_999_999
_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)


@dataclass
class BookCheck:
    """Outcome of comparing the reconstructed book with a LOBSTER orderbook file."""

    compared: int  #: message rows compared
    mismatches: int  #: rows where any of the top ``levels`` levels differ
    levels: int
    seeded_levels: int = 0  #: levels seeded from row 1 (orders resting from before the file, never touched)
    #: differing (row, side, level) cells per class: price, size, missing (LOBSTER has the level, we do not),
    #: extra (we have a level LOBSTER does not show)
    by_class: dict[str, int] = field(default_factory=dict)
    first_rows: list[int] = field(default_factory=list)  #: first mismatching rows (1-based)

    def line(self) -> str:
        text = f"book check: {self.compared:,} compared, {self.mismatches:,} mismatches"
        if self.mismatches:
            classes = ", ".join(f"{k} {v:,}" for k, v in sorted(self.by_class.items()) if v)
            text += f" ({classes}; first rows {', '.join(map(str, self.first_rows))})"
        return text


def _lit(s: str) -> str:
    return "'" + s.replace("'", "''") + "'"


def read_orderbook(con: duckdb.DuckDBPyConnection, path: Path) -> tuple[int, int]:
    """Load ``path`` into the temp table ``ob`` (row, side, level, price, qty); returns (rows, levels)."""
    if not path.exists():
        raise ValueError(f"{path}: no such orderbook file")
    skip = int(lobster_header(path))
    with path.open("rb") as f:
        head = f.read(1 << 16).decode("utf-8-sig", errors="replace")
    lines = [line for line in re.split(r"[\r\n]+", head) if line.strip()]
    first = lines[skip] if len(lines) > skip else ""
    n_cols = len(first.strip().split(","))
    if n_cols % 4 or n_cols == 0:
        raise ValueError(f"{path}: {n_cols} columns; a LOBSTER orderbook has 4 per level")
    levels = n_cols // 4
    cols = "{" + ", ".join(f"'c{i}': 'VARCHAR'" for i in range(n_cols)) + "}"
    con.execute(
        "CREATE OR REPLACE TEMP TABLE ob_wide AS SELECT row_number() OVER () AS row, * FROM "
        f"read_csv({_lit(str(path))}, header=false, skip={skip}, columns={cols}, all_varchar=true)"
    )
    parts = []
    for k in range(levels):
        for side, pc, qc in (("sell", 4 * k, 4 * k + 1), ("buy", 4 * k + 2, 4 * k + 3)):
            parts.append(
                f"SELECT row, '{side}' AS side, {k + 1} AS level, "
                f"TRY_CAST(trim(replace(c{pc}, chr(65279), '')) AS BIGINT) AS price, "
                f"TRY_CAST(trim(c{qc}) AS BIGINT) AS qty FROM ob_wide"
            )
    con.execute("CREATE OR REPLACE TEMP TABLE ob_all AS " + " UNION ALL ".join(parts))
    bad = con.execute(
        "SELECT row, level FROM ob_all WHERE price IS NULL OR qty IS NULL ORDER BY row LIMIT 1"
    ).fetchall()
    if bad:
        raise ValueError(f"{path}: row {bad[0][0]}, level {bad[0][1]}: price or size is not an integer")
    con.execute(
        f"CREATE OR REPLACE TEMP TABLE ob AS SELECT * FROM ob_all WHERE NOT (abs(price) = {DUMMY} AND qty = 0)"
    )
    n = con.execute("SELECT count(*) FROM ob_wide").fetchall()[0][0]
    return int(n), levels


def _message_clock(orders: pa.Table, con: duckdb.DuckDBPyConnection) -> pa.Table:
    """The adapter's order events on a clock of message rows (µs = row; orders from before the file: 0)."""
    con.register("ms_lobster_orders", orders)
    return con.sql(
        "SELECT make_timestamptz(CASE WHEN event_id LIKE '%:pre:%' THEN 0 "
        "ELSE CAST(regexp_extract(event_id, ':(\\d+)$', 1) AS BIGINT) END) AS ts, "
        "venue, asset, order_id, event, side, price, qty FROM ms_lobster_orders"
    ).to_arrow_table()


def check_book(
    message_file: str | Path,
    orderbook_file: str | Path,
    *,
    date: str | None = None,
    max_rows_shown: int = 5,
) -> BookCheck:
    """Compare the book rebuilt from ``message_file`` with LOBSTER's ``orderbook_file`` after every message."""
    from market_surveillance.io.adapters import read_source

    message_file, orderbook_file = Path(message_file), Path(orderbook_file)
    tables, counts = read_source(message_file, "lobster", date=date)
    n_msgs = counts["messages"]["rows_in"]
    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")
    n_rows, levels = read_orderbook(con, orderbook_file)
    if n_rows != n_msgs:
        raise ValueError(
            f"{orderbook_file}: {n_rows:,} rows but the message file has {n_msgs:,}; LOBSTER writes one per message"
        )
    clock = _message_clock(tables["orders"], con)
    # seed what row 1 shows beyond what the messages explain: orders resting from before the file
    at1 = level_changes(clock, end=1, con=duckdb.connect())
    con.register("ms_at1", at1)
    seeds = con.sql(
        """
        WITH rec AS (
            SELECT side, CAST(round(price * 10000) AS BIGINT) AS price, arg_max(level_qty, ts) AS qty
            FROM ms_at1 GROUP BY ALL
        )
        SELECT o.side, o.price, o.qty - coalesce(r.qty, 0) AS qty
        FROM ob o LEFT JOIN rec r USING (side, price)
        WHERE o.row = 1 AND o.qty - coalesce(r.qty, 0) > 0
        ORDER BY o.side, o.price
        """
    ).fetchall()
    if seeds:
        venue = clock["venue"][0].as_py() if clock.num_rows else "NASDAQ"
        asset = clock["asset"][0].as_py() if clock.num_rows else ""
        seed_tab = pa.table(
            {
                "ts": pa.array([_EPOCH] * len(seeds), type=clock.schema.field("ts").type),
                "venue": [venue] * len(seeds),
                "asset": [asset] * len(seeds),
                "order_id": [f"init:{s}:{p}" for s, p, _ in seeds],
                "event": ["new"] * len(seeds),
                "side": [s for s, _, _ in seeds],
                "price": [p / 10000 for _, p, _ in seeds],
                "qty": [float(q) for _, _, q in seeds],
            }
        )
        clock = pa.concat_tables([clock, seed_tab.cast(clock.schema)])
    top = book_levels(clock, n_levels=levels, every=None, con=duckdb.connect())
    con.register("ms_top", top)
    con.register("ms_clock", clock)
    con.execute(
        """
        CREATE OR REPLACE TEMP TABLE rec AS
        SELECT epoch_us(ts) AS seq, side, level, CAST(round(price * 10000) AS BIGINT) AS price,
               CAST(round(qty) AS BIGINT) AS qty
        FROM ms_top
        """
    )
    # every message row reads the last reconstructed state at or before it
    con.execute(
        f"""
        CREATE OR REPLACE TEMP TABLE rows_map AS
        WITH r AS (SELECT range AS row FROM range(1, {n_rows + 1})),
             -- every message with an order event is a state, also one that leaves the book empty
             s AS (SELECT DISTINCT epoch_us(ts) AS seq FROM ms_clock)
        SELECT r.row, s.seq FROM r ASOF LEFT JOIN s ON r.row >= s.seq
        """
    )
    con.execute(
        """
        CREATE OR REPLACE TEMP TABLE diff AS
        WITH mine AS (
            SELECT m.row, x.side, x.level, x.price, x.qty FROM rows_map m JOIN rec x ON x.seq = m.seq
        )
        SELECT coalesce(o.row, mine.row) AS row,
               CASE WHEN mine.row IS NULL THEN 'missing' WHEN o.row IS NULL THEN 'extra'
                    WHEN o.price <> mine.price THEN 'price' ELSE 'size' END AS cls
        FROM ob o FULL OUTER JOIN mine USING (row, side, level)
        WHERE o.row IS NULL OR mine.row IS NULL OR o.price <> mine.price OR o.qty <> mine.qty
        """
    )
    by_class = dict(con.execute("SELECT cls, count(*) FROM diff GROUP BY cls").fetchall())
    mism = con.execute("SELECT count(DISTINCT row) FROM diff").fetchall()[0][0]
    first = [
        r[0]
        for r in con.execute(
            f"SELECT DISTINCT row FROM diff ORDER BY row LIMIT {int(max_rows_shown)}"
        ).fetchall()
    ]
    return BookCheck(n_rows, int(mism), levels, len(seeds), {k: int(v) for k, v in by_class.items()}, first)


def orderbook_features(
    message_file: str | Path,
    orderbook_file: str | Path,
    *,
    date: str | None = None,
    n_levels: int = 5,
    tz: str = "America/New_York",
) -> pa.Table:
    """Book-imbalance features after every message, from LOBSTER's own orderbook file.

    Returns
    -------
    pyarrow.Table
        ``venue, asset, ts, best_bid, best_ask, bid_qty, ask_qty, imbalance, spread, mid`` — the same first
        columns as :func:`market_surveillance.book.book_imbalance` (depths over the top ``n_levels``,
        ``imbalance = (bid - ask) / (bid + ask)``), plus the spread and mid price in dollars.
    """
    from market_surveillance.io.adapters import LOBSTER_NAME, lobster_date

    message_file, orderbook_file = Path(message_file), Path(orderbook_file)
    date = lobster_date(message_file, date)
    m = LOBSTER_NAME.match(message_file.name)
    asset = m["ticker"].upper() if m else message_file.name.split("_")[0].upper()
    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")
    read_orderbook(con, orderbook_file)
    cols = "{'t': 'VARCHAR', 'a': 'VARCHAR', 'b': 'VARCHAR', 'c': 'VARCHAR', 'd': 'VARCHAR', 'e': 'VARCHAR'}"
    con.execute(
        "CREATE OR REPLACE TEMP TABLE msg AS SELECT row_number() OVER () AS row, "
        "TRY_CAST(trim(replace(t, chr(65279), '')) AS DOUBLE) AS t FROM "
        f"read_csv({_lit(str(message_file))}, header=false, skip={int(lobster_header(message_file))}, "
        f"columns={cols}, all_varchar=true)"
    )
    ts = f"timezone({_lit(tz)}, DATE {_lit(date)} + to_microseconds(CAST(round(msg.t * 1e6) AS BIGINT)))"
    return con.sql(
        f"""
        WITH agg AS (
            SELECT row,
                   max(price) FILTER (WHERE side = 'buy' AND level = 1) / 10000 AS best_bid,
                   min(price) FILTER (WHERE side = 'sell' AND level = 1) / 10000 AS best_ask,
                   coalesce(sum(qty) FILTER (WHERE side = 'buy' AND level <= {int(n_levels)}), 0) AS bid_qty,
                   coalesce(sum(qty) FILTER (WHERE side = 'sell' AND level <= {int(n_levels)}), 0) AS ask_qty
            FROM ob GROUP BY row
        )
        SELECT 'NASDAQ' AS venue, {_lit(asset)} AS asset, CAST({ts} AS TIMESTAMPTZ) AS ts, best_bid, best_ask,
               CAST(bid_qty AS DOUBLE) AS bid_qty, CAST(ask_qty AS DOUBLE) AS ask_qty,
               (bid_qty - ask_qty) / nullif(bid_qty + ask_qty, 0) AS imbalance,
               best_ask - best_bid AS spread, (best_ask + best_bid) / 2 AS mid
        FROM msg LEFT JOIN agg USING (row) ORDER BY row
        """
    ).to_arrow_table()
