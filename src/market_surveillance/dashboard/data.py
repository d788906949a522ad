"""What the monitoring notebook opens: the canonical tables, alerts, ML scores and the store of one run."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import ibis.expr.types as ir
import pandas as pd

DEFAULT_DATA_DIR = "data"
DEFAULT_DB_URL = "sqlite:///data/alerts.sqlite"

__all__ = ["DEFAULT_DATA_DIR", "DEFAULT_DB_URL", "RunData", "load_run", "run_paths"]


def run_paths(data_dir: str | Path | None = None, db_url: str | None = None) -> tuple[Path, str]:
    """``(data_dir, db_url)``: explicit values, else ``$MS_DATA_DIR`` / ``$MS_DB_URL``, else the demo defaults."""
    d = data_dir or os.environ.get("MS_DATA_DIR") or DEFAULT_DATA_DIR
    u = db_url or os.environ.get("MS_DB_URL") or DEFAULT_DB_URL
    return Path(d), u


@dataclass
class RunData:
    """One run's outputs. ``tables`` are lazily scanned Ibis tables (filter before pulling rows)."""

    data_dir: Path
    db_url: str
    tables: dict[str, ir.Table]
    alerts: pd.DataFrame
    scores: pd.DataFrame | None
    store: Any | None  # market_surveillance.store.Store when the database exists

    @property
    def trades(self) -> ir.Table:
        return self.tables["trades"]

    @property
    def orders(self) -> ir.Table | None:
        return self.tables.get("orders")


def _sqlite_missing(db_url: str) -> bool:
    prefix = "sqlite:///"
    return db_url.startswith(prefix) and not Path(db_url[len(prefix) :]).exists()


def _open_store(db_url: str) -> Any | None:
    if _sqlite_missing(db_url):  # opening would silently create an empty database
        return None
    try:
        from market_surveillance.store import Store
    except ImportError:
        return None
    return Store.open(db_url)


def _alerts(data_dir: Path, store: Any | None) -> pd.DataFrame:
    from market_surveillance.alerts import ALERT_SCHEMA, read_alerts

    if store is not None and hasattr(store, "alerts"):
        got = store.alerts()
        return (
            got.to_pandas()
            if hasattr(got, "to_pandas") and not isinstance(got, pd.DataFrame)
            else pd.DataFrame(got)
        )
    for name in ("alerts.parquet", "alerts.csv"):
        if (data_dir / name).exists():
            return read_alerts(data_dir / name).to_pandas()
    return ALERT_SCHEMA.empty_table().to_pandas()


def _scores(data_dir: Path) -> pd.DataFrame | None:
    if (data_dir / "ml_scores.parquet").exists():
        return pd.read_parquet(data_dir / "ml_scores.parquet")
    if (data_dir / "ml_scores.csv").exists():
        return pd.read_csv(data_dir / "ml_scores.csv")
    return None


def load_run(
    data_dir: str | Path | None = None, db_url: str | None = None, *, validate: bool = False
) -> RunData:
    """Open the tables (DuckDB views over the files), alerts (store first, else ``alerts.parquet``), ML scores
    (``ml_scores.parquet`` if present) and the store of a run folder.

    ``validate`` re-runs schema validation (the pipeline already did when it produced the folder).
    """
    from market_surveillance.io.canonical import open_dir

    d, url = run_paths(data_dir, db_url)
    if not d.is_dir():
        raise FileNotFoundError(
            f"data folder {d} does not exist: run `make demo` (python -m market_surveillance.main) first"
        )
    _, tables, _ = open_dir(d, validate=validate)
    store = _open_store(url)
    return RunData(d, url, tables, _alerts(d, store), _scores(d), store)


def refresh_alerts(run: RunData) -> RunData:
    """Re-read the alert queue of ``run`` (store first, else the alerts file) while ``watch`` writes to it.

    Tables and ML scores are kept; the notebook re-draws its queue and charts from the returned RunData.
    A ``watch`` batch commits alerts and watermark in one transaction, so a refresh never sees half a batch.
    """
    import dataclasses

    return dataclasses.replace(run, alerts=_alerts(run.data_dir, run.store))
