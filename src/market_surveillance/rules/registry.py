"""Explicit rule registry (ruff-style): one rule = one module, registered once under a stable id."""

from __future__ import annotations

import importlib

from market_surveillance.rules.base import Rule

_REGISTRY: dict[str, type[Rule]] = {}

#: Modules holding rules, imported on first use. Order is the order of `market-surveillance rules`.
RULE_MODULES = (
    "market_surveillance.rules.self_trade",
    "market_surveillance.rules.ping_pong",
    "market_surveillance.rules.extreme_price_move",
    "market_surveillance.rules.volume_spike",
    "market_surveillance.rules.spoofing",
    "market_surveillance.rules.front_running",
    "market_surveillance.rules.account_deviation",
    "market_surveillance.rules.position_concentration",
    "market_surveillance.rules.message_rate",
    "market_surveillance.rules.cancel_to_fill",
    "market_surveillance.rules.layering",
    "market_surveillance.rules.cross_market_divergence",
    "market_surveillance.rules.network_collusion",
    "market_surveillance.ml.rule",
    "market_surveillance.rules.pump_and_dump",
    "market_surveillance.rules.asset_volume_spike",
    "market_surveillance.rules.rush_order_pump",
)

#: rule ids are never reused; a retired rule keeps its id here.
RESERVED_IDS = {
    "MS001": "self_trade",
    "MS002": "ping_pong",
    "MS003": "extreme_price_move",
    "MS004": "volume_spike",
    "MS005": "spoofing",
    "MS006": "front_running",
    "MS007": "account_deviation",
    "MS008": "position_concentration",
    "MS009": "message_rate",
    "MS010": "cancel_to_fill",
    "MS011": "layering",
    "MS012": "cross_market_divergence",
    "MS013": "network_collusion",
    "MS014": "ml_anomaly",
    "MS015": "pump_and_dump",
    "MS016": "asset_volume_spike",
    # MS017–MS029: issue 12; MS030–MS039: issue 16; MS040–MS044: issue 13 (online surveillance)
    "MS040": "rush_order_pump",
}


def register(cls: type[Rule]) -> type[Rule]:
    """Class decorator adding a rule to the registry; a duplicate id or name fails at import."""
    for attr in ("rule_id", "name", "typology", "metric", "threshold_param", "Params"):
        if not hasattr(cls, attr):
            raise TypeError(f"rule {cls.__name__} must declare {attr!r}")
    expected = RESERVED_IDS.get(cls.rule_id)
    if expected is not None and expected != cls.name:
        raise ValueError(f"rule id {cls.rule_id} is reserved for {expected!r}, not {cls.name!r}")
    for other in _REGISTRY.values():
        if other is cls:
            return cls
        if other.rule_id == cls.rule_id or other.name == cls.name:
            raise ValueError(
                f"duplicate rule {cls.rule_id}/{cls.name}: already registered by {other.__name__}"
            )
    _REGISTRY[cls.rule_id] = cls
    return cls


def _load() -> None:
    for mod in RULE_MODULES:
        try:
            importlib.import_module(mod)
        except ModuleNotFoundError as exc:
            # a rule module not written yet is simply absent; a missing dependency inside one is a bug
            if exc.name != mod:
                raise


def all_rules() -> list[type[Rule]]:
    """Registered rule classes in registry order."""
    _load()
    order = {name: i for i, name in enumerate(RESERVED_IDS.values())}
    return sorted(_REGISTRY.values(), key=lambda c: order.get(c.name, len(order)))


def get_rule(key: str) -> type[Rule]:
    """A rule class by id (``MS001``) or name (``self_trade``)."""
    _load()
    for cls in _REGISTRY.values():
        if key in (cls.rule_id, cls.name):
            return cls
    raise KeyError(f"unknown rule {key!r}; known: {', '.join(c.name for c in all_rules())}")
