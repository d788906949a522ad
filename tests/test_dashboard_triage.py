"""Triage widget: its button handlers drive the store, and the store (not the widget) holds the outcome."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pytest

from market_surveillance import testing as tb
from market_surveillance.alerts import ALERT_SCHEMA
from market_surveillance.dashboard.queue import queue
from market_surveillance.dashboard.triage import NEW, TriageWidget
from market_surveillance.pipeline import DetectResult
from market_surveillance.store import Store, record_detection


def _alert(alert_id: str, rule_name: str, asset: str, score: float, start: float) -> dict:
    return {
        "alert_id": alert_id,
        "rule_id": {"self_trade": "MS001", "spoofing": "MS005"}[rule_name],
        "rule_name": rule_name,
        "typology": {"self_trade": "wash_trading", "spoofing": "spoofing"}[rule_name],
        "asset": asset,
        "venue": "EXA",
        "accounts": ["A1"],
        "window_start": tb.at(start),
        "window_end": tb.at(start + 60),
        "detected_at": tb.at(start + 60),
        "score": score,
        "metric": "m",
        "value": 2.0,
        "threshold": 1.0,
        "evidence_trade_ids": ["T1"],
        "evidence_order_ids": [],
        "explanation": None,
    }


@pytest.fixture
def store(tmp_path: Path) -> Store:
    url = f"sqlite:///{tmp_path / 'alerts.sqlite'}"
    alerts = pa.Table.from_pylist(
        [
            _alert("a-wash-1", "self_trade", "BTC-USD", 5.0, 0),
            _alert("a-wash-2", "self_trade", "ETH-USD", 3.0, 600),
            _alert("a-spoof-1", "spoofing", "BTC-USD", 9.0, 1200),
        ],
        schema=ALERT_SCHEMA,
    )
    record_detection(
        url, DetectResult(alerts), data_source="test", config_path=None, csv_snapshot=tmp_path / "alerts.csv"
    )
    s = Store.open(url)
    yield s
    s.dispose()


def _listed(widget: TriageWidget) -> list[str]:
    return [v for _, v in widget.selection.options]


def test_triage_widget_filters_read_alerts_from_store(store):
    w = TriageWidget(store, actor="alice")
    # queue order: the store's 0-100 priority (else the score percentile within the rule), then score
    rows = queue(store.alerts().to_pandas())
    expected = sorted(rows.itertuples(), key=lambda r: (-r.priority, -r.score, r.alert_id))
    assert _listed(w) == [r.alert_id for r in expected]
    assert set(_listed(w)) == {"a-spoof-1", "a-wash-1", "a-wash-2"}
    w.rule.value = "self_trade"
    assert _listed(w) == ["a-wash-1", "a-wash-2"]
    w.asset.value = "ETH-USD"
    assert _listed(w) == ["a-wash-2"]
    w.rule.value, w.asset.value = "(all)", "(all)"
    w.typology.value = "spoofing"
    assert _listed(w) == ["a-spoof-1"]
    w.typology.value = "(all)"
    w.min_score.value = 4.0
    assert _listed(w) == [x for x in [r.alert_id for r in expected] if x != "a-wash-2"]  # score 3 left out


def test_triage_widget_open_work_and_close_case_lands_in_store_with_audit_rows(store, tmp_path):
    w = TriageWidget(store, actor="alice")
    w.rule.value = "self_trade"
    w.selection.value = ("a-wash-1", "a-wash-2")
    w.title.value = "wash ring BTC/ETH"
    w.on_open_case(w.open_button)
    case_id = w.case_id
    assert case_id is not None, w.message.value

    w.assignee.value = "bob"
    w.on_assign(w.assign_button)
    w.comment_text.value = "same device on both accounts"
    w.on_comment(w.comment_button)
    w.status.value = "investigating"
    w.on_set_status(w.status_button)
    w.resolution.value = "reported"
    w.comment_text.value = "STOR filed"
    w.on_close(w.close_button)

    # the store, reopened from disk, holds the outcome: the widget is not the source of truth
    fresh = Store.open(store.url)
    case = fresh.case(case_id)
    assert case.status == "closed_reported"
    assert case.assignee == "bob"
    assert sorted(case.alert_ids) == ["a-wash-1", "a-wash-2"]
    history = fresh.history(case_id)
    actions = [e.action for e in history]
    assert actions[0] == "open" and actions[-1] == "close"
    assert {"assign", "comment", "status"} <= set(actions)
    assert {e.actor for e in history} == {"alice"}
    assert any(e.action == "comment" and e.comment == "same device on both accounts" for e in history)
    assert history[-1].comment == "STOR filed" and history[-1].new == "closed_reported"
    # alerts now in a case no longer appear under "new"
    w.rule.value = "(all)"
    w.alert_status.value = NEW
    assert _listed(w) == ["a-spoof-1"]
    # the widget shows what the store holds
    assert "closed_reported" in w.case_view.value and "STOR filed" in w.case_view.value
    fresh.dispose()


def test_triage_widget_refused_action_is_shown_and_store_unchanged(store):
    w = TriageWidget(store, actor="alice")
    w.selection.value = ("a-spoof-1",)
    w.on_open_case()
    case_id = w.case_id
    # closing without a reason is refused by the store; the callback must not raise
    w.comment_text.value = ""
    w.on_close()
    assert "refused" in w.message.value
    assert store.case(case_id).status == "open"
    # closing as reported straight from open is not an allowed transition
    w.comment_text.value = "looks bad"
    w.resolution.value = "reported"
    w.on_close()
    assert "refused" in w.message.value
    assert store.case(case_id).status == "open"
    assert [e.action for e in store.history(case_id)] == ["open", "priority", "add_alerts"]


def test_triage_widget_actions_without_case_or_selection_do_nothing(store):
    w = TriageWidget(store, actor="alice")
    w.on_open_case()
    assert "select at least one alert" in w.message.value
    w.on_assign()
    assert "open or pick a case first" in w.message.value
    assert store.cases() == []


def test_triage_widget_add_selected_alerts_to_open_case(store):
    w = TriageWidget(store, actor="alice")
    w.selection.value = ("a-wash-1",)
    w.on_open_case()
    w.selection.value = ("a-wash-2", "a-spoof-1")
    w.on_add_alerts()
    assert sorted(store.case(w.case_id).alert_ids) == ["a-spoof-1", "a-wash-1", "a-wash-2"]
    assert [e.action for e in store.history(w.case_id)].count("add_alerts") == 2


def test_triage_widget_picking_a_stored_case_shows_its_history(store):
    case_id = store.open_case("from the CLI", ["a-wash-1"], "carol")
    w = TriageWidget(store, actor="alice")
    assert case_id in [v for _, v in w.case_pick.options]
    w.case_pick.value = case_id
    assert w.case_id == case_id
    assert "from the CLI" in w.case_view.value and "carol" in w.case_view.value


def test_triage_widget_without_actor_refuses_on_sqlite_never_invents_one(store):
    w = TriageWidget(store)  # issue 17: no "analyst" or $USER stand-in
    assert w.actor.value == ""
    w.selection.value = ("a-wash-1",)
    w.title.value = "t"
    w.on_open_case(w.open_button)
    assert w.case_id is None and "an actor is required" in w.message.value
    assert store.cases() == []
    w.actor.value = "dora"
    w.on_open_case(w.open_button)
    assert w.case_id is not None and store.history(w.case_id)[0].actor == "dora"


def test_triage_widget_shows_stored_status_and_readable_audit_after_close(store):
    w = TriageWidget(store, actor="alice")
    w.selection.value = ("a-wash-1",)
    w.on_open_case()
    w.status.value = "investigating"
    w.on_set_status()
    w.comment_text.value = "filed"
    w.resolution.value = "reported"
    w.on_close()
    # the status control follows the store (it used to keep showing "investigating")
    assert w.status.value == "closed_reported" and w.status.options == ("closed_reported",)
    label = dict((v, k) for k, v in w.case_pick.options)[w.case_id]
    assert "closed_reported" in label
    view = w.case_view.value
    assert "NaN" not in view and "None" not in view
    # audit timestamps to the second, not microseconds
    import re

    assert re.search(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d<", view)
    assert not re.search(r"\d\d:\d\d:\d\d\.\d{6}", view)


def test_triage_widget_queue_label_without_venue_has_no_nan(tmp_path):
    url = f"sqlite:///{tmp_path / 'alerts.sqlite'}"
    row = {**_alert("a-x", "self_trade", "PUMP-USD", 1.0, 0), "venue": None}
    record_detection(
        url,
        DetectResult(pa.Table.from_pylist([row], schema=ALERT_SCHEMA)),
        data_source="test",
        config_path=None,
        csv_snapshot=tmp_path / "alerts.csv",
    )
    s = Store.open(url)
    try:
        label = TriageWidget(s).selection.options[0][0]
    finally:
        s.dispose()
    assert " PUMP-USD " in label and "nan" not in label


@pytest.fixture(scope="module")
def demo_run(demo_dir: Path, tmp_path_factory: pytest.TempPathFactory):
    """A private copy of the demo run (the widget writes cases into its store)."""
    import shutil

    from market_surveillance.dashboard import load_run

    d = tmp_path_factory.mktemp("triage-demo") / "data"
    shutil.copytree(demo_dir, d)
    run = load_run(d, f"sqlite:///{d / 'alerts.sqlite'}")
    yield run
    run.store.dispose()


def test_triage_widget_selecting_an_alert_redraws_its_drill_down(demo_run):
    w = TriageWidget(demo_run.store, actor="alice", run=demo_run)
    first = w.focus_id
    assert first == w.selection.options[0][1]  # opens on the top of the queue
    title = w.drill_out.outputs[0]["data"]["text/plain"]
    assert first[:10] in title
    other = next(
        v for label, v in w.selection.options if label.split()[2] != w.selection.options[0][0].split()[2]
    )
    w.selection.value = (other,)
    assert w.focus_id == other
    new_title = w.drill_out.outputs[0]["data"]["text/plain"]
    assert new_title != title and other[:10] in new_title
    fig = w.drill_out.outputs[0]["data"]["application/vnd.plotly.v1+json"]
    assert {t.get("name") for t in fig["data"]} >= {"buy aggressor", "sell aggressor"}
    assert "Order-book replay" in w.replay_out.outputs[0]["data"]["text/plain"]
    assert "profile" in w.accounts_view.value and "evidence trades" in w.evidence_view.value
    # adding a second alert to the selection focuses the one just clicked
    w.selection.value = (other, first)
    assert w.focus_id == first


def test_triage_widget_close_as_false_positive_records_the_reason_code_as_verdict(store):
    w = TriageWidget(store, actor="alice")
    assert "legitimate_market_making" in [v for _, v in w.reason.options]
    w.selection.value = ("a-wash-1", "a-wash-2")
    w.on_open_case()
    w.resolution.value = "false_positive"
    w.comment_text.value = "market maker quoting both sides"
    w.on_close()  # no reason code: a false positive needs one
    assert "refused" in w.message.value
    w.reason.value = "legitimate_market_making"
    w.on_close()
    assert "refused" not in w.message.value, w.message.value
    got = store.alerts(alert_ids=["a-wash-1", "a-wash-2"]).to_pylist()
    assert {(a["verdict"], a["verdict_reason"]) for a in got} == {
        ("false_positive", "legitimate_market_making")
    }
