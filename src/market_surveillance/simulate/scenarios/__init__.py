"""Labelled manipulation scenario injectors (one module per typology).

Each module exposes ``inject(ctx, *, count=..., <knobs>) -> list[str]``: it creates the manipulator
accounts, reserves a time slot with :meth:`SimContext.free_slot`, writes orders/trades tagged with the
scenario id and one ``labels`` row per instance. The simulator calls :func:`inject_all` before generating
the background flow, so the background follows any price shifts made here.
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
}

DEFAULT_COUNT = 3


def inject_all(ctx: SimContext, counts: Mapping[str, int] | None = None) -> list[str]:
    """Run every scenario injector with its count (``DEFAULT_COUNT`` unless ``counts`` overrides by name).

    Returns every scenario id created, in injection order.
    """
    counts = dict(counts or {})
    unknown = set(counts) - set(SCENARIOS)
    if unknown:
        raise ValueError(f"unknown scenario name(s): {sorted(unknown)}; known: {sorted(SCENARIOS)}")
    ids: list[str] = []
    for name, inject in SCENARIOS.items():
        n = counts.get(name, DEFAULT_COUNT)
        if n > 0:
            ids.extend(inject(ctx, count=n))
    return ids
