"""Comparable priorities, verdicts, per-rule statistics and mutes, on SQLite and PostgreSQL."""

from __future__ import annotations

import datetime as dt
import itertools

import pyarrow as pa
import pyarrow.compute as pc
import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from market_surveillance.store import Store, UnknownIdError
from market_surveillance.store.triage import OPEN_CASE_POINTS, REPORTED_CASE_POINTS

FUTURE = "2999-01-01"


def _scaled(alerts: pa.Table, factor: float, accounts: list[list[str]] | None = None) -> pa.Table:
    """The same alerts with scores multiplied (another rule's unit) and optionally other accounts."""
    t = alerts.set_column(
        alerts.schema.get_field_index("score"), "score", pc.multiply(alerts["score"], factor)
    )
    if accounts is not None:
        i = t.schema.get_field_index("accounts")
        t = t.set_column(i, t.schema.field(i), pa.array(accounts, pa.list_(pa.string())))
    return t


def _isolated(make_alerts, n: int, rule_id: str, rule_name: str, factor: float, tag: str) -> pa.Table:
    """``n`` alerts of one rule with scores 0..9 × factor, each on its own account (no corroboration)."""
    return _scaled(
        make_alerts(n, rule_id=rule_id, rule_name=rule_name), factor, [[f"{tag}{i}"] for i in range(n)]
    )


@pytest.fixture
def store(store_url):
    with Store.open(store_url) as s:
        yield s


def _prio(store: Store) -> dict[str, int]:
    t = store.alerts()
    return dict(zip(t["alert_id"].to_pylist(), t["priority"].to_pylist(), strict=True))


# -- priority ---------------------------------------------------------------------------------------
def test_priority_same_rank_in_rules_of_different_units_gets_same_priority(store, make_alerts):
    # self_trade scores in the thousands, the ML rule in thousandths: raw scores are not comparable
    store.record_run(
        _isolated(make_alerts, 10, "MS001", "self_trade", 1000.0, "a"), data_source="d", config_hash="h"
    )
    store.record_run(
        _isolated(make_alerts, 10, "MS014", "ml_anomaly", 0.001, "b"), data_source="d", config_hash="h"
    )
    p = _prio(store)
    for i in range(10):
        assert p[f"MS001-{i:06d}"] == p[f"MS014-{i:06d}"]
    # mid-rank percentile: the top of ten alerts is at 95 %, so 0.95 × 80 = 76; the lowest at 5 % → 4
    assert p["MS001-000009"] == 76 and p["MS001-000000"] == 4
    assert all(0 <= v <= 100 for v in p.values())


def test_priority_queue_sorts_by_priority_across_rules(store, make_alerts):
    store.record_run(
        _isolated(make_alerts, 10, "MS001", "self_trade", 1000.0, "a"), data_source="d", config_hash="h"
    )
    store.record_run(
        _isolated(make_alerts, 4, "MS014", "ml_anomaly", 0.001, "b"), data_source="d", config_hash="h"
    )
    q = store.queue()
    prios = q["priority"].to_pylist()
    assert prios == sorted(prios, reverse=True)
    # the ML rule's best alert sits near the top although its raw score is a million times smaller
    assert q["alert_id"].to_pylist().index("MS014-000003") <= 2


def test_priority_raised_by_other_rules_and_cases_of_the_same_account(store, make_alerts):
    base = _isolated(make_alerts, 10, "MS001", "self_trade", 1.0, "a")
    store.record_run(base, data_source="d", config_hash="h")
    before = _prio(store)["MS001-000005"]
    # another rule names a5: corroboration +5
    store.record_run(
        _scaled(make_alerts(1, rule_id="MS005", rule_name="spoofing"), 1.0, [["a5"]]),
        data_source="d",
        config_hash="h",
    )
    assert _prio(store)["MS001-000005"] == before + 5
    # two other rules: +10 (capped there)
    for rid, name in (("MS011", "layering"), ("MS013", "network_collusion")):
        store.record_run(
            _scaled(make_alerts(1, rule_id=rid, rule_name=name), 1.0, [["a5"]]),
            data_source="d",
            config_hash="h",
        )
    assert _prio(store)["MS001-000005"] == before + 10
    # a5 in an open case: + OPEN_CASE_POINTS; once that case is reported: + REPORTED_CASE_POINTS
    cid = store.open_case("a5 everywhere", ["MS005-000000"], "alice")
    assert _prio(store)["MS001-000005"] == before + 10 + OPEN_CASE_POINTS
    store.set_status(cid, "investigating", "alice")
    store.close(cid, "reported", "alice", "STOR filed")
    assert _prio(store)["MS001-000005"] == before + 10 + REPORTED_CASE_POINTS
    # an account without any of this keeps its priority
    assert _prio(store)["MS001-000004"] == before - 8


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(scores=st.lists(st.floats(min_value=-1e9, max_value=1e9, allow_nan=False), min_size=1, max_size=25))
def test_priority_within_a_rule_is_monotone_in_score(tmp_path_factory, make_alerts, scores):
    url = f"sqlite:///{tmp_path_factory.mktemp('h') / 'a.sqlite'}"
    n = len(scores)
    alerts = make_alerts(n)
    alerts = alerts.set_column(
        alerts.schema.get_field_index("score"), "score", pa.array(scores, pa.float64())
    )
    i = alerts.schema.get_field_index("accounts")
    alerts = alerts.set_column(
        i, alerts.schema.field(i), pa.array([[f"x{k}"] for k in range(n)], pa.list_(pa.string()))
    )
    with Store.open(url) as s:
        s.record_run(alerts, data_source="d", config_hash="h")
        t = s.alerts()
    pairs = sorted(zip(t["score"].to_pylist(), t["priority"].to_pylist(), strict=True))
    for (s1, p1), (s2, p2) in itertools.pairwise(pairs):
        assert p1 <= p2 if s1 < s2 else p1 == p2
    assert all(0 <= p <= 80 for _, p in pairs)  # no corroboration, no cases: the percentile part only


# -- verdicts and statistics ------------------------------------------------------------------------------
def test_verdict_close_reported_marks_every_alert_true_positive(store, make_alerts):
    store.record_run(make_alerts(4), data_source="d", config_hash="h")
    cid = store.open_case("wash", ["MS001-000001", "MS001-000002"], "alice")
    store.set_status(cid, "investigating", "alice")
    store.close(cid, "reported", "bob", "STOR filed", verdicts={"MS001-000002": ("fp", "duplicate_alert")})
    rows = {r["alert_id"]: (r["verdict"], r["reason"], r["actor"]) for r in store.verdicts(cid)}
    assert rows == {
        "MS001-000001": ("true_positive", "stor_filed", "bob"),
        "MS001-000002": ("false_positive", "duplicate_alert", "bob"),
    }
    history = store.history(cid)
    assert [e.action for e in history[-2:]] == ["verdicts", "close"]
    assert "MS001-000002=false_positive:duplicate_alert" in history[-2].new
    t = store.alerts(alert_ids=["MS001-000001", "MS001-000002"])
    assert dict(zip(t["alert_id"].to_pylist(), t["verdict_reason"].to_pylist(), strict=True)) == {
        "MS001-000001": "stor_filed",
        "MS001-000002": "duplicate_alert",
    }


def test_verdict_false_positive_needs_known_reason_and_changes_nothing_without(store, make_alerts):
    store.record_run(make_alerts(3), data_source="d", config_hash="h")
    cid = store.open_case("noise", ["MS001-000001"], "alice")
    with pytest.raises(ValueError, match="needs a reason code: one of data_quality"):
        store.close(cid, "false_positive", "alice", "noise")
    with pytest.raises(ValueError, match="does not fit a false_positive verdict"):
        store.close(cid, "false_positive", "alice", "noise", reason="stor_filed")
    with pytest.raises(ValueError, match="not in case"):
        store.close(
            cid,
            "false_positive",
            "alice",
            "noise",
            reason="data_quality",
            verdicts={"MS001-000002": ("tp", "other")},
        )
    with pytest.raises(ValueError, match="when a case closes"):
        store.set_status(cid, "investigating", "alice", reason="data_quality")
    assert store.case(cid).status == "open" and store.verdicts(cid) == []
    store.close(cid, "false_positive", "alice", "noise", reason="threshold_too_sensitive")
    assert [r["verdict"] for r in store.verdicts(cid)] == ["false_positive"]


def test_verdict_rows_are_append_only_in_the_database(store, make_alerts):
    store.record_run(make_alerts(2), data_source="d", config_hash="h")
    cid = store.open_case("noise", ["MS001-000001"], "alice")
    store.close(cid, "false_positive", "alice", "noise", reason="data_quality")
    for sql in ("UPDATE alert_verdicts SET verdict = 'true_positive'", "DELETE FROM alert_verdicts"):
        with pytest.raises(sa.exc.DBAPIError, match="append-only"), store.engine.begin() as conn:
            conn.exec_driver_sql(sql)
    assert len(store.verdicts(cid)) == 1


def test_stats_fp_rate_and_time_to_close_per_rule(store, make_alerts):
    store.record_run(make_alerts(6), data_source="d", config_hash="h")
    store.record_run(make_alerts(2, rule_id="MS005", rule_name="spoofing"), data_source="d", config_hash="h")
    noise = store.open_case("noise", ["MS001-000000", "MS001-000001", "MS001-000002"], "alice")
    store.close(noise, "false_positive", "alice", "mm", reason="legitimate_market_making")
    real = store.open_case("real", ["MS001-000003", "MS005-000000"], "alice")
    store.set_status(real, "investigating", "alice")
    store.close(real, "reported", "alice", "filed")
    stats = {s.rule_id: s for s in store.alert_stats()}
    s1, s5 = stats["MS001"], stats["MS005"]
    assert (s1.alerts, s1.in_cases, s1.true_positives, s1.false_positives) == (6, 4, 1, 3)
    assert s1.fp_rate == pytest.approx(0.75)
    assert s1.top_fp_reason == "legitimate_market_making"
    assert s1.median_hours_to_close is not None and 0 <= s1.median_hours_to_close < 1
    assert (s5.alerts, s5.verdicts, s5.fp_rate) == (2, 1, 0.0)
    # --since keeps alerts whose window starts at/after it (fake alerts start one minute apart from 00:00)
    since = {s.rule_id: s for s in store.alert_stats(since="2024-01-01T00:03")}
    assert since["MS001"].alerts == 3 and since["MS001"].false_positives == 0
    # a reopened and re-closed case: the newest verdict counts
    store.set_status(noise, "investigating", "alice", comment="new evidence")
    store.close(noise, "reported", "alice", "filed after all")
    assert {s.rule_id: s for s in store.alert_stats()}["MS001"].fp_rate == 0.0


# -- mutes -----------------------------------------------------------------------------------------------
def test_mute_flags_matching_alerts_keeps_them_stored_and_out_of_the_queue(store, make_alerts):
    store.record_run(make_alerts(14), data_source="d", config_hash="h")  # accounts acc{i%7}, acc{(i+1)%7}
    store.record_run(make_alerts(3, rule_id="MS005", rule_name="spoofing"), data_source="d", config_hash="h")
    in_case = store.open_case("keep", ["MS001-000002"], "alice")  # names acc2: stays in its case
    mute_id, flagged = store.mute(
        "self_trade", account="acc2", owner="bob", reason="market maker", expires=FUTURE, actor="alice"
    )
    # self_trade alerts naming acc2: i = 1, 2, 8, 9; i = 2 is in a case; spoofing is another rule
    assert flagged == 3
    everything = store.alerts()
    muted = everything.filter(pc.is_valid(everything["suppression_id"]))
    assert sorted(muted["alert_id"].to_pylist()) == ["MS001-000001", "MS001-000008", "MS001-000009"]
    assert everything.num_rows == 17  # nothing deleted
    queued = set(store.queue()["alert_id"].to_pylist())
    assert queued.isdisjoint(muted["alert_id"].to_pylist()) and "MS005-000001" in queued
    assert store.case(in_case).alert_ids == ("MS001-000002",)
    # a later run flags new alerts the mute covers as they arrive
    store.record_run(make_alerts(3, start=14), data_source="d", config_hash="h")  # i = 15, 16 name acc2
    assert store.alerts(alert_ids=["MS001-000015"])["suppression_id"].to_pylist() == [mute_id]
    assert store.alerts(alert_ids=["MS001-000014"])["suppression_id"].to_pylist() == [None]
    # lifting it early puts them back in the queue; both steps are audited
    assert store.unmute(mute_id, "carol", "mistake") == 5
    assert "MS001-000008" in set(store.queue()["alert_id"].to_pylist())
    events = store.mute_history()
    assert [(e.action, e.actor) for e in events] == [("mute", "alice"), ("unmute", "carol")]
    assert "owner=bob" in events[0].detail and "market maker" in events[0].detail
    (m,) = store.suppressions()
    assert m.lifted is not None and m.owner == "bob" and m.rule == "MS001"
    with pytest.raises(ValueError, match="already lifted"):
        store.unmute(mute_id, "carol", "again")


def test_mute_on_asset_and_expired_mutes_flag_nothing_new(store, make_alerts):
    from market_surveillance.store.triage import flag_muted

    store.record_run(make_alerts(6), data_source="d", config_hash="h")  # odd i: BTC-USD, even: ETH-USD
    _, flagged = store.mute(
        "MS001", asset="BTC-USD", owner="bob", reason="listing week", expires=FUTURE, actor="al"
    )
    assert flagged == 3
    mute_id, _ = store.mute(
        "MS001", asset="ETH-USD", owner="bob", reason="x", expires="2998-01-01", actor="al"
    )
    with store.engine.begin() as conn:  # put the ETH alerts back in the queue, as if they came in later
        conn.execute(
            sa.text("UPDATE alerts SET suppression_id = NULL WHERE suppression_id = :m"), {"m": mute_id}
        )
    after_expiry = dt.datetime(2998, 1, 1, tzinfo=dt.UTC)
    with store.engine.begin() as conn:
        assert flag_muted(conn, after_expiry) == 0  # expired: flags nothing
        assert flag_muted(conn, after_expiry - dt.timedelta(seconds=1)) == 3  # still active a second before


def test_mute_bad_arguments_refused_and_unknown_id(store, make_alerts):
    store.record_run(make_alerts(2), data_source="d", config_hash="h")
    with pytest.raises(ValueError, match="exactly one asset or one account"):
        store.mute("MS001", asset="BTC-USD", account="acc1", owner="b", reason="r", expires=FUTURE, actor="a")
    with pytest.raises(ValueError, match="exactly one asset or one account"):
        store.mute("MS001", owner="b", reason="r", expires=FUTURE, actor="a")
    with pytest.raises(ValueError, match="not in the future"):
        store.mute("MS001", asset="BTC-USD", owner="b", reason="r", expires="2020-01-01", actor="a")
    with pytest.raises(ValueError, match="unknown rule"):
        store.mute("nope", asset="BTC-USD", owner="b", reason="r", expires=FUTURE, actor="a")
    with pytest.raises(ValueError, match="owner"):
        store.mute("MS001", asset="BTC-USD", owner=" ", reason="r", expires=FUTURE, actor="a")
    with pytest.raises(UnknownIdError, match="mute M-nope does not exist"):
        store.unmute("M-nope", "a", "r")
    assert store.suppressions() == [] and store.mute_history() == []
    store.mute("MS001", asset="BTC-USD", owner="b", reason="r", expires=FUTURE, actor="a")
    for table in ("suppressions", "suppression_events"):
        with pytest.raises(sa.exc.DBAPIError, match="append-only"), store.engine.begin() as conn:
            conn.exec_driver_sql(f"DELETE FROM {table}")
