"""MS001 self_trade — wash trades where one account is both buyer and seller."""

from __future__ import annotations

from dataclasses import dataclass

import ibis
import ibis.expr.types as ir

from market_surveillance.enums import Typology
from market_surveillance.rules._common import alert_rows, one_account, with_episodes
from market_surveillance.rules.base import Params, Rule, Tables, param
from market_surveillance.rules.registry import register


@dataclass(frozen=True)
class SelfTradeParams(Params):
    min_trades: int = param(1, low=1, doc="self-trades by one account on one asset/venue to raise an episode")
    episode_gap_s: int = param(
        600, low=1, doc="self-trades further apart than this (seconds) start a new episode"
    )


@register
class SelfTrade(Rule):
    """Self-trade (wash trading).

    What it detects
        Trades whose buyer and seller are the same account, grouped into episodes per account, asset and
        venue (a new episode starts after ``episode_gap_s`` seconds without a self-trade).
    Why it is abusive
        A trade with oneself transfers no beneficial ownership: it only paints volume and prints prices.
        EU MAR Annex I (1)(a) "wash trades"; CEA §4c(a) wash sales.
    Known false positives
        Unintended crossing of one firm's independent algorithms under a shared account id (exchanges
        usually offer self-trade prevention); internal transfers booked as trades.
    """

    rule_id = "MS001"
    name = "self_trade"
    typology = Typology.WASH_TRADING
    regulatory_name = "EU MAR Annex I(1)(a): wash trades"
    metric = "self_trades"
    threshold_param = "min_trades"
    Params = SelfTradeParams
    requires = ("trades",)
    needs_trade_accounts = True
    lookback = ()

    def candidates(self, t: Tables, p: SelfTradeParams) -> ir.Table:
        tr = t["trades"]
        s = tr.filter(tr.buyer_id.notnull() & (tr.buyer_id == tr.seller_id))
        s = with_episodes(s, ["buyer_id", "asset", "venue"], p.episode_gap_s, tiebreak="trade_id")
        ew = ibis.window(group_by=[s.buyer_id, s.asset, s.venue, s.episode], order_by=[s.ts_us, s.trade_id])
        s = s.mutate(_k=ibis.row_number().over(ew))  # 0-based: the episode is decided at its min_trades-th
        g = s.group_by(["buyer_id", "asset", "venue", "episode"]).aggregate(
            detected_at=s.ts.min(where=s._k >= p.min_trades - 1),
            n=s.count(),
            notional=(s.price * s.qty).sum(),
            window_start=s.ts.min(),
            window_end=s.ts.max(),
            evidence_trade_ids=s.trade_id.collect(),
        )
        g = g.filter(g.n >= p.min_trades)
        return alert_rows(
            g,
            venue=g.venue,
            accounts=one_account(g.buyer_id),
            value=g.n,
            score=g.n.cast("float64") * (1 + g.notional.log10().clip(lower=0)),
            evidence_trade_ids=g.evidence_trade_ids,
        )
