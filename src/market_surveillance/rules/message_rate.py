"""MS009 message_rate — an account flooding the venue with order instructions."""

from __future__ import annotations

from dataclasses import dataclass

import ibis.expr.types as ir

from market_surveillance.enums import Typology
from market_surveillance.rules._common import US, alert_rows, one_account, trailing, with_episodes
from market_surveillance.rules.base import Params, Rule, Tables, param
from market_surveillance.rules.registry import register


@dataclass(frozen=True)
class MessageRateParams(Params):
    window_s: int = param(60, low=1, doc="trailing window, seconds")
    max_messages: int = param(45, low=1, doc="instructions (new + cancel) allowed in the window")
    episode_gap_s: int = param(300, low=1, doc="hits further apart start a new episode, seconds")


def _hot_books(o: ir.Table, keys: list[str], p: MessageRateParams) -> ir.Table:
    """The instructions the trailing-window count must see, and no others: an exact prefilter.

    With time cut into buckets one window long, the window [t − w, t] of an instruction in bucket b lies in
    buckets b − 1 and b, so its count is at most their total. Only buckets whose total with the previous
    bucket passes ``max_messages`` ("hot") can hold a hit; those and the bucket before each of them are
    kept whole, so every count there is exact, and a count elsewhere (history only) is at most its bucket
    pair's total, which is not over the limit. Most (account, asset) books never come near the limit: a
    hash aggregate drops them before the range window sorts what is left.
    """
    w = int(p.window_s * US)
    o = o.mutate(_bk=o.ts_us - o.ts_us % w)
    c = o.group_by([*keys, "_bk"]).aggregate(_c=o.count())
    prev = c.select(*[c[k].name(f"_p_{k}") for k in keys], _p_bk=c._bk + w, _pc=c._c)
    pair = c.left_join(prev, [c[k] == prev[f"_p_{k}"] for k in keys] + [c._bk == prev._p_bk])
    hot = pair.filter(pair._c + pair._pc.fill_null(0) > p.max_messages).select(*keys, "_bk")
    need = hot.union(hot.mutate(_bk=hot._bk - w)).distinct()
    return o.semi_join(need, [*keys, "_bk"]).drop("_bk")


@register
class MessageRate(Rule):
    """Message-rate spike (quote stuffing / message flooding).

    What it detects
        An account sending more than ``max_messages`` order instructions (new orders and cancels; fills are
        the venue's messages, not the account's) on one asset within any trailing ``window_s`` seconds.
        Counted per (account, asset), so the alert names the book that was flooded; a flood spread thinly
        over many books is the venue's throttling matter, not this rule's. The limit is a message count,
        like the venues' own per-instrument rate limits, not a size, so it needs no liquidity scaling.
    Why it is abusive
        Floods slow the matching engine and other participants' market data, hiding the account's real
        intent or creating latency arbitrage. EU MAR Annex II 3(a)/(b) and RTS 2017/565 order-to-trade
        controls; "quote stuffing".
    Known false positives
        Legitimate market makers re-quoting fast in volatile markets; an algorithm malfunction (a real
        issue, but operational rather than manipulative).
    """

    rule_id = "MS009"
    name = "message_rate"
    typology = Typology.MESSAGE_FLOOD
    regulatory_name = "EU MAR Annex II 3: disruption of the trading system (quote stuffing)"
    metric = "instructions_per_window"
    threshold_param = "max_messages"
    Params = MessageRateParams
    requires = ("orders",)
    needs_order_accounts = True
    lookback = ("window_s",)

    def candidates(self, t: Tables, p: MessageRateParams) -> ir.Table:
        o = t["orders"]
        o = o.filter(o.account_id.notnull() & o.event.isin(["new", "cancel"]))
        keys = ["account_id", "asset"]
        o = _hot_books(o, keys, p)
        o = o.mutate(n=o.event_id.count().over(trailing(o, keys, p.window_s)))
        hits = with_episodes(o.filter(o.n > p.max_messages), keys, p.episode_gap_s, tiebreak="event_id")
        g = hits.group_by([*keys, "episode"]).aggregate(
            value=hits.n.max(),
            window_start=hits.ts.min(),
            window_end=hits.ts.max(),
            detected_at=hits.ts.min(),
            evidence_order_ids=hits.order_id.collect(),
        )
        return alert_rows(
            g,
            accounts=one_account(g.account_id),
            value=g.value,
            score=g.value.cast("float64") / p.max_messages,
            evidence_order_ids=g.evidence_order_ids,
        )
