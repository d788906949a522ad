"""MS004 volume_spike — an account's 2-hour notional far above its own trailing 12 hours."""

from __future__ import annotations

from dataclasses import dataclass

import ibis
import ibis.expr.types as ir

from market_surveillance.enums import Typology
from market_surveillance.rules import intermediates
from market_surveillance.rules._common import (
    US,
    alert_rows,
    one_account,
    trailing,
    with_episodes,
)
from market_surveillance.rules.base import Params, Rule, Tables, param
from market_surveillance.rules.registry import register


@dataclass(frozen=True)
class VolumeSpikeParams(Params):
    short_window_s: int = param(7200, low=1, doc="recent window, seconds")
    long_window_s: int = param(43200, low=1, doc="trailing baseline window before the recent one, seconds")
    ratio: float = param(5.0, low=1.0, doc="recent notional vs the baseline rate over the same duration")
    min_adv_share: float = param(
        0.0,
        low=0.0,
        high=1.0,
        doc="recent notional at least this share of the asset's average daily volume",
    )
    min_notional_multiple: float = param(
        110.0, low=0.0, doc="recent notional at least this many of the asset's median trade notional"
    )
    min_notional: float = param(1_000.0, low=0.0, doc="absolute floor of the recent notional, quote currency")
    min_baseline_adv_share: float = param(
        0.0, low=0.0, high=1.0, doc="floor of the baseline per short window, share of the asset's ADV"
    )
    min_baseline_multiple: float = param(
        10.0, low=0.0, doc="floor of the baseline per short window, in the asset's median trade notionals"
    )
    min_baseline: float = param(100.0, low=0.0, doc="absolute floor of the baseline per short window")
    min_prior_trades: int = param(
        1,
        low=1,
        doc="trades of the account on the asset in the baseline window: a norm needs a history "
        "(an account new to the asset is account_deviation's matter)",
    )
    initiated_only: bool = param(
        True,
        doc="count only the trades the account initiated (took liquidity; all of them where the tape has "
        "no aggressor): a market maker filled by someone else's burst did not decide that volume",
    )
    episode_gap_s: int = param(1800, low=1, doc="hits further apart start a new episode, seconds")


_BUCKET_S = 3600


def _candidate_accounts(at: ir.Table, data_start: ir.Scalar, p: VolumeSpikeParams) -> ir.Table:
    """(account, asset) pairs that can fire, found on clock-hour sums (an exact superset, not an approximation).

    For a trade in hour ``h`` the recent window lies inside hours ``h - ceil(S/B) .. h`` (an upper bound of
    its recent notional) and the prior window contains hours ``h + 1 - floor((S+L)/B) .. h - ceil(S/B) - 1``
    (a lower bound of its baseline). A trade can only fire where the bound ratio does, so the exact per-trade
    range windows run on those accounts only: at 10M trades they are a small share of the 20M account legs,
    and per-row range windows over all of them were the rule's whole cost.
    """
    b = _BUCKET_S * US
    hb = at.mutate(bucket=at.ts_us // b)
    hours = hb.group_by(["account_id", "asset", "bucket"]).aggregate(
        n=hb.notional.sum(), floor_n=hb.floor_n.max(), floor_b=hb.floor_b.max()
    )
    ks = -(-p.short_window_s // _BUCKET_S)  # ceil
    kt = (p.short_window_s + p.long_window_s) // _BUCKET_S - 1

    def w(k: int) -> ibis.expr.builders.LegacyWindowBuilder:
        return ibis.range_window(
            group_by=[hours.account_id, hours.asset], order_by=hours.bucket, preceding=k, following=0
        )

    up = hours.n.sum().over(w(ks))
    prior_lo = ibis.greatest(hours.n.sum().over(w(kt)) - up, 0.0) if kt > ks else ibis.literal(0.0)
    hours = hours.mutate(up=up, prior_lo=prior_lo)
    base = ibis.greatest(hours.prior_lo * (p.short_window_s / p.long_window_s), hours.floor_b)
    cond = (
        ((hours.bucket + 1) * b > data_start + p.long_window_s * US)
        & (hours.up >= hours.floor_n)
        & (hours.up >= base * p.ratio)
    )
    cand = hours.filter(cond)
    return cand.select("account_id", "asset").distinct()


def _candidates_between(at: ir.Table, since: ir.Scalar, until: ir.Scalar, p: VolumeSpikeParams) -> ir.Table:
    """Online: (account, asset) pairs that can fire at a trade in [``since``, ``until``], an exact superset.

    Every such trade's recent window lies inside [since − S, until] (an upper bound of its recent notional)
    and its prior window contains [until − S − L, since − S) (a lower bound of its baseline); one pass of
    two conditional sums per pair, no windows, so the exact per-trade windows run on the few pairs whose
    latest trades burst above their own history.
    """
    s_us, l_us = p.short_window_s * US, p.long_window_s * US
    up = at.notional.sum(where=at.ts_us >= since - s_us - 1)
    lo = at.notional.sum(where=(at.ts_us >= until - s_us - l_us + 1) & (at.ts_us < since - s_us - 1))
    g = at.group_by(["account_id", "asset"]).aggregate(
        up=up.fill_null(0.0), lo=lo.fill_null(0.0), floor_n=at.floor_n.max(), floor_b=at.floor_b.max()
    )
    base = ibis.greatest(g.lo * (p.short_window_s / p.long_window_s), g.floor_b)
    return g.filter((g.up > 0) & (g.up >= g.floor_n) & (g.up >= base * p.ratio)).select("account_id", "asset")


@register
class VolumeSpike(Rule):
    """Per-account volume spike.

    What it detects
        At each of an account's trades on an asset: the notional it initiated there (took liquidity;
        ``initiated_only``) over the trailing ``short_window_s`` against the same over the ``long_window_s``
        before that, scaled to the same duration (floored at ``min_baseline_multiple`` of the asset's
        median trade notional and ``min_baseline_adv_share`` of its average daily volume, never under
        ``min_baseline``); fires when the ratio reaches ``ratio`` and the recent notional
        ``min_notional_multiple`` median trades and ``min_adv_share`` of the ADV (never under the
        ``min_notional`` safety net), for an account with at least
        ``min_prior_trades`` trades on the asset in the baseline window. Per (account, asset): the
        sizes are the instrument's own, so a burst on a thin token counts as much as one on a major, and
        the alert names the asset where it happened.
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
    reads = ("liquidity", "account_trades")
    needs_trade_accounts = True
    limitations = """

        low_cap variant on small caps 3/4 on random worlds (`bench/robustness.py --seeds 1 2 3 4 5 --clean-seeds 101 102`): a
        burst of ~80 median tickets at ~8x the account's own norm sits inside the background's envelope
        (background accounts reach 40–100 median tickets in two hours at 5–8x their norm: a floor of 50x
        let 11 false alerts through on the five random and two clean worlds; 110x lets none). Reference
        world seed 5: one false alert, an institutional account of 3–7 lumpy trades per two hours at 5.0x
        its twelve-hour norm (precision 5/6 on that seed). An account's own norm is noisy at a few trades an
        hour; MS007 (stored baseline) and MS016 (market level) cover part. Fresh seeds 11-15: 4/5 on small
        caps; the miss (seed 15, SML1) bursts 83 median tickets at 8.3x its twelve-hour norm, under the
        110-ticket floor. No pair of floors separates it from the background: with a second path of 80
        tickets at 8x (or 70 at 8x) clean world 101 raises a false alert, while 60 at 10x misses it.
        Hold-out seeds 16-20 (no change looked at them): 6/8 on small caps, the misses bursts of 105 and
        81 median tickets at 9.0x and 8.1x. Over seeds 1-20: small caps 14/18, micro caps 22/22; this
        variant is the one below the issue-12 recall target of 0.95 (docs/evaluation.md).
    """
    # the ADV / price-step norms are taken over the data in view (see docs/online.md)
    lookback = ("short_window_s", "long_window_s")

    def candidates(self, t: Tables, p: VolumeSpikeParams) -> ir.Table:
        tr = t["trades"]
        data_start = tr.ts_us.min().as_scalar()
        legs = intermediates.get(t, "account_trades")
        if p.initiated_only:
            legs = legs.filter(legs.aggressive.fill_null(True))
        liq = intermediates.get(t, "liquidity")
        # the floors in the instrument's own units: a share of its ADV, never under the absolute floors
        liq = liq.select(
            "asset",
            floor_n=ibis.greatest(
                liq.adv * p.min_adv_share, liq.med_notional * p.min_notional_multiple, p.min_notional
            ),
            floor_b=ibis.greatest(
                liq.adv * p.min_baseline_adv_share,
                liq.med_notional * p.min_baseline_multiple,
                p.min_baseline,
            ),
        )
        at = legs.mutate(notional=legs.price * legs.qty).join(liq, "asset")
        since, until = intermediates.decide_from(t), intermediates.decide_until(t)
        if since is None or until is None:
            cand = _candidate_accounts(at, data_start, p)
        else:
            cand = _candidates_between(at, since, until, p)
        at = at.semi_join(cand, ["account_id", "asset"])
        keys = ["account_id", "asset"]
        w_short = trailing(at, keys, p.short_window_s)
        w_total = trailing(at, keys, p.short_window_s + p.long_window_s)
        short, total = at.notional.sum().over(w_short), at.notional.sum().over(w_total)
        prior_n = at.notional.count().over(w_total) - at.notional.count().over(w_short)
        at = at.mutate(recent=short, prior=total - short, prior_n=prior_n)
        scale = p.short_window_s / p.long_window_s
        base = ibis.greatest(at.prior * scale, at.floor_b)
        at = at.mutate(r=at.recent / base)
        hit = (
            (at.ts_us >= data_start + p.long_window_s * US)
            & (at.r >= p.ratio)
            & (at.recent >= at.floor_n)
            & (at.prior_n >= p.min_prior_trades)
        )
        if since is not None and until is not None:
            hit &= (at.ts_us >= since) & (at.ts_us <= until)  # online: the hits this batch decides
        hits = at.filter(hit)
        hits = with_episodes(hits, keys, p.episode_gap_s, tiebreak="trade_id")
        g = hits.group_by([*keys, "episode"]).aggregate(
            value=hits.r.max(),
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
                legs.asset == g.asset,
                legs.ts_us >= g.first_hit - p.short_window_s * US,
                legs.ts <= g.window_end,
            ],
        )
        e = ev.group_by([ev.account_id, ev.asset, ev.episode]).aggregate(
            value=ev.value.max(),
            recent=ev.recent.max(),
            window_start=ev.ts.min(),
            window_end=ev.window_end.max(),
            detected_at=ev.detected_at.min(),
            evidence_trade_ids=ev.trade_id.collect(),
        )
        return alert_rows(
            e,
            accounts=one_account(e.account_id),
            value=e.value,
            score=e.value / p.ratio,
            evidence_trade_ids=e.evidence_trade_ids,
            explanation=ibis.literal("recent notional ") + e.recent.round(0).cast("string"),
        )
