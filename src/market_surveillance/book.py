"""Order-book reconstruction from canonical ``orders`` events (or ``book`` level changes), vectorised in DuckDB SQL.

Each event changes the resting quantity of its order's price level: ``new`` adds the order quantity,
``cancel`` removes the remaining quantity and ``fill`` removes the filled quantity (the canonical meaning of
``orders.qty``). The book is therefore a set of per-level step functions: the deltas are summed per
(venue, asset, side, price, timestamp), cumulated per level in time order, and each level value holds until
the level's next change. Sampling the book at a time ``s`` is an interval join of those level segments with
the sample times, and the top ``N`` levels are a window rank per sample — no Python loop over events.

Conventions
-----------
* The book at time ``s`` includes every event with ``ts <= s`` (end-of-timestamp state), so a marketable
  order whose ``new`` and ``fill`` share a timestamp never shows as resting.
* A level belongs to the limit price of the order's ``new`` event when there is one (fills of real venues may
  report the execution price), otherwise to the event's own price.
* Quantities within ``eps`` of zero (float residue of the running sum) or negative (an order whose ``new``
  lies outside the data) are treated as an empty level.
* Level-based data (the ``book`` table: each row is a level's new total) needs no summing: the last change
  of a timestamp (highest ``seq``) holds until the level's next change; every function accepts it in place
  of ``orders``.
* ``imbalance = (bid_qty - ask_qty) / (bid_qty + ask_qty)`` over the top ``N`` levels of each side; null
  when both sides are empty.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import duckdb
import pyarrow as pa

US = 1_000_000
_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)

__all__ = ["book_imbalance", "book_levels", "level_changes", "to_arrow_orders"]

_ORDER_COLUMNS = ("ts", "venue", "asset", "order_id", "event", "side", "price", "qty")


def to_arrow_orders(orders: Any) -> pa.Table:
    """The columns the book needs, as Arrow, from an Arrow table, pandas/polars frame or Ibis table."""
    if isinstance(orders, pa.Table):
        tab = orders
    elif hasattr(orders, "to_pyarrow"):  # Ibis table (executes it) or polars frame → Arrow
        tab = orders.select(*_ORDER_COLUMNS).to_pyarrow() if hasattr(orders, "op") else orders.to_arrow()
    elif hasattr(orders, "to_arrow"):
        tab = orders.to_arrow()
    else:  # pandas
        tab = pa.Table.from_pandas(orders, preserve_index=False)
    missing = [c for c in _ORDER_COLUMNS if c not in tab.column_names]
    if missing:
        raise ValueError(f"orders must have columns {list(_ORDER_COLUMNS)}; missing {missing}")
    return tab.select(list(_ORDER_COLUMNS))


def _us(value: dt.datetime | int | None) -> int | None:
    if value is None or isinstance(value, int):
        return value
    if value.tzinfo is None:  # naive datetimes are UTC, like every timestamp in the canonical schema
        value = value.replace(tzinfo=dt.UTC)
    return (value - _EPOCH) // dt.timedelta(microseconds=1)


_LEVEL_COLUMNS = ("ts", "venue", "asset", "side", "price", "qty", "seq")


def _is_level_table(data: Any) -> bool:
    """Whether ``data`` is the canonical ``book`` table (level changes) rather than order events."""
    cols = data.column_names if isinstance(data, pa.Table) else list(getattr(data, "columns", []))
    return "seq" in cols and "event" not in cols


def _connect(orders: Any, con: duckdb.DuckDBPyConnection | None) -> duckdb.DuckDBPyConnection:
    if con is None:
        con = duckdb.connect()
        con.execute("SET TimeZone = 'UTC'")
        con.execute("SET enable_progress_bar = false")
    if _is_level_table(orders):
        tab = orders if isinstance(orders, pa.Table) else orders.select(*_LEVEL_COLUMNS).to_pyarrow()
        con.register("ms_book_levels", tab.select(list(_LEVEL_COLUMNS)))
    else:
        con.register("ms_book_orders", to_arrow_orders(orders))
    return con


def _updates_sql(end_us: int | None, eps: float) -> str:
    """Per-level segments from level changes (the ``book`` table of L2 feeds): the last change per timestamp."""
    until = "" if end_us is None else f"WHERE epoch_us(ts) <= {int(end_us)}"
    return f"""
    WITH steps AS (
        SELECT venue, asset, side, price, epoch_us(ts) AS ts_us, arg_max(qty, seq) AS level_qty
        FROM ms_book_levels {until} GROUP BY ALL
    )
    SELECT venue, asset, side, price, ts_us,
           coalesce(lead(ts_us) OVER (PARTITION BY venue, asset, side, price ORDER BY ts_us),
                    9223372036854775807) AS next_us,
           CASE WHEN level_qty > {float(eps)} THEN level_qty ELSE 0.0 END AS level_qty
    FROM steps
    """


def _levels_sql(end_us: int | None, eps: float) -> str:
    """Per-level segments ``[ts_us, next_us)`` with the level's resting quantity."""
    until = "" if end_us is None else f"WHERE epoch_us(ts) <= {int(end_us)}"
    return f"""
    WITH ev AS (
        SELECT venue, asset, order_id, side, event, epoch_us(ts) AS ts_us, price, qty
        FROM ms_book_orders {until}
    ),
    priced AS (
        SELECT venue, asset, side, ts_us,
               -- the level is the order's limit price (from its new event when present)
               coalesce(max(price) FILTER (WHERE event = 'new')
                        OVER (PARTITION BY venue, asset, order_id), price) AS price,
               CASE WHEN event = 'new' THEN qty ELSE -qty END AS delta
        FROM ev
    ),
    steps AS (
        SELECT venue, asset, side, price, ts_us, sum(delta) AS delta
        FROM priced GROUP BY ALL
    ),
    cum AS (
        SELECT venue, asset, side, price, ts_us,
               sum(delta) OVER w AS level_qty,
               lead(ts_us) OVER w AS next_us
        FROM steps
        WINDOW w AS (PARTITION BY venue, asset, side, price ORDER BY ts_us
                     ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW)
    )
    SELECT venue, asset, side, price, ts_us, coalesce(next_us, 9223372036854775807) AS next_us,
           CASE WHEN level_qty > {float(eps)} THEN level_qty ELSE 0.0 END AS level_qty
    FROM cum
    """


def level_changes(
    orders: Any,
    *,
    end: dt.datetime | int | None = None,
    eps: float = 1e-9,
    con: duckdb.DuckDBPyConnection | None = None,
) -> pa.Table:
    """Resting quantity per price level over time: one row per level change.

    Parameters
    ----------
    orders
        Canonical order events (Arrow, pandas, polars or Ibis table).
    end
        Ignore events after this time (datetime or epoch microseconds).
    eps
        Quantities at or below this are an empty level.

    Returns
    -------
    pyarrow.Table
        ``venue, asset, side, price, ts, level_qty``: the level holds ``level_qty`` from ``ts`` until its
        next row; sorted by venue, asset, ts, side, price.
    """
    seg = _updates_sql if _is_level_table(orders) else _levels_sql
    con = _connect(orders, con)
    sql = f"""
    SELECT venue, asset, side, price, make_timestamptz(ts_us) AS ts, level_qty
    FROM ({seg(_us(end), eps)})
    ORDER BY venue, asset, ts_us, side, price
    """
    return con.sql(sql).to_arrow_table()


def _samples_sql(every_us: int | None, start_us: int | None, end_us: int | None) -> str:
    lo = "" if start_us is None else f"AND ts_us >= {int(start_us)}"
    hi = "" if end_us is None else f"AND ts_us <= {int(end_us)}"
    if every_us is None:  # the state after each event timestamp
        return f"""
        SELECT DISTINCT venue, asset, ts_us AS sample_us FROM steps_all WHERE TRUE {lo} {hi}
        """
    first = "min(ts_us)" if start_us is None else str(int(start_us))
    last = "max(ts_us)" if end_us is None else str(int(end_us))
    # a regular grid on multiples of the step, from the first multiple >= start to end
    return f"""
    SELECT venue, asset, unnest(generate_series(
               (({first} + {every_us} - 1) // {every_us}) * {every_us}, {last}, {every_us})) AS sample_us
    FROM steps_all GROUP BY venue, asset
    """


def _every_us(every: dt.timedelta | float | None) -> int | None:
    if every is None:
        return None
    secs = every.total_seconds() if isinstance(every, dt.timedelta) else float(every)
    every_us = round(secs * US)
    if every_us <= 0:
        raise ValueError(f"The 'every' parameter of the book must be positive. Got {every!r} instead.")
    return every_us


def _top_sql(
    n_levels: int,
    every_us: int | None,
    start_us: int | None,
    end_us: int | None,
    eps: float,
    levels: bool = False,
) -> str:
    """CTEs ``samples`` (venue, asset, sample_us) and ``top`` (the top levels at each sample)."""
    if isinstance(n_levels, bool) or not isinstance(n_levels, int) or n_levels < 1:
        raise ValueError(
            f"The 'n_levels' parameter of the book must be an int >= 1. Got {n_levels!r} instead."
        )
    return f"""
    WITH seg AS ({(_updates_sql if levels else _levels_sql)(end_us, eps)}),
    steps_all AS (SELECT DISTINCT venue, asset, ts_us FROM seg),
    samples AS ({_samples_sql(every_us, start_us, end_us)}),
    live AS (
        -- interval join: the segment of each level that covers the sample time
        SELECT s.venue, s.asset, s.sample_us, g.side, g.price, g.level_qty AS qty
        FROM samples s JOIN seg g
          ON g.venue = s.venue AND g.asset = s.asset
         AND g.ts_us <= s.sample_us AND s.sample_us < g.next_us
        WHERE g.level_qty > 0
    ),
    ranked AS (
        SELECT *, row_number() OVER (
                   PARTITION BY venue, asset, sample_us, side
                   ORDER BY CASE WHEN side = 'buy' THEN -price ELSE price END) AS level
        FROM live
    ),
    top AS (SELECT * FROM ranked WHERE level <= {n_levels})
    """


def book_levels(
    orders: Any,
    *,
    n_levels: int = 5,
    every: dt.timedelta | float | None = 1.0,
    start: dt.datetime | int | None = None,
    end: dt.datetime | int | None = None,
    eps: float = 1e-9,
    con: duckdb.DuckDBPyConnection | None = None,
) -> pa.Table:
    """Top ``n_levels`` price levels of each side at sampled times.

    Parameters
    ----------
    orders
        Canonical order events (Arrow, pandas, polars or Ibis table), or the canonical ``book`` table of
        level changes (L2 feeds without order ids). Pass the full history up to ``end``:
        a book depends on every earlier event, so only ``start``/``end`` (not a pre-filter) limit the samples.
    n_levels
        Levels per side (1 = best bid/ask).
    every
        Sampling step (seconds or timedelta) on a grid aligned to multiples of the step; ``None`` samples
        the book after every distinct event timestamp.
    start, end
        Sample only within ``[start, end]`` (datetime or epoch µs); default: each venue/asset's first/last
        event.
    eps
        Quantities at or below this are an empty level.
    con
        DuckDB connection to use (a fresh in-memory one by default).

    Returns
    -------
    pyarrow.Table
        ``venue, asset, ts, side, level, price, qty`` with ``level`` 1 = best; a sample with an empty side has
        no rows for that side.
    """
    cte = _top_sql(n_levels, _every_us(every), _us(start), _us(end), eps, _is_level_table(orders))
    sql = f"""{cte}
    SELECT venue, asset, make_timestamptz(sample_us) AS ts, side, level::INTEGER AS level, price, qty
    FROM top ORDER BY venue, asset, sample_us, side, level
    """
    return _connect(orders, con).sql(sql).to_arrow_table()


def book_imbalance(
    orders: Any,
    *,
    n_levels: int = 5,
    every: dt.timedelta | float | None = 1.0,
    start: dt.datetime | int | None = None,
    end: dt.datetime | int | None = None,
    eps: float = 1e-9,
    con: duckdb.DuckDBPyConnection | None = None,
) -> pa.Table:
    """Bid/ask depth over the top ``n_levels`` and their imbalance at sampled times.

    Same parameters as :func:`book_levels`.

    Returns
    -------
    pyarrow.Table
        ``venue, asset, ts, bid_qty, ask_qty, best_bid, best_ask, imbalance`` — one row per sample, also when
        the book is empty (depths 0, best prices and imbalance null). ``imbalance`` is
        ``(bid_qty - ask_qty) / (bid_qty + ask_qty)`` in [-1, 1]; positive means more resting buy interest.
    """
    cte = _top_sql(n_levels, _every_us(every), _us(start), _us(end), eps, _is_level_table(orders))
    sql = f"""{cte},
    agg AS (
        SELECT venue, asset, sample_us,
               sum(qty) FILTER (WHERE side = 'buy') AS bid_qty,
               sum(qty) FILTER (WHERE side = 'sell') AS ask_qty,
               max(price) FILTER (WHERE side = 'buy' AND level = 1) AS best_bid,
               min(price) FILTER (WHERE side = 'sell' AND level = 1) AS best_ask
        FROM top GROUP BY venue, asset, sample_us
    )
    -- samples with an empty book have no level rows: keep them from the sampling grid
    SELECT s.venue, s.asset, make_timestamptz(s.sample_us) AS ts,
           coalesce(a.bid_qty, 0.0) AS bid_qty, coalesce(a.ask_qty, 0.0) AS ask_qty,
           a.best_bid, a.best_ask,
           (coalesce(a.bid_qty, 0.0) - coalesce(a.ask_qty, 0.0))
             / nullif(coalesce(a.bid_qty, 0.0) + coalesce(a.ask_qty, 0.0), 0.0) AS imbalance
    FROM samples s LEFT JOIN agg a USING (venue, asset, sample_us)
    ORDER BY s.venue, s.asset, s.sample_us
    """
    return _connect(orders, con).sql(sql).to_arrow_table()
