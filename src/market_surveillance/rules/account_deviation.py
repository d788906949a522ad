"""MS007 account_deviation — a retail/low-activity account trading far above its stored norm."""

from __future__ import annotations

from dataclasses import dataclass

import ibis
import ibis.expr.types as ir

from market_surveillance.enums import Segment, Typology
from market_surveillance.rules import intermediates
from market_surveillance.rules._common import US, empty_str_array, trailing, with_episodes
from market_surveillance.rules.base import Params, Rule, Tables, param
from market_surveillance.rules.registry import register


@dataclass(frozen=True)
class AccountDeviationParams(Params):
    window_s: int = param(10800, low=1, doc="rolling window, seconds")
    multiple: float = param(12.0, low=1.0, doc="window notional vs the stored baseline over the same hours")
    min_notional: float = param(
        2_000.0, low=0.0, doc="absolute floor of the window notional, quote currency (dust bursts)"
    )
    segment: str = param(
        Segment.RETAIL.value, choices=tuple(s.value for s in Segment), doc="account segment monitored"
    )
    episode_gap_s: int = param(3600, low=1, doc="hits further apart start a new episode, seconds")


@register
class AccountDeviation(Rule):
    """Account profile deviation.

    What it detects
        Accounts of the monitored ``segment`` (retail by default) whose rolling ``window_s`` traded notional
        reaches ``multiple`` times their stored ``baseline_hourly_notional`` over the same number of hours,
        and at least ``min_notional``. The threshold is relative to the account's own norm, which already
        speaks the units of what it trades; the dollar floor only keeps dust accounts quiet. Pooled over the
        account's assets on purpose: the stored baseline is per account, and a takeover or mule account
        shows up as the account's total activity departing from it, wherever it trades (the alert names the
        asset when the burst is on one).
    Why it is abusive
        A small account suddenly trading many times its history is a classic sign of account takeover,
        a mule or nominee account used by a manipulator, or trading on inside information (EU MAR Art. 8,
        Art. 16 suspicious transaction reporting; know-your-customer profile monitoring).
    Known false positives
        Stale baselines (an account that changed strategy), a one-off large legitimate purchase, baselines of
        new accounts estimated from too little history.
    """

    rule_id = "MS007"
    name = "account_deviation"
    typology = Typology.ACCOUNT_DEVIATION
    regulatory_name = "EU MAR Art. 16: suspicious orders and transactions (profile deviation)"
    metric = "baseline_multiple"
    threshold_param = "multiple"
    Params = AccountDeviationParams
    requires = ("trades", "accounts")
    reads = ("account_trades",)
    needs_trade_accounts = True
    lookback = ("window_s",)

    def candidates(self, t: Tables, p: AccountDeviationParams) -> ir.Table:
        acc = t["accounts"]
        acc = acc.filter(acc.segment == p.segment).select("account_id", "baseline_hourly_notional")
        legs = intermediates.get(t, "account_trades").join(acc, "account_id")
        since = intermediates.decide_from(t)
        at = legs.mutate(notional=legs.price * legs.qty)
        # a window's notional is at most the account's notional over every leg a hit's window can hold
        # (notionals are positive): accounts whose total there misses either threshold cannot hit, so the
        # trailing window runs on the few left (most retail accounts trade far below a dozen times their norm)
        span = at if since is None else at.filter(at.ts_us >= since - p.window_s * US)
        tot = span.group_by("account_id").aggregate(
            total=span.notional.sum(),
            base=span.baseline_hourly_notional.max(),
            last_us=span.ts_us.max(),
        )
        # slack against the different summation order of the window (never excludes a hit, admits a few)
        bound = tot.total * (1 + 1e-9)
        can = (bound >= p.min_notional) & (
            bound / ibis.greatest(tot.base * (p.window_s / 3600), 1e-9) >= p.multiple
        )
        tot = tot.filter(can if since is None else can & (tot.last_us >= since))
        at = at.semi_join(tot, "account_id")
        at = at.mutate(window=at.notional.sum().over(trailing(at, ["account_id"], p.window_s)))
        norm = at.baseline_hourly_notional * (p.window_s / 3600)
        at = at.mutate(m=at.window / ibis.greatest(norm, 1e-9))
        hit = (at.m >= p.multiple) & (at.window >= p.min_notional)
        hits = at.filter(hit if since is None else hit & (at.ts_us >= since))
        hits = with_episodes(hits, ["account_id"], p.episode_gap_s, tiebreak="trade_id")
        g = hits.group_by(["account_id", "episode"]).aggregate(
            value=hits.m.max(),
            asset=hits.asset.min(),
            n_assets=hits.asset.nunique(),
            first_hit=hits.ts_us.min(),
            detected_at=hits.ts.min(),
            window_end=hits.ts.max(),
            peak=hits.window.max(),
            baseline=hits.baseline_hourly_notional.max(),
        )
        ev = at.join(
            g,
            [
                at.account_id == g.account_id,
                at.ts_us >= g.first_hit - p.window_s * 1_000_000,
                at.ts <= g.window_end,
            ],
        )
        e = ev.group_by([ev.account_id, ev.episode]).aggregate(
            value=ev.value.max(),
            asset=ev.asset_right.min(),
            n_assets=ev.n_assets.max(),
            peak=ev.peak.max(),
            baseline=ev.baseline.max(),
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
            score=e.value / p.multiple,
            evidence_trade_ids=e.evidence_trade_ids,
            evidence_order_ids=empty_str_array(),
            explanation=(
                ibis.literal("peak window notional ")
                + e.peak.round(0).cast("string")
                + " vs baseline "
                + e.baseline.round(0).cast("string")
                + "/h"
            ),
        )
