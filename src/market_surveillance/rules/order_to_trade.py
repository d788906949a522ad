"""MS034 order_to_trade — market-level order-to-trade ratio far above the instrument's own norm."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import ibis
import ibis.expr.types as ir

from market_surveillance.enums import Typology
from market_surveillance.rules._common import empty_str_array, with_episodes
from market_surveillance.rules._market import KEY, bucket, skip_with_accounts
from market_surveillance.rules.base import Params, Rule, Tables, param
from market_surveillance.rules.registry import register
from market_surveillance.schema import DataProfile


@dataclass(frozen=True)
class RatioParams(Params):
    bucket_s: int = param(300, low=1, doc="counting interval, seconds")
    ratio_multiple: float = param(
        4.0, low=1.0, doc="interval ratio vs the median ratio of the instrument's intervals"
    )
    min_messages: int = param(200, low=1, doc="absolute floor of messages (numerator events) in the interval")
    episode_gap_s: int = param(900, low=1, doc="hit intervals further apart start a new episode, seconds")


class _Ratio(Rule):
    """Shared body: per venue/asset interval, numerator events over denominator events (floored at 1)."""

    numerator: ClassVar[tuple[str, ...]]
    denominator: ClassVar[str]
    instead: ClassVar[str]
    label: ClassVar[str]
    Params = RatioParams
    threshold_param = "ratio_multiple"
    requires = ("orders",)
    # online: norms are taken over the data in view, a day (issue 13); narrow it where the rule allows
    lookback = (86_400,)

    def skip_reason(self, profile: DataProfile) -> str | None:
        return skip_with_accounts(profile, super().skip_reason(profile), self.instead)

    def candidates(self, t: Tables, p: RatioParams) -> ir.Table:
        o = t["orders"]
        o = o.mutate(_b=bucket(o, p.bucket_s))
        per = o.group_by([*KEY, "_b"]).aggregate(
            num=o.event.isin(list(self.numerator)).cast("int64").sum(),
            den=(o.event == self.denominator).cast("int64").sum(),
            first_ts=o.ts.min(),
            last_ts=o.ts.max(),
        )
        per = per.mutate(r=per.num.cast("float64") / ibis.greatest(per.den, 1).cast("float64"))
        base = per.group_by(KEY).aggregate(med=per.r.median())
        per = per.join(base, KEY)
        hits = per.filter((per.r >= per.med * p.ratio_multiple) & (per.num >= p.min_messages))
        hits = with_episodes(hits.mutate(ts_us=hits._b), KEY, p.episode_gap_s)
        g = hits.group_by([*KEY, "episode"]).aggregate(
            value=hits.r.max(),
            med=hits.med.max(),
            num=hits.num.sum(),
            den=hits.den.sum(),
            window_start=hits.first_ts.min(),
            window_end=hits.last_ts.max(),
        )
        return g.select(
            asset=g.asset,
            venue=g.venue,
            accounts=empty_str_array(),
            window_start=g.window_start,
            window_end=g.window_end,
            value=g.value,
            score=g.value / (g.med * p.ratio_multiple),
            evidence_trade_ids=empty_str_array(),
            # market-wide: the window locates the messages, there is no short list of orders to name
            evidence_order_ids=empty_str_array(),
            explanation=ibis.literal(f"{self.label} up to ")
            + g.value.round(1).cast("string")
            + " per interval (instrument median "
            + g.med.round(1).cast("string")
            + "): "
            + g.num.cast("string")
            + f" {'/'.join(self.numerator)} vs "
            + g.den.cast("string")
            + f" {self.denominator}",
        )


@register
class OrderToTrade(_Ratio):
    """Account-free order-to-trade ratio surge.

    What it detects
        On one venue and asset: an interval of ``bucket_s`` seconds whose order instructions (new + cancel)
        per execution (executions floored at 1) reach ``ratio_multiple`` times the median ratio of the
        instrument's intervals, with at least ``min_messages`` instructions. Neighbouring hit intervals make
        one alert. Needs order events, not accounts; it skips data with account ids (MS009 and MS010 name
        the account there).
    Why it is abusive
        Orders that are sent and withdrawn without trading are the common footprint of spoofing, layering
        and quote stuffing; venues must watch the order-to-trade ratio and cap it. EU MAR Annex II 3; MiFID II
        RTS 9 (order-to-transaction ratio).
    Known false positives
        Quiet intervals in which market makers keep re-quoting while nobody trades (lunch, before news); the
        instruction floor keeps very thin intervals out.
    """

    rule_id = "MS034"
    name = "order_to_trade"
    typology = Typology.MESSAGE_FLOOD
    also_answers = (Typology.CANCEL_TO_FILL,)
    regulatory_name = "MiFID II RTS 9: order-to-transaction ratio (market level)"
    metric = "orders_per_trade"
    numerator = ("new", "cancel")
    denominator = "fill"
    instead = "MS009 message_rate"
    label = "instructions per execution"
