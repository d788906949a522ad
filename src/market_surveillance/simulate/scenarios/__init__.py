"""Labelled manipulation scenario injectors (one module per typology).

Each module exposes ``inject(ctx, *, count=..., <knobs>) -> list[str]``: it creates the manipulator
accounts, reserves a time slot with :meth:`SimContext.free_slot`, writes orders/trades tagged with the
scenario id and one ``labels`` row per instance. The simulator calls :func:`inject_all` before generating
the background flow, so the background follows any price shifts made here.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

from market_surveillance.simulate.context import SimContext
from market_surveillance.simulate.scenarios import wash_trading

SCENARIOS: dict[str, Callable[..., list[str]]] = {
    "wash_trading": wash_trading.inject,
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
