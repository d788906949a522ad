"""Recording a detection result (``pipeline.DetectResult``) in the store, plus the CSV snapshot."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from market_surveillance.store.core import Store

if TYPE_CHECKING:
    from market_surveillance.pipeline import DetectResult


class RuleLike(Protocol):
    """What the store records of a rule (the store does not import the rules package)."""

    rule_id: str
    name: str
    params: Any
    asset_params: Mapping[str, Any]


def config_hash(config_path: str | Path | None) -> str:
    """sha256 of the rules config file's bytes, or of ``b"defaults"`` when no file was given."""
    data = Path(config_path).read_bytes() if config_path is not None else b"defaults"
    return hashlib.sha256(data).hexdigest()


def rule_versions(rules: Iterable[RuleLike]) -> dict[str, Any]:
    """``{rule_id: {name, params, asset_params}}`` for the given rules (those a run actually ran)."""
    return {
        r.rule_id: {
            "name": r.name,
            "params": r.params.as_dict(),
            "asset_params": {asset: p.as_dict() for asset, p in sorted(r.asset_params.items())},
        }
        for r in rules
    }


def _beside_store(store: Store) -> Path | None:
    url = store.engine.url
    if url.get_backend_name() != "sqlite" or not url.database or url.database == ":memory:":
        return None
    return Path(url.database).with_name("alerts.csv")


def record_detection(
    db_url: str | None,
    result: DetectResult,
    *,
    data_source: str,
    config_path: Path | None,
    csv_snapshot: Path | None = None,
    snapshot: bool = True,
) -> str:
    """Store a detection result as one run (alerts upserted) and refresh the CSV snapshot; return the run_id.

    ``db_url`` None means ``sqlite:///data/alerts.sqlite``. The snapshot holds every alert in the store,
    not only this run's, and is written after the run is committed: to ``csv_snapshot`` if given, else
    beside a SQLite store (``alerts.csv`` next to the database file; never into the current directory),
    else (PostgreSQL) not at all. ``snapshot=False`` skips it.
    """
    rule_runs = [
        {
            "rule_id": r.rule_id,
            "name": r.name,
            "typology": r.typology,
            "status": r.status,
            "reason": r.reason,
            "alerts": r.alerts,
            "seconds": round(r.seconds, 4),
        }
        for r in result.runs
    ]
    with Store.open(db_url) as store:
        run_id = store.record_run(
            result.alerts,
            data_source=data_source,
            config_hash=config_hash(config_path),
            rule_versions=rule_versions(result.rules),
            rule_runs=rule_runs,
            input_counts=result.input_counts,
        )
        target = csv_snapshot if csv_snapshot is not None else _beside_store(store)
        if snapshot and target is not None:
            store.write_snapshot(target)
    return run_id
