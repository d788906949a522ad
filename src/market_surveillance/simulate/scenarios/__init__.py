"""Labelled manipulation scenario injectors (one module per typology).

Each module exposes ``inject(ctx, *, count=..., variant=..., <knobs>) -> list[str]``: it creates the
manipulator accounts, reserves a time slot with :meth:`SimContext.free_slot`, writes orders/trades tagged
with the scenario id and one ``labels`` row per instance (naming its variant and liquidity tier). Every
knob is a range each instance draws from; a variant is a named set of knob values (``inject.variants``,
``inject.variant_knobs``). The simulator calls :func:`inject_all` before generating the background flow,
so the background follows any price shifts made here.

Two worlds:

* ``reference`` — the fixed five-asset universe with three instances of each typology's first variant
  (the injections the project has always made, on the same RNG streams) plus the owner- and
  device-linked wash trades and marking the close;
* ``random`` — a universe drawn over the liquidity tiers with ``per_variant`` instances of every variant,
  each on an asset of the tiers the variant targets.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

from market_surveillance.simulate.context import SimContext
from market_surveillance.simulate.scenarios import (
    account_deviation,
    cancel_to_fill,
    collusion_ring,
    cross_venue_shock,
    front_running,
    layering,
    marking_the_close,
    message_flood,
    ping_pong,
    position_concentration,
    pump_and_dump,
    spoofing,
    volume_spike,
    wash_trading,
)

# Injection order: scenarios that move prices (wide margins) and long ones reserve their slots first.
SCENARIOS: dict[str, Callable[..., list[str]]] = {
    "pump_and_dump": pump_and_dump.inject,
    "cross_venue_shock": cross_venue_shock.inject,
    "front_running": front_running.inject,
    "volume_spike": volume_spike.inject,
    "account_deviation": account_deviation.inject,
    "collusion_ring": collusion_ring.inject,
    "ping_pong": ping_pong.inject,
    "spoofing": spoofing.inject,
    "layering": layering.inject,
    "message_flood": message_flood.inject,
    "cancel_to_fill": cancel_to_fill.inject,
    "wash_trading": wash_trading.inject,
    "position_concentration": position_concentration.inject,
    # last in the reference world, so the injections above keep the slots they always had
    "marking_the_close": marking_the_close.inject,
}

DEFAULT_COUNT = 3
#: reference world: instances per (scenario, variant) beyond each scenario's first variant
REFERENCE_EXTRA: dict[tuple[str, str], int] = {
    ("marking_the_close", "last_minute"): 2,
    ("wash_trading", "owner_pair"): 2,
    ("wash_trading", "device_pair"): 2,
}
REFERENCE_FIRST: dict[str, int] = {"marking_the_close": 2}
#: random world: fixed-time and price-moving scenarios reserve first
RANDOM_ORDER = ("marking_the_close", *(n for n in SCENARIOS if n != "marking_the_close"))
PER_VARIANT = 2
#: variants that only draw between other variants (labelled as the one drawn): not planned in the random world
MIXED = {"any_fingerprint"}
WORLDS = ("reference", "random")


def variants_of(name: str) -> tuple[str, ...]:
    """The variant names of one scenario, its default first."""
    return tuple(getattr(SCENARIOS[name], "variants", ("default",)))


def plan(
    world: str = "reference", counts: Mapping[str, int] | None = None, per_variant: int = PER_VARIANT
) -> list[tuple[str, str, int]]:
    """The ``(scenario, variant, count)`` injections of a world, in injection order.

    ``counts`` overrides by scenario name (every variant of it the world injects) or by
    ``"scenario:variant"`` (that variant only; the more specific key wins).
    """
    if world not in WORLDS:
        raise ValueError(f"unknown world {world!r}; known: {', '.join(WORLDS)}")
    counts = dict(counts or {})
    known = set(SCENARIOS) | {f"{n}:{v}" for n in SCENARIOS for v in variants_of(n)}
    unknown = set(counts) - known
    if unknown:
        raise ValueError(f"unknown scenario name(s): {sorted(unknown)}; known: {sorted(known)}")

    def n_of(name: str, variant: str, default: int) -> int:
        return counts.get(f"{name}:{variant}", counts.get(name, default))

    out: list[tuple[str, str, int]] = []
    if world == "reference":
        for name in SCENARIOS:
            first = variants_of(name)[0]
            out.append((name, first, n_of(name, first, REFERENCE_FIRST.get(name, DEFAULT_COUNT))))
        out += [(n, v, n_of(n, v, k)) for (n, v), k in REFERENCE_EXTRA.items()]
    else:
        out = [
            (n, v, n_of(n, v, per_variant)) for n in RANDOM_ORDER for v in variants_of(n) if v not in MIXED
        ]
    return [(n, v, k) for n, v, k in out if k > 0]


def inject_all(
    ctx: SimContext,
    counts: Mapping[str, int] | None = None,
    *,
    world: str = "reference",
    per_variant: int = PER_VARIANT,
) -> list[str]:
    """Run every injection of ``world`` (see :func:`plan`); returns every scenario id created, in order."""
    ids: list[str] = []
    for name, variant, n in plan(world, counts, per_variant):
        ids.extend(SCENARIOS[name](ctx, count=n, variant=variant))
    return ids
