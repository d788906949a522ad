"""Alert and case store: SQLite by default, PostgreSQL for teams, with a case workflow and audit trail.

>>> from market_surveillance.store import Store
>>> with Store.open("sqlite:///data/alerts.sqlite") as store:        # doctest: +SKIP
...     case_id = store.open_case("wash ring on PUMP-USD", ["3f1c..."], actor="alice")
...     store.set_status(case_id, "investigating", actor="alice")
"""

from __future__ import annotations

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
