"""MS031 layering_orders — account-free layering: a ladder of large orders on one side, all pulled unfilled."""

from __future__ import annotations

from dataclasses import dataclass

import ibis
import ibis.expr.types as ir

from market_surveillance.enums import Typology
from market_surveillance.rules._common import US, empty_str_array, with_episodes
from market_surveillance.rules._market import KEY, observed_orders, skip_with_accounts
from market_surveillance.rules.base import Params, Rule, Tables, param
from market_surveillance.rules.registry import register
from market_surveillance.schema import DataProfile


@dataclass(frozen=True)
class LayeringOrdersParams(Params):
    min_levels: int = param(4, low=2, doc="distinct price levels in one ladder")
    size_multiple: float = param(
        3.0, low=1.0, doc="each order's qty vs the instrument's median new-order qty"
    )
    max_lifetime_s: float = param(
        5.0, low=0.0, closed="neither", doc="each order cancelled, never filled, within this many seconds"
    )
    placement_gap_s: float = param(
        1.0, low=0.0, closed="neither", doc="orders placed further apart do not form one ladder, seconds"
    )
    min_opposite_trades: int = param(1, low=1, doc="executions on the other side while the ladder stands")
    max_other_side_share: float = param(
        0.25,
        low=0.0,
        closed="neither",
        doc="a ladder is one-sided when the other side's such orders cover fewer levels than this share",
    )


@register
class LayeringOrders(Rule):
    """Account-free layering: a ladder of large orders at several prices, all cancelled unfilled.

    What it detects
        On one venue, asset and side: at least ``min_levels`` distinct prices covered by ``new`` orders each
        at least ``size_multiple`` times the instrument's median new-order size, placed in quick succession
        (each within ``placement_gap_s`` of the previous one), every one cancelled without a fill within
        ``max_lifetime_s``, while at least ``min_opposite_trades`` executions hit the other side of the book
        between the first placement and the last cancel, and the ladder is one-sided: such orders on the
        other side placed meanwhile cover fewer than ``max_other_side_share`` of its levels. ``value`` is the number of price levels. Needs
        order ids, not accounts; it skips data with account ids (MS011 names the account there).
    Why it is abusive
        Several non-bona-fide orders stacked at successive prices build false depth on one side and push the
        price toward the manipulator's genuine orders on the other side; they are withdrawn once those
        trade. EU MAR Annex II 3(c) "layering and spoofing"; FINRA Rule 5210 guidance.
    Known false positives
        Without accounts a ladder can be several firms' orders placed at once, e.g. market makers re-quoting
        all their levels after a price move, or one algorithm walking its quote; ladders of orders only a
        few times the median size are common on liquid stocks, hence the size floor.
    """

    rule_id = "MS031"
    name = "layering_orders"
    typology = Typology.LAYERING
    regulatory_name = "EU MAR Annex II 3(c): layering and spoofing (order level, no accounts)"
    metric = "ladder_levels"
    threshold_param = "min_levels"
    Params = LayeringOrdersParams
    requires = ("orders", "trades")
    # online: norms are taken over the data in view, a day (issue 13); narrow it where the rule allows
    lookback = (86_400,)

    def skip_reason(self, profile: DataProfile) -> str | None:
        return skip_with_accounts(profile, super().skip_reason(profile), "MS011 layering")

    def candidates(self, t: Tables, p: LayeringOrdersParams) -> ir.Table:
        tr = t["trades"]
        life = observed_orders(t["orders"])
        med = life.group_by(KEY).aggregate(med_qty=life.qty.median())
        c = life.join(med, KEY)
        c = c.filter(
            c.end_us.notnull()
            & (c.filled <= 0)
            & ((c.end_us - c.ts_us) <= int(p.max_lifetime_s * US))
            & (c.qty >= c.med_qty * p.size_multiple)
        )
        c = with_episodes(c, ["venue", "asset", "side"], p.placement_gap_s, tiebreak="order_id")
        lad = c.group_by(["venue", "asset", "side", "episode"]).aggregate(
            levels=c.price.nunique(),
            start_us=c.ts_us.min(),
            end_us=c.end_us.max(),
            window_start=c.ts.min(),
            window_end=c.end_ts.max(),
            evidence_order_ids=c.order_id.collect(),
            size_x=(c.qty / c.med_qty).max(),
        )
        lad = lad.filter(lad.levels >= p.min_levels)
        # one-sided: a market maker re-quoting moves both sides at once; a layer builds pressure on one
        o = c.select(venue="venue", asset="asset", o_side="side", o_ts_us="ts_us", o_price="price")
        both = lad.join(
            o,
            [
                lad.venue == o.venue,
                lad.asset == o.asset,
                o.o_side != lad.side,
                o.o_ts_us >= lad.start_us,
                o.o_ts_us <= lad.end_us,
            ],
        )
        other = both.group_by(["venue", "asset", "side", "episode"]).aggregate(
            other_levels=both.o_price.nunique()
        )
        lad = lad.left_join(other, ["venue", "asset", "side", "episode"])
        lad = lad.drop(*[col for col in lad.columns if col.endswith("_right")])
        lad = lad.filter(lad.other_levels.fill_null(0) < lad.levels * p.max_other_side_share)
        j = lad.join(
            tr,
            [
                lad.venue == tr.venue,
                lad.asset == tr.asset,
                tr.aggressor == lad.side,
                tr.ts_us >= lad.start_us,
                tr.ts_us <= lad.end_us,
            ],
        )
        opp = j.group_by(["venue", "asset", "side", "episode"]).aggregate(
            n_opp=j.trade_id.count(), evidence_trade_ids=j.trade_id.collect()
        )
        g = lad.join(opp, ["venue", "asset", "side", "episode"])
        g = g.filter(g.n_opp >= p.min_opposite_trades)
        return g.select(
            asset=g.asset,
            venue=g.venue,
            accounts=empty_str_array(),
            window_start=g.window_start,
            window_end=g.window_end,
            value=g.levels.cast("float64"),
            score=g.levels.cast("float64") / p.min_levels,
            evidence_trade_ids=g.evidence_trade_ids,
            evidence_order_ids=g.evidence_order_ids,
            explanation=ibis.literal("")
            + g.levels.cast("string")
            + " "
            + g.side
            + " price levels of orders up to "
            + g.size_x.round(1).cast("string")
            + "x the median size, all cancelled unfilled while "
            + g.n_opp.cast("string")
            + " trades hit the other side",
        )
