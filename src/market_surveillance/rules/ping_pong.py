"""MS002 ping_pong — two accounts trading back and forth with each other."""

from __future__ import annotations

from dataclasses import dataclass

import ibis
import ibis.expr.types as ir

from market_surveillance.enums import Typology
from market_surveillance.rules._common import alert_rows, trailing, with_episodes
from market_surveillance.rules.base import Params, Rule, Tables, param
from market_surveillance.rules.registry import register


@dataclass(frozen=True)
class PingPongParams(Params):
    window_s: int = param(300, low=1, doc="trailing window, seconds")
    min_trades: int = param(6, low=2, doc="trades between the pair within the window")
    min_alternations: int = param(3, low=1, doc="direction changes within the window")
    episode_gap_s: int = param(300, low=1, doc="hits further apart start a new episode, seconds")


@register
class PingPong(Rule):
    """Ping-pong loops between two accounts.

    What it detects
        A pair of distinct accounts trading one asset on one venue with each other at least ``min_trades``
        times within ``window_s`` seconds, the direction (who buys from whom) changing at least
        ``min_alternations`` times.
    Why it is abusive
        Colluding accounts passing the same position back and forth create volume and prints without any
        change in beneficial ownership: wash trading by a pair, "painting the tape". EU MAR Annex I(1)(a),
        Annex II 1(a)-(c); improper matched orders.
    Known false positives
        A market maker and a very active client who genuinely flips (rare at these rates); two desks of one
        firm crossing internally.
    """

    rule_id = "MS002"
    name = "ping_pong"
    typology = Typology.PING_PONG
    regulatory_name = "EU MAR Annex I(1)(a): improper matched orders / wash trades between colluding parties"
    metric = "trades_in_window"
    threshold_param = "min_trades"
    Params = PingPongParams
    requires = ("trades",)
    needs_trade_accounts = True
    limitations = """
        spread_out variant (6–10 alternating trades over 15–45 min) recall 0/10 (`bench/robustness.py --seeds 1 2 3 4 5 --clean-seeds 101 102` at 5f32de8): a window
        of an hour lets market makers and their active clients through (a probe: 227 alerts on one clean
        world). MS017 catches such pairs when they are owner- or device-linked; unlinked pairs need the
        pair-chance test of MS017 ported here.
    """
    lookback = ("window_s",)

    def candidates(self, t: Tables, p: PingPongParams) -> ir.Table:
        tr = t["trades"]
        tr = tr.filter(tr.buyer_id.notnull() & tr.seller_id.notnull() & (tr.buyer_id != tr.seller_id))
        a = ibis.least(tr.buyer_id, tr.seller_id)
        b = ibis.greatest(tr.buyer_id, tr.seller_id)
        tr = tr.mutate(acc_a=a, acc_b=b, d=(tr.buyer_id == a).cast("int64"))
        keys = ["acc_a", "acc_b", "asset", "venue"]
        w = ibis.window(group_by=[tr[k] for k in keys], order_by=[tr.ts_us, tr.trade_id])
        tr = tr.mutate(flip=(tr.d != tr.d.lag().over(w)).fill_null(False).cast("int64"))
        tw = trailing(tr, keys, p.window_s)
        tr = tr.mutate(n=tr.trade_id.count().over(tw), flips=tr.flip.sum().over(tw))
        hits = tr.filter((tr.n >= p.min_trades) & (tr.flips >= p.min_alternations))
        hits = with_episodes(hits, keys, p.episode_gap_s, tiebreak="trade_id")
        g = hits.group_by([*keys, "episode"]).aggregate(
            value=hits.n.max(),
            first_hit=hits.ts_us.min(),
            detected_at=hits.ts.min(),
            window_end=hits.ts.max(),
        )
        # the evidence is every pair trade from the window before the first hit to the last hit
        ev = tr.join(
            g,
            [
                tr.acc_a == g.acc_a,
                tr.acc_b == g.acc_b,
                tr.asset == g.asset,
                tr.venue == g.venue,
                tr.ts_us >= g.first_hit - p.window_s * 1_000_000,
                tr.ts <= g.window_end,
            ],
        )
        e = ev.group_by([ev.acc_a, ev.acc_b, ev.asset, ev.venue, ev.episode]).aggregate(
            value=ev.value.max(),
            window_start=ev.ts.min(),
            window_end=ev.window_end.max(),
            detected_at=ev.detected_at.min(),
            evidence_trade_ids=ev.trade_id.collect(),
        )
        return alert_rows(
            e,
            venue=e.venue,
            accounts=ibis.array([e.acc_a, e.acc_b]),
            value=e.value,
            score=e.value.cast("float64") / p.min_trades,
            evidence_trade_ids=e.evidence_trade_ids,
        )
