"""MS010 cancel_to_fill — an account cancelling far more than it trades."""

from __future__ import annotations

from dataclasses import dataclass

import ibis
import ibis.expr.types as ir

from market_surveillance.enums import Typology
from market_surveillance.rules import intermediates
from market_surveillance.rules._common import US, alert_rows, one_account, trailing, with_episodes
from market_surveillance.rules.base import Params, Rule, Tables, param
from market_surveillance.rules.registry import register

_PACK = 2**32  # fills of one account in one window stay far below 2³²


_BUCKETS = 30  # pre-filter buckets per window: finer prunes more, coarser makes the bucket table smaller


def _prune(o: ir.Table, p: CancelToFillParams) -> ir.Table:
    """Events that can matter, with ``_cand`` marking cancels whose trailing window may fire.

    Exact trailing-window counts over every order event are the rule's cost; most accounts (market
    makers) can be ruled out from per-(account, asset, bucket) counts. With buckets of ``B = W // 30`` µs, a
    cancel at ``t`` in bucket ``b`` has its window ``[t − W, t]`` inside buckets ``b − k … b``
    (``k = ⌈W / B⌉``) and the buckets ``b − m … b − 1`` (``m = ⌊W / B⌋ − 1``) inside it, so
    cancels ≤ ``C_ub``, messages ≤ ``M_ub`` and fills ≥ ``F_lb`` summed over those buckets; a bucket is a
    candidate only if ``C_ub / max(F_lb, 1) ≥ ratio`` and ``M_ub ≥ min_messages``. The events kept are those
    of every bucket up to ``k`` buckets before a candidate, so candidate cancels see their full window and
    the result is exactly the unpruned one. Bucket starts are integers (``ts_us − ts_us % B``) so engines
    agree on the edges.
    """
    w_us = int(p.window_s * US)
    b_us = max(w_us // _BUCKETS, 1)
    k = -(-w_us // b_us)
    m = w_us // b_us - 1
    o = o.mutate(_bucket=o.ts_us - o.ts_us % b_us)
    bk = o.group_by(["account_id", "asset", "_bucket"]).aggregate(
        nc=(o.event == "cancel").cast("int64").sum(),
        nf=(o.event == "fill").cast("int64").sum(),
        nm=o.count(),
    )
    key = [bk.account_id, bk.asset]
    back_k = ibis.range_window(group_by=key, order_by=bk._bucket, preceding=k * b_us, following=0)
    back_m = ibis.range_window(group_by=key, order_by=bk._bucket, preceding=m * b_us, following=0)
    bk = bk.mutate(
        c_ub=bk.nc.sum().over(back_k),
        m_ub=bk.nm.sum().over(back_k),
        f_lb=bk.nf.sum().over(back_m) - bk.nf,
    )
    cand = (
        (bk.nc > 0)
        & (bk.c_ub.cast("float64") / ibis.greatest(bk.f_lb, 1).cast("float64") >= p.ratio)
        & (bk.m_ub >= p.min_messages)
    )
    bk = bk.mutate(_cand=cand)
    ahead = ibis.range_window(
        group_by=[bk.account_id, bk.asset], order_by=bk._bucket, preceding=0, following=k * b_us
    )
    bk = bk.mutate(_need=bk._cand.cast("int64").max().over(ahead))
    keep = bk.filter(bk._need > 0).select("account_id", "asset", "_bucket", "_cand")
    return o.join(keep, ["account_id", "asset", "_bucket"]).drop("_bucket")


@dataclass(frozen=True)
class CancelToFillParams(Params):
    window_s: int = param(1800, low=1, doc="trailing window, seconds")
    ratio: float = param(6.0, low=0.0, closed="neither", doc="cancels per fill (fills floored at 1)")
    min_messages: int = param(20, low=1, doc="minimum events (new + cancel + fill) in the window")
    episode_gap_s: int = param(600, low=1, doc="hits further apart start a new episode, seconds")


@register
class CancelToFill(Rule):
    """Cancel-to-fill surge.

    What it detects
        An account whose cancels divided by fills (fills floored at one) on one asset reach ``ratio`` within
        a trailing ``window_s`` while it sends at least ``min_messages`` events on that asset, evaluated at
        each cancel. Counted per (account, asset): an account's ordinary fills on other assets do not dilute
        a surge on one, and the alert names the asset where it happened. The thresholds are ratios and
        counts of the account's own messages, so they need no scaling to the instrument's liquidity.
    Why it is abusive
        Orders that are mostly cancelled never intended to trade: they signal liquidity that is not there
        (spoofing, layering, quote stuffing). EU MAR Annex II 3; exchange order-to-trade ratio limits.
    Known false positives
        Market makers in fast markets, passive algorithms chasing the touch, accounts testing connectivity.
    """

    rule_id = "MS010"
    name = "cancel_to_fill"
    typology = Typology.CANCEL_TO_FILL
    regulatory_name = "EU MAR Annex II 3: excessive order-to-trade ratio"
    metric = "cancels_per_fill"
    threshold_param = "ratio"
    Params = CancelToFillParams
    requires = ("orders",)
    needs_order_accounts = True
    lookback = ("window_s",)

    def candidates(self, t: Tables, p: CancelToFillParams) -> ir.Table:
        o = t["orders"]
        o = o.filter(o.account_id.notnull())
        since = intermediates.decide_from(t)
        o = _prune(o, p)
        # cancels and fills share one range-window SUM, packed as cancels·2³² + fills: each range-window
        # aggregate costs a pass of its own on DuckDB, and this rule runs over every order event
        packed = (o.event == "cancel").cast("int64") * _PACK + (o.event == "fill").cast("int64")
        w = trailing(o, ["account_id", "asset"], p.window_s)
        o = o.mutate(_packed=packed.sum().over(w), msgs=o.event_id.count().over(w))
        o = o.mutate(cancels=o._packed >> 32, fills=o._packed & (_PACK - 1))
        o = o.mutate(r=o.cancels.cast("float64") / ibis.greatest(o.fills, 1).cast("float64"))
        # only cancels in candidate buckets have their whole trailing window in the pruned events
        hit = o._cand & (o.event == "cancel") & (o.r >= p.ratio) & (o.msgs >= p.min_messages)
        hits = o.filter(hit if since is None else hit & (o.ts_us >= since))
        hits = with_episodes(hits, ["account_id", "asset"], p.episode_gap_s, tiebreak="event_id")
        g = hits.group_by(["account_id", "asset", "episode"]).aggregate(
            value=hits.r.max(),
            window_start=hits.ts.min(),
            window_end=hits.ts.max(),
            detected_at=hits.ts.min(),
            evidence_order_ids=hits.order_id.collect(),
        )
        return alert_rows(
            g,
            accounts=one_account(g.account_id),
            value=g.value,
            score=g.value / p.ratio,
            evidence_order_ids=g.evidence_order_ids,
        )
