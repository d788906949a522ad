"""Per-asset time bars and trailing baselines shared by market-level rules (MS015, MS016, MS018).

Buckets are aligned to the epoch (``ts_us // bucket``) so every engine agrees on their edges; windows
over them are range windows on the integer bucket, so a bucket without trades counts as empty.
"""

from __future__ import annotations

import ibis
import ibis.expr.types as ir

from market_surveillance.rules._common import US


def bars(trades: ir.Table, bucket_s: int, *, prices: bool = True) -> ir.Table:
    """Per asset and ``bucket_s`` bucket (aligned to the epoch): trade count, notional, aggressive-buy
    count, first/last/high/low price and the first and last print time. Buckets without trades are
    absent; windows over them are range windows on the integer ``bucket`` so gaps count as empty.

    ``prices=False`` leaves out ``open`` and ``close`` (the first and last print by time, then trade id),
    which cost a window ordering every print of the bucket."""
    # only the columns read: an engine that materialises a subquery read twice copies these, not the rows
    tr = trades.select("asset", "ts", "ts_us", "trade_id", "price", "qty", "aggressor")
    tr = tr.mutate(bucket=tr.ts_us // int(bucket_s * US))
    edges = {}
    if prices:
        # open and close by one window over the bucket's prints (time, then trade id), in the same aggregate:
        # a plan with two extra joins per bar table exhausted Spark's driver on MS018, which builds six of them
        w = ibis.window(group_by=[tr.asset, tr.bucket], order_by=[tr.ts_us, tr.trade_id])
        tr = tr.mutate(_first=tr.price.first().over(w), _last=tr.price.last().over(w))
        edges = {"open": tr._first.max(), "close": tr._last.max()}
    return tr.group_by(["asset", "bucket"]).aggregate(
        n=tr.count(),
        notional=(tr.price * tr.qty).sum(),
        n_buy=(tr.aggressor == "buy").cast("int64").sum(),
        **edges,
        high=tr.price.max(),
        low=tr.price.min(),
        ts_first=tr.ts.min(),
        ts_last=tr.ts.max(),
    )


def activity_bars(trades: ir.Table, bucket_s: int) -> ir.Table:
    """:func:`bars` without open/close, plus the first and last print's ``ts_us`` (``us_first``,
    ``us_last``) and the lowest and highest venue name (``venue_lo``, ``venue_hi``).

    Every column is a count, sum, minimum or maximum over the bucket's prints, so the bars of the prints
    in view are the kept bars of the buckets wholly in view plus the bar of the partly cut first bucket: an
    online runner keeps them per bucket and recomputes only the buckets new prints land in
    (:func:`market_surveillance.rules.intermediates.activity_bars`)."""
    tr = trades.select("asset", "venue", "ts", "ts_us", "price", "qty", "aggressor")
    tr = tr.mutate(bucket=tr.ts_us // int(bucket_s * US))
    return tr.group_by(["asset", "bucket"]).aggregate(
        n=tr.count(),
        notional=(tr.price * tr.qty).sum(),
        n_buy=(tr.aggressor == "buy").cast("int64").sum(),
        high=tr.price.max(),
        low=tr.price.min(),
        ts_first=tr.ts.min(),
        ts_last=tr.ts.max(),
        us_first=tr.ts_us.min(),
        us_last=tr.ts_us.max(),
        venue_lo=tr.venue.min(),
        venue_hi=tr.venue.max(),
    )


def with_bucket_evidence(g: ir.Table, trades: ir.Table, hits: ir.Table, bucket_s: int) -> ir.Table:
    """``g`` (one row per asset episode) with ``evidence_trade_ids``: the trades of the episode's hit buckets.

    ``hits`` has ``asset``, ``bucket`` and ``episode``; the trades are joined on the few hit rows only.
    """
    # only the prints from the first hit bucket on are joined (none when there is no hit)
    since = hits.bucket.min().as_scalar() * int(bucket_s * US)
    ev = trades.filter(trades.ts_us >= since)
    ev = ev.mutate(bucket=ev.ts_us // int(bucket_s * US)).select("asset", "bucket", "trade_id")
    hb = hits.select(h_asset=hits.asset, h_bucket=hits.bucket, h_episode=hits.episode)
    j = ev.join(hb, (ev.asset == hb.h_asset) & (ev.bucket == hb.h_bucket))
    ids = j.group_by([j.h_asset, j.h_episode]).aggregate(evidence_trade_ids=j.trade_id.collect())
    return g.left_join(ids, (g.asset == ids.h_asset) & (g.episode == ids.h_episode))


def with_baseline(b: ir.Table, baseline_s: int, bucket_s: int, warmup_s: int) -> ir.Table:
    """Add the asset's trailing per-bucket means of trade count and notional over ``baseline_s``
    (the current bucket excluded), the observed history length and, with prices, the previous bucket's
    close."""
    nb = max(1, baseline_s // bucket_s)
    w = ibis.range_window(group_by=b.asset, order_by=b.bucket, preceding=nb, following=0)
    first = b.bucket.min().over(ibis.window(group_by=b.asset))
    # buckets of history actually seen (a file's first day has less than a full baseline)
    seen = ibis.least(b.bucket - first, nb)
    seen_f = ibis.greatest(seen, 1).cast("float64")
    out = b.mutate(
        hist_buckets=seen,
        base_n=(b.n.sum().over(w) - b.n).cast("float64") / seen_f,
        base_notional=(b.notional.sum().over(w) - b.notional) / seen_f,
        warm=(b.bucket - first) * bucket_s >= warmup_s,
    )
    if "close" in b.columns:
        out = out.mutate(
            prev_close=out.close.lag().over(ibis.window(group_by=out.asset, order_by=out.bucket))
        )
    return out
