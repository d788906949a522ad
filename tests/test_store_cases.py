"""Case workflow and audit trail on SQLite and PostgreSQL."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from market_surveillance.enums import CasePriority, CaseStatus
from market_surveillance.store import CLOSED, TRANSITIONS, Store, TransitionError, UnknownIdError

ALL_PAIRS = [(old, new) for old in CaseStatus for new in CaseStatus if new != old]
ALLOWED = [(old, new) for old, new in ALL_PAIRS if new in TRANSITIONS[old]]
REFUSED = [(old, new) for old, new in ALL_PAIRS if new not in TRANSITIONS[old]]

# a path from `open` to every status, through allowed transitions only
PATH_TO = {
    CaseStatus.OPEN: [],
    CaseStatus.INVESTIGATING: [CaseStatus.INVESTIGATING],
    CaseStatus.ESCALATED: [CaseStatus.ESCALATED],
    CaseStatus.CLOSED_FALSE_POSITIVE: [CaseStatus.CLOSED_FALSE_POSITIVE],
    CaseStatus.CLOSED_REPORTED: [CaseStatus.INVESTIGATING, CaseStatus.CLOSED_REPORTED],
}


@pytest.fixture(scope="module")
def store(module_store_url, make_alerts):
    """One store per module and backend: every test works on cases it opens itself."""
    with Store.open(module_store_url) as s:
        s.record_run(make_alerts(10), data_source="d", config_hash="h")
        yield s


@pytest.fixture
def fresh_store(store_url, make_alerts):
    with Store.open(store_url) as s:
        s.record_run(make_alerts(10), data_source="d", config_hash="h")
        yield s


def _case_in(store: Store, status: CaseStatus) -> str:
    case_id = store.open_case("wash ring", ["MS001-000001", "MS001-000002"], "alice")
    for step in PATH_TO[status]:
        reason = "data_quality" if step == CaseStatus.CLOSED_FALSE_POSITIVE else None
        store.set_status(case_id, step, "alice", comment="setup", reason=reason)
    assert store.case(case_id).status == status
    return case_id


def test_workflow_every_status_reachable_and_some_refused():
    reachable = {CaseStatus.OPEN}
    for _ in CaseStatus:
        reachable |= {n for s in reachable for n in TRANSITIONS[s]}
    assert reachable == set(CaseStatus)
    assert TRANSITIONS[CaseStatus.CLOSED_REPORTED] == frozenset()  # a filed report is final
    assert CaseStatus.CLOSED_REPORTED not in TRANSITIONS[CaseStatus.OPEN]  # reporting needs investigation


def test_open_case_writes_case_links_and_audit_rows(store):
    case_id = store.open_case(
        "layering on BTC",
        ["MS001-000003", "MS001-000004", "MS001-000003"],
        "alice",
        assignee="bob",
        priority="high",
    )
    case = store.case(case_id)
    assert (case.status, case.assignee, case.priority, case.title) == (
        CaseStatus.OPEN,
        "bob",
        CasePriority.HIGH,
        "layering on BTC",
    )
    assert case.alert_ids == ("MS001-000003", "MS001-000004")
    events = store.history(case_id)
    assert [(e.action, e.field, e.old, e.new) for e in events] == [
        ("open", "status", None, "open"),
        ("priority", "priority", None, "high"),
        ("add_alerts", "alerts", None, "MS001-000003,MS001-000004"),
        ("assign", "assignee", None, "bob"),
    ]
    assert {e.actor for e in events} == {"alice"}
    assert [e.event_id for e in events] == sorted(e.event_id for e in events)


@pytest.mark.parametrize(("old", "new"), ALLOWED, ids=[f"{o}->{n}" for o, n in ALLOWED])
def test_case_allowed_transition_changes_status_with_audit_row(store, old, new):
    case_id = _case_in(store, old)
    before = store.case(case_id)
    n_events = len(store.history(case_id))
    reason = "known_benign_pattern" if new == CaseStatus.CLOSED_FALSE_POSITIVE else None
    store.set_status(case_id, new, "carol", comment=f"to {new}", reason=reason)
    after = store.case(case_id)
    assert after.status == new
    assert after.updated >= before.updated
    events = store.history(case_id)
    # closing also records the alerts' verdicts, as one event just before the close
    assert len(events) == n_events + (2 if new in CLOSED else 1)
    last = events[-1]
    assert (last.actor, last.field, last.old, last.new, last.comment) == (
        "carol",
        "status",
        old.value,
        new.value,
        f"to {new}",
    )
    expected_action = "close" if new in CLOSED else "reopen" if old in CLOSED else "status"
    assert last.action == expected_action


@pytest.mark.parametrize(("old", "new"), REFUSED, ids=[f"{o}->{n}" for o, n in REFUSED])
def test_case_refused_transition_raises_and_changes_nothing(store, old, new):
    case_id = _case_in(store, old)
    n_events = len(store.history(case_id))
    with pytest.raises(TransitionError, match=f"cannot go from {old.value} to {new.value}"):
        store.set_status(case_id, new, "carol", comment="try", reason="other" if new in CLOSED else None)
    assert store.case(case_id).status == old
    assert len(store.history(case_id)) == n_events


def test_case_close_needs_comment_and_known_resolution(store):
    case_id = _case_in(store, CaseStatus.INVESTIGATING)
    with pytest.raises(ValueError, match="needs a comment"):
        store.close(case_id, "reported", "alice", "  ")
    with pytest.raises(ValueError, match="unknown resolution"):
        store.close(case_id, "dismissed", "alice", "no")
    store.close(case_id, "reported", "alice", "STOR filed with the regulator")
    assert store.case(case_id).status == CaseStatus.CLOSED_REPORTED
    assert store.history(case_id)[-1].comment == "STOR filed with the regulator"


def test_case_assign_comment_priority_add_alerts_each_audited(store):
    case_id = _case_in(store, CaseStatus.OPEN)
    store.assign(case_id, "bob", "alice")
    store.assign(case_id, "bob", "alice")  # no change, no audit row
    store.assign(case_id, "dave", "bob", comment="holiday")
    store.comment(case_id, "counterparty is a known MM", "dave")
    store.set_priority(case_id, "critical", "dave")
    store.add_alerts(case_id, ["MS001-000002", "MS001-000007"], "dave")
    rows = [(e.actor, e.action, e.field, e.old, e.new, e.comment) for e in store.history(case_id)[3:]]
    assert rows == [
        ("alice", "assign", "assignee", None, "bob", None),
        ("bob", "assign", "assignee", "bob", "dave", "holiday"),
        ("dave", "comment", None, None, None, "counterparty is a known MM"),
        ("dave", "priority", "priority", "medium", "critical", None),
        ("dave", "add_alerts", "alerts", None, "MS001-000007", None),
    ]
    case = store.case(case_id)
    assert (case.assignee, case.priority) == ("dave", CasePriority.CRITICAL)
    assert case.alert_ids == ("MS001-000001", "MS001-000002", "MS001-000007")


@pytest.mark.parametrize("closed", sorted(CLOSED))
def test_closed_case_refuses_edits_but_takes_comments(store, closed):
    case_id = _case_in(store, CaseStatus(closed))
    with pytest.raises(TransitionError, match="reopen it"):
        store.assign(case_id, "bob", "alice")
    with pytest.raises(TransitionError, match="reopen it"):
        store.add_alerts(case_id, ["MS001-000005"], "alice")
    store.comment(case_id, "regulator acknowledged", "alice")
    assert store.history(case_id)[-1].action == "comment"


def test_case_unknown_ids_raise_clear_errors(fresh_store):
    store = fresh_store
    for call in (
        lambda: store.case("C-nope"),
        lambda: store.history("C-nope"),
        lambda: store.assign("C-nope", "bob", "alice"),
        lambda: store.comment("C-nope", "x", "alice"),
        lambda: store.set_status("C-nope", "investigating", "alice"),
        lambda: store.close("C-nope", "false_positive", "alice", "noise", reason="other"),
    ):
        with pytest.raises(UnknownIdError, match="case C-nope does not exist"):
            call()
    with pytest.raises(UnknownIdError, match="alert\\(s\\) nope-1 do not exist"):
        store.open_case("t", ["MS001-000001", "nope-1"], "alice")
    assert store.cases() == []  # the refused open left nothing behind


def test_case_bad_arguments_raise_value_errors(store):
    with pytest.raises(ValueError, match="title"):
        store.open_case(" ", ["MS001-000001"], "alice")
    with pytest.raises(ValueError, match="actor"):
        store.open_case("t", ["MS001-000001"], "")
    with pytest.raises(ValueError, match="unknown priority"):
        store.open_case("t", ["MS001-000001"], "alice", priority="urgent")
    case_id = _case_in(store, CaseStatus.OPEN)
    with pytest.raises(ValueError, match="unknown case status 'done'"):
        store.set_status(case_id, "done", "alice")


def test_cases_listing_filters_by_status_and_assignee(fresh_store):
    store = fresh_store
    a = _case_in(store, CaseStatus.OPEN)
    b = _case_in(store, CaseStatus.INVESTIGATING)
    store.assign(b, "bob", "alice")
    assert {c.case_id for c in store.cases()} == {a, b}
    assert [c.case_id for c in store.cases(status="investigating")] == [b]
    assert [c.case_id for c in store.cases(assignee="bob")] == [b]


@pytest.mark.parametrize("statement", ["UPDATE case_events SET actor = 'mallory'", "DELETE FROM case_events"])
def test_audit_rows_refuse_update_and_delete_in_database(store, statement):
    case_id = _case_in(store, CaseStatus.INVESTIGATING)
    before = store.history(case_id)
    with pytest.raises(sa.exc.DBAPIError, match="append-only"), store.engine.begin() as conn:
        conn.execute(sa.text(statement + " WHERE case_id = :c"), {"c": case_id})
    assert store.history(case_id) == before


def test_audit_rows_have_no_api_to_change_them():
    public = {name for name in dir(Store) if not name.startswith("_")}
    assert not {n for n in public if any(w in n for w in ("delete", "remove", "edit", "update", "purge"))}
