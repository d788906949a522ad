"""Per-account behavioural features, computed with Ibis on the rules' canonical tables.

Everything heavy (joins, windows, aggregations over trades and order events) runs on the tables' backend
(DuckDB or PySpark); only the final one-row-per-account table comes back as pandas. Each feature is
described in :data:`FEATURES` (and in ``docs/ml.md``). Accounts without trades or orders get zeros, except
``cancel_latency_median_s``, which is neutral (the population median) for accounts that never cancelled:
zero would read as "the fastest canceller in the market".
"""

from __future__ import annotations

from collections.abc import Mapping

import ibis
import ibis.expr.types as ir
import numpy as np
import pandas as pd

US_PER_S = 1_000_000

#: feature name → description (order = column order of :func:`account_features`)
FEATURES: dict[str, str] = {
    "notional": "traded notional, USD (both roles)",
    "trade_count": "trades the account is a party to",
    "order_count": "orders placed (`new` events)",
    "cancel_ratio": "cancels / max(fills of own orders, 1) over the whole data (MS010 uses 30-min windows)",
    "quick_cancel_share": "share of placed orders cancelled within 5 s of placement",
    "cancel_latency_median_s": "median seconds from `new` to `cancel` of cancelled orders",
    "msg_rate_peak": "peak instructions (`new` + `cancel`) in any trailing 60 s (MS009's count)",
    "self_trade_share": "share of the account's trades where it is both buyer and seller",
    "top_counterparty_share": "share of trades (with a known other party) done with the single most frequent "
    "counterparty, normalised by what the trade count forces ((x - 1/n) / (1 - 1/n); 0 for a single trade)",
    "counterparty_hhi": "Herfindahl index of trade counts over counterparties, normalised as above (1 = n trades "
    "with one counterparty only; 0 for a single trade)",
    "aggressor_share": "share of the account's trades where it crossed the spread",
    "venue_count": "distinct venues traded or ordered on",
    "asset_count": "distinct assets traded or ordered",
    "position_share": "max over assets of |net position| / asset float, latest snapshot",
    "busiest_hour_share": "share of notional traded in the account's busiest clock hour",
    "baseline_deviation": "peak hourly notional / stored baseline_hourly_notional",
    "order_size_rel": "median of new-order qty / the asset's median new-order qty",
    "order_size_rel_max": "max of new-order qty / the asset's median new-order qty",
    "price_deviation_bps": "notional-weighted mean |price − the asset's mean print price over the trailing 30 minutes|, bps",
    "shared_network_accounts": "other accounts sharing a device id or IP subnet with this account",
}

#: counts and sizes whose spread spans orders of magnitude: the detector takes log1p of these
HEAVY_TAILED: tuple[str, ...] = (
    "notional",
    "trade_count",
    "order_count",
    "cancel_ratio",
    "cancel_latency_median_s",
    "msg_rate_peak",
    "venue_count",
    "asset_count",
    "baseline_deviation",
    "order_size_rel",
    "order_size_rel_max",
    "price_deviation_bps",
    "shared_network_accounts",
)

QUICK_CANCEL_S = 5
MSG_WINDOW_S = 60
PRICE_WINDOW_S = 1800


def _nullable(t: ir.Table) -> ir.Table:
    """The same columns with nullable types, so set operations accept inputs of mixed nullability."""
    schema = t.schema()
    return t.select(**{c: t[c].cast(schema[c].copy(nullable=True)) for c in schema.names})


def trade_legs(tr: ir.Table, extra: tuple[str, ...] = ()) -> ir.Table:
    """One row per (trade, account party): a self-trade is one leg, as the account made one trade.

    ``extra`` names further columns of ``tr`` carried onto both legs.
    """
    notional = (tr.price * tr.qty).name("notional")
    is_self = (tr.buyer_id.notnull() & (tr.buyer_id == tr.seller_id)).fill_null(False)
    common = dict(trade_id=tr.trade_id, ts=tr.ts, ts_us=tr.ts_us, venue=tr.venue, asset=tr.asset)
    common |= {c: tr[c] for c in extra}
    buy = tr.filter(tr.buyer_id.notnull()).select(
        account_id=tr.buyer_id,
        counterparty=tr.seller_id,
        **common,
        price=tr.price,
        notional=notional,
        is_self=is_self.cast("int64"),
        is_aggr=(is_self | (tr.aggressor == "buy")).cast("int64"),
    )
    sell = tr.filter(tr.seller_id.notnull() & ~is_self).select(
        account_id=tr.seller_id,
        counterparty=tr.buyer_id,
        **common,
        price=tr.price,
        notional=notional,
        is_self=ibis.literal(0, type="int64"),
        is_aggr=(tr.aggressor == "sell").cast("int64"),
    )
    return _nullable(buy).union(_nullable(sell))


def _with_ref_price(tr: ir.Table) -> ir.Table:
    """Trades with ``ref_price``: the asset's mean print price (all venues) over the trailing 30 one-minute
    buckets, the print's own included. Buckets instead of a per-row 30-min range window over every trade
    (3.5 of 5.4 s at 3M trades), and joined to the trades before they are split into legs, so the 20M
    legs of 10M trades need no join of their own."""
    m = tr.mutate(minute=tr.ts_us // (60 * US_PER_S))
    bars = m.group_by(["asset", "minute"]).aggregate(s=m.price.sum(), n=m.count())
    w = ibis.range_window(
        group_by=bars.asset, order_by=bars.minute, preceding=PRICE_WINDOW_S // 60 - 1, following=0
    )
    bars = bars.select("asset", "minute", ref_price=bars.s.sum().over(w) / bars.n.sum().over(w))
    return m.join(bars, ["asset", "minute"]).drop("minute")


def _trade_features(legs: ir.Table) -> ir.Table:
    """Per-account trade aggregates; ``legs`` carry ``ref_price`` (see :func:`_with_ref_price`)."""
    dev = (legs.price - legs.ref_price).abs() / legs.ref_price * 1e4 * legs.notional
    base = legs.group_by("account_id").aggregate(
        notional=legs.notional.sum(),
        trade_count=legs.count(),
        self_trades=legs.is_self.sum(),
        aggr_trades=legs.is_aggr.sum(),
        dev_sum=dev.sum(),
    )
    # counterparty concentration over trades with a known, different other party
    cp = legs.filter(legs.counterparty.notnull() & (legs.is_self == 0))
    pair = cp.group_by(["account_id", "counterparty"]).aggregate(c=cp.count().cast("float64"))
    conc = pair.group_by("account_id").aggregate(
        cp_total=pair.c.sum(), cp_top=pair.c.max(), cp_sq=(pair.c * pair.c).sum()
    )
    # clock-hour notional: busiest-hour share and peak vs the stored baseline
    hourly = legs.mutate(hour=legs.ts_us // (3600 * US_PER_S))
    hourly = hourly.group_by(["account_id", "hour"]).aggregate(h=hourly.notional.sum())
    hours = hourly.group_by("account_id").aggregate(peak_hour=hourly.h.max())
    out = base.left_join(conc, "account_id").select(base, conc.cp_total, conc.cp_top, conc.cp_sq)
    out = out.left_join(hours, "account_id").select(out, hours.peak_hour)
    return out


def _order_features(o: ir.Table) -> ir.Table:
    o = o.filter(o.account_id.notnull())
    new = o.filter(o.event == "new")
    canc = o.filter(o.event == "cancel")
    counts = o.group_by("account_id").aggregate(
        order_count=(o.event == "new").sum(),
        cancels=(o.event == "cancel").sum(),
        fills=(o.event == "fill").sum(),
    )
    # cancel latency: first `new` and first `cancel` of each order; only cancelled orders' `new` events are
    # grouped (a fifth of them on the simulated days), the join below would drop the others anyway
    c1 = canc.group_by(["order_id", "account_id"]).aggregate(cancel_us=canc.ts_us.min())
    newc = new.semi_join(c1, "order_id")
    n1 = newc.group_by("order_id").aggregate(new_us=newc.ts_us.min())
    lat = c1.join(n1, "order_id")
    lat = lat.mutate(lat_s=(lat.cancel_us - lat.new_us).cast("float64") / US_PER_S)
    latency = lat.group_by("account_id").aggregate(
        latency_med=lat.lat_s.median(),
        quick=(lat.lat_s <= QUICK_CANCEL_S).sum(),
    )
    # peak instructions in a trailing 60 s (MS009's count)
    ins = o.filter(o.event.isin(["new", "cancel"]))
    w = ibis.range_window(
        group_by=ins.account_id, order_by=ins.ts_us, preceding=MSG_WINDOW_S * US_PER_S, following=0
    )
    ins = ins.select(account_id=ins.account_id, n=ins.event_id.count().over(w))
    rate = ins.group_by("account_id").aggregate(msg_rate_peak=ins.n.max())
    # order size relative to the asset's median new-order qty
    med = new.group_by("asset").aggregate(asset_med=new.qty.median())
    rel = new.join(med, "asset")
    rel = rel.mutate(r=rel.qty / rel.asset_med)
    size = rel.group_by("account_id").aggregate(order_size_rel=rel.r.median(), order_size_rel_max=rel.r.max())
    out = counts
    for extra in (latency, rate, size):
        out = out.left_join(extra, "account_id").select(
            out, *[extra[c] for c in extra.columns if c != "account_id"]
        )
    return out


def _activity(legs: ir.Table, o: ir.Table) -> ir.Table:
    o = o.filter(o.account_id.notnull())
    act = _nullable(legs.select("account_id", "venue", "asset", "ts")).union(
        _nullable(o.select("account_id", "venue", "asset", "ts"))
    )
    # one hash aggregate down to (account, venue, asset) first: distinct counts straight over the ~50M-row
    # union of legs and order events took 4.6 s at 10M trades, this 3.5 s
    pre = act.group_by(["account_id", "venue", "asset"]).aggregate(first_ts=act.ts.min(), last_ts=act.ts.max())
    return pre.group_by("account_id").aggregate(
        venue_count=pre.venue.nunique(),
        asset_count=pre.asset.nunique(),
        first_ts=pre.first_ts.min(),
        last_ts=pre.last_ts.max(),
    )


def _position_features(pos: ir.Table, assets: ir.Table) -> ir.Table:
    latest = pos.as_of.max().over(ibis.window(group_by=[pos.account_id, pos.asset]))
    p = pos.mutate(latest=latest)
    p = p.filter(p.as_of == p.latest)
    p = p.join(assets, "asset")
    p = p.mutate(share=p.net_qty.abs() / p.float_qty)
    return p.group_by("account_id").aggregate(position_share=p.share.max())


def _network_features(net: ir.Table) -> ir.Table:
    keys = (
        _nullable(net.select(account_id=net.account_id, key="d:" + net.device_id))
        .union(_nullable(net.select(account_id=net.account_id, key="s:" + net.ip_subnet)))
        .distinct()
    )
    other = keys.select(other_id=keys.account_id, other_key=keys.key)
    pairs = keys.join(other, keys.key == other.other_key).filter(lambda r: r.account_id != r.other_id)
    pairs = pairs.select("account_id", "other_id").distinct()
    return pairs.group_by("account_id").aggregate(shared_network_accounts=pairs.count())


def feature_expression(t: Mapping[str, ir.Table]) -> ir.Table:
    """The Ibis expression of raw per-account aggregates (one row per account, nulls where no activity).

    Needs ``trades`` and ``orders`` (with ``ts_us``, as :mod:`market_surveillance.io.canonical` adds) and
    ``accounts``; ``positions`` + ``assets`` and ``network`` are used when present.
    """
    tr, o, acc = t["trades"], t["orders"], t["accounts"]
    legs = trade_legs(tr)
    ids = (
        _nullable(acc.select("account_id"))
        .union(_nullable(legs.select("account_id")))
        .union(_nullable(o.filter(o.account_id.notnull()).select("account_id")))
        .distinct()
    )
    parts = [
        # its own legs, carrying the price reference: fed from these, the activity aggregate paid for the
        # reference join too (5.1 s vs 3.5 s alone at 10M trades; the whole feature query within noise)
        _trade_features(trade_legs(_with_ref_price(tr), extra=("ref_price",))),
        _order_features(o),
        _activity(legs, o),
        acc.select("account_id", "baseline_hourly_notional", "segment"),
    ]
    if "positions" in t and "assets" in t:
        parts.append(_position_features(t["positions"], t["assets"]))
    if "network" in t:
        parts.append(_network_features(t["network"]))
    out = ids
    for part in parts:
        out = out.left_join(part, "account_id").select(
            out, *[part[c] for c in part.columns if c != "account_id"]
        )
    return out


def _ratio(num: pd.Series, den: pd.Series) -> pd.Series:
    den = den.where(den > 0)
    return (num / den).fillna(0.0)


def account_features(t: Mapping[str, ir.Table], *, with_activity: bool = False) -> pd.DataFrame:
    """Per-account feature table (pandas, indexed by ``account_id``, sorted; columns = :data:`FEATURES`).

    ``with_activity=True`` appends ``first_ts`` / ``last_ts`` (the account's first and last trade or order
    event), used as the window of ML alerts.
    """
    raw = feature_expression(t).to_pandas()
    raw = raw.set_index("account_id").sort_index()
    raw.index.name = "account_id"
    num = raw.drop(columns=["first_ts", "last_ts", "segment"]).astype("float64").fillna(0.0)
    f = pd.DataFrame(index=raw.index)
    f["notional"] = num["notional"]
    f["trade_count"] = num["trade_count"]
    f["order_count"] = num["order_count"]
    f["cancel_ratio"] = num["cancels"] / num["fills"].clip(lower=1.0)
    f["quick_cancel_share"] = _ratio(num["quick"], num["order_count"]).clip(upper=1.0)
    lat = raw["latency_med"].astype("float64")
    f["cancel_latency_median_s"] = lat.fillna(lat.median() if lat.notna().any() else 0.0)
    f["msg_rate_peak"] = num["msg_rate_peak"]
    f["self_trade_share"] = _ratio(num["self_trades"], num["trade_count"])
    # concentration beyond what the trade count forces: one trade has one counterparty (share and HHI 1)
    # and says nothing; normalised as (x - 1/n) / (1 - 1/n), 0 for a single trade, 1 for n trades with one
    floor = 1.0 / num["cp_total"].clip(lower=1.0)
    span = (1.0 - floor).where(num["cp_total"] > 1)
    top = _ratio(num["cp_top"], num["cp_total"])
    hhi = _ratio(num["cp_sq"], num["cp_total"] ** 2)
    f["top_counterparty_share"] = ((top - floor) / span).fillna(0.0).clip(lower=0.0)
    f["counterparty_hhi"] = ((hhi - floor) / span).fillna(0.0).clip(lower=0.0)
    f["aggressor_share"] = _ratio(num["aggr_trades"], num["trade_count"])
    f["venue_count"] = num["venue_count"]
    f["asset_count"] = num["asset_count"]
    f["position_share"] = num.get("position_share", 0.0)
    f["busiest_hour_share"] = _ratio(num["peak_hour"], num["notional"])
    # a zero baseline means "no history": compare with 1 USD/h rather than divide by zero
    f["baseline_deviation"] = num["peak_hour"] / num["baseline_hourly_notional"].clip(lower=1.0)
    f["order_size_rel"] = num["order_size_rel"]
    f["order_size_rel_max"] = num["order_size_rel_max"]
    f["price_deviation_bps"] = _ratio(num["dev_sum"], num["notional"])
    f["shared_network_accounts"] = num.get("shared_network_accounts", 0.0)
    f = f[list(FEATURES)].astype("float64")
    if with_activity:
        f["first_ts"] = raw["first_ts"]
        f["last_ts"] = raw["last_ts"]
        f["segment"] = raw["segment"].fillna("unknown").astype(str)
    return f


def peer_normalize(
    X: pd.DataFrame,
    groups: pd.Series,
    log_features: list[str] | tuple[str, ...] = (),
    min_group: int = 10,
    weights: pd.Series | None = None,
) -> pd.DataFrame:
    """Centre each feature on the account's peer group (its segment) median: ``x - median(segment)``.

    A market maker is then judged against market makers, not against the retail majority, whose quotes,
    cancels and venue coverage it will always exceed. Only the centre is per group: the spread stays the
    population's (the detector scales it), because within a small or uniform segment the IQR of discrete
    features (venue count, counterparty shares) is often zero and would turn one extra venue into an outlier.
    ``log_features`` get ``log1p`` first (heavy tails). Groups smaller than ``min_group`` are centred on the
    whole population's median. ``weights`` (e.g. each account's trades + orders) make the centre a weighted
    median: see :func:`group_medians`.
    """
    Z = X.astype("float64").copy()
    for c in log_features:
        Z[c] = np.log1p(Z[c].clip(lower=0.0))
    g = peer_labels(groups.reindex(Z.index), min_group)
    return Z - group_medians(Z, g, weights)


def peer_labels(groups: pd.Series, min_group: int) -> pd.Series:
    """Segment per account; segments with fewer than ``min_group`` accounts become ``"__all__"``."""
    g = groups.fillna("unknown").astype(str)
    return g.where(g.map(g.value_counts()) >= min_group, "__all__")


def _weighted_median(x: np.ndarray, w: np.ndarray) -> np.ndarray:
    """Column-wise weighted median of ``x`` (rows × columns) with row weights ``w`` (lower median)."""
    order = np.argsort(x, axis=0, kind="stable")
    cw = np.cumsum(w[order], axis=0)
    k = (cw < cw[-1] / 2.0).sum(axis=0)
    return x[order[k, np.arange(x.shape[1])], np.arange(x.shape[1])]


def group_medians(X: pd.DataFrame, peers: pd.Series, weights: pd.Series | None = None) -> pd.DataFrame:
    """Each row's peer-group median per column (the whole population's for ``"__all__"``).

    With ``weights`` the median is weighted: with activity (trades + orders) as weight it is the behaviour
    behind the segment's median trade or order, not its median account, so a crowd of accounts with a few
    events each cannot become the norm that the segment's established desks are judged against (on the
    random worlds a day's 52–59 scenario accounts, opened as proprietary with a handful of trades each,
    outnumber the 20 background proprietary desks: the unweighted median was a manipulator's one asset and
    one venue, and the desks trading 6–7 assets on three venues were flagged, docs/evaluation.md).
    """
    if weights is None:
        med = X.groupby(peers).transform("median")
        med[peers == "__all__"] = X.median().to_numpy()
        return med
    w = weights.reindex(X.index).fillna(0.0).to_numpy(dtype="float64")
    w = np.where(w.sum() > 0, w, 1.0)
    arr = X.to_numpy(dtype="float64")
    out = np.empty_like(arr)
    lab = peers.reindex(X.index).to_numpy()
    everyone = _weighted_median(arr, w)
    for g in pd.unique(lab):
        rows = lab == g
        wg = w[rows]
        out[rows] = everyone if g == "__all__" or wg.sum() <= 0 else _weighted_median(arr[rows], wg)
    return pd.DataFrame(out, index=X.index, columns=X.columns)
