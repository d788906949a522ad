"""Collusion ring: 3–5 accounts that share a device or an IP subnet trade the same asset in the same
direction within a minute, several times.

Variants: ``shared_device`` (one device fingerprint) and ``shared_subnet`` (one IP subnet, distinct devices);
``any_fingerprint`` (the reference world's) draws one of the two per instance (``share_device``). The label
always names the fingerprint the instance shares.
"""

from __future__ import annotations

from collections.abc import Sequence

from market_surveillance.enums import Segment, Typology
from market_surveillance.simulate.context import US, SimContext
from market_surveillance.simulate.scenarios._common import (
    ACCOUNT_MARGIN_US,
    Injection,
    IntRange,
    Range,
    asset_pool,
    draw,
    draw_int,
    liquid_assets,
    pick,
    pick_slot,
    random_side,
    scenario_rng,
    usd_scale,
    variants,
)


@variants("any_fingerprint", shared_device={"share_device": 1.0}, shared_subnet={"share_device": 0.0})
def inject(
    ctx: SimContext,
    *,
    count: int = 3,
    variant: str = "any_fingerprint",
    members: IntRange = (3, 5),
    rounds: IntRange = (3, 6),
    round_gap_s: Range = (120, 900),
    within_s: Range = (5, 45),
    trade_notional: Range = (1_000, 6_000),
    baseline_hourly: Range = (2_000, 8_000),
    share_device: float = 0.5,
    asset: str | None = None,
    tiers: Sequence[str] | None = None,
) -> list[str]:
    """Inject ``count`` collusion-ring instances; returns their scenario ids.

    Parameters
    ----------
    members
        Ring accounts, all sharing one device id (probability ``share_device``) or one IP subnet.
    rounds, round_gap_s
        Coordinated rounds per instance and the seconds between them.
    within_s
        Seconds within which every member trades in a round (rule: ≥ 3 accounts within 60 s).
    trade_notional, baseline_hourly
        USD per member trade and the members' stored hourly norm (retail-sized so that the ring is
        only visible through its shared fingerprint).
    variant
        ``any_fingerprint``, ``shared_device`` or ``shared_subnet``; the label names the fingerprint the
        instance shares.
    asset, tiers
        Pin the instrument, or prefer assets of these liquidity tiers. USD knobs are multiplied by the
        asset's ``notional_scale``.
    """
    rng = scenario_rng(ctx, "collusion_ring", variant, "any_fingerprint")
    ids: list[str] = []
    for _ in range(count):
        k = draw_int(rng, members)
        nr = draw_int(rng, rounds)
        gaps = [int(draw(rng, round_gap_s) * US) for _ in range(nr)]
        a, start = pick_slot(
            ctx,
            rng,
            sum(gaps) + 60 * US,
            asset_pool(ctx, asset, tiers, liquid_assets(ctx)),
            ACCOUNT_MARGIN_US,
        )
        s = usd_scale(ctx, a)
        if rng.random() < share_device:
            shared, kind = {"device_id": ctx.accounts.new_device()}, "shared_device"
        else:
            shared, kind = {"ip_subnet": ctx.accounts.new_subnet()}, "shared_subnet"
        ring = [ctx.accounts.add(Segment.RETAIL, draw(rng, baseline_hourly) * s, **shared) for _ in range(k)]
        inj = Injection(ctx, Typology.COLLUSION_RING, a, None, ring, variant=kind)
        t0 = start
        for gap in gaps:
            side = random_side(rng)
            offsets = rng.uniform(0, draw(rng, within_s), size=k)
            for acct, off in zip(ring, offsets, strict=True):
                t = t0 + int(off * US)
                v = pick(rng, ctx.universe.venues)  # a ring spreads over venues to look unrelated
                px = ctx.price(a, v, t)
                inj.take(rng, t, acct, side, px, draw(rng, trade_notional) * s / px, venue=v)
            t0 += gap
        ids.append(inj.finish())
    return ids
