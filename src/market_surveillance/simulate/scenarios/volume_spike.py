"""Volume spike: an institutional account trades steadily all day, then bursts to many times its
normal notional for two hours.

Variants: ``block_desk`` (on a liquid asset) and ``low_cap`` (on a thin token, in that token's ticket
sizes: many times the account's own norm, far below a major's dollar floor).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from market_surveillance.enums import Segment, Typology
from market_surveillance.simulate.context import US, SimContext
from market_surveillance.simulate.scenarios._common import (
    ACCOUNT_MARGIN_US,
    HOUR_US,
    MINUTE_US,
    Injection,
    Range,
    asset_pool,
    draw,
    liquid_assets,
    pick,
    pick_slot,
    random_side,
    scenario_rng,
    spaced_times,
    split_notional,
    usd_scale,
    variants,
)


@variants("block_desk", low_cap={"tiers": ("micro_cap", "small_cap")})
def inject(
    ctx: SimContext,
    *,
    count: int = 3,
    variant: str = "block_desk",
    normal_2h_notional: Range = (12_000, 30_000),
    multiple: Range = (8, 20),
    min_burst_notional: Range = (150_000, 250_000),
    burst_ticket: Range = (10_000, 25_000),
    steady_interval_min: Range = (15, 40),
    asset: str | None = None,
    tiers: Sequence[str] | None = None,
) -> list[str]:
    """Inject ``count`` volume-spike instances; returns their scenario ids.

    Parameters
    ----------
    normal_2h_notional
        The account's steady notional per 2 h over the whole day (its stored hourly baseline is half).
    multiple, min_burst_notional
        Burst notional over 2 h = max(multiple × normal, a draw from ``min_burst_notional``) (rule: ≥ 5×
        the prior 12-h average per 2 h and ≥ 100,000 USD).
    burst_ticket
        USD size of the burst's trades (at least ten of them), so that no single innocent
        counterparty takes a large share of the burst.
    steady_interval_min
        Average minutes between the steady trades outside the burst.
    variant
        ``block_desk`` (these defaults) or ``low_cap`` (on a thin token).
    asset, tiers
        Pin the instrument, or prefer assets of these liquidity tiers. USD knobs are multiplied by the
        asset's ``notional_scale``.
    """
    rng = scenario_rng(ctx, "volume_spike", variant, "block_desk")
    u = ctx.universe
    ids: list[str] = []
    for _ in range(count):
        normal = draw(rng, normal_2h_notional)
        burst_total = max(draw(rng, multiple) * normal, draw(rng, min_burst_notional))
        burst_span = 2 * HOUR_US - 5 * MINUTE_US
        a, b0 = pick_slot(
            ctx, rng, burst_span, asset_pool(ctx, asset, tiers, liquid_assets(ctx)), ACCOUNT_MARGIN_US
        )
        s = usd_scale(ctx, a)
        normal, burst_total = normal * s, burst_total * s
        acct = ctx.accounts.add(Segment.INSTITUTIONAL, normal / 2)
        inj = Injection(ctx, Typology.VOLUME_SPIKE, a, None, [acct], variant=variant)
        interval = draw(rng, steady_interval_min) * MINUTE_US
        # steady flow over the rest of the day: Poisson arrivals, each trade worth its share of the norm
        n_steady = int(rng.poisson((u.end_us - u.start_us - burst_span) / interval))
        steady = np.sort(rng.integers(u.start_us + MINUTE_US, u.end_us - MINUTE_US, size=n_steady))
        steady = steady[(steady < b0 - 5 * MINUTE_US) | (steady > b0 + burst_span + 5 * MINUTE_US)]
        per_trade = normal / (2 * HOUR_US / interval)
        burst_notional = split_notional(rng, burst_total / s, burst_ticket, 10) * s
        burst = spaced_times(rng, b0, burst_span, len(burst_notional), min_gap_us=US)
        notionals = np.concatenate([per_trade * rng.lognormal(0, 0.3, len(steady)), burst_notional])
        for t, notional in zip(np.concatenate([steady, burst]), notionals, strict=True):
            v = pick(rng, u.venues)
            px = ctx.price(a, v, int(t))
            inj.take(rng, int(t), acct, random_side(rng), px, notional / px, venue=v)
        ids.append(inj.finish())
    return ids
