"""Explicit rule registry (ruff-style): one rule = one module, registered once under a stable id."""

from __future__ import annotations

import importlib
import pkgutil

from market_surveillance.rules.base import Rule

_REGISTRY: dict[str, type[Rule]] = {}

#: Packages whose modules are scanned for rules (pkgutil): a new rule is one module, nothing to list.
RULE_PACKAGES = ("market_surveillance.rules", "market_surveillance.ml")

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
    # issue 12: beneficial ownership and benchmark fixings (MS019–MS029 free for its follow-ups)
    "MS017": "owner_linked_trade",
    "MS018": "marking_the_close",
    # account-free (market-level) rules for order-book data without accounts
    "MS030": "spoofing_orders",
    "MS031": "layering_orders",
    "MS032": "message_burst",
    "MS033": "level_message_burst",
    "MS034": "order_to_trade",
    "MS035": "cancel_to_fill_market",
    "MS036": "large_order_fill_rate",
    # MS040–MS044: issue 13 (online surveillance)
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


def rule_modules() -> list[str]:
    """Every public module of :data:`RULE_PACKAGES` (helpers prefixed ``_`` skipped), in name order."""
    names = []
    for pkg_name in RULE_PACKAGES:
        pkg = importlib.import_module(pkg_name)
        for info in pkgutil.iter_modules(pkg.__path__):
            if not info.name.startswith("_") and not info.ispkg:
                names.append(f"{pkg_name}.{info.name}")
    return sorted(names)


_loaded = False


def _load() -> None:
    global _loaded
    if _loaded:
        return
    for mod in rule_modules():
        importlib.import_module(mod)
    _loaded = True


def all_rules() -> list[type[Rule]]:
    """Registered rule classes in ledger order (:data:`RESERVED_IDS`), unlisted ids last by id."""
    _load()
    order = {name: i for i, name in enumerate(RESERVED_IDS.values())}
    return sorted(_REGISTRY.values(), key=lambda c: (order.get(c.name, len(order)), c.rule_id))


def get_rule(key: str) -> type[Rule]:
    """A rule class by id (``MS001``) or name (``self_trade``)."""
    _load()
    for cls in _REGISTRY.values():
        if key in (cls.rule_id, cls.name):
            return cls
    raise KeyError(f"unknown rule {key!r}; known: {', '.join(c.name for c in all_rules())}")
