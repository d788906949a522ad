"""MS004 volume_spike — an account's 2-hour notional far above its own trailing 12 hours."""

from __future__ import annotations

from dataclasses import dataclass

import ibis
import ibis.expr.types as ir

from market_surveillance.enums import Typology
from market_surveillance.rules._common import US, account_trades, empty_str_array, trailing, with_episodes
from market_surveillance.rules.base import Params, Rule, Tables, param
from market_surveillance.rules.registry import register


@dataclass(frozen=True)
class VolumeSpikeParams(Params):
    short_window_s: int = param(7200, low=1, doc="recent window, seconds")
    long_window_s: int = param(43200, low=1, doc="trailing baseline window before the recent one, seconds")
    ratio: float = param(5.0, low=1.0, doc="recent notional vs the baseline rate over the same duration")
    min_notional: float = param(100_000.0, low=0.0, doc="recent notional at least, quote currency")
    min_baseline: float = param(10_000.0, low=0.0, doc="floor of the baseline per short window")
    episode_gap_s: int = param(1800, low=1, doc="hits further apart start a new episode, seconds")


_BUCKET_S = 3600


def _candidate_accounts(at: ir.Table, data_start: ir.Scalar, p: VolumeSpikeParams) -> ir.Table:
    """Accounts that can fire, found on clock-hour sums (an exact superset, not an approximation).

    For a trade in hour ``h`` the recent window lies inside hours ``h - ceil(S/B) .. h`` (an upper bound of
    its recent notional) and the prior window contains hours ``h + 1 - floor((S+L)/B) .. h - ceil(S/B) - 1``
    (a lower bound of its baseline). A trade can only fire where the bound ratio does, so the exact per-trade
    range windows run on those accounts only: at 10M trades they are a small share of the 20M account legs,
    and per-row range windows over all of them were the rule's whole cost.
    """
    b = _BUCKET_S * US
    hb = at.mutate(bucket=at.ts_us // b)
    hours = hb.group_by(["account_id", "bucket"]).aggregate(n=hb.notional.sum())
    ks = -(-p.short_window_s // _BUCKET_S)  # ceil
    kt = (p.short_window_s + p.long_window_s) // _BUCKET_S - 1

    def w(k: int) -> ibis.expr.builders.LegacyWindowBuilder:
        return ibis.range_window(group_by=hours.account_id, order_by=hours.bucket, preceding=k, following=0)

    up = hours.n.sum().over(w(ks))
    prior_lo = ibis.greatest(hours.n.sum().over(w(kt)) - up, 0.0) if kt > ks else ibis.literal(0.0)
    hours = hours.mutate(up=up, prior_lo=prior_lo)
    base = ibis.greatest(hours.prior_lo * (p.short_window_s / p.long_window_s), p.min_baseline)
    cand = hours.filter(
        ((hours.bucket + 1) * b > data_start + p.long_window_s * US)
        & (hours.up >= p.min_notional)
        & (hours.up >= base * p.ratio)
    )
    return cand.select("account_id").distinct()


@register
class VolumeSpike(Rule):
    """Per-account volume spike.

    What it detects
        At each of an account's trades: its notional over the trailing ``short_window_s`` against its own
        notional over the ``long_window_s`` before that, scaled to the same duration (floored at
        ``min_baseline``); fires when the ratio reaches ``ratio`` and the recent notional ``min_notional``.
        Evaluated only once ``long_window_s`` of data precede the trade (warm-up), so the first hours of a
        dataset cannot fire for lack of history.
    Why it is abusive
        A sudden multiple of an account's own activity is the footprint of ramping, marking the close,
        wash volume or trading ahead of information (EU MAR Art. 12(1)(a); Annex II 1(a): transactions that
        represent a significant proportion of daily volume).
    Known false positives
        Scheduled rebalances, an account's first active day after a quiet period, market-wide news days.
    """

    rule_id = "MS004"
    name = "volume_spike"
    typology = Typology.VOLUME_SPIKE
    regulatory_name = "EU MAR Annex II 1(a): significant proportion of daily volume"
    metric = "notional_ratio"
    threshold_param = "ratio"
    Params = VolumeSpikeParams
    requires = ("trades",)
    needs_trade_accounts = True
    lookback = ("short_window_s", "long_window_s")

    def candidates(self, t: Tables, p: VolumeSpikeParams) -> ir.Table:
        tr = t["trades"]
        data_start = tr.ts_us.min().as_scalar()
        legs = account_trades(tr)
        at = legs.mutate(notional=legs.price * legs.qty)
        at = at.semi_join(_candidate_accounts(at, data_start, p), "account_id")
        short = at.notional.sum().over(trailing(at, ["account_id"], p.short_window_s))
        total = at.notional.sum().over(trailing(at, ["account_id"], p.short_window_s + p.long_window_s))
        at = at.mutate(recent=short, prior=total - short)
        scale = p.short_window_s / p.long_window_s
        base = ibis.greatest(at.prior * scale, p.min_baseline)
        at = at.mutate(r=at.recent / base)
        hits = at.filter(
            (at.ts_us >= data_start + p.long_window_s * US)
            & (at.r >= p.ratio)
            & (at.recent >= p.min_notional)
        )
        hits = with_episodes(hits, ["account_id"], p.episode_gap_s, tiebreak="trade_id")
        g = hits.group_by(["account_id", "episode"]).aggregate(
            value=hits.r.max(),
            asset=hits.asset.min(),
            n_assets=hits.asset.nunique(),
            first_hit=hits.ts_us.min(),
            detected_at=hits.ts.min(),
            window_end=hits.ts.max(),
            recent=hits.recent.max(),
        )
        # evidence: the account's trades in the short window before the first hit up to the last hit
        # (joined to the plain legs, so the windowed relation is not computed twice)
        ev = legs.join(
            g,
            [
                legs.account_id == g.account_id,
                legs.ts_us >= g.first_hit - p.short_window_s * US,
                legs.ts <= g.window_end,
            ],
        )
        e = ev.group_by([ev.account_id, ev.episode]).aggregate(
            value=ev.value.max(),
            asset=ev.asset_right.min(),
            n_assets=ev.n_assets.max(),
            recent=ev.recent.max(),
            window_start=ev.ts.min(),
            window_end=ev.window_end.max(),
            detected_at=ev.detected_at.min(),
            evidence_trade_ids=ev.trade_id.collect(),
        )
        return e.select(
            asset=ibis.ifelse(e.n_assets == 1, e.asset, ibis.null().cast("string")),
            venue=ibis.null().cast("string"),
            accounts=ibis.array([e.account_id]),
            window_start=e.window_start,
            window_end=e.window_end,
            detected_at=e.detected_at,
            value=e.value,
            score=e.value / p.ratio,
            evidence_trade_ids=e.evidence_trade_ids,
            evidence_order_ids=empty_str_array(),
            explanation=ibis.literal("recent notional ") + e.recent.round(0).cast("string"),
        )
