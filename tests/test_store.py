"""Store: runs, idempotent alert upserts, filters, snapshot, record_detection, schema drift (SQLite + PostgreSQL)."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from pathlib import Path

import pyarrow as pa
import pytest
import sqlalchemy as sa

from market_surveillance.alerts import ALERT_SCHEMA, read_alerts
from market_surveillance.pipeline import DetectResult, RuleRun
from market_surveillance.store import STORED_ALERT_SCHEMA, Store, UnknownIdError, record_detection
from market_surveillance.store import tables as db


def _record(store: Store, alerts: pa.Table, source: str = "data") -> str:
    return store.record_run(alerts, data_source=source, config_hash="h" * 64)


def test_store_rerun_same_alerts_adds_no_duplicates(store_url, make_alerts):
    with Store.open(store_url) as store:
        first = _record(store, make_alerts(30))
        second = _record(store, make_alerts(30))
        assert store.alert_count() == 30
        stored = store.alerts()
        assert set(stored["run_id"].to_pylist()) == {first}  # the run that first found each alert
        assert set(stored["last_run_id"].to_pylist()) == {second}
        assert all(
            f < last
            for f, last in zip(stored["first_seen"].to_pylist(), stored["last_seen"].to_pylist(), strict=True)
        )
        assert [r.status for r in store.runs()] == ["complete", "complete"]


def test_store_overlapping_run_upserts_and_adds_only_new(store_url, make_alerts):
    with Store.open(store_url) as store:
        _record(store, make_alerts(20))
        changed = make_alerts(20, start=10)
        # a re-run with another threshold re-finds alerts 10..19 with new values: updated in place
        changed = changed.set_column(
            changed.schema.get_field_index("threshold"), "threshold", pa.array([2.0] * 20)
        )
        _record(store, changed)
        stored = store.alerts()
        assert stored.num_rows == 30
        thresholds = dict(zip(stored["alert_id"].to_pylist(), stored["threshold"].to_pylist(), strict=True))
        assert thresholds["MS001-000005"] == 1.0
        assert thresholds["MS001-000015"] == 2.0


def test_store_alerts_round_trip_contract_columns(store_url, make_alerts):
    alerts = make_alerts(5)
    with Store.open(store_url) as store:
        _record(store, alerts)
        stored = store.alerts()
    assert stored.schema == STORED_ALERT_SCHEMA
    assert stored.select(ALERT_SCHEMA.names).equals(alerts)


def test_store_nan_value_round_trips_as_nan(store_url, make_alerts):
    alerts = make_alerts(1)
    alerts = alerts.set_column(alerts.schema.get_field_index("value"), "value", pa.array([float("nan")]))
    with Store.open(store_url) as store:
        _record(store, alerts)
        value = store.alerts()["value"][0].as_py()
    assert value != value  # NaN


def test_store_alert_filters_select_expected_rows(store_url, make_alerts):
    with Store.open(store_url) as store:
        _record(
            store, pa.concat_tables([make_alerts(10), make_alerts(4, rule_id="MS005", rule_name="spoofing")])
        )
        assert store.alerts(rule="MS005").num_rows == 4
        assert store.alerts(rule="spoofing").num_rows == 4
        assert store.alerts(asset="BTC-USD").num_rows == 5 + 2
        assert store.alerts(rule="MS001", asset="ETH-USD").num_rows == 5
        # windows start at 2024-01-01 00:00 + i minutes
        assert store.alerts(since="2024-01-01T00:07").num_rows == 3
        assert (
            store.alerts(
                since=dt.datetime(2024, 1, 1, 1, 7, tzinfo=dt.timezone(dt.timedelta(hours=1)))
            ).num_rows
            == 3
        )
        case_id = store.open_case("c", ["MS001-000001", "MS005-000002"], "alice")
        assert store.alerts(status="new").num_rows == 12
        assert set(store.alerts(status="open")["alert_id"].to_pylist()) == {"MS001-000001", "MS005-000002"}
        assert store.alerts(status="investigating").num_rows == 0
        assert store.alerts(alert_ids=["MS001-000001"])["case_ids"].to_pylist() == [[case_id]]
        with pytest.raises(ValueError, match="unknown case status"):
            store.alerts(status="done")
        with pytest.raises(ValueError, match="since"):
            store.alerts(since="yesterday")


def test_store_failed_write_keeps_no_alerts_and_records_failed_run(store_url, make_alerts):
    with Store.open(store_url) as store:
        _record(store, make_alerts(5))

        def boom(batch: int) -> None:
            raise RuntimeError("disk on fire")

        store._on_batch = boom
        with pytest.raises(RuntimeError, match="disk on fire"):
            store.record_run(make_alerts(50, start=100), data_source="x", config_hash="h", batch_size=10)
        store._on_batch = None
        assert store.alert_count() == 5
        failed = [r for r in store.runs() if r.status == "failed"]
        assert len(failed) == 1
        assert failed[0].alerts_written == 0
        assert "disk on fire" in (failed[0].error or "")


def test_store_record_run_missing_column_raises(store_url, make_alerts):
    with Store.open(store_url) as store, pytest.raises(ValueError, match="score"):
        _record(store, make_alerts(2).drop_columns(["score"]))


def test_store_unknown_run_raises(store_url):
    with Store.open(store_url) as store, pytest.raises(UnknownIdError, match="run nope does not exist"):
        store.run("nope")


def test_store_open_default_url_creates_data_folder(tmp_path, monkeypatch, make_alerts):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("MS_STORE_URL", raising=False)
    with Store.open() as store:
        _record(store, make_alerts(1))
    assert (tmp_path / "data" / "alerts.sqlite").exists()


def test_store_sqlite_pragmas_wal_and_foreign_keys(tmp_path):
    with Store.open(f"sqlite:///{tmp_path / 's.sqlite'}") as store, store.engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
        assert conn.exec_driver_sql("PRAGMA busy_timeout").scalar() >= 1000


def test_store_unsupported_url_raises():
    from market_surveillance.store import StoreError

    with pytest.raises(StoreError, match="unsupported store URL"):
        Store.open("mysql://x/y")


def test_store_reopen_migrates_once_and_keeps_data(store_url, make_alerts):
    with Store.open(store_url) as store:
        _record(store, make_alerts(3))
    with Store.open(store_url) as store:
        assert store.alert_count() == 3
        with store.engine.connect() as conn:
            versions = conn.execute(sa.text("SELECT version_num FROM alembic_version")).scalars().all()
    assert versions == [_head_revision()]


def _head_revision() -> str:
    from alembic.script import ScriptDirectory

    from market_surveillance.store.core import MIGRATIONS

    return ScriptDirectory(str(MIGRATIONS)).get_current_head()


def test_store_migrated_schema_matches_table_metadata(store_url):
    """The migrations and the metadata the queries use describe the same schema (no drift)."""
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext

    with Store.open(store_url) as store, store.engine.connect() as conn:
        ctx = MigrationContext.configure(conn, opts={"compare_type": True})
        diff = compare_metadata(ctx, db.metadata)
    # SQLite reflects neither CHECK constraints' names nor JSON precisely; anything left is real drift
    assert diff == []


def _detect_result(alerts: pa.Table) -> DetectResult:
    runs = [
        RuleRun("MS001", "self_trade", "wash_trading", "ran", alerts=alerts.num_rows, seconds=0.5),
        RuleRun(
            "MS005", "spoofing", "spoofing", "skipped", reason="needs table(s) orders, absent from the data"
        ),
    ]
    from market_surveillance.rules.self_trade import SelfTrade

    # the rules that ran travel with the result: the store records those, not a rebuild from the config
    return DetectResult(
        alerts,
        runs,
        input_counts={"trades": {"read": 10, "accepted": 9, "quarantined": 1}},
        rules=[SelfTrade()],
    )


def test_record_detection_twice_same_count_and_snapshot(tmp_path, make_alerts):
    url = f"sqlite:///{tmp_path / 'alerts.sqlite'}"
    snapshot = tmp_path / "out" / "alerts.csv"
    result = _detect_result(make_alerts(12))
    run1 = record_detection(url, result, data_source="data/", config_path=None, csv_snapshot=snapshot)
    run2 = record_detection(url, result, data_source="data/", config_path=None, csv_snapshot=snapshot)
    assert run1 != run2
    back = read_alerts(snapshot)
    assert back.num_rows == 12
    assert back.equals(make_alerts(12))  # the snapshot reads back into the alert contract
    with Store.open(url) as store:
        assert store.alert_count() == 12
        run = store.run(run1)
    assert run.config_hash == hashlib.sha256(b"defaults").hexdigest()
    assert run.rule_versions["MS001"]["name"] == "self_trade"
    assert "params" in run.rule_versions["MS001"]
    assert {r["rule_id"]: r["status"] for r in run.rule_runs} == {"MS001": "ran", "MS005": "skipped"}
    assert run.rule_runs[1]["reason"].startswith("needs table")
    assert run.input_counts["trades"]["quarantined"] == 1
    assert run.data_source == "data/"
    json.dumps(run.rule_versions)  # stored as plain JSON


def test_record_detection_config_hash_is_file_sha256(tmp_path, make_alerts):
    config = tmp_path / "rules.toml"
    config.write_text("[self_trade]\n")
    url = f"sqlite:///{tmp_path / 'alerts.sqlite'}"
    run_id = record_detection(
        url, _detect_result(make_alerts(1)), data_source="d", config_path=config, csv_snapshot=None
    )
    with Store.open(url) as store:
        assert store.run(run_id).config_hash == hashlib.sha256(config.read_bytes()).hexdigest()
    assert not (tmp_path / "data").exists()


def test_store_snapshot_written_atomically_holds_all_alerts(tmp_path, make_alerts):
    with Store.open(f"sqlite:///{tmp_path / 'a.sqlite'}") as store:
        _record(store, make_alerts(3))
        _record(store, make_alerts(2, start=50))
        path = store.write_snapshot(tmp_path / "snap.csv")
    assert read_alerts(path).num_rows == 5
    assert [p.name for p in Path(tmp_path).iterdir() if p.name.endswith(".tmp")] == []


def _locked() -> sa.exc.OperationalError:
    import sqlite3

    return sa.exc.OperationalError("INSERT ...", {}, sqlite3.OperationalError("database is locked"))


def test_store_write_retries_transient_lock_then_succeeds(tmp_path, monkeypatch):
    from market_surveillance.store import core

    monkeypatch.setattr(core.time, "sleep", lambda s: None)
    engine = core._make_engine(f"sqlite:///{tmp_path / 'r.sqlite'}")
    calls: list[int] = []

    def flaky(conn: sa.Connection) -> str:
        calls.append(1)
        if len(calls) < 3:
            raise _locked()
        return "done"

    assert core._run_tx(engine, flaky, write=True) == "done"
    assert len(calls) == 3


def test_store_write_non_transient_error_not_retried(tmp_path):
    from market_surveillance.store import core

    engine = core._make_engine(f"sqlite:///{tmp_path / 'r.sqlite'}")
    calls: list[int] = []

    def broken(conn: sa.Connection) -> None:
        calls.append(1)
        conn.exec_driver_sql("SELECT * FROM no_such_table")

    with pytest.raises(sa.exc.OperationalError, match="no_such_table"):
        core._run_tx(engine, broken, write=True)
    assert len(calls) == 1


def test_store_empty_run_recorded_complete_with_zero_alerts(store_url, make_alerts):
    with Store.open(store_url) as store:
        run_id = _record(store, make_alerts(0))
        run = store.run(run_id)
        assert (run.status, run.alerts_written, store.alert_count()) == ("complete", 0, 0)
        assert store.alerts().schema == STORED_ALERT_SCHEMA
