"""Front-running: an account trades just ahead of a large aggressive print by another account (an
institution's block) and exits within minutes once the print has moved the price.

Variants (``variant=``):

* ``aggressive_exit`` — the front-runner unwinds with a marketable order at the moved price;
* ``passive_exit`` — it unwinds with a limit order resting at the moved price that an innocent taker fills;
* ``small_profit`` — on a tight-spread major, a small block moving the price 6–15 bps: the profit is a few
  spreads, not tens of basis points.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from market_surveillance.enums import Segment, Side, Typology
from market_surveillance.simulate.context import US, SimContext
from market_surveillance.simulate.scenarios._common import (
    GENUINE_REST_US,
    MINUTE_US,
    Injection,
    Range,
    asset_pool,
    book_makers,
    counterparty,
    draw,
    liquid_assets,
    opposite,
    pick,
    pick_slot,
    random_side,
    scenario_rng,
    sig,
    usd_scale,
    variants,
)

SMALL_PROFIT = {
    "move_bps": (6, 15),
    "large_multiple": (15, 30),
    "large_notional": (40_000, 120_000),
    "tiers": ("major",),
}


def _desk_flow(
    ctx: SimContext,
    rng: np.random.Generator,
    desk: str,
    asset: str,
    per_2h: float,
    interval_min: float,
    t_block: int,
) -> None:
    """The desk's steady all-day flow on ``asset``: Poisson arrivals worth ``per_2h`` USD per 2 h, none
    within 10 min of its block. These rows are background of an innocent account: untagged."""
    u = ctx.universe
    interval = interval_min * MINUTE_US
    n = rng.poisson((u.end_us - u.start_us) / interval)
    times = np.sort(rng.integers(u.start_us + MINUTE_US, u.end_us - MINUTE_US, n))
    times = times[np.abs(times - t_block) > 10 * MINUTE_US]
    per_trade = per_2h * interval / (120 * MINUTE_US)
    for t, notional in zip(times, per_trade * rng.lognormal(0, 0.3, len(times)), strict=True):
        v = pick(rng, u.venues)
        px = sig(ctx.price(asset, v, int(t)))
        qty = sig(notional / px)
        cp = counterparty(ctx, rng, notional, asset, v)
        ctx.tape.cross(int(t), v, asset, cp, desk, random_side(rng), px, qty)


@variants("aggressive_exit", passive_exit={}, small_profit=SMALL_PROFIT)
def inject(
    ctx: SimContext,
    *,
    count: int = 3,
    variant: str = "aggressive_exit",
    entry_notional: Range = (10_000, 40_000),
    lead_s: Range = (2, 25),
    large_notional: Range = (120_000, 300_000),
    large_multiple: Range = (25, 50),
    move_bps: Range = (30, 150),
    impact_s: Range = (10, 30),
    exit_after_s: Range = (30, 240),
    hold_min: Range = (5, 15),
    fade_min: Range = (20, 40),
    desk_share: Range = (0.8, 1.2),
    desk_interval_min: Range = (4, 10),
    baseline_hourly: Range = (20_000, 80_000),
    asset: str | None = None,
    venue: str | None = None,
    tiers: Sequence[str] | None = None,
) -> list[str]:
    """Inject ``count`` front-running instances; returns their scenario ids.

    Parameters
    ----------
    entry_notional
        USD size of the front-runner's entry (and exit).
    lead_s
        Seconds between the entry and the large print (rule: within 30 s).
    large_notional, large_multiple
        The large print: the larger of this USD notional and this multiple of the asset's typical trade
        (rule: ≥ 10× the median trade notional and ≥ 100,000 USD). It comes from an innocent
        institutional account lifting (or hitting) a market maker.
    move_bps, impact_s, hold_min, fade_min
        Market-wide price impact of the print: ramp to ±move_bps over ``impact_s``, hold, fade back.
    desk_share, desk_interval_min
        The block comes from an institutional desk that trades steadily all day (untagged background
        of an innocent account): its notional per 2 h is ``desk_share`` × the block, in trades about
        ``desk_interval_min`` minutes apart, so that the block alone does not make the desk a
        volume-spike false positive.
    exit_after_s
        Seconds after the print at which the front-runner unwinds at the moved price (rule: within
        300 s, profit ≥ 25 bps).
    variant
        ``aggressive_exit`` (these defaults), ``passive_exit`` (exit by a resting order) or
        ``small_profit`` (:data:`SMALL_PROFIT`: a 6–15 bps move on a major, aggressive exit; explicit
        knobs still win).
    asset, venue, tiers
        Pin the instrument / venue, or prefer assets of these liquidity tiers. USD knobs are multiplied by
        the asset's ``notional_scale``.
    """
    rng = scenario_rng(ctx, "front_running", variant, "aggressive_exit")
    u = ctx.universe
    ids: list[str] = []
    desks: list[tuple[str, str, float, float, int]] = []
    for _ in range(count):
        lead = int(draw(rng, lead_s) * US)
        ramp = int(draw(rng, impact_s) * US)
        hold = int(draw(rng, hold_min) * MINUTE_US)
        fade = int(draw(rng, fade_min) * MINUTE_US)
        a, t0 = pick_slot(
            ctx, rng, lead + ramp + hold + fade, asset_pool(ctx, asset, tiers, liquid_assets(ctx))
        )
        v = venue or pick(rng, u.venues)
        spec = u.asset(a)
        s = usd_scale(ctx, a)
        acct = ctx.accounts.add(Segment.PROPRIETARY, draw(rng, baseline_hourly) * s)
        inj = Injection(ctx, Typology.FRONT_RUNNING, a, v, [acct], variant=variant)
        d = random_side(rng)
        sign = 1.0 if d is Side.BUY else -1.0
        move = draw(rng, move_bps) * 1e-4

        # entry just ahead of the block
        p0 = ctx.price(a, v, t0)
        _, entry = inj.take(rng, t0, acct, d, p0, draw(rng, entry_notional) * s / p0)
        entry_qty = float(ctx.tape.order_info[entry][5])
        entry_px = float(ctx.tape.order_info[entry][4])

        # the block by an innocent institution, against a market maker, and its price impact
        t1 = t0 + lead
        p1 = ctx.price(a, v, t1) * (1 + sign * 2e-4)
        large = max(draw(rng, large_notional) * s, draw(rng, large_multiple) * spec.typical_qty * p1)
        g = u.grid_s * US
        factors = 1 + sign * move * np.concatenate(
            [
                np.linspace(0, 1, max(ramp // g, 1)),
                np.ones(max(hold // g, 1)),
                np.linspace(1, 0, max(fade // g, 1)),
            ]
        )
        ctx.prices.shift(a, None, t1, factors)
        per_2h = draw(rng, desk_share) * large
        desk = ctx.accounts.add(Segment.INSTITUTIONAL, per_2h / 2)
        desks.append((desk, a, per_2h, draw(rng, desk_interval_min), t1))
        makers = book_makers(ctx, a, v)
        mm = pick(rng, makers) if makers else counterparty(ctx, rng, large, a, v)
        inj.cross(t1, mm, desk, d, p1, large / p1)

        # exit at the moved price, at least the drawn move away from the entry
        t2 = t1 + max(int(draw(rng, exit_after_s) * US), ramp + US)
        p2 = ctx.price(a, v, t2)
        target = entry_px * (1 + sign * move)
        p2 = max(p2, target) if d is Side.BUY else min(p2, target)
        if variant == "passive_exit":
            # the exit order rests at the moved price and an innocent taker fills it
            inj.provide(rng, t2, acct, opposite(d), p2, entry_qty, resting_delay_us=GENUINE_REST_US)
        else:
            inj.take(rng, t2, acct, opposite(d), p2, entry_qty)
        ids.append(inj.finish(market_until_us=t1 + len(factors) * g))
    # the desks' all-day flows are priced once every instance has shifted its path, like the background
    for desk in desks:
        _desk_flow(ctx, rng, *desk)
    return ids
