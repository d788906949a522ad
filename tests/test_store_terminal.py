"""Terminal manners of the command line: 80-column tables, one-line errors, nothing created or written
unless asked, a bare case id on stdout, one status vocabulary, mutes and stats from the CLI."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from typer.testing import CliRunner

from market_surveillance.cli import app
from market_surveillance.store import Store

runner = CliRunner()
NARROW = {"COLUMNS": "80", "MS_STORE_URL": None}


def _run(*args: str, code: int = 0):
    result = runner.invoke(app, list(args), env=NARROW)
    assert result.exit_code == code, result.output
    return result


def _fits_80(text: str) -> None:
    for line in text.splitlines():
        assert len(line) <= 80, line
        assert "…" not in line, line


@pytest.fixture
def db(store_url, make_alerts):
    with Store.open(store_url) as store:
        store.record_run(make_alerts(12), data_source="d", config_hash="h")
        store.record_run(
            make_alerts(3, rule_id="MS012", rule_name="cross_market_divergence"),
            data_source="d",
            config_hash="h",
        )
    return store_url


@pytest.mark.parametrize(
    "args",
    [
        ["alerts", "list"],
        ["alerts", "runs"],
        ["alerts", "stats"],
        ["alerts", "mutes"],
        ["cases", "list"],
        ["cases", "show", "C-x"],
        ["cases", "history", "C-x"],
    ],
    ids=lambda a: " ".join(a),
)
def test_readonly_command_on_missing_store_one_line_error_nothing_created(tmp_path, args):
    missing = tmp_path / "typo" / "alerts.sqlite"
    r = _run(*args, "--db", f"sqlite:///{missing}", code=2)
    assert len(r.stderr.strip().splitlines()) == 1 and "no store at" in r.stderr
    assert r.stdout == ""
    assert not (tmp_path / "typo").exists()


def test_tables_fit_80_columns_without_cutting_ids_or_names(db):
    out = _run("alerts", "list", "--db", db, "--limit", "0").stdout
    _fits_80(out)
    assert "cross_market_divergence" in out and "MS012-000002" in out and "15 alert(s)" in out
    _fits_80(_run("alerts", "stats", "--db", db).stdout)
    _fits_80(_run("alerts", "runs", "--db", db).stdout)
    rules = _run("rules").stdout
    _fits_80(rules)
    from market_surveillance.rules.registry import all_rules

    for rule in all_rules():
        assert rule.rule_id in rules and rule.name in rules
    cid = _run(
        "cases", "open", "MS001-000001", "--title", "a rather long title " * 4, "--db", db, "--actor", "al"
    ).stdout
    _fits_80(_run("cases", "list", "--db", db).stdout)
    _fits_80(_run("cases", "history", cid.strip(), "--db", db).stdout)


def test_cases_open_prints_bare_case_id_and_status_vocabulary_is_one(db):
    r = _run("cases", "open", "MS001-000001", "MS001-000002", "--title", "wash", "--db", db, "--actor", "al")
    cid = r.stdout.strip()
    assert cid.startswith("C-") and "\n" not in cid and cid in r.stderr  # the sentence goes to stderr
    _run("cases", "status", cid, "investigating", "--db", db, "--actor", "al")
    _run("cases", "close", cid, "reported", "--comment", "filed", "--db", db, "--actor", "al")
    for word in ("reported", "closed_reported"):  # what `close` takes, `alerts list` and `cases list` take
        assert "2 alert(s)" in _run("alerts", "list", "--status", word, "--db", db).stdout
        assert cid in _run("cases", "list", "--status", word, "--db", db).stdout
    r = _run("alerts", "list", "--status", "done", "--db", db, code=2)
    assert "unknown case status 'done'" in r.stderr and "reported" in r.stderr
    r = _run("cases", "status", cid, "reported", "--db", db, "--actor", "al", code=2)
    assert "cases close" in r.stderr


def test_cli_close_verdicts_and_stats(db):
    cid = _run(
        "cases", "open", "MS001-000001", "MS001-000002", "--title", "t", "--db", db, "--actor", "al"
    ).stdout.strip()
    r = _run(
        "cases", "close", cid, "false_positive", "--comment", "noise", "--db", db, "--actor", "al", code=2
    )
    assert "needs a reason code" in r.stderr and len(r.stderr.strip().splitlines()) == 1
    _run(
        "cases", "close", cid, "false_positive", "--comment", "noise", "--reason", "legitimate_market_making",
        "--verdict", "MS001-000002=tp:confirmed_internal", "--db", db, "--actor", "al",
    )  # fmt: skip
    with Store.open(db) as s:
        assert {(v["alert_id"], v["verdict"]) for v in s.verdicts(cid)} == {
            ("MS001-000001", "false_positive"),
            ("MS001-000002", "true_positive"),
        }
    out = _run("alerts", "stats", "--db", db).stdout
    line = next(x for x in out.splitlines() if "self_trade" in x)
    assert line.split()[:7] == ["self_trade", "12", "0", "2", "1", "1", "50%"]
    wide = runner.invoke(app, ["alerts", "stats", "--db", db, "--wide"], env={"COLUMNS": "200"}).stdout
    assert "legitimate_market_making" in wide


def test_cli_mute_hides_alerts_from_list_and_is_audited(db):
    r = _run(
        "alerts", "mute", "self_trade", "--account", "acc3", "--owner", "bob", "--reason", "market maker",
        "--for", "30d", "--db", db, "--actor", "al",
    )  # fmt: skip
    mute_id = r.stdout.strip()
    assert mute_id.startswith("M-") and "flagged" in r.stderr
    out = _run("alerts", "list", "--db", db, "--limit", "0").stdout
    # self_trade alerts naming acc3: i = 2, 3, 9, 10
    assert "11 alert(s)" in out and "4 muted alert(s) hidden" in out and "MS001-000003" not in out
    assert "MS001-000003" in _run("alerts", "list", "--db", db, "--muted", "--limit", "0").stdout
    mutes = _run("alerts", "mutes", "--db", db).stdout
    _fits_80(mutes)
    assert mute_id in mutes and "active" in mutes
    _run("alerts", "unmute", mute_id, "--reason", "wrong account", "--db", db, "--actor", "al")
    history = _run("alerts", "mutes", "--history", "--db", db).stdout
    assert "mute" in history and "unmute" in history and "wrong account" in history
    r = _run(
        "alerts", "mute", "self_trade", "--owner", "b", "--reason", "r", "--db", db, "--actor", "al", code=2
    )
    assert "--expires" in r.stderr


def test_evaluate_missing_file_or_unlabelled_data_is_one_line(tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    r = _run("evaluate", "--data", str(data), "--alerts", str(tmp_path / "nope.parquet"), code=2)
    assert len(r.stderr.strip().splitlines()) == 1 and "no such alerts file" in r.stderr
    alerts = tmp_path / "alerts.csv"
    alerts.write_text("alert_id\n")
    r = _run("evaluate", "--data", str(data), "--alerts", str(alerts), code=2)
    assert len(r.stderr.strip().splitlines()) == 1 and "no labels table" in r.stderr
    assert "Traceback" not in r.output


def test_detect_without_out_writes_nothing_in_the_current_directory(demo_dir, tmp_path, monkeypatch):
    work = tmp_path / "cwd"
    work.mkdir()
    monkeypatch.chdir(work)
    store = tmp_path / "store" / "alerts.sqlite"
    r = _run("detect", "--data", str(demo_dir), "--db", f"sqlite:///{store}")
    assert "recorded in" in r.stdout
    assert os.listdir(work) == []
    # the CSV snapshot goes beside the SQLite store, not into ./data
    assert sorted(p.name for p in store.parent.iterdir() if not p.name.startswith(".")) >= [
        "alerts.csv",
        "alerts.sqlite",
    ]
    r = _run("detect", "--data", str(demo_dir))
    assert "nothing written" in r.stdout and os.listdir(work) == []
    assert Path(work).exists()
