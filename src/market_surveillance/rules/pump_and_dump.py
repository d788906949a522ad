"""MS015 pump_and_dump — a burst of buying on an asset that ramps its price, then fades."""

from __future__ import annotations

from dataclasses import dataclass

import ibis
import ibis.expr.types as ir

from market_surveillance.enums import Typology
from market_surveillance.rules import intermediates
from market_surveillance.rules._common import US, alert_rows, empty_str_array, with_asset_venue, with_episodes
from market_surveillance.rules.bars import with_baseline, with_bucket_evidence
from market_surveillance.rules.base import Params, Rule, Tables, param
from market_surveillance.rules.registry import register


@dataclass(frozen=True)
class PumpAndDumpParams(Params):
    bucket_s: int = param(
        60, low=1, doc="burst window, seconds (pump signals fill the book within the first minute)"
    )
    baseline_s: int = param(86_400, low=60, doc="trailing baseline of the same asset, seconds (a day)")
    warmup_s: int = param(3_600, low=0, doc="history an asset needs before its baseline is trusted, s")
    min_count_ratio: float = param(
        20.0, low=1.0, doc="trades in the burst window / baseline mean per window (a 'rush' of orders)"
    )
    min_trades: int = param(30, low=1, doc="trades in the burst window (ratio alone fires on dead coins)")
    rise_window_s: int = param(
        300,
        low=0,
        doc="the price rise is measured from the low of this span before the burst window to the burst "
        "window's high, seconds",
    )
    min_rise_pct: float = param(5.0, low=0.0, closed="neither", doc="price rise over rise_window_s, percent")
    min_buy_share: float = param(0.4, low=0.0, high=1.0, doc="share of buyer-initiated trades in the burst window")
    ramp_window_s: int = param(
        900,
        low=0,
        doc="second timescale, a ramp: trades, buy share and rise over this trailing span, seconds (0: off)",
    )
    ramp_count_ratio: float = param(
        2.0, low=1.0, doc="trades over ramp_window_s / the baseline mean over the same span"
    )
    ramp_min_buy_share: float = param(
        0.7, low=0.0, high=1.0, doc="share of buyer-initiated trades over ramp_window_s"
    )
    ramp_range_multiple: float = param(
        3.0,
        low=0.0,
        doc="rise over ramp_window_s at least this many of the asset's median high/low range over such a "
        "span (its own volatility; never under min_rise_pct)",
    )
    episode_gap_s: int = param(3_600, low=1, doc="burst windows further apart start a new episode, s")


@register
class PumpAndDump(Rule):
    """Pump and dump (rush of buy orders ramping the price, followed by the dump).

    What it detects
        Per asset, ``bucket_s`` windows (default one minute) whose trade count is at least
        ``min_count_ratio`` times the asset's mean per window over the trailing ``baseline_s``
        (default a day) and at least ``min_trades``, where at least ``min_buy_share`` of the trades were
        buyer-initiated and the window's high is ``min_rise_pct`` % above the low of the ``rise_window_s``
        before it. Such windows closer than ``episode_gap_s`` form one episode (one alert), decided when its
        first burst window closes: nothing after that moment is read (the dump that follows cannot be
        known at decision time). A second timescale catches a ramp without a rush: over the trailing
        ``ramp_window_s`` (15 min), at least ``ramp_count_ratio`` times the baseline's trades for that span
        (and ``min_trades``), ``ramp_min_buy_share`` of them buyer-initiated, and the price up from the
        span's low by ``ramp_range_multiple`` times the asset's median high/low range over such spans (its
        own volatility) and ``min_rise_pct``. The value is the count ratio (of the minute or of the ramp's
        span); the score is value / ``min_count_ratio``.
        Signals follow La Morgia et al. (2020): pump-group coins are illiquid, the announcement brings a
        "rush" of market buy orders within seconds, trade count and volume jump by orders of magnitude over
        their usual level and the price spikes, then falls back as the organisers sell.
    Why it is abusive
        Organisers buy quietly, advertise the coin to a crowd told to buy at a set minute, and sell into
        the buying they caused; the crowd is left holding a coin that reverts. EU MAR Annex I(1)(a)-(b)
        and Annex II 1(b) ("pump and dump"); US securities-fraud and CEA §9(a)(2) manipulation.
    Known false positives
        Listings, delistings and genuine news on a thin coin (a burst with a price jump that then holds:
        the rule decides before the dump could be seen, so it cannot tell them apart); an exchange's own
        market making restarting after a halt.
    """

    rule_id = "MS015"
    name = "pump_and_dump"
    typology = Typology.PUMP_AND_DUMP
    regulatory_name = "EU MAR Annex II 1(b): pump and dump"
    metric = "trade_count_ratio"
    threshold_param = "min_count_ratio"
    Params = PumpAndDumpParams
    requires = ("trades",)
    lookback = ("baseline_s", "bucket_s")
    bar_params = ("bucket_s",)

    def candidates(self, t: Tables, p: PumpAndDumpParams) -> ir.Table:
        tr = t["trades"]
        bars = intermediates.activity_bars(t, p.bucket_s)
        b = with_baseline(bars, p.baseline_s, p.bucket_s, p.warmup_s)
        k = p.rise_window_s // p.bucket_s
        # only the burst window and what precedes it: the decision is taken when the window closes
        before = ibis.range_window(group_by=b.asset, order_by=b.bucket, preceding=k, following=0)
        b = b.mutate(low_before=b.low.min().over(before))
        ratio = b.n.cast("float64") / ibis.greatest(b.base_n, 1.0 / max(1, p.baseline_s // p.bucket_s))
        b = b.mutate(ratio=ratio, rise=b.high / b.low_before - 1.0)
        b = b.mutate(
            rush=(b.n >= p.min_trades)
            & (b.ratio >= p.min_count_ratio)
            & (b.n_buy.cast("float64") >= p.min_buy_share * b.n.cast("float64"))
            & (b.rise * 100 >= p.min_rise_pct)
        )
        kr = p.ramp_window_s // p.bucket_s
        if kr > 1:
            # a ramp: no one-minute rush, but the span's buying runs well above the asset's rate, mostly
            # buyer-initiated, and walks the price up by several of its own usual ranges over such a span
            span = ibis.range_window(group_by=b.asset, order_by=b.bucket, preceding=kr - 1, following=0)
            b = b.mutate(
                n_r=b.n.sum().over(span),
                buy_r=b.n_buy.sum().over(span),
                range_r=b.high.max().over(span) / b.low.min().over(span) - 1.0,
                rise_r=b.high / b.low.min().over(span) - 1.0,
            )
            typical = b.group_by("asset").aggregate(med_range=b.range_r.median())
            b = b.join(typical, "asset")
            ramp = (
                (b.n_r.cast("float64") >= p.ramp_count_ratio * kr * b.base_n)
                & (b.n_r >= p.min_trades)
                & (b.buy_r.cast("float64") >= p.ramp_min_buy_share * b.n_r.cast("float64"))
                & (b.rise_r >= ibis.greatest(b.med_range * p.ramp_range_multiple, p.min_rise_pct / 100))
            )
            b = b.mutate(
                ratio=ibis.ifelse(b.rush, b.ratio, b.n_r.cast("float64") / ibis.greatest(kr * b.base_n, 1e-9)),
                rise=ibis.ifelse(b.rush, b.rise, b.rise_r),
                rush=b.rush | ramp,
            )
        hits = b.filter(b.warm & b.rush)
        hits = hits.mutate(ts_us=hits.bucket * int(p.bucket_s * US), trade_id=hits.bucket.cast("string"))
        hits = with_episodes(hits, ["asset"], p.episode_gap_s)
        g = hits.group_by(["asset", "episode"]).aggregate(
            value=hits.ratio.max(),
            rise=hits.rise.max(),
            n=hits.n.sum(),
            detected_at=(hits.bucket.min() + 1) * int(p.bucket_s * US),
            b_first=hits.bucket.min(),
            b_last=hits.bucket.max(),
            window_start=hits.ts_first.min(),
            window_end=hits.ts_last.max(),
        )
        g = with_bucket_evidence(g, tr, hits, p.bucket_s)
        g = with_asset_venue(g, bars)
        # market-level: a pump is judged on the asset's tape, not on who traded (public data has no ids)
        return alert_rows(
            g,
            venue=g.venue,
            value=g.value,
            score=g.value.cast("float64") / p.min_count_ratio,
            evidence_trade_ids=g.evidence_trade_ids.fill_null(empty_str_array()),
            explanation=g.n.cast("string")
            + " trades in burst window(s), "
            + g.value.round(0).cast("string")
            + "x the trailing rate, price +"
            + (g.rise * 100).round(1).cast("string")
            + " %",
        )
