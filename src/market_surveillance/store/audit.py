"""Tamper evidence for the case audit trail: the event hash chain, the protection check, ``verify``.

Each ``case_events`` row carries ``prev_hash`` (the ``hash`` of the case's previous event, NULL for its
first) and ``hash`` = sha256 of the row's content and ``prev_hash``. There is one chain per case: a case's
chain is checked on its own, a broken link names the case and the event, and writers of different cases
never wait for each other. The chain head is anchored in ``cases.last_event_id``, so removing a case's
newest events is noticed too.

The database computes the hash, the event time and (PostgreSQL) the session user in triggers created by
migration 0003; a client cannot supply them. On SQLite the hash function is :func:`event_hash`, registered
on every connection the store opens as ``ms_event_hash``; on PostgreSQL the same canonical form is built in
PL/pgSQL with the built-in ``sha256``. :func:`verify` recomputes every chain from the stored rows.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
from collections.abc import Iterator
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from market_surveillance.store.errors import StoreError

#: SQL (SQLite) for the database's clock in the text form the store keeps timestamps in (microseconds)
SQLITE_NOW = "strftime('%Y-%m-%d %H:%M:%f', 'now') || '000'"

#: triggers :meth:`Store.open` requires, per dialect and table (migration 0003 and later create them)
_TRIAGE_APPEND_ONLY = ("suppressions", "suppression_events", "alert_verdicts", "case_evidence")
PROTECTED_TRIGGERS: dict[str, dict[str, tuple[str, ...]]] = {
    "sqlite": {
        "case_events": (
            "case_events_no_update",
            "case_events_no_delete",
            "case_events_stamp",
            "case_events_seal",
        ),
        "cases": ("cases_insert_guard", "cases_no_update", "cases_no_delete"),
        "case_alerts": ("case_alerts_no_update", "case_alerts_no_delete"),
        "alert_supersessions": ("alert_supersessions_no_update", "alert_supersessions_no_delete"),
        # migration 0004: mutes, their audit, verdicts and frozen report evidence are append-only
        **{t: (f"{t}_no_update", f"{t}_no_delete") for t in _TRIAGE_APPEND_ONLY},
    },
    "postgresql": {
        "case_events": (
            "case_events_no_change",
            "case_events_no_truncate",
            "case_events_stamp",
            "case_events_project",
        ),
        "cases": ("cases_insert_guard", "cases_no_update", "cases_no_delete", "cases_no_truncate"),
        "case_alerts": ("case_alerts_no_change", "case_alerts_no_truncate"),
        "alert_supersessions": ("alert_supersessions_no_change", "alert_supersessions_no_truncate"),
        **{t: (f"{t}_no_change", f"{t}_no_truncate") for t in _TRIAGE_APPEND_ONLY},
    },
}

#: PostgreSQL privileges of the application role beyond the default ``SELECT, INSERT`` on every table.
#: ``case_events`` keeps exactly SELECT, INSERT; alerts and runs are upserted and finished by detection.
APP_PRIVILEGES: dict[str, str] = {
    "alerts": "SELECT, INSERT, UPDATE",
    "runs": "SELECT, INSERT, UPDATE",
    "alembic_version": "SELECT",
}

_CASE_FIELDS = ("status", "assignee", "priority")


def canonical_at(value: dt.datetime | str) -> str:
    """An event time as hashed: UTC, ``YYYY-MM-DD HH:MM:SS.ffffff`` (naive values are UTC)."""
    if isinstance(value, str):
        value = dt.datetime.fromisoformat(value)
    if value.tzinfo is not None:
        value = value.astimezone(dt.UTC).replace(tzinfo=None)
    return value.strftime("%Y-%m-%d %H:%M:%S.%f")


def _part(value: object) -> str:
    # length-prefixed, so that no two different rows can produce the same text; NULL is "~"
    if value is None:
        return "~"
    s = str(value)
    return f"{len(s)}:{s}"


def event_hash(
    event_id: int,
    case_id: str,
    at: dt.datetime | str,
    actor: str,
    action: str,
    field: str | None,
    old: str | None,
    new: str | None,
    comment: str | None,
    db_user: str | None,
    prev_hash: str | None,
) -> str:
    """sha256 (hex) of one event's content and its predecessor's hash (the PL/pgSQL trigger mirrors this)."""
    text = "".join(
        _part(v)
        for v in (
            event_id,
            case_id,
            canonical_at(at),
            actor,
            action,
            field,
            old,
            new,
            comment,
            db_user,
            prev_hash,
        )
    )
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def register_sqlite_functions(dbapi_conn: Any) -> None:
    """Make ``ms_event_hash`` available to the SQLite triggers on this connection."""
    dbapi_conn.create_function("ms_event_hash", 11, event_hash, deterministic=True)


# ---------------------------------------------------------------------------------------------
# Protection check (Store.open fails closed)
# ---------------------------------------------------------------------------------------------


def protection_problems(conn: Connection) -> list[str]:
    """What is missing of the database-side protection, one short sentence each (empty: all in place)."""
    dialect = conn.dialect.name
    expected = PROTECTED_TRIGGERS.get(dialect, {})
    problems: list[str] = []
    if dialect == "sqlite":
        if conn.exec_driver_sql("PRAGMA foreign_keys").scalar() != 1:
            problems.append("foreign keys are off on this connection")
        have = {
            (tbl, name)
            for name, tbl in conn.exec_driver_sql(
                "SELECT name, tbl_name FROM sqlite_master WHERE type = 'trigger'"
            )
        }
        enabled = have
    else:
        rows = conn.execute(
            sa.text(
                "SELECT c.relname, t.tgname, t.tgenabled FROM pg_trigger t "
                "JOIN pg_class c ON c.oid = t.tgrelid "
                "WHERE NOT t.tgisinternal AND c.relnamespace = to_regnamespace(current_schema())"
            )
        ).all()
        have = {(tbl, name) for tbl, name, _ in rows}
        # 'D' disabled; 'R' fires only in replica mode: both switch the protection off for normal sessions
        enabled = {(tbl, name) for tbl, name, state in rows if state in ("O", "A")}
    for table, names in expected.items():
        for name in names:
            if (table, name) not in have:
                problems.append(f"trigger {name} on {table} is missing")
            elif (table, name) not in enabled:
                problems.append(f"trigger {name} on {table} is disabled")
    return problems


def check_protection(engine: Engine) -> None:
    """Raise :class:`StoreError` (one line) when the audit protection of the store is not in place."""
    with engine.connect() as conn:
        problems = protection_problems(conn)
    if problems:
        # no URL here: callers (the CLI) put it in front
        raise StoreError(
            f"audit protection removed ({'; '.join(problems)}): refusing to use the store; "
            "run `market-surveillance cases verify` and restore it from a trusted backup"
        )


# ---------------------------------------------------------------------------------------------
# Verify
# ---------------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Break:
    """The first broken link of one chain."""

    case_id: str
    event_id: int | None
    problem: str

    def __str__(self) -> str:
        where = f"case {self.case_id}" + (f" event {self.event_id}" if self.event_id is not None else "")
        return f"{where}: {self.problem}"


@dataclasses.dataclass(frozen=True)
class VerifyReport:
    cases: int
    events: int
    breaks: tuple[Break, ...]
    protection: tuple[str, ...]
    #: alerts hidden as superseded without the audit row that says by which run and why
    alerts: tuple[str, ...] = ()

    @property
    def ok(self) -> bool:
        return not self.breaks and not self.protection and not self.alerts


def _events_by_case(conn: Connection) -> Iterator[tuple[str, list[Any]]]:
    from market_surveillance.store import tables as db

    e = db.case_events
    rows = conn.execute(sa.select(e).order_by(e.c.case_id, e.c.event_id)).yield_per(5000)
    case_id: str | None = None
    batch: list[Any] = []
    for row in rows:
        if row.case_id != case_id:
            if case_id is not None:
                yield case_id, batch
            case_id, batch = row.case_id, []
        batch.append(row)
    if case_id is not None:
        yield case_id, batch


def _check_chain(case: Any, events: list[Any], alerts: set[str]) -> Break | None:
    """The first problem of one case's chain, or None."""
    prev_hash: str | None = None
    prev_at: dt.datetime | None = None
    # a case is created open and unassigned; its priority is set at creation (and by a priority event since
    # the store has existed, but not necessarily in hand-made or very old stores), so it is compared only
    # when an event set it
    state: dict[str, str | None] = {"status": "open", "assignee": None}
    added: set[str] = set()
    for ev in events:
        if ev.prev_hash != prev_hash:
            return Break(
                case.case_id,
                ev.event_id,
                "prev_hash does not match the hash of the event before it "
                "(an event was removed, inserted or reordered)",
            )
        expected = event_hash(
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
        if ev.hash != expected:
            return Break(
                case.case_id, ev.event_id, "hash does not match the event's content (the row was changed)"
            )
        if prev_at is not None and ev.at < prev_at:
            return Break(
                case.case_id, ev.event_id, f"dated {ev.at:%Y-%m-%d %H:%M:%S}, before the event before it"
            )
        if ev.field in _CASE_FIELDS:
            state[ev.field] = ev.new
        if ev.action == "add_alerts" and ev.new:
            added.update(ev.new.split(","))
        prev_hash, prev_at = ev.hash, ev.at
    if case is None:
        return None
    if case.last_event_id != events[-1].event_id:
        return Break(
            case.case_id,
            case.last_event_id,
            f"the case's newest event is {case.last_event_id} but the chain ends at {events[-1].event_id} "
            "(events were removed or the case row was edited)",
        )
    for name in _CASE_FIELDS:
        if name in state and getattr(case, name) != state[name]:
            return Break(
                case.case_id,
                None,
                f"{name} is {getattr(case, name)!r} but its events say {state[name]!r} "
                "(the case row was changed without an event)",
            )
    if alerts != added:
        return Break(case.case_id, None, "its alerts differ from those its add_alerts events attached")
    return None


def verify(engine: Engine) -> VerifyReport:
    """Check every case's chain, the cases against their events, and the protection; never raises on tampering."""
    from market_surveillance.store import tables as db

    breaks: list[Break] = []
    n_events = 0
    with engine.connect() as conn:
        protection = protection_problems(conn)
        cases = {r.case_id: r for r in conn.execute(sa.select(db.cases))}
        links: dict[str, set[str]] = {}
        for case_id, alert_id in conn.execute(sa.select(db.case_alerts.c.case_id, db.case_alerts.c.alert_id)):
            links.setdefault(case_id, set()).add(alert_id)
        seen: set[str] = set()
        for case_id, events in _events_by_case(conn):
            n_events += len(events)
            seen.add(case_id)
            case = cases.get(case_id)
            if case is None:
                breaks.append(
                    Break(case_id, events[0].event_id, "events of a case that does not exist (case deleted)")
                )
                continue
            problem = _check_chain(case, events, links.get(case_id, set()))
            if problem is not None:
                breaks.append(problem)
        for case_id in sorted(set(cases) - seen):
            breaks.append(Break(case_id, None, "the case has no events (its audit trail was erased)"))
        for case_id in sorted(set(links) - set(cases)):
            breaks.append(Break(case_id, None, "alerts linked to a case that does not exist"))
        a, s = db.alerts, db.alert_supersessions
        logged = sa.select(s.c.alert_id).where(s.c.alert_id == a.c.alert_id, s.c.run_id == a.c.superseded_by)
        unlogged = conn.execute(
            sa.select(a.c.alert_id, a.c.superseded_by)
            .where(a.c.superseded_by.isnot(None), ~logged.exists())
            .order_by(a.c.alert_id)
        ).all()
    alerts = tuple(
        f"alert {x.alert_id}: marked superseded by run {x.superseded_by} without an alert_supersessions row "
        "(hidden from the queue behind the store's back)"
        for x in unlogged
    )
    return VerifyReport(len(cases), n_events, tuple(breaks), tuple(protection), alerts)


# ---------------------------------------------------------------------------------------------
# PostgreSQL roles
# ---------------------------------------------------------------------------------------------


def _ident(conn: Connection, name: str) -> str:
    return conn.dialect.identifier_preparer.quote(name)


def setup_roles(engine: Engine, owner: str, app_role: str, migrate: Any) -> list[str]:
    """Create (if missing) a NOLOGIN owner and a LOGIN app role, migrate as the owner, grant the app role.

    ``engine`` connects as an administrator (superuser or CREATEROLE + database owner). Returns what was
    done, one line each. The app role gets SELECT, INSERT on every table (plus :data:`APP_PRIVILEGES`) and
    nothing else: it owns nothing, so it cannot ALTER (disable triggers), TRUNCATE, UPDATE or DELETE events,
    and, not being a superuser, cannot switch ``session_replication_role``.
    """
    from market_surveillance.store import tables as db

    if engine.dialect.name != "postgresql":
        raise StoreError("--owner/--app-role are for PostgreSQL; a SQLite store has no roles")
    if owner == app_role:
        raise StoreError("the owner and the app role must be different roles")
    done: list[str] = []
    with engine.connect() as conn, conn.begin():
        for role, login in ((owner, False), (app_role, True)):
            exists = conn.execute(sa.text("SELECT 1 FROM pg_roles WHERE rolname = :r"), {"r": role}).first()
            if not exists:
                conn.exec_driver_sql(f"CREATE ROLE {_ident(conn, role)} {'LOGIN' if login else 'NOLOGIN'}")
                done.append(f"created role {role} ({'LOGIN' if login else 'NOLOGIN'})")
        bad = conn.execute(
            sa.text(
                "SELECT rolsuper OR rolbypassrls, pg_has_role(:app, :owner, 'MEMBER') FROM pg_roles "
                "WHERE rolname = :app"
            ),
            {"app": app_role, "owner": owner},
        ).one()
        if bad[0] or bad[1]:
            raise StoreError(
                f"role {app_role} is a superuser, bypasses row security or is a member of {owner}: "
                "it could switch the protection off; use an ordinary role"
            )
        q_owner, q_app = _ident(conn, owner), _ident(conn, app_role)
        schema = conn.execute(sa.text("SELECT current_schema()")).scalar_one()
        q_schema = _ident(conn, schema)
        conn.exec_driver_sql(f"GRANT USAGE, CREATE ON SCHEMA {q_schema} TO {q_owner}")
        # the administrator must be able to SET ROLE to the owner (implicit for superusers)
        conn.exec_driver_sql(f"GRANT {q_owner} TO CURRENT_USER")
        # tables created earlier by someone else (e.g. the store opened by the administrator) go to the owner
        for (table,) in conn.execute(
            sa.text("SELECT tablename FROM pg_tables WHERE schemaname = :s AND tableowner <> :o"),
            {"s": schema, "o": owner},
        ):
            if table in db.metadata.tables or table == "alembic_version":
                conn.exec_driver_sql(f"ALTER TABLE {q_schema}.{_ident(conn, table)} OWNER TO {q_owner}")
                done.append(f"table {table} now owned by {owner}")
    with engine.connect() as conn:
        funcs = (
            conn.execute(
                sa.text(
                    "SELECT p.oid::regprocedure::text FROM pg_proc p JOIN pg_roles r ON r.oid = p.proowner "
                    "WHERE p.pronamespace = to_regnamespace(current_schema()) AND r.rolname <> :o "
                    "AND p.proname LIKE ANY (ARRAY['ms\\_%', '%append\\_only', 'case\\_%', 'cases\\_%'])"
                ),
                {"o": owner},
            )
            .scalars()
            .all()
        )
    with engine.connect() as conn, conn.begin():
        for f in funcs:
            conn.exec_driver_sql(f"ALTER FUNCTION {f} OWNER TO {_ident(conn, owner)}")
    migrate(engine, role=owner)
    done.append(f"schema migrated as {owner}")
    with engine.connect() as conn, conn.begin():
        q_owner, q_app = _ident(conn, owner), _ident(conn, app_role)
        schema = conn.execute(sa.text("SELECT current_schema()")).scalar_one()
        q_schema = _ident(conn, schema)
        conn.exec_driver_sql(f"GRANT USAGE ON SCHEMA {q_schema} TO {q_app}")
        conn.exec_driver_sql(f"REVOKE CREATE ON SCHEMA {q_schema} FROM {q_app}")
        tables = [*db.metadata.tables, "alembic_version"]
        for table in tables:
            q_table = f"{q_schema}.{_ident(conn, table)}"
            conn.exec_driver_sql(f"REVOKE ALL ON {q_table} FROM {q_app}")
            conn.exec_driver_sql(
                f"GRANT {APP_PRIVILEGES.get(table, 'SELECT, INSERT')} ON {q_table} TO {q_app}"
            )
        conn.exec_driver_sql(f"GRANT USAGE ON ALL SEQUENCES IN SCHEMA {q_schema} TO {q_app}")
        done.append(
            f"granted {app_role}: SELECT, INSERT on every table (UPDATE also on "
            f"{', '.join(t for t, p in APP_PRIVILEGES.items() if 'UPDATE' in p)}); case_events: SELECT, INSERT only"
        )
    return done


def session_user(engine: Engine) -> str:
    """The database role this store connects as (PostgreSQL)."""
    with engine.connect() as conn:
        return str(conn.execute(sa.text("SELECT session_user")).scalar_one())
