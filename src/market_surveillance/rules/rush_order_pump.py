"""MS040 rush_order_pump — a rush of buy orders on an asset, seconds after a pump starts (online detector)."""

from __future__ import annotations

from dataclasses import dataclass

import ibis
import ibis.expr.types as ir

from market_surveillance.enums import Typology
from market_surveillance.rules import intermediates
from market_surveillance.rules._common import US, alert_rows, trailing, with_asset_venue, with_episodes
from market_surveillance.rules.base import Params, Rule, Tables, param
from market_surveillance.rules.registry import register

MINUTE_US = 60 * US


@dataclass(frozen=True)
class RushOrderPumpParams(Params):
    chunk_s: int = param(25, low=1, doc="short trailing window the rush is counted in, seconds")
    baseline_s: int = param(
        21_600, low=60, doc="trailing window of the asset's usual trade rate (chunk excluded), seconds"
    )
    warmup_s: int = param(3_600, low=0, doc="history an asset needs before its baseline is trusted, seconds")
    min_ratio: float = param(
        60.0, low=1.0, doc="trades in the chunk / the asset's mean trades per chunk over the baseline"
    )
    min_rush: int = param(10, low=1, doc="buyer-initiated trades (rush orders) in the chunk at least")
    min_buy_share: float = param(
        0.5, low=0.0, high=1.0, doc="share of buyer-initiated notional (price × qty) in the chunk"
    )
    rise_s: int = param(300, low=1, doc="the price rise is measured from the low of this trailing span, s")
    min_rise_pct: float = param(
        3.0, low=0.0, closed="neither", doc="price of the deciding trade over that low, percent"
    )
    episode_gap_s: int = param(3_600, low=1, doc="hits further apart start a new episode, seconds")


@register
class RushOrderPump(Rule):
    """Rush-order pump (online pump-and-dump detector, after La Morgia et al.).

    What it detects
        At every trade of an asset: the trades of the trailing ``chunk_s`` (25 s) against the asset's mean
        per chunk over the trailing ``baseline_s`` (chunk excluded). Fires when that count is at least
        ``min_ratio`` times the norm, at least ``min_rush`` of them were buyer-initiated (market buy orders:
        the "rush orders" of a pump crowd) and carry at least ``min_buy_share`` of the chunk's notional (money,
        not prints: sellers answering a crowd in many small prints do not hide it), and the price
        stands ``min_rise_pct`` % above its low of the trailing ``rise_s``. The decision is taken at the
        trade that completes these conditions (``detected_at``), reading nothing after it, so the same
        alert is raised by a batch run and by ``watch`` seconds after the pump starts. Hits closer than
        ``episode_gap_s`` form one episode. The value is the chunk/baseline ratio; score value / min_ratio.
        La Morgia et al. (2020) detect Telegram pumps on Binance from rush-order features on 25 s chunks
        against moving baselines; thresholds here are relative to each asset's own rate, not absolute.
    Why it is abusive
        Organisers buy quietly, announce the coin to a crowd told to buy at a set minute and sell into the
        buying they caused. EU MAR Annex I(1)(a)-(b), Annex II 1(b) ("pump and dump").
    Known false positives
        Listings and genuine news on an illiquid coin (a burst of buying that holds); an exchange restarting
        trading after a halt; a large aggressive buyer sweeping a thin book in one go (many prints).
    """

    rule_id = "MS040"
    name = "rush_order_pump"
    typology = Typology.PUMP_AND_DUMP
    regulatory_name = "EU MAR Annex II 1(b): pump and dump"
    metric = "chunk_rate_ratio"
    threshold_param = "min_ratio"
    Params = RushOrderPumpParams
    requires = ("trades",)
    lookback = ("baseline_s", "chunk_s")
    bar_params = (MINUTE_US // US,)

    def candidates(self, t: Tables, p: RushOrderPumpParams) -> ir.Table:
        tr = t["trades"].select("trade_id", "ts", "ts_us", "asset", "price", "qty", "aggressor")
        is_buy = (tr.aggressor == "buy").fill_null(False)
        notional = (tr.price * tr.qty).cast("float64")
        tr = tr.mutate(
            _buy=is_buy.cast("int64"),
            _notional=notional,
            _buy_notional=ibis.ifelse(is_buy, notional, 0.0),
            minute=tr.ts_us // MINUTE_US,
        )
        chunks = p.baseline_s / p.chunk_s
        # The exact conditions need three trailing range windows per trade; over every trade of a liquid
        # asset they are most of the rule's cost, yet almost no trade can pass the rate test. One-minute bars
        # give a necessary condition per minute (bounds that can only let too much through), and the exact
        # windows then run only on the minutes that pass and on the history those minutes need.
        minute_bars = intermediates.activity_bars(t, MINUTE_US // US)
        bars = minute_bars.select(
            "asset",
            minute=minute_bars.bucket,
            c=minute_bars.n,
            b=minute_bars.n_buy,
            last_us=minute_bars.us_last,
        )
        first = minute_bars.group_by("asset").aggregate(first_us=minute_bars.us_first.min())
        bars = bars.join(first, "asset")
        # n (trades of the chunk) and n_buy lie within the minutes [m - ceil(chunk_s / 60), m] ...
        reach = -(-p.chunk_s // 60)
        # ... and the baseline window holds at least the whole minutes [m - full, m - 1]
        full = (p.baseline_s + p.chunk_s) // 60 - 1

        def over_minutes(preceding: int, following: int) -> ibis.expr.builders.LegacyWindowBuilder:
            return ibis.range_window(
                group_by=bars.asset, order_by=bars.minute, preceding=preceding, following=following
            )

        upper_n = bars.c.sum().over(over_minutes(reach, 0))
        upper_buy = bars.b.sum().over(over_minutes(reach, 0))
        lower_base = bars.c.sum().over(over_minutes(max(full, 0), 0)) - bars.c if full > 0 else 0
        # ratio >= min_ratio implies n_base - n <= n * chunks / min_ratio (see the exact test below); +1:
        # slack for rounding, this only decides which minutes are looked at exactly
        bars = bars.mutate(
            cand=(
                (upper_buy >= p.min_rush)
                & (bars.last_us - bars.first_us >= int(p.warmup_s * US))
                & (lower_base <= upper_n.cast("float64") * (1.0 + chunks / p.min_ratio) + 1.0)
            ).cast("int64")
        )
        # a minute is read when a candidate minute lies within the longest lookback after it
        horizon = -(-max(p.baseline_s + p.chunk_s, p.rise_s) // 60) + 1
        bars = bars.mutate(need=bars.cand.max().over(over_minutes(0, horizon)))
        need = bars.filter(bars.need > 0).select("asset", "minute", "cand", "first_us")
        tr = tr.join(need, ["asset", "minute"])
        chunk = trailing(tr, ["asset"], p.chunk_s)
        tr = tr.mutate(
            n=tr.trade_id.count().over(chunk),
            n_buy=tr._buy.sum().over(chunk),
            v=tr._notional.sum().over(chunk),
            v_buy=tr._buy_notional.sum().over(chunk),
            n_base=tr.trade_id.count().over(trailing(tr, ["asset"], p.baseline_s + p.chunk_s)),
            low=tr.price.min().over(trailing(tr, ["asset"], p.rise_s)),
        )
        # a dead coin has no rate to compare with: its norm is floored at one trade per baseline
        base = ibis.greatest((tr.n_base - tr.n).cast("float64") / chunks, 1.0 / chunks)
        tr = tr.mutate(ratio=tr.n.cast("float64") / base, rise=tr.price / tr.low - 1.0)
        # only candidate minutes: the windows of the history minutes before them are cut short
        hits = tr.filter(
            (tr.cand > 0)
            & (tr.ts_us - tr.first_us >= int(p.warmup_s * US))
            & (tr.ratio >= p.min_ratio)
            & (tr.n_buy >= p.min_rush)
            & (tr.v_buy >= p.min_buy_share * tr.v)
            & (tr.rise * 100 >= p.min_rise_pct)
        )
        hits = hits.drop("minute", "cand", "first_us")
        hits = with_episodes(hits, ["asset"], p.episode_gap_s, tiebreak="trade_id")
        g = hits.group_by(["asset", "episode"]).aggregate(
            value=hits.ratio.max(),
            rise=hits.rise.max(),
            rush=hits.n_buy.max(),
            window_start=hits.ts.min(),
            window_end=hits.ts.max(),
            evidence_trade_ids=hits.trade_id.collect(),
        )
        g = with_asset_venue(g, minute_bars)
        g = g.mutate(detected_at=g.window_start)
        # market-level: the crowd is anonymous on public data; evidence names the trades
        return alert_rows(
            g,
            venue=g.venue,
            value=g.value,
            score=g.value.cast("float64") / p.min_ratio,
            evidence_trade_ids=g.evidence_trade_ids,
            explanation=g.rush.cast("string")
            + " buy orders within "
            + ibis.literal(str(p.chunk_s))
            + " s, "
            + g.value.round(0).cast("string")
            + "x the usual rate, price +"
            + (g.rise * 100).round(1).cast("string")
            + " %",
        )
