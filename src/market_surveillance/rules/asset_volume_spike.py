"""MS016 asset_volume_spike — an asset's traded notional in a short window far above its trailing norm."""

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
class AssetVolumeSpikeParams(Params):
    window_s: int = param(300, low=1, doc="window whose notional is compared with the norm, seconds")
    baseline_s: int = param(86_400, low=60, doc="trailing baseline of the same asset, seconds (a day)")
    warmup_s: int = param(3_600, low=0, doc="history an asset needs before its baseline is trusted, s")
    multiple: float = param(
        20.0, low=1.0, closed="neither", doc="window notional / trailing mean notional per window"
    )
    min_trades: int = param(20, low=1, doc="trades in the window (one block print is not a spike)")
    episode_gap_s: int = param(3_600, low=1, doc="spiking windows further apart start a new episode, s")


@register
class AssetVolumeSpike(Rule):
    """Per-asset volume spike (market level, no account ids needed).

    What it detects
        Per asset (all venues), ``window_s`` windows aligned to the epoch whose traded notional is at least
        ``multiple`` times the asset's mean notional per window over the trailing ``baseline_s`` (current
        window excluded; a shorter history is averaged over what was seen, after ``warmup_s``), with at
        least ``min_trades`` trades. Spiking windows closer than ``episode_gap_s`` are one episode. Value
        and score use the largest ratio of the episode (score = ratio / ``multiple``).
    Why it is abusive
        Not abusive by itself: a sudden multiple of usual turnover is how pumps, wash-trading campaigns
        and ramping show up in public market data where no account is known, so analysts review it.
        EU MAR Annex II 1(a)-(b) indicators (significant volume relative to normal activity).
    Known false positives
        News, listings, index or exchange events, and the first hours of an asset's history.
    """

    rule_id = "MS016"
    name = "asset_volume_spike"
    typology = Typology.VOLUME_SPIKE
    regulatory_name = "EU MAR Annex II 1(a): orders/transactions significant relative to normal volume"
    metric = "notional_ratio"
    threshold_param = "multiple"
    Params = AssetVolumeSpikeParams
    requires = ("trades",)
    lookback = ("baseline_s", "window_s")
    bar_params = ("window_s",)

    def candidates(self, t: Tables, p: AssetVolumeSpikeParams) -> ir.Table:
        tr = t["trades"]
        bars = intermediates.activity_bars(t, p.window_s)
        b = with_baseline(bars, p.baseline_s, p.window_s, p.warmup_s)
        b = b.mutate(ratio=b.notional / b.base_notional)
        hits = b.filter(b.warm & (b.base_notional > 0) & (b.n >= p.min_trades) & (b.ratio >= p.multiple))
        hits = hits.mutate(ts_us=hits.bucket * int(p.window_s * US))
        hits = with_episodes(hits, ["asset"], p.episode_gap_s)
        g = hits.group_by(["asset", "episode"]).aggregate(
            value=hits.ratio.max(),
            notional=hits.notional.sum(),
            n=hits.n.sum(),
            window_start=hits.ts_first.min(),
            window_end=hits.ts_last.max(),
            # a window's notional is final when it closes
            detected_at=(hits.bucket.min() + 1) * int(p.window_s * US),
        )
        g = with_bucket_evidence(g, tr, hits, p.window_s)
        g = with_asset_venue(g, bars)
        return alert_rows(
            g,
            venue=g.venue,
            value=g.value,
            score=g.value.cast("float64") / p.multiple,
            evidence_trade_ids=g.evidence_trade_ids.fill_null(empty_str_array()),
            explanation=g.n.cast("string")
            + " trades, notional up to "
            + g.value.round(0).cast("string")
            + "x the trailing mean per "
            + ibis.literal(str(p.window_s))
            + " s",
        )
