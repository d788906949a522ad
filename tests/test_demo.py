"""The demo pipeline writes every artefact and is idempotent (issues 2, 4, 5)."""

from __future__ import annotations

import json
import sqlite3

import pandas as pd

from market_surveillance.demo import run_demo


def _alert_count(db) -> int:
    with sqlite3.connect(db) as con:
        return con.execute("SELECT count(*) FROM alerts").fetchone()[0]


def test_demo_writes_tables_store_snapshot_scores_and_scorecard(demo_dir):
    for name in ("trades", "orders", "accounts", "network", "positions", "assets", "labels"):
        assert (demo_dir / f"{name}.parquet").exists() and (demo_dir / f"{name}.csv").exists(), name
    for name in ("alerts.parquet", "alerts.sqlite", "alerts.csv", "ml_scores.csv", "ml_scores.parquet"):
        assert (demo_dir / name).exists(), name
    card = json.loads((demo_dir / "scorecard.json").read_text())
    assert card["n_labels"] > 0 and card["n_alerts"] > 0
    snapshot = pd.read_csv(demo_dir / "alerts.csv")
    assert len(snapshot) == _alert_count(demo_dir / "alerts.sqlite") > 0
    scores = pd.read_csv(demo_dir / "ml_scores.csv")
    assert {"account_id", "score"} <= set(scores.columns)


def test_demo_twice_same_alert_count(demo_dir):
    before = _alert_count(demo_dir / "alerts.sqlite")
    run_demo(demo_dir)
    assert _alert_count(demo_dir / "alerts.sqlite") == before
    with sqlite3.connect(demo_dir / "alerts.sqlite") as con:
        assert con.execute("SELECT count(*) FROM runs").fetchone()[0] == 2
