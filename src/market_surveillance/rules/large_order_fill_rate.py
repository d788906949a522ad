"""MS036 large_order_fill_rate — the Coscia signature: large orders almost never fill while small ones do."""

from __future__ import annotations

from dataclasses import dataclass

import ibis
import ibis.expr.types as ir

from market_surveillance.enums import Typology
from market_surveillance.rules._common import empty_str_array
from market_surveillance.rules._market import KEY, bucket, observed_orders, skip_with_accounts
from market_surveillance.rules.base import Params, Rule, Tables, param
from market_surveillance.rules.registry import register
from market_surveillance.schema import DataProfile

DAY_S = 86_400


@dataclass(frozen=True)
class LargeOrderFillRateParams(Params):
    size_multiple: float = param(10.0, low=1.0, doc="large = qty at least this multiple of the median")
    max_ratio: float = param(
        0.1,
        low=0.0,
        high=1.0,
        closed="right",
        doc="large fill rate at most this share of the small fill rate",
    )
    min_large: int = param(20, low=1, doc="large orders in the day before the rates are compared")
    min_small_fill_rate: float = param(
        0.02,
        low=0.0,
        high=1.0,
        doc="small orders must fill at least this often for the comparison to mean much",
    )


@register
class LargeOrderFillRate(Rule):
    """Large orders almost never filled while small ones are (the Coscia fill-rate signature).

    What it detects
        On one venue, asset and UTC day: the share of large ``new`` orders (at least ``size_multiple`` times
        the day's median new-order size) that got any fill is at most ``max_ratio`` times the share of small
        orders (at most the median size) that did, with at least ``min_large`` large orders and a small-order
        fill rate of at least ``min_small_fill_rate``. ``value`` is the ratio of the two fill rates (lower is
        more suspicious; ``score`` = ``max_ratio`` / ratio). Needs order events, not accounts; with account ids
        MS005 spoofing runs instead.
    Why it is abusive
        In the Coscia case (US v. Coscia, 2015) 0.08 % of the large orders filled against 35.6 % of the small
        ones: orders that size were never meant to trade, only to move others' prices (spoofing). EU MAR
        Annex I(1)(a) / Annex II 3; Dodd-Frank §747.
    Known false positives
        Large passive orders parked away from the touch (iceberg parents, institutional limit orders waiting
        for a level) fill rarely without intent to mislead; days with a one-way trend leave large orders on
        the losing side unfilled. The alert marks the day and instrument to review, not an order.
    """

    rule_id = "MS036"
    name = "large_order_fill_rate"
    typology = Typology.SPOOFING
    regulatory_name = "EU MAR Annex I(1)(a)/Annex II 3: spoofing (fill-rate signature, no accounts)"
    metric = "large_to_small_fill_rate"
    threshold_param = "max_ratio"
    Params = LargeOrderFillRateParams
    requires = ("orders",)
    # online: norms are taken over the data in view, a day (issue 13); narrow it where the rule allows
    lookback = (86_400,)

    def skip_reason(self, profile: DataProfile) -> str | None:
        return skip_with_accounts(profile, super().skip_reason(profile), "MS005 spoofing")

    def candidates(self, t: Tables, p: LargeOrderFillRateParams) -> ir.Table:
        life = observed_orders(t["orders"])
        life = life.mutate(day=bucket(life, DAY_S))
        med = life.group_by([*KEY, "day"]).aggregate(med_qty=life.qty.median())
        j = life.join(med, [*KEY, "day"])
        large = j.qty >= j.med_qty * p.size_multiple
        small = j.qty <= j.med_qty
        filled = (j.filled > 0).cast("int64")
        g = j.group_by([*KEY, "day"]).aggregate(
            n_large=large.cast("int64").sum(),
            f_large=(filled * large.cast("int64")).sum(),
            n_small=small.cast("int64").sum(),
            f_small=(filled * small.cast("int64")).sum(),
            window_start=j.ts.min(),
            window_end=j.ts.max(),
        )
        g = g.mutate(
            r_large=g.f_large.cast("float64") / ibis.greatest(g.n_large, 1).cast("float64"),
            r_small=g.f_small.cast("float64") / ibis.greatest(g.n_small, 1).cast("float64"),
        )
        g = g.filter((g.n_large >= p.min_large) & (g.r_small >= p.min_small_fill_rate) & (g.r_small > 0))
        g = g.mutate(ratio=g.r_large / g.r_small)
        g = g.filter(g.ratio <= p.max_ratio)
        pct = ibis.literal(100.0)
        return g.select(
            asset=g.asset,
            venue=g.venue,
            accounts=empty_str_array(),
            window_start=g.window_start,
            window_end=g.window_end,
            value=g.ratio,
            score=ibis.literal(p.max_ratio) / ibis.greatest(g.ratio, 1e-3),
            evidence_trade_ids=empty_str_array(),
            evidence_order_ids=empty_str_array(),
            explanation=g.f_large.cast("string")
            + " of "
            + g.n_large.cast("string")
            + " large orders filled ("
            + (g.r_large * pct).round(2).cast("string")
            + " %) against "
            + (g.r_small * pct).round(2).cast("string")
            + " % of "
            + g.n_small.cast("string")
            + " small ones",
        )
