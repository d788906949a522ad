"""`market-surveillance alerts ...` / `cases ...` round trip through the real CLI app (SQLite and PostgreSQL)."""

from __future__ import annotations

import re

import pytest
from typer.testing import CliRunner

from market_surveillance.cli import app
from market_surveillance.store import Store

runner = CliRunner()


@pytest.fixture
def db(store_url, make_alerts):
    with Store.open(store_url) as store:
        store.record_run(make_alerts(6), data_source="d", config_hash="h")
        store.record_run(
            make_alerts(2, rule_id="MS005", rule_name="spoofing"), data_source="d", config_hash="h"
        )
    return store_url


def _ok(*args: str) -> str:
    result = runner.invoke(app, list(args), env={"COLUMNS": "250"})
    assert result.exit_code == 0, result.output
    return result.output


def _refused(*args: str) -> str:
    result = runner.invoke(app, list(args), env={"COLUMNS": "250"})
    assert result.exit_code == 2, result.output
    return result.output


def test_cli_case_round_trip_open_to_closed(db):
    out = _ok(
        "cases",
        "open",
        "MS001-000001",
        "MS005-000000",
        "--title",
        "wash + spoof",
        "--db",
        db,
        "--actor",
        "alice",
    )
    case_id = re.search(r"opened case (C-\S+)", out).group(1)
    _ok("cases", "assign", case_id, "bob", "--db", db, "--actor", "alice")
    _ok("cases", "status", case_id, "investigating", "--db", db, "--actor", "bob")
    _ok("cases", "comment", case_id, "same beneficial owner", "--db", db, "--actor", "bob")
    _ok("cases", "close", case_id, "reported", "--comment", "STOR filed", "--db", db, "--actor", "bob")

    show = _ok("cases", "show", case_id, "--db", db)
    assert "closed_reported" in show
    assert "MS001-000001" in show and "MS005-000000" in show
    history = _ok("cases", "history", case_id, "--db", db)
    for text in ("open", "assign", "investigating", "same beneficial owner", "STOR filed", "alice", "bob"):
        assert text in history
    with Store.open(db) as store:
        assert [e.action for e in store.history(case_id)] == [
            "open",
            "priority",
            "add_alerts",
            "assign",
            "status",
            "comment",
            "verdicts",
            "close",
        ]
    assert case_id in _ok("cases", "list", "--db", db, "--status", "closed_reported")


def test_cli_alerts_list_filters(db):
    out = _ok("alerts", "list", "--db", db, "--rule", "spoofing")
    assert "2 alert(s)" in out and "MS005-000001" in out and "MS001-000001" not in out
    assert "3 alert(s)" in _ok("alerts", "list", "--db", db, "--rule", "MS001", "--asset", "BTC-USD")
    assert "3 alert(s)" in _ok("alerts", "list", "--db", db, "--since", "2024-01-01T00:03")
    assert "8 alert(s)" in _ok("alerts", "list", "--db", db, "--status", "new")
    assert "first 2 shown" in _ok("alerts", "list", "--db", db, "--limit", "2")
    assert "complete" in _ok("alerts", "runs", "--db", db)


def test_cli_unknown_ids_and_bad_transitions_exit_2(db):
    assert "case C-nope does not exist" in _refused("cases", "show", "C-nope", "--db", db)
    assert "case C-nope does not exist" in _refused("cases", "history", "C-nope", "--db", db)
    assert "nope-9 do not exist" in _refused(
        "cases", "open", "nope-9", "--title", "t", "--db", db, "--actor", "a"
    )
    out = _ok("cases", "open", "MS001-000002", "--title", "t", "--db", db, "--actor", "a")
    case_id = re.search(r"opened case (C-\S+)", out).group(1)
    assert "cannot go from open to closed_reported" in _refused(
        "cases", "close", case_id, "reported", "--comment", "too quick", "--db", db, "--actor", "a"
    )
    assert "unknown case status" in _refused("cases", "status", case_id, "done", "--db", db, "--actor", "a")
    assert "unknown case status" in _refused("alerts", "list", "--status", "done", "--db", db)


def test_cli_actor_never_falls_back_to_user_env(db, monkeypatch):
    # issue 17: no silent $USER; SQLite needs --actor, PostgreSQL names the database session user
    monkeypatch.setenv("USER", "erin")
    monkeypatch.delenv("MS_ACTOR", raising=False)
    if db.startswith("sqlite"):
        assert "an actor is required" in _refused("cases", "open", "MS001-000003", "--title", "t", "--db", db)
        return
    out = _ok("cases", "open", "MS001-000003", "--title", "t", "--db", db)
    case_id = re.search(r"opened case (C-\S+)", out).group(1)
    with Store.open(db) as store:
        assert store.history(case_id)[0].actor == "postgres"


def test_cli_bad_store_url_exit_2():
    assert "unsupported store URL" in _refused("alerts", "list", "--db", "mysql://nobody/x")
