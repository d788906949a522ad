"""MS011 layering — a live ladder of orders at stepped prices, all cancelled unfilled within seconds."""

from __future__ import annotations

from dataclasses import dataclass

import ibis
import ibis.expr.types as ir

from market_surveillance.enums import Typology
from market_surveillance.rules import intermediates
from market_surveillance.rules._common import (
    BAND,
    US,
    alert_rows,
    band_probe,
    band_side,
    one_account,
    with_episodes,
)
from market_surveillance.rules.base import Params, Rule, Tables, param
from market_surveillance.rules.registry import register


@dataclass(frozen=True)
class LayeringParams(Params):
    window_s: float = param(
        90.0, low=0.0, closed="neither", doc="orders placed and cancelled within, seconds"
    )
    min_levels: int = param(4, low=2, doc="distinct, strictly monotonic price levels live together")
    episode_gap_s: int = param(300, low=1, doc="ladders further apart start a new episode, seconds")


@register
class Layering(Rule):
    """Multi-level layering.

    What it detects
        On one account, asset, venue and side: at the moment an order is placed, at least ``min_levels``
        orders (itself included) are live together at distinct prices that step strictly in one direction in
        placement order, never filled, and the whole ladder is placed and cancelled within ``window_s`` (first
        placement to last cancel).
    Why it is abusive
        A stepped ladder of orders that are never meant to trade builds false depth on one side of the book,
        moving the price toward the account's genuine order on the other side. EU MAR Annex II 3(c)
        "layering and spoofing"; FINRA Rule 5210 guidance.
    Known false positives
        Market makers quoting several levels and re-pricing in a fast market; iceberg/TWAP slicing that
        repeatedly cancels and re-posts.
    """

    rule_id = "MS011"
    name = "layering"
    typology = Typology.LAYERING
    regulatory_name = "EU MAR Annex II 3(c): layering and spoofing"
    metric = "ladder_levels"
    threshold_param = "min_levels"
    Params = LayeringParams
    requires = ("orders",)
    reads = ("lifecycle",)
    needs_order_accounts = True
    lookback = ("window_s",)

    def candidates(self, t: Tables, p: LayeringParams) -> ir.Table:
        win = int(p.window_s * US)
        life = intermediates.get(t, "lifecycle")
        c = life.filter(
            life.account_id.notnull()
            & life.cancel_us.notnull()
            & (life.filled <= 0)
            & ((life.cancel_us - life.ts_us) <= win)
        ).select(
            "order_id",
            "account_id",
            "asset",
            "venue",
            "side",
            "price",
            "ts",
            "ts_us",
            "cancel_ts",
            "cancel_us",
        )
        # time-band keys (_common.band_probe) bound the self-join: pairs per account/book stay within
        # two windows instead of the whole day on any engine
        a = band_probe(c, c.ts_us, -win, 0)
        c = band_side(c, c.ts_us, -win, 0)
        # members live at the anchor's placement: placed earlier (≤ window) and not yet cancelled
        j = a.join(
            c,
            [
                a[BAND] == c[BAND],
                a.account_id == c.account_id,
                a.asset == c.asset,
                a.venue == c.venue,
                a.side == c.side,
                c.ts_us <= a.ts_us,
                c.ts_us >= a.ts_us - win,
                c.cancel_us > a.ts_us,
            ],
        ).select(
            anchor=a.order_id,
            account_id=a.account_id,
            asset=a.asset,
            venue=a.venue,
            side=a.side,
            anchor_us=a.ts_us,
            member=c.order_id,
            m_price=c.price,
            m_us=c.ts_us,
            m_ts=c.ts,
            m_cancel_ts=c.cancel_ts,
            m_cancel_us=c.cancel_us,
        )
        w = ibis.window(group_by=j.anchor, order_by=[j.m_us, j.member])
        step = (j.m_price - j.m_price.lag().over(w)).sign()
        j = j.mutate(step=step)
        ladders = j.group_by(["anchor", "account_id", "asset", "venue", "side", "anchor_us"]).aggregate(
            levels=j.m_price.nunique(),
            n=j.member.count(),
            up=j.step.min(),
            down=j.step.max(),
            start=j.m_ts.min(),
            end=j.m_cancel_ts.max(),
            span_us=j.m_cancel_us.max() - j.m_us.min(),
            members=j.member.collect(),
        )
        ladders = ladders.filter(
            (ladders.levels >= p.min_levels)
            & (ladders.levels == ladders.n)
            # the ladder as a whole is placed and cancelled inside the window (agreed semantics)
            & (ladders.span_us <= win)
            & (((ladders.up == 1) & (ladders.down == 1)) | ((ladders.up == -1) & (ladders.down == -1)))
        ).rename(ts_us="anchor_us")
        ladders = with_episodes(ladders, ["account_id", "asset", "venue"], p.episode_gap_s, tiebreak="anchor")
        g = ladders.group_by(["account_id", "asset", "venue", "episode"]).aggregate(
            value=ladders.levels.max(),
            window_start=ladders.start.min(),
            window_end=ladders.end.max(),
            detected_at=ladders.end.min(),
            evidence_order_ids=ladders.members.collect().flatten(),
        )
        return alert_rows(
            g,
            venue=g.venue,
            accounts=one_account(g.account_id),
            value=g.value,
            score=g.value.cast("float64") / p.min_levels,
            evidence_order_ids=g.evidence_order_ids,
        )
