"""Superseded alerts (issue 17.6), NaN scores refused and the store checked before detection (17.2)."""

from __future__ import annotations

import math

import pyarrow as pa
import pytest
import sqlalchemy as sa
from typer.testing import CliRunner

from market_surveillance.alerts import finalize_alerts
from market_surveillance.cli import app
from market_surveillance.store import Store
from market_surveillance.store import tables as db

runner = CliRunner()

V1 = {"MS001": {"name": "self_trade", "params": {"min_notional": 100.0}, "asset_params": {}}}
V2 = {"MS001": {"name": "self_trade", "params": {"min_notional": 500.0}, "asset_params": {}}}
RAN = [{"rule_id": "MS001", "name": "self_trade", "status": "ran"}]


def _run(store: Store, alerts: pa.Table, versions: dict, *, source: str = "data/", rule_runs=RAN) -> str:
    return store.record_run(
        alerts, data_source=source, config_hash="h", rule_versions=versions, rule_runs=rule_runs
    )


def _ids(t: pa.Table) -> set[str]:
    return set(t["alert_id"].to_pylist())


def _range(prefix: str, lo: int, hi: int) -> set[str]:
    return {f"{prefix}-{i:06d}" for i in range(lo, hi)}


def test_supersede_parameter_change_retires_old_alerts_kept_and_audited(store_url, make_alerts):
    with Store.open(store_url) as store:
        _run(store, make_alerts(10), V1)  # 0..9
        second = _run(store, make_alerts(10, start=5), V2)  # 5..14: 0..4 no longer found
        assert _ids(store.alerts()) == _range("MS001", 5, 15)
        old = store.alerts(superseded=True)
        assert _ids(old) == _range("MS001", 0, 5)
        assert set(old["superseded_by"].to_pylist()) == {second}
        assert _ids(store.alerts(superseded=None)) == _range("MS001", 0, 15)
        assert store.alert_count() == 15  # kept
        with store.engine.connect() as conn:
            log = conn.execute(sa.select(db.alert_supersessions)).all()
        assert {r.alert_id for r in log} == _range("MS001", 0, 5)
        assert {r.run_id for r in log} == {second}
        assert all("MS001 parameters changed: params.min_notional 100.0 → 500.0" in r.reason for r in log)
        run = store.run(second)
        assert run.rule_runs[0]["superseded"] == 5
        # back to the old parameters: what they find is current again, what V2 alone found is superseded
        third = _run(store, make_alerts(10), V1)
        assert _ids(store.alerts()) == _range("MS001", 0, 10)
        assert _ids(store.alerts(superseded=True)) == _range("MS001", 10, 15)
        assert set(store.alerts(superseded=True)["superseded_by"].to_pylist()) == {third}


def test_supersede_same_parameters_other_source_or_skipped_rule_retire_nothing(store_url, make_alerts):
    with Store.open(store_url) as store:
        _run(store, make_alerts(10), V1)
        _run(store, make_alerts(3), V1)  # same parameters: fewer alerts is the data's business
        _run(store, make_alerts(3, start=20), V2, source="other/")  # other data
        skipped = [{"rule_id": "MS001", "name": "self_trade", "status": "skipped"}]
        _run(store, make_alerts(0), V2, rule_runs=skipped)  # the rule did not run
        assert store.alerts(superseded=True).num_rows == 0
        # another rule's alerts are untouched by MS001's parameter change
        _run(store, make_alerts(4, rule_id="MS005", rule_name="spoofing"), {"MS005": V1["MS001"]})
        _run(store, make_alerts(2), V2)
        assert _ids(store.alerts(superseded=True)) == _range("MS001", 2, 10)
        assert _ids(store.alerts(rule="MS005")) == _range("MS005", 0, 4)


def test_supersede_case_still_shows_its_superseded_alert(store_url, make_alerts):
    with Store.open(store_url) as store:
        _run(store, make_alerts(4), V1)
        case_id = store.open_case("t", ["MS001-000000"], "alice")
        _run(store, make_alerts(2, start=2), V2)
        assert _ids(store.alerts(alert_ids=list(store.case(case_id).alert_ids))) == {"MS001-000000"}


def test_supersede_cli_alerts_list_hides_unless_asked(tmp_path, make_alerts):
    url = f"sqlite:///{tmp_path / 'a.sqlite'}"
    with Store.open(url) as store:
        _run(store, make_alerts(4), V1)
        _run(store, make_alerts(2, start=2), V2)

    def listed(*flags: str) -> set[str]:
        result = runner.invoke(app, ["alerts", "list", "--db", url, *flags], env={"COLUMNS": "300"})
        assert result.exit_code == 0, result.output
        return {x for x in _range("MS001", 0, 4) if x in result.output}

    assert listed() == _range("MS001", 2, 4)
    assert listed("--superseded") == _range("MS001", 0, 2)
    assert listed("--all") == _range("MS001", 0, 4)


# -- NaN scores ---------------------------------------------------------------------------------------


class _Rule:
    rule_id, name, typology, metric = "MS999", "probe", "wash_trading", "m"


def _raw(score: float) -> pa.Table:
    import datetime as dt

    t = dt.datetime(2024, 1, 1)
    return pa.table(
        {
            "asset": ["BTC-USD", "ETH-USD"],
            "venue": ["x", "x"],
            "accounts": [["a"], ["b"]],
            "window_start": [t, t],
            "window_end": [t, t],
            "value": [1.0, 2.0],
            "threshold": [1.0, 1.0],
            "score": [1.0, score],
            "evidence_trade_ids": [["1"], ["2"]],
            "evidence_order_ids": [[], []],
            "explanation": ["", ""],
        }
    )


@pytest.mark.parametrize("bad", [math.nan, math.inf, None])
def test_finalize_alerts_refuses_a_score_that_is_not_a_number(bad):
    assert finalize_alerts(_Rule(), _raw(3.0)).num_rows == 2
    with pytest.raises(
        ValueError, match="rule MS999 \\(probe\\) produced 1 alert\\(s\\) whose score is not a finite"
    ):
        finalize_alerts(_Rule(), _raw(bad))


def test_store_refuses_nan_score_instead_of_storing_zero(store_url, make_alerts):
    alerts = make_alerts(3)
    alerts = alerts.set_column(
        alerts.schema.get_field_index("score"), "score", pa.array([1.0, math.nan, 2.0])
    )
    with Store.open(store_url) as store:
        with pytest.raises(ValueError, match="MS001-000001 \\(MS001\\): score is nan"):
            store.record_run(alerts, data_source="d", config_hash="h")
        assert store.alert_count() == 0


# -- the store is checked before detection ----------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "said"),
    [
        ("mysql://u@h/db", "unsupported store URL"),
        ("not a url", "unsupported store URL"),
        ("postgresql+psycopg://nobody:secret@127.0.0.1:1/x", "Connection refused"),
    ],
)
def test_detect_checks_the_store_before_any_rule_runs(tmp_path, monkeypatch, url, said):
    import market_surveillance.pipeline as pipeline

    def must_not_run(*a, **k):
        raise AssertionError("detection started before the store was checked")

    monkeypatch.setattr(pipeline, "detect_source", must_not_run)
    result = runner.invoke(app, ["detect", "--data", str(tmp_path), "--db", url], env={"COLUMNS": "300"})
    assert result.exit_code == 2
    lines = [x for x in result.output.splitlines() if x.strip()]
    assert len(lines) == 1 and said in lines[0] and "cannot open store" in lines[0]
    assert "secret" not in result.output  # the password is masked


def test_detect_refuses_a_store_whose_protection_was_removed(tmp_path, monkeypatch, make_alerts):
    import sqlite3

    import market_surveillance.pipeline as pipeline

    path = tmp_path / "a.sqlite"
    Store.open(f"sqlite:///{path}").dispose()
    con = sqlite3.connect(path)
    con.execute("DROP TRIGGER cases_no_update")
    con.commit()
    con.close()
    monkeypatch.setattr(
        pipeline, "detect_source", lambda *a, **k: (_ for _ in ()).throw(AssertionError("ran"))
    )
    result = runner.invoke(app, ["detect", "--data", str(tmp_path), "--db", f"sqlite:///{path}"])
    assert result.exit_code == 2 and "audit protection removed" in result.output


def test_supersede_alert_hidden_without_audit_row_is_named_by_verify(store_url, make_alerts):
    # the app role may UPDATE alerts (detection upserts them): hiding one as "superseded" by hand is caught
    with Store.open(store_url) as store:
        _run(store, make_alerts(4), V1)
        second = _run(store, make_alerts(2, start=2), V2)
        assert store.verify().ok  # real supersessions are logged
        with store.engine.connect() as conn, conn.begin():
            conn.execute(
                sa.update(db.alerts)
                .where(db.alerts.c.alert_id == "MS001-000003")
                .values(superseded_by=second)
            )
        assert "MS001-000003" not in _ids(store.alerts())
        report = store.verify()
        assert not report.ok
        assert report.alerts == (
            f"alert MS001-000003: marked superseded by run {second} without an alert_supersessions row "
            "(hidden from the queue behind the store's back)",
        )
    result = runner.invoke(app, ["cases", "verify", "--db", store_url], env={"COLUMNS": "300"})
    assert result.exit_code == 1 and "BROKEN alert MS001-000003" in result.output
