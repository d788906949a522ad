"""Account deviation: a small retail account suddenly trades many times its stored hourly norm.

Variants: ``retail_burst`` (on a liquid asset) and ``small_account`` (on a thin token, where the account's
norm and its burst are worth the token's small tickets: the multiple is the same, the dollars are not).
"""

from __future__ import annotations

from collections.abc import Sequence

from market_surveillance.enums import Segment, Typology
from market_surveillance.simulate.context import US, SimContext
from market_surveillance.simulate.scenarios._common import (
    ACCOUNT_MARGIN_US,
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


@variants("retail_burst", small_account={"tiers": ("micro_cap", "small_cap")})
def inject(
    ctx: SimContext,
    *,
    count: int = 3,
    variant: str = "retail_burst",
    baseline_hourly: Range = (500, 1_500),
    multiple: Range = (20, 60),
    ticket: Range = (2_000, 12_000),
    span_min: Range = (60, 150),
    asset: str | None = None,
    tiers: Sequence[str] | None = None,
) -> list[str]:
    """Inject ``count`` account-deviation instances; returns their scenario ids.

    Parameters
    ----------
    baseline_hourly
        The retail account's stored hourly notional norm (USD).
    multiple
        Notional traded in the episode as a multiple of the account's 3-h norm (3 × baseline); rule:
        ≥ 12× and ≥ 20,000 USD over 3 h (the defaults give ≥ 30,000 USD).
    ticket, span_min
        USD size of the episode's trades (at least eight) and the minutes they are spread over (under
        3 h, so one 3-h window holds them all).
    variant
        ``retail_burst`` (these defaults) or ``small_account`` (on a thin token).
    asset, tiers
        Pin the instrument, or prefer assets of these liquidity tiers. USD knobs are multiplied by the
        asset's ``notional_scale``.
    """
    rng = scenario_rng(ctx, "account_deviation", variant, "retail_burst")
    ids: list[str] = []
    for _ in range(count):
        base = draw(rng, baseline_hourly)
        total = draw(rng, multiple) * 3 * base
        span = int(min(draw(rng, span_min), 170) * MINUTE_US)
        a, start = pick_slot(
            ctx, rng, span, asset_pool(ctx, asset, tiers, liquid_assets(ctx)), ACCOUNT_MARGIN_US
        )
        s = usd_scale(ctx, a)
        acct = ctx.accounts.add(Segment.RETAIL, base * s)
        inj = Injection(ctx, Typology.ACCOUNT_DEVIATION, a, None, [acct], variant=variant)
        notionals = split_notional(rng, total, ticket, 8) * s
        times = spaced_times(rng, start, span, len(notionals), min_gap_us=10 * US)
        for t, notional in zip(times, notionals, strict=True):
            v = pick(rng, ctx.universe.venues)
            px = ctx.price(a, v, int(t))
            side = random_side(rng)
            if rng.random() < 0.7:  # mostly market orders, as a retail app sends them
                inj.take(rng, int(t), acct, side, px, notional / px, venue=v)
            else:
                inj.provide(rng, int(t), acct, side, px, notional / px, venue=v)
        ids.append(inj.finish())
    return ids
