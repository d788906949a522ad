"""MS002 ping_pong — two accounts trading back and forth with each other."""

from __future__ import annotations

from dataclasses import dataclass

import ibis
import ibis.expr.types as ir

from market_surveillance.enums import Typology
from market_surveillance.rules import intermediates
from market_surveillance.rules._common import alert_rows, trailing, with_episodes
from market_surveillance.rules.base import Params, Rule, Tables, param
from market_surveillance.rules.registry import register


@dataclass(frozen=True)
class PingPongParams(Params):
    window_s: int = param(300, low=1, doc="trailing window, seconds")
    min_trades: int = param(6, low=2, doc="trades between the pair within the window")
    min_alternations: int = param(3, low=1, doc="direction changes within the window")
    long_window_s: int = param(
        3600,
        low=0,
        doc="a second, longer trailing window for loops spread out over the hour, seconds (0: off); "
        "a pair hit only there must also trade mostly with each other (min_pair_share)",
    )
    min_pair_share: float = param(
        0.5,
        low=0.0,
        high=1.0,
        closed="right",
        doc="long window: for both accounts, trades with the other at least this share of their trades on "
        "the book that day (a market maker and its busy client: a small share of the maker's)",
    )
    episode_gap_s: int = param(300, low=1, doc="hits further apart start a new episode, seconds")


@register
class PingPong(Rule):
    """Ping-pong loops between two accounts.

    What it detects
        A pair of distinct accounts trading one asset on one venue with each other at least ``min_trades``
        times within ``window_s`` seconds, the direction (who buys from whom) changing at least
        ``min_alternations`` times; or the same counts within ``long_window_s`` (a loop spread out over the
        hour) for a pair whose trades with each other are at least ``min_pair_share`` of each account's
        trades on that book over the data in view (a market maker meets its busy clients often, but each
        is a small share of its trading).
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
    lookback = ("window_s", "long_window_s")
    reads = ("account_trades",)

    def candidates(self, t: Tables, p: PingPongParams) -> ir.Table:
        tr = t["trades"]
        tr = tr.filter(tr.buyer_id.notnull() & tr.seller_id.notnull() & (tr.buyer_id != tr.seller_id))
        a = ibis.least(tr.buyer_id, tr.seller_id)
        b = ibis.greatest(tr.buyer_id, tr.seller_id)
        tr = tr.mutate(acc_a=a, acc_b=b, d=(tr.buyer_id == a).cast("int64"))
        keys = ["acc_a", "acc_b", "asset", "venue"]
        # a pair with fewer than min_trades trades on the book in all cannot reach it in any window: most
        # taker-maker pairs meet once or twice, so the windows run on the few pairs that meet often
        often = tr.group_by(keys).aggregate(n_all=tr.count())
        often = often.filter(often.n_all >= p.min_trades)
        since = intermediates.decide_from(t)
        if since is not None:
            # online: a pair that has not traded since then has no hit left to decide
            often = often.semi_join(tr.filter(tr.ts_us >= since).select(*keys).distinct(), keys)
        tr = tr.semi_join(often, keys)
        w = ibis.window(group_by=[tr[k] for k in keys], order_by=[tr.ts_us, tr.trade_id])
        tr = tr.mutate(flip=(tr.d != tr.d.lag().over(w)).fill_null(False).cast("int64"))
        tw = trailing(tr, keys, p.window_s)
        tr = tr.mutate(n=tr.trade_id.count().over(tw), flips=tr.flip.sum().over(tw))
        short = (tr.n >= p.min_trades) & (tr.flips >= p.min_alternations)
        if p.long_window_s > p.window_s:
            # spread-out loops: the same counts over the hour, for a pair that trades mostly with each other
            # on the book (a market maker and its busy client meet often, but the client is a small share
            # of the maker's trading); shares over the data in view, as the other rules' norms
            tl = trailing(tr, keys, p.long_window_s)
            tr = tr.mutate(n_l=tr.trade_id.count().over(tl), flips_l=tr.flip.sum().over(tl))
            tr = tr.mutate(short=short, long=(tr.n_l >= p.min_trades) & (tr.flips_l >= p.min_alternations))
            pairs = tr.filter(tr.long & ~tr.short)
            pairs = pairs.group_by(keys).aggregate(n_first=pairs.trade_id.count())
            pn = tr.semi_join(pairs, keys).group_by(keys).aggregate(n_pair=tr.trade_id.count())
            legs = intermediates.get(t, "account_trades")
            per = legs.group_by(["account_id", "asset", "venue"]).aggregate(n_acct=legs.count())
            for who in ("a", "b"):
                r = per.select(
                    **{f"r_{who}": per.account_id, f"ra_{who}": per.asset, f"rv_{who}": per.venue},
                    **{f"n_{who}": per.n_acct},
                )
                pn = pn.join(
                    r,
                    [pn[f"acc_{who}"] == r[f"r_{who}"], pn.asset == r[f"ra_{who}"], pn.venue == r[f"rv_{who}"]],
                )
            share = ibis.least(pn.n_pair / pn.n_a, pn.n_pair / pn.n_b)
            mostly = pn.filter(share >= p.min_pair_share).select(*keys).mutate(mostly=True)
            tr = tr.left_join(mostly, keys).drop(*(f"{k}_right" for k in keys))
            tr = tr.mutate(n=ibis.ifelse(tr.short, tr.n, tr.n_l))
            hits = tr.filter(tr.short | (tr.long & tr.mostly.fill_null(False)))
            if since is not None:
                hits = hits.filter(hits.ts_us >= since)
            hits = hits.mutate(
                lb=ibis.ifelse(hits.short, p.window_s, p.long_window_s).cast("int64") * 1_000_000
            )
        else:
            hits = tr.filter(short if since is None else short & (tr.ts_us >= since))
            hits = hits.mutate(lb=ibis.literal(p.window_s * 1_000_000, type="int64"))
        hits = with_episodes(hits, keys, p.episode_gap_s, tiebreak="trade_id")
        g = hits.group_by([*keys, "episode"]).aggregate(
            value=hits.n.max(),
            ev_from=(hits.ts_us - hits.lb).min(),
            detected_at=hits.ts.min(),
            window_end=hits.ts.max(),
        )
        # the evidence is every pair trade from the (short or long) window before a hit to the last hit
        ev = tr.join(
            g,
            [
                tr.acc_a == g.acc_a,
                tr.acc_b == g.acc_b,
                tr.asset == g.asset,
                tr.venue == g.venue,
                tr.ts_us >= g.ev_from,
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
