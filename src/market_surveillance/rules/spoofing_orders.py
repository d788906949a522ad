"""MS030 spoofing_orders — account-free spoofing: large orders near the touch, pulled within seconds."""

from __future__ import annotations

from dataclasses import dataclass

import ibis
import ibis.expr.types as ir

from market_surveillance.enums import Typology
from market_surveillance.rules._common import US, empty_str_array, with_episodes
from market_surveillance.rules._market import KEY, observed_orders, skip_with_accounts, with_last_trade_price
from market_surveillance.rules.base import Params, Rule, Tables, param
from market_surveillance.rules.registry import register
from market_surveillance.schema import DataProfile


@dataclass(frozen=True)
class SpoofingOrdersParams(Params):
    size_multiple: float = param(10.0, low=1.0, doc="order qty vs the instrument's median new-order qty")
    max_lifetime_s: float = param(
        2.0, low=0.0, closed="neither", doc="cancelled, never filled, within this many seconds"
    )
    touch_multiple: float = param(
        1.0,
        low=0.0,
        closed="neither",
        doc="placed at most this multiple of the instrument's median new-order distance from the last trade",
    )
    min_opposite_trades: int = param(
        1, low=1, doc="executions on the other side of the book during the order's life"
    )
    min_orders: int = param(3, low=1, doc="such orders in one episode before it is an alert")
    episode_gap_s: int = param(300, low=1, doc="spoof orders further apart start a new episode, seconds")


@register
class SpoofingOrders(Rule):
    """Account-free spoofing: repeated large orders at the touch, cancelled unfilled within seconds.

    What it detects
        On one venue, asset and side: ``new`` orders at least ``size_multiple`` times the instrument's median
        new-order size, placed no further from the last trade than ``touch_multiple`` times the instrument's
        median new-order distance (near the touch), cancelled without any fill within ``max_lifetime_s``,
        while at least ``min_opposite_trades`` executions hit the other side of the book during the order's
        life (trades whose aggressor is on the order's side, i.e. resting orders opposite it are filled).
        ``min_orders`` such orders within ``episode_gap_s`` of each other make one alert; ``value`` is the
        episode's largest size multiple. Needs order ids, not accounts; it skips data with account ids
        (MS005 names the account there).
    Why it is abusive
        The Sarao (2015) and Coscia (2015) pattern: large orders at the touch that create the impression of
        demand or supply, withdrawn before they can trade, while the manipulator's small orders on the
        other side are filled at the better price. EU MAR Annex I(1)(a) and Annex II 3: "spoofing";
        Dodd-Frank §747 (CEA 4c(a)(5)(C)).
    Known false positives
        Without accounts the large orders and the opposite executions may belong to different people:
        institutional slicers and market makers that post size at the touch and pull it when the price
        moves away (on the LOBSTER AAPL hour, ``docs/real-data.md``), or that re-price a block order
        every second. Evidence then shows large cancels without a pattern on the other side.
    """

    rule_id = "MS030"
    name = "spoofing_orders"
    typology = Typology.SPOOFING
    regulatory_name = "EU MAR Annex I(1)(a)/Annex II 3: spoofing (order level, no accounts)"
    metric = "size_multiple"
    threshold_param = "size_multiple"
    Params = SpoofingOrdersParams
    requires = ("orders", "trades")
    # online: norms are taken over the data in view, a day (issue 13); narrow it where the rule allows
    lookback = (86_400,)

    def skip_reason(self, profile: DataProfile) -> str | None:
        return skip_with_accounts(profile, super().skip_reason(profile), "MS005 spoofing")

    def candidates(self, t: Tables, p: SpoofingOrdersParams) -> ir.Table:
        tr = t["trades"]
        life = with_last_trade_price(observed_orders(t["orders"]), tr)
        life = life.mutate(dist=(life.price - life.ref_price).abs() / life.ref_price)
        stats = life.group_by(KEY).aggregate(med_qty=life.qty.median(), med_dist=life.dist.median())
        big = life.join(stats, KEY)
        big = big.filter(
            big.end_us.notnull()
            & (big.filled <= 0)
            & ((big.end_us - big.ts_us) <= int(p.max_lifetime_s * US))
            & (big.qty >= big.med_qty * p.size_multiple)
            & (big.dist <= big.med_dist * p.touch_multiple)
        )
        # executions against resting orders on the other side: the aggressor sits on the order's side
        j = big.join(
            tr,
            [
                big.venue == tr.venue,
                big.asset == tr.asset,
                tr.aggressor == big.side,
                tr.ts_us >= big.ts_us,
                tr.ts_us <= big.end_us,
            ],
        )
        per_order = j.group_by(
            [j.venue, j.asset, j.side, j.order_id, j.ts, j.ts_us, j.end_ts, j.qty, j.med_qty]
        ).aggregate(n_opp=j.trade_id.count(), trade_ids=j.trade_id.collect())
        per_order = per_order.filter(per_order.n_opp >= p.min_opposite_trades)
        per_order = with_episodes(per_order, ["venue", "asset", "side"], p.episode_gap_s, tiebreak="order_id")
        g = per_order.group_by(["venue", "asset", "side", "episode"]).aggregate(
            n=per_order.order_id.count(),
            size_x=(per_order.qty / per_order.med_qty).max(),
            window_start=per_order.ts.min(),
            window_end=per_order.end_ts.max(),
            evidence_order_ids=per_order.order_id.collect(),
            evidence_trade_ids=per_order.trade_ids.collect().flatten(),
        )
        g = g.filter(g.n >= p.min_orders)
        return g.select(
            asset=g.asset,
            venue=g.venue,
            accounts=empty_str_array(),
            window_start=g.window_start,
            window_end=g.window_end,
            value=g.size_x,
            score=g.size_x / p.size_multiple * (1 + g.n.cast("float64")).ln(),
            evidence_trade_ids=g.evidence_trade_ids,
            evidence_order_ids=g.evidence_order_ids,
            explanation=ibis.literal("")
            + g.n.cast("string")
            + " "
            + g.side
            + " orders of up to "
            + g.size_x.round(1).cast("string")
            + "x the median size placed near the touch and cancelled unfilled while the other side traded",
        )
