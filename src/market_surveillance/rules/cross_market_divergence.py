"""MS012 cross_market_divergence — one asset's prices dislocated across venues."""

from __future__ import annotations

from dataclasses import dataclass

import ibis
import ibis.expr.types as ir

from market_surveillance.enums import Typology
from market_surveillance.rules._common import US, alert_rows, with_episodes
from market_surveillance.rules.base import Params, Rule, Tables, param
from market_surveillance.rules.registry import register


@dataclass(frozen=True)
class CrossMarketDivergenceParams(Params):
    bucket_s: int = param(60, low=1, doc="resampling bucket, seconds")
    max_spread: float = param(
        0.02, low=0.0, closed="neither", doc="(max − min) / min of venue VWAPs in a bucket"
    )
    min_venues: int = param(2, low=2, doc="venues with prints in the bucket")
    episode_gap_s: int = param(300, low=1, doc="dislocated buckets further apart start a new episode")


@register
class CrossMarketDivergence(Rule):
    """Cross-market divergence.

    What it detects
        Per asset, trades resampled into ``bucket_s`` buckets per venue (VWAP); a bucket where the spread
        between the highest and lowest venue VWAP exceeds ``max_spread`` of the lowest, with at least
        ``min_venues`` venues trading. Consecutive dislocated buckets form one episode; the venue whose price
        sits furthest from the others is named in the explanation.
    Why it is abusive
        Printing one venue away from the rest manipulates reference prices, index fixings and liquidations
        that read that venue (cross-market manipulation). EU MAR Art. 12(1)(a) and Annex I(1)(c)/(d);
        IOSCO cross-market surveillance principles.
    Known false positives
        A venue halted or with withdrawals suspended (its price legitimately drifts), stale prints on a thin
        venue, quote-currency differences (USD vs USDT de-peg).
    """

    rule_id = "MS012"
    name = "cross_market_divergence"
    typology = Typology.CROSS_VENUE_DISLOCATION
    regulatory_name = "EU MAR Art. 12(1)(a): cross-market price manipulation"
    metric = "venue_spread"
    threshold_param = "max_spread"
    Params = CrossMarketDivergenceParams
    requires = ("trades",)
    lookback = ("bucket_s",)

    def candidates(self, t: Tables, p: CrossMarketDivergenceParams) -> ir.Table:
        tr = t["trades"]
        b_us = p.bucket_s * US
        tr = tr.mutate(bucket=(tr.ts_us // b_us).cast("int64"))
        v = tr.group_by(["asset", "bucket", "venue"]).aggregate(
            vwap=(tr.price * tr.qty).sum() / tr.qty.sum(),
            first=tr.ts.min(),
            last=tr.ts.max(),
            trade_ids=tr.trade_id.collect(),
        )
        bw = ibis.window(group_by=[v.asset, v.bucket])
        v = v.mutate(
            hi=v.vwap.max().over(bw),
            lo=v.vwap.min().over(bw),
            mean=v.vwap.mean().over(bw),
            n_venues=v.venue.count().over(bw),
        )
        v = v.mutate(spread=(v.hi - v.lo) / v.lo, dev=(v.vwap - v.mean).abs())
        dis = v.filter((v.spread > p.max_spread) & (v.n_venues >= p.min_venues))
        # the outlier venue of each bucket: largest deviation from the cross-venue mean
        ow = ibis.window(group_by=[dis.asset, dis.bucket], order_by=[dis.dev.desc(), dis.venue])
        dis = dis.mutate(rk=ibis.row_number().over(ow))
        buckets = dis.group_by(["asset", "bucket"]).aggregate(
            spread=dis.spread.max(),
            outlier=dis.venue.min(where=dis.rk == 0),
            first=dis.first.min(),
            last=dis.last.max(),
            trade_ids=dis.trade_ids.collect().flatten(),
        )
        buckets = buckets.mutate(ts_us=buckets.bucket * b_us)
        buckets = with_episodes(buckets, ["asset"], p.episode_gap_s)
        g = buckets.group_by(["asset", "episode"]).aggregate(
            value=buckets.spread.max(),
            outlier=buckets.outlier.min(),
            n_buckets=buckets.bucket.count(),
            window_start=buckets.first.min(),
            window_end=buckets.last.max(),
            # a bucket's VWAPs are final when it closes
            detected_at=(buckets.bucket.min() + 1) * b_us,
            evidence_trade_ids=buckets.trade_ids.collect().flatten(),
        )
        return alert_rows(
            g,
            value=g.value,
            score=g.value / p.max_spread,
            evidence_trade_ids=g.evidence_trade_ids,
            explanation=(
                ibis.literal("max venue spread ")
                + (g.value * 100).round(2).cast("string")
                + "% over "
                + g.n_buckets.cast("string")
                + " bucket(s); outlier venue "
                + g.outlier
            ),
        )
