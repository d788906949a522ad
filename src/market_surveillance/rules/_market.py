"""Building blocks of the account-free (market-level) rules MS030-MS039.

Public order-book data (LOBSTER, venue ITCH-style feeds) has every order but no account: these rules judge
orders and message flow by their own signature, against the instrument's own statistics. Where the data
does carry account ids the account-level rule of the same typology runs instead (it can name the account),
so each of these rules skips such data with a reason pointing to it.
"""

from __future__ import annotations

import ibis
import ibis.expr.types as ir

from market_surveillance.schema import DataProfile

KEY = ["venue", "asset"]


def skip_with_accounts(profile: DataProfile, base_reason: str | None, instead: str) -> str | None:
    """The skip reason of a market-level rule: its base reason, or that account ids let ``instead`` run."""
    if base_reason is not None:
        return base_reason
    if profile.has_order_accounts:
        return f"the orders carry account ids: the account-level rule {instead} runs instead"
    return None


def observed_orders(orders: ir.Table) -> ir.Table:
    """One row per order whose ``new`` lies inside the data, with its end and fills.

    Columns of the ``new`` event plus ``end_us``/``end_ts`` (first cancel, null if never cancelled),
    ``filled`` (filled quantity, 0 if none) and ``fill_us`` (first fill). Orders submitted at the first
    instant of their venue/asset are dropped: importers place orders that rest from before the file there
    (LOBSTER), so their real age is unknown.
    """
    o = orders
    first = o.group_by(KEY).aggregate(_first_us=o.ts_us.min())
    news = o.filter(o.event == "new")
    news = news.join(first, KEY)
    news = news.filter(news.ts_us > news._first_us).drop("_first_us")
    ends = o.filter(o.event != "new")
    agg = ends.group_by([*KEY, "order_id"]).aggregate(
        end_us=ends.ts_us.min(where=ends.event == "cancel"),
        end_ts=ends.ts.min(where=ends.event == "cancel"),
        filled=ends.qty.sum(where=ends.event == "fill"),
        fill_us=ends.ts_us.min(where=ends.event == "fill"),
    )
    j = news.left_join(agg, [news.venue == agg.venue, news.asset == agg.asset, news.order_id == agg.order_id])
    j = j.drop(*[c for c in j.columns if c.endswith("_right")])
    return j.mutate(filled=j.filled.fill_null(0.0))


def with_last_trade_price(news: ir.Table, trades: ir.Table) -> ir.Table:
    """``news`` with ``ref_price``: the mean price of the venue/asset's last trade timestamp at or before it.

    Portable (no as-of join): trades and orders are put in one time line, the latest trade time seen so far
    is a running max, and that time is joined back to the per-timestamp trade prices.
    """
    tp = trades.group_by([*KEY, "ts_us"]).aggregate(ref_price=trades.price.mean())

    def part(tab: ir.Table, oid: ir.Value, is_trade: int) -> ir.Table:
        # explicit casts: the two sides' columns differ in nullability, which a union refuses
        return tab.select(
            venue=tab.venue.cast("string"),
            asset=tab.asset.cast("string"),
            ts_us=tab.ts_us.cast("int64"),
            _oid=oid.cast("string"),
            _is_trade=ibis.literal(is_trade, type="int8"),
        )

    line = part(news, news.order_id, 0).union(part(tp, ibis.null(), 1))
    # trades sort before orders of the same microsecond: "at or before"
    cw = ibis.cumulative_window(
        group_by=[line.venue, line.asset], order_by=[line.ts_us, line._is_trade.desc()]
    )
    line = line.mutate(_last_us=ibis.cases((line._is_trade == 1, line.ts_us), else_=None).max().over(cw))
    line = line.filter(line._is_trade == 0)
    ref = line.join(tp, [line.venue == tp.venue, line.asset == tp.asset, line._last_us == tp.ts_us]).select(
        venue=line.venue, asset=line.asset, _oid=line._oid, ref_price=tp.ref_price
    )
    out = news.left_join(ref, [news.venue == ref.venue, news.asset == ref.asset, news.order_id == ref._oid])
    return out.drop(*[c for c in out.columns if c.endswith("_right")], "_oid")


def bucket(t: ir.Table, seconds: float, ts: str = "ts_us") -> ir.IntegerValue:
    """Start (µs) of the ``seconds``-long bucket holding each row; integer arithmetic so engines agree."""
    b = int(seconds * 1_000_000)
    return t[ts] - t[ts] % b
