"""Alert and case store: SQLite by default, PostgreSQL for teams, with a case workflow and audit trail.

>>> from market_surveillance.store import Store
>>> with Store.open("sqlite:///data/alerts.sqlite") as store:        # doctest: +SKIP
...     case_id = store.open_case("wash ring on PUMP-USD", ["3f1c..."], actor="alice")
...     store.set_status(case_id, "investigating", actor="alice")
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

# Exports are loaded on first use: the CLI imports this package for every command, and the store's
# dependencies (pyarrow, SQLAlchemy, the rules' alert schema via Ibis) take seconds to import.
_EXPORTS = {
    "DEFAULT_URL": "core",
    "NEW": "core",
    "STORED_ALERT_SCHEMA": "core",
    "Case": "core",
    "CaseEvent": "core",
    "RunRecord": "core",
    "Store": "core",
    "migrate": "core",
    "config_hash": "detection",
    "record_detection": "detection",
    "rule_versions": "detection",
    "StoreError": "errors",
    "TransitionError": "errors",
    "UnknownIdError": "errors",
    "CLOSED": "workflow",
    "TRANSITIONS": "workflow",
}
__all__ = [
    "CLOSED",
    "DEFAULT_URL",
    "NEW",
    "STORED_ALERT_SCHEMA",
    "TRANSITIONS",
    "Case",
    "CaseEvent",
    "RunRecord",
    "Store",
    "StoreError",
    "TransitionError",
    "UnknownIdError",
    "config_hash",
    "migrate",
    "record_detection",
    "rule_versions",
]

if TYPE_CHECKING:
    from market_surveillance.store.core import (
        DEFAULT_URL,
        NEW,
        STORED_ALERT_SCHEMA,
        Case,
        CaseEvent,
        RunRecord,
        Store,
        migrate,
    )
    from market_surveillance.store.detection import config_hash, record_detection, rule_versions
    from market_surveillance.store.errors import StoreError, TransitionError, UnknownIdError
    from market_surveillance.store.workflow import CLOSED, TRANSITIONS


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{_EXPORTS[name]}"), name)
