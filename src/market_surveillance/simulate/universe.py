"""The default simulated market: venues, assets, the trading day and the size of the population per scale."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from market_surveillance.simulate.context import US, AssetSpec, Universe

START = dt.datetime(2024, 3, 1, tzinfo=dt.UTC)
DAY_S = 86_400

VENUES = ("EXA", "EXB", "EXC")

ASSETS = (
    AssetSpec("BTC-USD", 60_000.0, 0.03, 19_600_000.0, 0.02, weight=3.0),
    AssetSpec("ETH-USD", 3_000.0, 0.04, 120_000_000.0, 0.35, weight=2.5),
    AssetSpec("SOL-USD", 120.0, 0.05, 440_000_000.0, 8.0, weight=1.5),
    AssetSpec("XRP-USD", 0.6, 0.05, 54_000_000_000.0, 1_600.0, weight=1.2),
    # thin, low-float token: the pump & dump and concentration target (20 % of float ≈ $2M)
    AssetSpec("PUMP-USD", 2.5, 0.05, 4_000_000.0, 350.0, thin=True, weight=0.3),
)

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


def n_background_trades(scale: str, trades: int | None) -> int:
    if trades is not None:
        if trades < 1_000:
            raise ValueError(f"--trades must be at least 1000 (got {trades})")
        return int(trades)
    if scale not in SCALES:
        raise ValueError(f"unknown scale {scale!r}: use one of {', '.join(SCALES)} or --trades N")
    return SCALES[scale]
