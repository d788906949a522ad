"""Tamper-evident audit trail (issue 17): hash chains, database clock, cases changed only through events,
fail-closed Store.open, required actor, `cases verify`. SQLite and PostgreSQL (as the owning role; the
app-role tests are in tests/test_store_roles.py)."""

from __future__ import annotations

import datetime as dt
import itertools
import sqlite3
import threading

import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from market_surveillance.cli import app
from market_surveillance.store import Store, StoreError
from market_surveillance.store import core as store_core
from market_surveillance.store.audit import event_hash

runner = CliRunner()


@pytest.fixture
def store(store_url, make_alerts):
    with Store.open(store_url) as s:
        s.record_run(make_alerts(6), data_source="d", config_hash="h")
        yield s


def _worked_case(store: Store) -> str:
    case_id = store.open_case("wash ring", ["MS001-000001", "MS001-000002"], "alice", assignee="bob")
    store.set_status(case_id, "investigating", "bob")
    store.comment(case_id, "shared funding wallet", "bob")
    store.assign(case_id, "carol", "bob")
    return case_id


def _raw(store: Store, sql: str, params: dict | None = None) -> None:
    with store.engine.connect() as conn, conn.begin():
        conn.execute(sa.text(sql), params or {})


def _sqlite_path(store: Store) -> str:
    return str(store.engine.url.database)


def _verify(url: str) -> tuple[int, str]:
    result = runner.invoke(app, ["cases", "verify", "--db", url], env={"COLUMNS": "300"})
    return result.exit_code, result.output


# -- chain ----------------------------------------------------------------------------------------


def test_audit_events_form_one_hash_chain_per_case_verify_ok(store):
    a, b = _worked_case(store), _worked_case(store)
    for case_id in (a, b):
        events = store.history(case_id)
        assert events[0].prev_hash is None
        for before, ev in itertools.pairwise(events):
            assert ev.prev_hash == before.hash
        for ev in events:  # the database's hash is the documented canonical form
            assert ev.hash == event_hash(
                ev.event_id,
                ev.case_id,
                ev.at,
                ev.actor,
                ev.action,
                ev.field,
                ev.old,
                ev.new,
                ev.comment,
                ev.db_user,
                ev.prev_hash,
            )
    report = store.verify()
    assert report.ok and report.cases == 2 and report.events == 2 * len(store.history(a))
    code, out = _verify(store.url)
    assert code == 0 and "intact" in out


def test_audit_case_state_is_the_projection_of_its_events(store):
    case_id = _worked_case(store)
    case = store.case(case_id)
    assert (case.status, case.assignee) == ("investigating", "carol")
    assert case.updated == store.history(case_id)[-1].at


# -- SQLite: forged, backdated, direct changes ----------------------------------------------------


def test_audit_sqlite_backdated_forged_event_refused(tmp_path, make_alerts):
    url = f"sqlite:///{tmp_path / 's.sqlite'}"
    with Store.open(url) as store:
        store.record_run(make_alerts(4), data_source="d", config_hash="h")
        case_id = _worked_case(store)
        n = len(store.history(case_id))
        forged = {"c": case_id, "at": "2020-01-01 09:00:00.000000"}
        with pytest.raises(sa.exc.IntegrityError, match="set by the database clock"):
            _raw(
                store,
                "INSERT INTO case_events (case_id, at, actor, action) VALUES (:c, :at, 'eve', 'comment')",
                forged,
            )
        # a hash chosen by the client is refused too, even with the right time
        with pytest.raises(sa.exc.IntegrityError, match="set by the database"):
            _raw(
                store,
                "INSERT INTO case_events (case_id, at, actor, action, hash) "
                f"VALUES (:c, {store_core.audit.SQLITE_NOW}, 'eve', 'comment', 'abc')",
                {"c": case_id},
            )
        assert len(store.history(case_id)) == n
    # the sqlite3 shell (no ms_event_hash) cannot append events at all
    con = sqlite3.connect(tmp_path / "s.sqlite")
    with pytest.raises(sqlite3.OperationalError, match="ms_event_hash"):
        con.execute(
            "INSERT INTO case_events (case_id, at, actor, action) "
            f"VALUES (?, {store_core.audit.SQLITE_NOW}, 'eve', 'comment')",
            (case_id,),
        )
    con.close()


def test_audit_sqlite_forged_event_with_triggers_dropped_is_found(tmp_path, make_alerts):
    path = tmp_path / "s.sqlite"
    url = f"sqlite:///{path}"
    with Store.open(url) as store:
        store.record_run(make_alerts(4), data_source="d", config_hash="h")
        case_id = _worked_case(store)
        other = _worked_case(store)
        last = store.history(case_id)[-1]
    con = sqlite3.connect(path)
    con.execute("DROP TRIGGER case_events_stamp")
    con.execute("DROP TRIGGER case_events_seal")
    con.execute(
        "INSERT INTO case_events (case_id, at, actor, action, comment, prev_hash, hash) "
        "VALUES (?, '2020-01-01 09:00:00.000000', 'eve', 'comment', 'backdated', ?, 'f00d')",
        (case_id, last.hash),
    )
    con.commit()
    con.close()
    with pytest.raises(StoreError, match="trigger case_events_stamp on case_events is missing"):
        Store.open(url)
    code, out = _verify(url)
    assert code == 1
    forged_id = max(e.event_id for e in Store.open(url, check=False).history(case_id))
    assert f"BROKEN case {case_id} event {forged_id}: hash does not match" in out
    assert other not in out  # the other case's chain is intact


def test_audit_update_cases_refused_and_leaves_no_silent_change(store):
    case_id = _worked_case(store)
    for sql in (
        "UPDATE cases SET status = 'closed_reported' WHERE case_id = :c",
        "UPDATE cases SET assignee = 'mallory' WHERE case_id = :c",
        "UPDATE cases SET title = 'nothing here' WHERE case_id = :c",
    ):
        with pytest.raises(sa.exc.DBAPIError, match="only through case_events"):
            _raw(store, sql, {"c": case_id})
    case = store.case(case_id)
    assert (case.status, case.assignee, case.title) == ("investigating", "carol", "wash ring")
    for sql in ("DELETE FROM cases WHERE case_id = :c", "DELETE FROM case_alerts WHERE case_id = :c"):
        with pytest.raises(sa.exc.DBAPIError, match=r"never deleted|append-only"):
            _raw(store, sql, {"c": case_id})
    assert store.verify().ok


def test_audit_sqlite_delete_cases_with_foreign_keys_off_refused(tmp_path, make_alerts):
    path = tmp_path / "s.sqlite"
    with Store.open(f"sqlite:///{path}") as store:
        store.record_run(make_alerts(4), data_source="d", config_hash="h")
        case_id = _worked_case(store)
    con = sqlite3.connect(path)
    con.execute("PRAGMA foreign_keys = OFF")
    with pytest.raises(sqlite3.IntegrityError, match="never deleted"):
        con.execute("DELETE FROM cases")
    with pytest.raises(sqlite3.IntegrityError, match="append-only"):
        con.execute("DELETE FROM case_events")
    con.close()
    with Store.open(f"sqlite:///{path}") as store:
        assert store.case(case_id).status == "investigating"
        assert store.verify().ok


def test_audit_sqlite_store_connections_have_foreign_keys_on(store):
    if store.engine.dialect.name != "sqlite":
        pytest.skip("SQLite pragma")
    for _ in range(3):  # every pooled connection, not only the first
        with store.engine.connect() as conn:
            assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1


def test_audit_case_changed_behind_the_stores_back_is_named_by_verify(tmp_path, make_alerts):
    path = tmp_path / "s.sqlite"
    url = f"sqlite:///{path}"
    with Store.open(url) as store:
        store.record_run(make_alerts(4), data_source="d", config_hash="h")
        case_id = _worked_case(store)
        events = store.history(case_id)
    con = sqlite3.connect(path)
    for name in ("cases_no_update", "case_events_no_delete", "case_events_no_update"):
        con.execute(f"DROP TRIGGER {name}")
    con.execute("UPDATE case_events SET comment = 'nothing found' WHERE event_id = ?", (events[-2].event_id,))
    con.commit()
    code, out = _verify(url)
    assert code == 1 and f"case {case_id} event {events[-2].event_id}: hash does not match" in out
    # an event removed from the middle breaks the link of the one after it
    con.execute("DELETE FROM case_events WHERE event_id = ?", (events[1].event_id,))
    con.commit()
    code, out = _verify(url)
    assert f"case {case_id} event {events[2].event_id}: prev_hash does not match" in out
    con.close()


def test_audit_newest_events_removed_and_status_edited_named_by_verify(tmp_path, make_alerts):
    path = tmp_path / "s.sqlite"
    url = f"sqlite:///{path}"
    with Store.open(url) as store:
        store.record_run(make_alerts(4), data_source="d", config_hash="h")
        trimmed, edited = _worked_case(store), _worked_case(store)
    con = sqlite3.connect(path)
    con.execute("DROP TRIGGER case_events_no_delete")
    con.execute("DROP TRIGGER cases_no_update")
    con.execute(
        "DELETE FROM case_events WHERE event_id = (SELECT max(event_id) FROM case_events WHERE case_id = ?)",
        (trimmed,),
    )
    con.execute("UPDATE cases SET status = 'closed_false_positive' WHERE case_id = ?", (edited,))
    con.commit()
    con.close()
    code, out = _verify(url)
    assert code == 1
    assert f"case {trimmed}" in out and "chain ends at" in out
    assert f"case {edited}: status is 'closed_false_positive' but its events say 'investigating'" in out


# -- fail closed ------------------------------------------------------------------------------------


def test_audit_store_open_refuses_dropped_trigger(store):
    url = store.url  # test servers use trust auth: no password to hide
    if store.engine.dialect.name == "sqlite":
        _raw(store, "DROP TRIGGER case_events_no_update")
    else:
        _raw(store, "DROP TRIGGER case_events_no_change ON case_events")
    store.dispose()
    with pytest.raises(StoreError) as err:
        Store.open(url)
    msg = str(err.value)
    assert "\n" not in msg and "audit protection removed" in msg and "case_events" in msg


def test_audit_store_open_refuses_disabled_trigger_postgresql(store):
    if store.engine.dialect.name != "postgresql":
        pytest.skip("PostgreSQL triggers can be disabled; SQLite's cannot")
    url = store.url
    _raw(store, "ALTER TABLE cases DISABLE TRIGGER cases_no_update")
    with pytest.raises(StoreError, match="trigger cases_no_update on cases is disabled"):
        Store.open(url)
    _raw(store, "ALTER TABLE cases ENABLE REPLICA TRIGGER cases_no_update")  # fires only in replica mode
    with pytest.raises(StoreError, match="cases_no_update on cases is disabled"):
        Store.open(url)
    code, out = _verify(url)
    assert code == 1 and "PROTECTION trigger cases_no_update on cases is disabled" in out


# -- database clock ---------------------------------------------------------------------------------


def _db_clock(store: Store) -> dt.datetime:
    with store.engine.connect() as conn:
        if conn.dialect.name == "sqlite":
            return dt.datetime.fromisoformat(
                conn.exec_driver_sql("SELECT strftime('%Y-%m-%d %H:%M:%f', 'now')").scalar()
            ).replace(tzinfo=dt.UTC)
        return conn.execute(sa.text("SELECT clock_timestamp()")).scalar_one()


def test_audit_event_times_come_from_the_database_clock(store, monkeypatch):
    # a client whose clock is 25 years behind: the audit trail must not care
    monkeypatch.setattr(store_core, "_now", lambda: dt.datetime(2001, 1, 1, tzinfo=dt.UTC))
    case_id = store.open_case("t", ["MS001-000001"], "alice")
    store.comment(case_id, "x", "alice")
    server = _db_clock(store)
    case = store.case(case_id)
    for ev in store.history(case_id):
        assert abs(ev.at - server) < dt.timedelta(minutes=1)
    assert abs(case.created - server) < dt.timedelta(minutes=1)
    assert abs(case.updated - server) < dt.timedelta(minutes=1)


def test_audit_postgresql_client_supplied_time_is_overwritten(store):
    if store.engine.dialect.name != "postgresql":
        pytest.skip("SQLite refuses it instead (test_audit_sqlite_backdated_forged_event_refused)")
    case_id = store.open_case("t", ["MS001-000001"], "alice")
    _raw(
        store,
        "INSERT INTO case_events (case_id, at, actor, action, hash, db_user) "
        "VALUES (:c, '2001-01-01T00:00:00Z', 'eve', 'comment', 'f00d', 'alice')",
        {"c": case_id},
    )
    ev = store.history(case_id)[-1]
    assert ev.at.year == _db_clock(store).year and ev.hash != "f00d" and ev.db_user == "postgres"
    assert store.verify().ok


# -- actor -------------------------------------------------------------------------------------------


def test_audit_empty_actor_refused_everywhere(store):
    for actor in ("", "   "):
        with pytest.raises(ValueError, match="actor must be a non-empty string"):
            store.open_case("t", ["MS001-000001"], actor)
    case_id = store.open_case("t", ["MS001-000001"], "alice")
    with pytest.raises(sa.exc.DBAPIError, match="actor must not be empty"):
        if store.engine.dialect.name == "sqlite":
            _raw(
                store,
                "INSERT INTO case_events (case_id, at, actor, action) "
                f"VALUES (:c, {store_core.audit.SQLITE_NOW}, ' ', 'comment')",
                {"c": case_id},
            )
        else:
            _raw(
                store,
                "INSERT INTO case_events (case_id, at, actor, action) VALUES (:c, now(), '', 'comment')",
                {"c": case_id},
            )
    result = runner.invoke(app, ["cases", "comment", case_id, "hi", "--db", store.url, "--actor", ""])
    assert result.exit_code == 2 and "--actor must not be empty" in result.output


def test_audit_missing_actor_is_not_user_on_sqlite_and_session_user_on_postgresql(store, monkeypatch):
    monkeypatch.setenv("USER", "someone_else")
    monkeypatch.delenv("MS_ACTOR", raising=False)
    case_id = store.open_case("t", ["MS001-000001"], "alice")
    url = store.url
    result = runner.invoke(app, ["cases", "comment", case_id, "hi", "--db", url], env={"COLUMNS": "300"})
    last = store.history(case_id)[-1]
    if store.engine.dialect.name == "sqlite":
        assert result.exit_code == 2 and "an actor is required" in result.output
        assert last.action != "comment"
    else:
        assert result.exit_code == 0, result.output
        assert (last.action, last.actor, last.db_user) == ("comment", "postgres", "postgres")
    assert "someone_else" not in [e.actor for e in store.history(case_id)]
    # $MS_ACTOR is an explicit choice, not a fallback
    result = runner.invoke(app, ["cases", "comment", case_id, "hi", "--db", url], env={"MS_ACTOR": "dora"})
    assert result.exit_code == 0 and store.history(case_id)[-1].actor == "dora"


# -- concurrency and upgrades -------------------------------------------------------------------------


def test_audit_concurrent_writers_on_one_case_keep_one_chain(store):
    case_id = store.open_case("t", ["MS001-000001"], "alice")
    errors: list[BaseException] = []

    def work(i: int) -> None:
        try:
            for j in range(5):
                store.comment(case_id, f"{i}-{j}", f"analyst{i}")
        except BaseException as exc:  # reported by the assert below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert len([e for e in store.history(case_id) if e.action == "comment"]) == 30
    assert store.verify().ok


def test_audit_upgrade_from_0002_chains_existing_events(tmp_path, make_alerts):
    from alembic import command
    from alembic.config import Config

    url = f"sqlite:///{tmp_path / 'old.sqlite'}"
    engine = store_core._make_engine(url)
    cfg = Config()
    cfg.set_main_option("script_location", str(store_core.MIGRATIONS))
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, "0002")
        # a case worked before 0003, written the way the old store wrote it (client clock, no hashes)
        conn.execute(
            sa.text(
                "INSERT INTO cases (case_id, title, status, assignee, priority, created, updated) "
                "VALUES ('C-old', 'old', 'investigating', 'bob', 'medium', '2026-01-01 10:00:00.000000', "
                "'2026-01-01 11:00:00.000000')"
            )
        )
        for i, (action, field, new) in enumerate(
            [("open", "status", "open"), ("assign", "assignee", "bob"), ("status", "status", "investigating")]
        ):
            conn.execute(
                sa.text(
                    "INSERT INTO case_events (case_id, at, actor, action, field, new) "
                    "VALUES ('C-old', :at, 'alice', :a, :f, :n)"
                ),
                {"at": f"2026-01-01 1{i}:00:00.000000", "a": action, "f": field, "n": new},
            )
    engine.dispose()
    with Store.open(url) as store:
        assert store.verify().ok
        store.set_status("C-old", "escalated", "bob")
        assert store.case("C-old").status == "escalated"
        events = store.history("C-old")
        assert events[-1].prev_hash == events[-2].hash
        assert store.verify().ok


# -- the database's hash is the documented one, for any text ---------------------------------------------

_TEXT = st.text(
    alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"), min_size=1, max_size=60
).filter(lambda s: s.strip())


@pytest.fixture(scope="module")
def chain_store(module_store_url):
    with Store.open(module_store_url) as s:
        yield s


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(actor=_TEXT, comment=_TEXT, assignee=_TEXT)
def test_audit_database_hash_matches_event_hash_for_any_text(chain_store, actor, comment, assignee):
    # separators, length prefixes, unicode beyond the BMP, quotes: the trigger (PL/pgSQL or the SQLite
    # function) and audit.event_hash must agree byte for byte, or verify would cry wolf
    case_id = chain_store.open_case(comment, [], actor, assignee=assignee, comment=comment)
    chain_store.comment(case_id, comment, actor)
    for ev in chain_store.history(case_id):
        assert ev.hash == event_hash(
            ev.event_id,
            ev.case_id,
            ev.at,
            ev.actor,
            ev.action,
            ev.field,
            ev.old,
            ev.new,
            ev.comment,
            ev.db_user,
            ev.prev_hash,
        )
