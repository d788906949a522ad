"""The default simulated market: venues, assets, the trading day and the size of the population per scale."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import numpy as np

from market_surveillance.enums import LiquidityTier
from market_surveillance.simulate.context import US, AssetSpec, Universe

START = dt.datetime(2024, 3, 1, tzinfo=dt.UTC)
DAY_S = 86_400

VENUES = ("EXA", "EXB", "EXC")

_T = LiquidityTier
ASSETS = (
    AssetSpec("BTC-USD", 60_000.0, 0.03, 19_600_000.0, 0.02, weight=3.0, tier=_T.MAJOR.value),
    AssetSpec("ETH-USD", 3_000.0, 0.04, 120_000_000.0, 0.35, weight=2.5, tier=_T.MAJOR.value),
    AssetSpec("SOL-USD", 120.0, 0.05, 440_000_000.0, 8.0, weight=1.5, tier=_T.LARGE_CAP.value),
    AssetSpec("XRP-USD", 0.6, 0.05, 54_000_000_000.0, 1_600.0, weight=1.2, tier=_T.LARGE_CAP.value),
    # thin, low-float token: the pump & dump and concentration target (20 % of float ≈ $2M)
    AssetSpec("PUMP-USD", 2.5, 0.05, 4_000_000.0, 350.0, thin=True, weight=0.3, tier=_T.SMALL_CAP.value),
)


@dataclass(frozen=True)
class TierRange:
    """Ranges an instrument of one liquidity tier is drawn from (``random_universe``).

    ``trades_per_min`` fixes a thin book's background activity whatever the scale (a thin token stays thin
    at 1M trades); liquid tiers share the rest of the day's trades by ``weight``.
    """

    count: tuple[int, int]
    price: tuple[float, float]  # log-uniform
    market_cap: tuple[float, float]  # USD, log-uniform; float_qty = market_cap / price
    daily_vol: tuple[float, float]
    notional_scale: tuple[float, float]  # background and scenario ticket sizes relative to the majors
    weight: tuple[float, float] = (1.0, 1.0)
    trades_per_min: tuple[float, float] | None = None
    thin: bool = False


#: the documented tier ranges (docs/evaluation.md): from a BTC-like major to a thin micro-cap token
TIERS: dict[LiquidityTier, TierRange] = {
    _T.MAJOR: TierRange((1, 1), (20_000, 100_000), (3e11, 2e12), (0.02, 0.04), (1.0, 2.0), (3.0, 4.0)),
    _T.LARGE_CAP: TierRange((1, 2), (50, 5_000), (2e10, 4e11), (0.03, 0.05), (0.7, 1.3), (1.5, 2.5)),
    _T.MID_CAP: TierRange((1, 2), (0.2, 50), (5e8, 1e10), (0.04, 0.07), (0.3, 0.7), (0.8, 1.4)),
    _T.SMALL_CAP: TierRange((1, 1), (0.1, 5), (1e7, 1e8), (0.05, 0.09), (0.15, 0.4), (0.4, 0.7), thin=True),
    # the thin token: a few trades a minute whatever the scale, price under $0.10, market cap $1–10M
    _T.MICRO_CAP: TierRange(
        (1, 1), (0.005, 0.1), (1e6, 1e7), (0.06, 0.12), (0.05, 0.15), trades_per_min=(2, 4), thin=True
    ),
}
TICKER_ROOTS = {
    _T.MAJOR: "MAJ",
    _T.LARGE_CAP: "LRG",
    _T.MID_CAP: "MID",
    _T.SMALL_CAP: "SML",
    _T.MICRO_CAP: "MIC",
}
#: median background retail ticket (USD) of a notional_scale-1 instrument: sets ``typical_qty``
MEDIAN_TICKET_USD = 800.0

SCALES = {"small": 50_000, "medium": 500_000, "large": 5_000_000}


@dataclass(frozen=True)
class Population:
    """How many background accounts of each kind trade, for a given number of background trades."""

    retail: int
    institutional: int
    proprietary: int
    high_frequency: int
    market_makers_per_book: int

    @classmethod
    def for_trades(cls, n_trades: int) -> Population:
        # grows with the flow so no account's message rate or notional drifts into rule territory at scale
        return cls(
            retail=max(300, n_trades // 40),
            institutional=max(30, n_trades // 1_500),
            proprietary=max(20, n_trades // 2_500),
            high_frequency=max(10, n_trades // 5_000),
            market_makers_per_book=2 if n_trades < 2_000_000 else 3,
        )


def default_universe() -> Universe:
    start_us = int(START.timestamp()) * US
    return Universe(VENUES, ASSETS, start_us, start_us + DAY_S * US)


def random_universe(
    rng: np.random.Generator, tiers: dict[LiquidityTier, TierRange] | None = None
) -> Universe:
    """A universe drawn from the tier ranges: one to two instruments per tier, majors to micro-caps."""
    specs = []
    for tier, r in (tiers or TIERS).items():
        for k in range(int(rng.integers(r.count[0], r.count[1] + 1))):
            price = float(np.exp(rng.uniform(np.log(r.price[0]), np.log(r.price[1]))))
            price = float(f"{price:.4g}")
            cap = float(np.exp(rng.uniform(np.log(r.market_cap[0]), np.log(r.market_cap[1]))))
            scale = float(rng.uniform(*r.notional_scale))
            specs.append(
                AssetSpec(
                    f"{TICKER_ROOTS[tier]}{k + 1}-USD",
                    price,
                    round(float(rng.uniform(*r.daily_vol)), 4),
                    float(f"{cap / price:.6g}"),
                    float(f"{MEDIAN_TICKET_USD * scale / price:.4g}"),
                    thin=r.thin,
                    weight=round(float(rng.uniform(*r.weight)), 3),
                    tier=tier.value,
                    notional_scale=round(scale, 4),
                    trades_per_min=None
                    if r.trades_per_min is None
                    else round(float(rng.uniform(*r.trades_per_min)), 2),
                )
            )
    start_us = int(START.timestamp()) * US
    return Universe(VENUES, tuple(specs), start_us, start_us + DAY_S * US)


def n_background_trades(scale: str, trades: int | None) -> int:
    if trades is not None:
        if trades < 1_000:
            raise ValueError(f"--trades must be at least 1000 (got {trades})")
        return int(trades)
    if scale not in SCALES:
        raise ValueError(f"unknown scale {scale!r}: use one of {', '.join(SCALES)} or --trades N")
    return SCALES[scale]
