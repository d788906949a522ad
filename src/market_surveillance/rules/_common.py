"""Small Ibis building blocks shared by rules (portable to DuckDB and PySpark)."""

from __future__ import annotations

import ibis
import ibis.expr.types as ir

US = 1_000_000


def with_episodes(
    t: ir.Table, keys: list[str], gap_s: float, *, ts: str = "ts_us", tiebreak: str | None = None
) -> ir.Table:
    """Number the episodes of each entity: a new episode starts when the previous hit of the same
    ``keys`` is more than ``gap_s`` seconds earlier. Adds an ``episode`` column (1, 2, ...).

    Note: ``ibis.window(order_by=...)`` frames aggregates over the whole partition; running sums need
    ``ibis.cumulative_window``.
    """
    order = [t[ts]] + ([t[tiebreak]] if tiebreak else [])
    w = ibis.window(group_by=[t[k] for k in keys], order_by=order)
    prev = t[ts].lag().over(w)
    t = t.mutate(_new_ep=(prev.isnull() | ((t[ts] - prev) > int(gap_s * US))).cast("int64"))
    cw = ibis.cumulative_window(
        group_by=[t[k] for k in keys], order_by=[t[ts]] + ([t[tiebreak]] if tiebreak else [])
    )
    return t.mutate(episode=t._new_ep.sum().over(cw)).drop("_new_ep")


def trailing(
    t: ir.Table, keys: list[str], seconds: float, *, ts: str = "ts_us"
) -> ibis.expr.builders.LegacyWindowBuilder:
    """A range window over the trailing ``seconds`` (inclusive of the current row) per ``keys``."""
    return ibis.range_window(
        group_by=[t[k] for k in keys], order_by=t[ts], preceding=int(seconds * US), following=0
    )


BAND = "_band"


def band_probe(t: ir.Table, ts: ir.IntegerValue, lo_us: int, hi_us: int) -> ir.Table:
    """``t`` twice, with a ``_band`` key: the two buckets of width ``hi_us - lo_us`` that ``[ts + lo_us,
    ts + hi_us]`` can touch. Joined on ``_band`` with :func:`band_side` of the other table (plus the exact range
    conditions), a time-band join hashes on the bucket instead of comparing every pair of rows that share the
    other keys: its cost follows the pairs in range, not the product of two busy assets' rows."""
    width = max(1, hi_us - lo_us)
    first = (ts + lo_us) // width
    # one pass over ``t`` (an unnested pair), not a union that would evaluate ``t`` twice
    return t.mutate(**{BAND: ibis.array([first, first + 1]).unnest()})


def band_side(t: ir.Table, ts: ir.IntegerValue, lo_us: int, hi_us: int) -> ir.Table:
    """The other side of :func:`band_probe` (same ``lo_us``/``hi_us``): each row in its one bucket."""
    return t.mutate(**{BAND: ts // max(1, hi_us - lo_us)})


def empty_str_array() -> ir.ArrayValue:
    return ibis.literal([], type="array<string>")


def with_asset_venue(g: ir.Table, trades: ir.Table) -> ir.Table:
    """``g`` (rows keyed by ``asset``) with ``venue``: the venue of the asset's trades when they are all on
    one venue, else null (the alert then judges the tape of several venues)."""
    v = trades.group_by("asset").aggregate(venue_lo=trades.venue.min(), venue_hi=trades.venue.max())
    v = v.select(
        asset_of_venue=v.asset, venue=ibis.ifelse(v.venue_lo == v.venue_hi, v.venue_lo, ibis.null("string"))
    )
    return g.left_join(v, g.asset == v.asset_of_venue).drop("asset_of_venue")


def null_str() -> ir.StringValue:
    return ibis.null().cast("string")


def account_trades(trades: ir.Table) -> ir.Table:
    """One row per (trade, participating account): account_id, side ('buy'/'sell'), aggressive flag."""
    cols = ["trade_id", "ts", "ts_us", "venue", "asset", "price", "qty"]
    buy = trades.filter(trades.buyer_id.notnull()).select(
        *cols, account_id=trades.buyer_id, side=ibis.literal("buy"), aggressive=trades.aggressor == "buy"
    )
    sell = trades.filter(trades.seller_id.notnull()).select(
        *cols, account_id=trades.seller_id, side=ibis.literal("sell"), aggressive=trades.aggressor == "sell"
    )
    return buy.union(sell)


def order_lifecycle(orders: ir.Table) -> ir.Table:
    """One row per order with its `new` fields, first cancel time and filled quantity."""
    new = orders.filter(orders.event == "new")
    ends = orders.filter(orders.event != "new")
    agg = ends.group_by("order_id").aggregate(
        cancel_us=ends.ts_us.min(where=ends.event == "cancel"),
        cancel_ts=ends.ts.min(where=ends.event == "cancel"),
        filled=ends.qty.sum(where=ends.event == "fill"),
    )
    j = new.left_join(agg, new.order_id == agg.order_id).drop("order_id_right")
    return j.mutate(filled=j.filled.fill_null(0.0))


def alert_rows(
    g: ir.Table,
    *,
    value: ir.NumericValue,
    score: ir.NumericValue,
    asset: ir.StringValue | None = None,
    venue: ir.StringValue | None = None,
    accounts: ir.ArrayValue | None = None,
    window_start: ir.TimestampValue | None = None,
    window_end: ir.TimestampValue | None = None,
    evidence_trade_ids: ir.ArrayValue | None = None,
    evidence_order_ids: ir.ArrayValue | None = None,
    explanation: ir.StringValue | None = None,
) -> ir.Table:
    """The final select of a rule: one row per episode with the candidate columns.

    Omitted columns take the usual defaults: ``asset``, ``window_start`` and ``window_end`` from ``g``'s
    columns of that name; no venue; no accounts (a market-level alert); no evidence ids.
    """
    cols: dict[str, ir.Value] = {
        "asset": g.asset if asset is None else asset,
        "venue": null_str() if venue is None else venue,
        "accounts": empty_str_array() if accounts is None else accounts,
        "window_start": g.window_start if window_start is None else window_start,
        "window_end": g.window_end if window_end is None else window_end,
        "value": value.cast("float64"),
        "score": score.cast("float64"),
        "evidence_trade_ids": empty_str_array() if evidence_trade_ids is None else evidence_trade_ids,
        "evidence_order_ids": empty_str_array() if evidence_order_ids is None else evidence_order_ids,
    }
    if "detected_at" in g.columns:  # when the rule could first decide (else window_end: finalize_alerts)
        cols["detected_at"] = g.detected_at
    if explanation is not None:
        cols["explanation"] = explanation
    return g.select(**cols)


def one_account(col: ir.StringValue) -> ir.ArrayValue:
    """The ``accounts`` array of a single-account alert."""
    return ibis.array([col])


def median_where(x: ir.NumericColumn, cond: ir.BooleanColumn) -> ir.NumericScalar:
    """Median of ``x`` over the rows where ``cond`` holds, on every backend.

    ``x.median(where=cond)`` compiles to a percentile whose fraction is itself conditional, which Spark
    refuses (it must be a constant); nulling the other rows gives the same median everywhere.
    """
    return ibis.ifelse(cond, x, ibis.null()).median()


#: bars over which ``asset_liquidity`` measures the asset's typical half-hour move, and how many it needs
MOVE_BAR_S = 1800
MOVE_MIN_BARS = 8


def asset_liquidity(trades: ir.Table) -> ir.Table:
    """The instrument's own scale, per asset (all venues), for liquidity-relative thresholds.

    Columns: ``asset``; ``med_notional``, the median trade notional; ``adv``, notional per day of the
    asset's data (the span floored at an hour, so a short file is not extrapolated from a few minutes);
    ``move_bps``, the median non-zero absolute price change between consecutive prints, in bps (on a
    tape the bid-ask bounce dominates it, so it stands in for the typical spread where no quotes are
    known; for a slow random walk it is the typical step); ``move_30m_bps``, the median non-zero absolute
    change from first to last print of its epoch-aligned half-hour bars, in bps (its ordinary half-hour
    move; null with fewer than ``MOVE_MIN_BARS`` bars, too few for a norm).
    """
    from market_surveillance.rules.bars import bars  # bars builds on this module

    tr = trades.mutate(_notional=trades.price * trades.qty)
    w = ibis.window(group_by=tr.asset, order_by=[tr.ts_us, tr.trade_id])
    prev = tr.price.lag().over(w)
    tr = tr.mutate(_move=((tr.price - prev).abs() / prev * 10_000))
    day_us = 86_400 * US
    span = ibis.greatest(tr.ts_us.max() - tr.ts_us.min(), day_us // 24).cast("float64")
    liq = tr.group_by("asset").aggregate(
        med_notional=tr._notional.median(),
        adv=tr._notional.sum() / (span / day_us),
        move_bps=median_where(tr._move, tr._move > 0),
    )
    b = bars(trades, MOVE_BAR_S)
    b = b.mutate(_m=(b.close / b.open - 1.0).abs() * 10_000)
    half_hour = b.group_by(h_asset=b.asset).aggregate(_n=b.count(), move_30m_bps=median_where(b._m, b._m > 0))
    half_hour = half_hour.mutate(
        move_30m_bps=ibis.ifelse(half_hour._n >= MOVE_MIN_BARS, half_hour.move_30m_bps, ibis.null())
    )
    j = liq.left_join(half_hour, liq.asset == half_hour.h_asset)
    return j.select("asset", "med_notional", "adv", "move_bps", "move_30m_bps")


def order_norms(orders: ir.Table) -> ir.Table:
    """The instrument's order-flow scale, per asset: ``med_order_qty``, the median size of new orders."""
    news = orders.filter(orders.event == "new")
    return news.group_by("asset").aggregate(med_order_qty=news.qty.median())
