"""Run loader of the dashboard: configuration precedence and fallbacks."""

from __future__ import annotations

from pathlib import Path

import pyarrow.parquet as pq
import pytest

from market_surveillance import testing as tb
from market_surveillance.alerts import ALERT_SCHEMA, write_alerts
from market_surveillance.dashboard.data import DEFAULT_DB_URL, load_run, run_paths


def test_run_paths_explicit_beats_env_beats_default(monkeypatch):
    monkeypatch.delenv("MS_DATA_DIR", raising=False)
    monkeypatch.delenv("MS_DB_URL", raising=False)
    assert run_paths() == (Path("data"), DEFAULT_DB_URL)
    monkeypatch.setenv("MS_DATA_DIR", "/runs/x")
    monkeypatch.setenv("MS_DB_URL", "sqlite:////runs/x/a.sqlite")
    assert run_paths() == (Path("/runs/x"), "sqlite:////runs/x/a.sqlite")
    assert run_paths("/other", "sqlite:///o.sqlite") == (Path("/other"), "sqlite:///o.sqlite")


def test_load_run_without_store_reads_alerts_parquet_and_does_not_create_db(tmp_path):
    for name, tab in tb.mini_dataset().items():
        pq.write_table(tab, tmp_path / f"{name}.parquet")
    write_alerts(ALERT_SCHEMA.empty_table(), tmp_path / "alerts.parquet")
    db = tmp_path / "alerts.sqlite"
    run = load_run(tmp_path, f"sqlite:///{db}")
    assert run.store is None and not db.exists()
    assert run.alerts.empty and list(run.alerts.columns) == ALERT_SCHEMA.names
    assert run.scores is None
    assert run.trades.count().execute() == tb.mini_dataset()["trades"].num_rows


def test_load_run_missing_folder_says_how_to_make_one(tmp_path):
    with pytest.raises(FileNotFoundError, match="make demo"):
        load_run(tmp_path / "nope")
