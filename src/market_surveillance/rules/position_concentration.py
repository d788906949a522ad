"""MS008 position_concentration — one account holding a large share of an asset's free float."""

from __future__ import annotations

from dataclasses import dataclass

import ibis
import ibis.expr.types as ir

from market_surveillance.enums import Typology
from market_surveillance.rules import intermediates
from market_surveillance.rules._common import US, empty_str_array, null_str
from market_surveillance.rules.base import Params, Rule, Tables, param
from market_surveillance.rules.registry import register


@dataclass(frozen=True)
class PositionConcentrationParams(Params):
    min_share: float = param(0.20, low=0.0, high=1.0, closed="right", doc="|net position| / float")
    min_exposure: float = param(
        10_000.0, low=0.0, doc="absolute floor of |net position| × last trade price, quote currency"
    )


@register
class PositionConcentration(Rule):
    """Position concentration (cornering / dominant position).

    What it detects
        On the latest position snapshot, an account whose absolute net position is at least ``min_share`` of
        the asset's free float and worth at least ``min_exposure`` at the asset's last trade price. The
        threshold is a share of the instrument's own float (so of its float value at any price); the dollar
        floor is only a safety net against dust positions in a token nobody trades: 30 % of a $3M micro-cap
        (worth $0.9M) dominates it as surely as 30 % of a large cap. The alert
        window runs from the account's first trade in the asset to the snapshot.
    Why it is abusive
        Controlling a large share of a thin float lets a holder dictate prices (squeezes, cornering) and
        prepares pump-and-dump distribution. EU MAR Annex I(2)(a) "securing a dominant position".
    Known false positives
        Treasury, foundation or exchange custody accounts; market makers' inventories in a token they seed;
        stale float figures in the reference data.
    """

    rule_id = "MS008"
    name = "position_concentration"
    typology = Typology.POSITION_CONCENTRATION
    regulatory_name = "EU MAR Annex I(2)(a): securing a dominant position"
    metric = "float_share"
    threshold_param = "min_share"
    Params = PositionConcentrationParams
    requires = ("positions", "assets", "trades")
    reads = ("account_trades",)
    # judged on each position snapshot against the last price seen (decided at the snapshot's as_of)
    lookback = (86_400,)

    def candidates(self, t: Tables, p: PositionConcentrationParams) -> ir.Table:
        pos = t["positions"]
        w = ibis.window(group_by=[pos.account_id, pos.asset], order_by=pos.as_of.desc())
        pos = pos.mutate(rn=ibis.row_number().over(w))
        pos = pos.filter(pos.rn == 0).drop("rn")
        tr = t["trades"]
        since, until = intermediates.decide_from(t), intermediates.decide_until(t)
        if since is not None and until is not None:
            # online: a snapshot is decided at its as_of, so a batch judges only those it closes (whole
            # seconds bound the µs instant from both sides); the day's other batches read no trades at all
            as_of = pos.as_of.epoch_seconds() * US
            pos = pos.filter((as_of >= since - US) & (as_of <= until))
            tr = tr.semi_join(pos.select("asset").distinct(), "asset")
        last = tr.group_by("asset").aggregate(last_price=tr.price.argmax(tr.ts_us))
        j = pos.join(t["assets"], "asset").join(last, "asset")
        j = j.mutate(share=j.net_qty.abs() / j.float_qty, exposure=j.net_qty.abs() * j.last_price)
        hits = j.filter((j.share >= p.min_share) & (j.exposure >= p.min_exposure))
        at = intermediates.get(t, "account_trades")
        # the evidence of the flagged positions only: not every account's legs
        at = at.semi_join(hits, [at.account_id == hits.account_id, at.asset == hits.asset])
        first = at.group_by(["account_id", "asset"]).aggregate(
            first_ts=at.ts.min(), trade_ids=at.trade_id.collect()
        )
        h = hits.left_join(first, [hits.account_id == first.account_id, hits.asset == first.asset])
        return h.select(
            asset=h.asset,
            venue=null_str(),
            accounts=ibis.array([h.account_id]),
            window_start=h.first_ts.fill_null(h.as_of),
            window_end=h.as_of,
            value=h.share,
            score=h.share / p.min_share,
            evidence_trade_ids=h.trade_ids.fill_null(empty_str_array()),
            evidence_order_ids=empty_str_array(),
            explanation=(
                ibis.literal("net ")
                + h.net_qty.round(2).cast("string")
                + " = "
                + (h.share * 100).round(1).cast("string")
                + "% of float, exposure "
                + h.exposure.round(0).cast("string")
            ),
        )
