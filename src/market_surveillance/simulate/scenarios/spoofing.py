"""Spoofing: large orders cancelled within seconds while the same account trades the other side.

Variants: ``large_order`` (big spoofs on a liquid book) and ``low_notional`` (spoofs on a thin instrument:
large against its own book, small in dollars: $2–5k and 40–100× ``typical_qty``, whichever is larger).

A spoof has to look large to the book it is shown to. The background's market makers quote at least 30×
``typical_qty`` a side (``background._book``), and ``typical_qty`` is under the realised median print (the
median print is 1.4–3.1×, the median new order 3.4–4.6× ``typical_qty`` on the small and micro caps of
seeds 6–15), so a spoof of 10–25× ``typical_qty`` (the first low_notional draws) was smaller than every
standing quote: at the 60th–79th percentile of the book's own new orders on the small caps. ``low_notional``
therefore sizes against the quotes: 40–100× ``typical_qty`` is 1.3–3.3 market-maker quotes.
"""

from __future__ import annotations

from collections.abc import Sequence

from market_surveillance.enums import Segment, Typology
from market_surveillance.simulate.context import US, SimContext
from market_surveillance.simulate.scenarios._common import (
    ACCOUNT_MARGIN_US,
    GENUINE_REST_US,
    Injection,
    IntRange,
    Range,
    asset_pool,
    draw,
    draw_int,
    liquid_assets,
    opposite,
    passive_price,
    pick,
    pick_slot,
    random_side,
    scenario_rng,
    spaced_times,
    usd_scale,
    variants,
)

LOW_NOTIONAL = {
    "spoof_notional": (2_000, 5_000),
    # of typical_qty: 1.3–3.3 standing market-maker quotes (≥ 30× typical_qty), see the module docstring
    "size_multiple": (40, 100),
    "genuine_notional": (150, 800),
    "baseline_hourly": (1_000, 5_000),
    "scale_usd": False,
    "tiers": ("micro_cap", "small_cap"),
}


@variants("large_order", low_notional=LOW_NOTIONAL)
def inject(
    ctx: SimContext,
    *,
    count: int = 3,
    variant: str = "large_order",
    spoofs: IntRange = (3, 6),
    spacing_s: Range = (60, 240),
    spoof_notional: Range = (100_000, 400_000),
    size_multiple: Range = (25, 60),
    lifetime_s: Range = (1, 3),
    offset_bps: Range = (1, 8),
    genuine_delay_s: Range = (1, 20),
    genuine_notional: Range = (2_000, 10_000),
    baseline_hourly: Range = (20_000, 80_000),
    asset: str | None = None,
    venue: str | None = None,
    scale_usd: bool = True,
    tiers: Sequence[str] | None = None,
) -> list[str]:
    """Inject ``count`` spoofing instances; returns their scenario ids.

    Parameters
    ----------
    spoofs
        Spoof orders per instance, ``spacing_s`` apart.
    spoof_notional, size_multiple
        Size of a spoof order: the larger of this USD notional and this multiple of the asset's typical
        order size (rule: ≥ 10× the median new-order size and ≥ 50,000 USD).
    lifetime_s
        Seconds before the spoof order is cancelled (rule: within 5 s, never filled).
    offset_bps
        Distance of the spoof order behind the venue's recent price range on its own side (see
        :func:`passive_price`: it must never cross a resting quote, or it would trade).
    genuine_delay_s, genuine_notional
        The genuine opposite-side order rests this many seconds after the spoof appears and is filled by
        an innocent aggressor (rule: opposite-side trade within ±60 s).
    variant
        ``large_order`` (these defaults) or ``low_notional`` (:data:`LOW_NOTIONAL`).
    scale_usd
        Multiply the USD knobs by the asset's ``notional_scale`` (off for ``low_notional``, whose dollar
        sizes are the point).
    asset, venue, tiers
        Pin the instrument / venue, or prefer assets of these liquidity tiers.
    """
    rng = scenario_rng(ctx, "spoofing", variant, "large_order")
    ids: list[str] = []
    for _ in range(count):
        n = draw_int(rng, spoofs)
        span = int(sum(draw(rng, spacing_s) for _ in range(n)) * US)
        a, start = pick_slot(
            ctx, rng, span + 60 * US, asset_pool(ctx, asset, tiers, liquid_assets(ctx)), ACCOUNT_MARGIN_US
        )
        v = venue or pick(rng, ctx.universe.venues)
        spec = ctx.universe.asset(a)
        s = usd_scale(ctx, a) if scale_usd else 1.0
        acct = ctx.accounts.add(Segment.PROPRIETARY, draw(rng, baseline_hourly) * s)
        inj = Injection(ctx, Typology.SPOOFING, a, v, [acct], variant=variant)
        side = random_side(rng)  # the spoofed side; the account really wants to trade the other one
        for t in spaced_times(rng, start, span, n, min_gap_us=30 * US):
            t = int(t)
            px = ctx.price(a, v, t)
            qty = max(draw(rng, spoof_notional) * s / px, draw(rng, size_multiple) * spec.typical_qty)
            life = int(draw(rng, lifetime_s) * US)
            spoof = inj.new(
                t, acct, side, passive_price(ctx, a, v, side, t, life, draw(rng, offset_bps)), qty
            )
            inj.cancel(t + life, spoof)
            # the genuine order sits at the venue price on the other side and an innocent taker hits it
            tg = t + int(draw(rng, genuine_delay_s) * US)
            pg = ctx.price(a, v, tg)
            inj.provide(
                rng,
                tg,
                acct,
                opposite(side),
                pg,
                draw(rng, genuine_notional) * s / pg,
                resting_delay_us=GENUINE_REST_US,
            )
        ids.append(inj.finish())
    return ids
