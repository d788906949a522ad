"""MS032 message_burst — quote stuffing at market scale: a second with many times the instrument's usual messages."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import ibis
import ibis.expr.types as ir

from market_surveillance.enums import Typology
from market_surveillance.rules._common import empty_str_array, with_episodes
from market_surveillance.rules._market import bucket, skip_with_accounts
from market_surveillance.rules.base import Params, Rule, Tables, param
from market_surveillance.rules.registry import register
from market_surveillance.schema import DataProfile


@dataclass(frozen=True)
class MessageBurstParams(Params):
    bucket_s: float = param(1.0, low=0.0, closed="neither", doc="counting interval, seconds")
    burst_multiple: float = param(
        3.0, low=1.0, doc="messages in an interval vs the entity's busy level (see reference_quantile)"
    )
    reference_quantile: float = param(
        0.99,
        low=0.5,
        high=1.0,
        closed="left",
        doc="the instrument's busy level: this quantile of its active intervals' message counts",
    )
    min_messages: int = param(100, low=1, doc="absolute floor of messages in the interval")
    max_trade_share: float = param(
        0.1,
        low=0.0,
        high=1.0,
        doc="at most this many trades per message in the interval (stuffing, not a rush)",
    )
    episode_gap_s: int = param(60, low=1, doc="hit intervals further apart start a new episode, seconds")


@dataclass(frozen=True)
class LevelMessageBurstParams(MessageBurstParams):
    # one price level's busy second is a few messages: a flicker is many times that
    burst_multiple: float = param(
        10.0, low=1.0, doc="messages at one level in an interval vs the instrument's busy level per level"
    )


def _level_messages(book: ir.Table) -> ir.Table:
    """Level changes of an L2 feed as messages: no order ids, no fills (trades are not in the book feed)."""
    return book.select(
        "venue", "asset", "side", "price", "ts", "ts_us",
        event=ibis.literal("update"),
        order_id=ibis.literal("level ") + book.side + " " + book.price.cast("string"),
    )  # fmt: skip


class _Burst(Rule):
    """Shared body of the market- and price-level message-burst rules."""

    keys: ClassVar[tuple[str, ...]]
    instead: ClassVar[str] = "MS009 message_rate"
    typology = Typology.MESSAGE_FLOOD
    metric = "messages_per_interval"
    threshold_param = "burst_multiple"
    Params = MessageBurstParams
    requires = ("orders",)
    # online: norms are taken over the data in view, a day (issue 13); narrow it where the rule allows
    lookback = (86_400,)
    #: also runs on the level-based ``book`` table (L2 feeds): each level change is a message
    runs_on_levels: ClassVar[bool] = True

    def skip_reason(self, profile: DataProfile) -> str | None:
        if "orders" not in profile.tables:
            if "book" in profile.tables:
                return None
            return "needs table orders (order events) or book (level changes), absent from the data"
        return skip_with_accounts(profile, super().skip_reason(profile), self.instead)

    def candidates(self, t: Tables, p: MessageBurstParams) -> ir.Table:
        keys = list(self.keys)
        o = t["orders"] if "orders" in t else _level_messages(t["book"])
        o = o.mutate(_b=bucket(o, p.bucket_s))
        per = o.group_by([*keys, "_b"]).aggregate(
            # instructions (new + cancel); fills are the venue's answer, counted as trades
            msgs=(o.event != "fill").cast("int64").sum(),
            fills=(o.event == "fill").cast("int64").sum(),
            first_ts=o.ts.min(),
            last_ts=o.ts.max(),
        )
        # message counts are heavy-tailed: the median second says little about a busy but normal one, so
        # the reference is the instrument's own busy level (a high quantile of its active intervals)
        base = per.group_by(["venue", "asset"]).aggregate(med=per.msgs.quantile(p.reference_quantile))
        per = per.join(base, ["venue", "asset"])
        hits = per.filter(
            (per.msgs >= per.med * p.burst_multiple)
            & (per.msgs >= p.min_messages)
            & (per.fills.cast("float64") <= per.msgs.cast("float64") * p.max_trade_share)
        )
        hits = hits.mutate(ts_us=hits._b)
        # neighbouring levels flickering in the same seconds are one event: episodes per side, not per level
        ep_keys = [k for k in keys if k != "price"]
        hits = with_episodes(hits, ep_keys, p.episode_gap_s, tiebreak="price" if "price" in keys else None)
        ev = o.join(hits.select(*keys, "_b", "episode"), [*keys, "_b"])
        ev = ev.filter(ev.event != "fill")
        evid = ev.group_by([*ep_keys, "episode"]).aggregate(evidence_order_ids=ev.order_id.collect())
        g = hits.group_by([*ep_keys, "episode"]).aggregate(
            value=hits.msgs.max(),
            med=hits.med.max(),
            n=hits._b.count(),
            window_start=hits.first_ts.min(),
            window_end=hits.last_ts.max(),
            **({"lo": hits.price.min(), "hi": hits.price.max()} if "price" in keys else {}),
        )
        g = g.join(evid, [*ep_keys, "episode"])
        where = (
            ibis.literal("")
            if "price" not in keys
            else (
                ibis.literal(" at one ")
                + g.side
                + " level in "
                + g.lo.cast("string")
                + "-"
                + g.hi.cast("string")
            )
        )
        return g.select(
            asset=g.asset,
            venue=g.venue,
            accounts=empty_str_array(),
            window_start=g.window_start,
            window_end=g.window_end,
            value=g.value.cast("float64"),
            score=g.value.cast("float64") / (g.med * p.burst_multiple),
            evidence_trade_ids=empty_str_array(),
            evidence_order_ids=g.evidence_order_ids,
            explanation=ibis.literal("up to ")
            + g.value.cast("string")
            + f" order messages in {p.bucket_s:g} s"
            + where
            + f" (busy level, q{p.reference_quantile:g}: "
            + g.med.round(1).cast("string")
            + ") in "
            + g.n.cast("string")
            + " interval(s)",
        )


@register
class MessageBurst(_Burst):
    """Account-free quote stuffing at market scale.

    What it detects
        On one venue and asset: an interval of ``bucket_s`` seconds holding at least ``burst_multiple``
        times the instrument's busy level (the ``reference_quantile`` of its active intervals' message
        counts) and at least ``min_messages``, of which at most ``max_trade_share`` are executions. Neighbouring hit intervals
        (within ``episode_gap_s``) make one alert. Needs order events, not accounts; it skips data with
        account ids (MS009 names the account there). On level-based books (``book`` table, e.g. Tardis
        ``incremental_book_L2``) each level change counts as a message.
    Why it is abusive
        Floods of orders and cancels that do not trade slow the venue's feed and other participants'
        reaction, to hide or profit from the sender's real orders ("quote stuffing"). EU MAR Annex II 3(a)/(b)
        disruption of the trading system; RTS 6 order-to-trade controls.
    Known false positives
        The open and the close, news and index re-balancing bring genuine bursts of re-quoting by every
        market maker at once; the trade-share cap keeps rushes that trade out, but re-pricing after a jump
        elsewhere (futures, ETF) still fires.
    """

    rule_id = "MS032"
    name = "message_burst"
    regulatory_name = "EU MAR Annex II 3: disruption of the trading system (quote stuffing, market level)"
    keys = ("venue", "asset")
