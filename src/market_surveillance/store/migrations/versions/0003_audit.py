"""Tamper-evident audit: hash-chained case events, database clock, cases changed only through events,
superseded alerts.

- ``case_events`` gains ``prev_hash``, ``hash`` (sha256 over the event and ``prev_hash``: one chain per case)
  and ``db_user`` (PostgreSQL session user). The database sets ``at`` (its own clock), the hashes and
  ``db_user``; on SQLite a client-supplied time or hash is refused, on PostgreSQL it is overwritten.
- ``cases`` gains ``last_event_id`` and becomes a projection of its events: inserting an event with
  ``field`` = status / assignee / priority updates the case (trigger); any other UPDATE or DELETE of
  ``cases`` is refused, and ``case_alerts`` is append-only.
- ``alerts`` gains ``superseded_by`` (the run whose new rule parameters no longer produce it), with an
  append-only ``alert_supersessions`` log.

Existing events are chained in order by this migration (``db_user`` unknown: NULL).

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-29
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from market_surveillance.store.audit import event_hash

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

# Literal copy of market_surveillance.store.audit.SQLITE_NOW: the database clock in the stored text form.
_SQLITE_NOW = "strftime('%Y-%m-%d %H:%M:%f', 'now') || '000'"
_EVENT_CONTENT = ("event_id", "case_id", "at", "actor", "action", "field", "old", "new", "comment", "db_user")


def _ts() -> sa.DateTime:
    return sa.DateTime(timezone=True)


def upgrade() -> None:
    bind = op.get_bind()
    dialect = bind.dialect.name
    # the 0001 trigger refuses every UPDATE of an event: lift it while existing events are chained
    if dialect == "sqlite":
        op.execute("DROP TRIGGER case_events_no_update")
    else:
        op.execute("ALTER TABLE case_events DISABLE TRIGGER case_events_no_change")

    with op.batch_alter_table("case_events") as batch:
        batch.add_column(sa.Column("prev_hash", sa.String(64)))
        batch.add_column(sa.Column("hash", sa.String(64)))
        batch.add_column(sa.Column("db_user", sa.String(128)))
    with op.batch_alter_table("cases") as batch:
        batch.add_column(sa.Column("last_event_id", sa.Integer()))
    with op.batch_alter_table("alerts") as batch:
        batch.add_column(sa.Column("superseded_by", sa.String(32)))
    op.create_index("ix_alerts_superseded_by", "alerts", ["superseded_by"])
    op.create_table(
        "alert_supersessions",
        sa.Column("supersession_id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column(
            "alert_id",
            sa.String(64),
            sa.ForeignKey("alerts.alert_id", name="fk_alert_supersessions_alert"),
            nullable=False,
        ),
        sa.Column(
            "run_id",
            sa.String(32),
            sa.ForeignKey("runs.run_id", name="fk_alert_supersessions_run"),
            nullable=False,
        ),
        sa.Column("previous_run_id", sa.String(32), nullable=False),
        sa.Column("rule_id", sa.String(16), nullable=False),
        sa.Column("at", _ts(), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
    )
    op.create_index("ix_alert_supersessions_alert_id", "alert_supersessions", ["alert_id"])

    _chain_existing_events(bind)

    if dialect == "sqlite":
        _sqlite_triggers()
    elif dialect == "postgresql":
        op.execute("ALTER TABLE case_events ENABLE TRIGGER case_events_no_change")
        _postgresql_triggers(bind.execute(sa.text("SELECT current_schema()")).scalar_one())
    else:  # pragma: no cover - the store supports exactly these two backends
        raise NotImplementedError(dialect)


def _chain_existing_events(bind: sa.engine.Connection) -> None:
    rows = bind.execute(
        sa.text(f"SELECT {', '.join(_EVENT_CONTENT)} FROM case_events ORDER BY case_id, event_id")
    ).all()
    prev: dict[str, str] = {}
    update = sa.text("UPDATE case_events SET prev_hash = :p, hash = :h WHERE event_id = :i")
    for r in rows:
        h = event_hash(*r, prev.get(r.case_id))
        bind.execute(update, {"p": prev.get(r.case_id), "h": h, "i": r.event_id})
        prev[r.case_id] = h
    bind.execute(
        sa.text(
            "UPDATE cases SET last_event_id = "
            "(SELECT max(e.event_id) FROM case_events e WHERE e.case_id = cases.case_id)"
        )
    )


def _sqlite_triggers() -> None:
    refuse = "BEGIN SELECT RAISE(ABORT, '{table} is append-only'); END"
    for table in ("case_alerts", "alert_supersessions"):
        for verb in ("UPDATE", "DELETE"):
            op.execute(
                f"CREATE TRIGGER {table}_no_{verb.lower()} BEFORE {verb} ON {table} "
                + refuse.format(table=table)
            )
    # the only UPDATE an event ever sees is its sealing by case_events_seal (hash NULL → set, content kept)
    same = " AND ".join(f"NEW.{c} IS OLD.{c}" for c in _EVENT_CONTENT)
    op.execute(
        "CREATE TRIGGER case_events_no_update BEFORE UPDATE ON case_events "
        f"WHEN NOT (OLD.hash IS NULL AND NEW.hash IS NOT NULL AND {same}) "
        "BEGIN SELECT RAISE(ABORT, 'case_events is append-only'); END"
    )
    op.execute(
        "CREATE TRIGGER case_events_stamp BEFORE INSERT ON case_events BEGIN "
        f"SELECT RAISE(ABORT, 'case_events.at is set by the database clock') WHERE NEW.at IS NOT ({_SQLITE_NOW}); "
        "SELECT RAISE(ABORT, 'case_events.prev_hash, hash and db_user are set by the database') "
        "WHERE NEW.hash IS NOT NULL OR NEW.prev_hash IS NOT NULL OR NEW.db_user IS NOT NULL; "
        "SELECT RAISE(ABORT, 'case_events.actor must not be empty') WHERE NEW.actor IS NULL OR trim(NEW.actor) = ''; "
        "SELECT RAISE(ABORT, 'case_events: no such case') "
        "WHERE NOT EXISTS (SELECT 1 FROM cases WHERE case_id = NEW.case_id); "
        "SELECT RAISE(ABORT, 'case_events.event_id is assigned by the database') "
        "WHERE NEW.event_id > 0 AND NEW.event_id <= (SELECT max(event_id) FROM case_events); "
        "END"
    )
    prev = (
        "(SELECT p.hash FROM case_events p WHERE p.case_id = NEW.case_id AND p.event_id < NEW.event_id "
        "ORDER BY p.event_id DESC LIMIT 1)"
    )
    args = ", ".join(f"NEW.{c}" for c in _EVENT_CONTENT)
    op.execute(
        "CREATE TRIGGER case_events_seal AFTER INSERT ON case_events BEGIN "
        f"UPDATE case_events SET prev_hash = {prev}, hash = ms_event_hash({args}, {prev}) "
        "WHERE event_id = NEW.event_id; "
        "UPDATE cases SET "
        "status = CASE WHEN NEW.field = 'status' THEN NEW.new ELSE status END, "
        "assignee = CASE WHEN NEW.field = 'assignee' THEN NEW.new ELSE assignee END, "
        "priority = CASE WHEN NEW.field = 'priority' THEN NEW.new ELSE priority END, "
        "updated = NEW.at, last_event_id = NEW.event_id WHERE case_id = NEW.case_id; "
        "END"
    )
    op.execute(
        "CREATE TRIGGER cases_insert_guard BEFORE INSERT ON cases BEGIN "
        "SELECT RAISE(ABORT, 'a case is created open, unassigned and dated by the database; "
        "it changes only through case_events') "
        f"WHERE NEW.status IS NOT 'open' OR NEW.assignee IS NOT NULL OR NEW.last_event_id IS NOT NULL "
        f"OR NEW.created IS NOT ({_SQLITE_NOW}) OR NEW.updated IS NOT NEW.created; "
        "END"
    )
    op.execute(
        "CREATE TRIGGER cases_no_update BEFORE UPDATE ON cases "
        "WHEN NEW.last_event_id IS OLD.last_event_id "
        "OR NEW.last_event_id IS NOT (SELECT max(e.event_id) FROM case_events e WHERE e.case_id = OLD.case_id) "
        "OR NEW.case_id IS NOT OLD.case_id OR NEW.title IS NOT OLD.title OR NEW.created IS NOT OLD.created "
        "BEGIN SELECT RAISE(ABORT, 'cases change only through case_events'); END"
    )
    op.execute(
        "CREATE TRIGGER cases_no_delete BEFORE DELETE ON cases "
        "BEGIN SELECT RAISE(ABORT, 'cases are never deleted'); END"
    )


def _postgresql_triggers(schema: str) -> None:
    quoted = '"' + schema.replace('"', '""') + '"'
    # SECURITY DEFINER functions name their schema and put pg_temp last, so no one can shadow a table
    path = f"SET search_path = {quoted}, pg_temp"
    op.execute(
        "CREATE FUNCTION ms_refuse_change() RETURNS trigger LANGUAGE plpgsql AS $$ "
        "BEGIN RAISE EXCEPTION '% is append-only (% refused)', TG_TABLE_NAME, TG_OP; END $$"
    )
    op.execute(
        "CREATE FUNCTION ms_event_part(v text) RETURNS text LANGUAGE sql IMMUTABLE "
        "AS $$ SELECT coalesce(length(v)::text || ':' || v, '~') $$"
    )
    parts = " || ".join(
        f"ms_event_part({x})"
        for x in (
            "NEW.event_id::text",
            "NEW.case_id",
            "to_char(NEW.at AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS.US')",
            "NEW.actor",
            "NEW.action",
            "NEW.field",
            "NEW.old",
            "NEW.new",
            "NEW.comment",
            "NEW.db_user",
            "NEW.prev_hash",
        )
    )
    # SECURITY DEFINER: runs as the owner, so the app role needs no privilege on the sequence's setval,
    # the cases UPDATE of the projection, or the lock; what the client sent for these columns is overwritten
    op.execute(
        "CREATE FUNCTION ms_case_event_stamp() RETURNS trigger LANGUAGE plpgsql SECURITY DEFINER "
        f"{path} AS $$ "
        "DECLARE prev text; "
        "BEGIN "
        "IF NEW.actor IS NULL OR btrim(NEW.actor) = '' THEN "
        "RAISE EXCEPTION 'case_events.actor must not be empty'; END IF; "
        # one writer per case at a time, and the event id drawn under that lock: ids follow the chain
        "PERFORM pg_advisory_xact_lock(hashtextextended('ms-case:' || NEW.case_id, 0)); "
        "NEW.event_id := nextval(pg_get_serial_sequence('case_events', 'event_id')); "
        "NEW.at := clock_timestamp(); "
        "NEW.db_user := session_user; "
        "SELECT e.hash INTO prev FROM case_events e WHERE e.case_id = NEW.case_id "
        "ORDER BY e.event_id DESC LIMIT 1; "
        "NEW.prev_hash := prev; "
        f"NEW.hash := encode(sha256(convert_to({parts}, 'UTF8')), 'hex'); "
        "RETURN NEW; END $$"
    )
    op.execute(
        "CREATE TRIGGER case_events_stamp BEFORE INSERT ON case_events "
        "FOR EACH ROW EXECUTE FUNCTION ms_case_event_stamp()"
    )
    # the trigger draws the id (under the case lock); a column default would only burn a number per event
    op.execute("ALTER TABLE case_events ALTER COLUMN event_id DROP DEFAULT")
    op.execute(
        "CREATE FUNCTION ms_case_event_project() RETURNS trigger LANGUAGE plpgsql SECURITY DEFINER "
        f"{path} AS $$ BEGIN "
        "UPDATE cases SET "
        "status = CASE WHEN NEW.field = 'status' THEN NEW.new ELSE status END, "
        "assignee = CASE WHEN NEW.field = 'assignee' THEN NEW.new ELSE assignee END, "
        "priority = CASE WHEN NEW.field = 'priority' THEN NEW.new ELSE priority END, "
        "updated = NEW.at, last_event_id = NEW.event_id WHERE case_id = NEW.case_id; "
        "RETURN NULL; END $$"
    )
    op.execute(
        "CREATE TRIGGER case_events_project AFTER INSERT ON case_events "
        "FOR EACH ROW EXECUTE FUNCTION ms_case_event_project()"
    )
    op.execute(
        "CREATE FUNCTION ms_cases_insert_guard() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
        "IF NEW.status IS DISTINCT FROM 'open' OR NEW.assignee IS NOT NULL THEN "
        "RAISE EXCEPTION 'a case is created open and unassigned; it changes only through case_events'; END IF; "
        "NEW.created := clock_timestamp(); NEW.updated := NEW.created; NEW.last_event_id := NULL; "
        "RETURN NEW; END $$"
    )
    op.execute(
        "CREATE TRIGGER cases_insert_guard BEFORE INSERT ON cases "
        "FOR EACH ROW EXECUTE FUNCTION ms_cases_insert_guard()"
    )
    op.execute(
        "CREATE FUNCTION ms_cases_update_guard() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
        "IF NEW.last_event_id IS NOT DISTINCT FROM OLD.last_event_id "
        "OR NEW.last_event_id IS DISTINCT FROM "
        "(SELECT max(e.event_id) FROM case_events e WHERE e.case_id = OLD.case_id) "
        "OR NEW.case_id IS DISTINCT FROM OLD.case_id OR NEW.title IS DISTINCT FROM OLD.title "
        "OR NEW.created IS DISTINCT FROM OLD.created THEN "
        "RAISE EXCEPTION 'cases change only through case_events (direct UPDATE refused)'; END IF; "
        "RETURN NEW; END $$"
    )
    op.execute(
        "CREATE TRIGGER cases_no_update BEFORE UPDATE ON cases FOR EACH ROW EXECUTE FUNCTION ms_cases_update_guard()"
    )
    op.execute(
        "CREATE TRIGGER cases_no_delete BEFORE DELETE ON cases FOR EACH ROW EXECUTE FUNCTION ms_refuse_change()"
    )
    op.execute(
        "CREATE TRIGGER cases_no_truncate BEFORE TRUNCATE ON cases FOR EACH STATEMENT EXECUTE FUNCTION ms_refuse_change()"
    )
    for table in ("case_alerts", "alert_supersessions"):
        op.execute(
            f"CREATE TRIGGER {table}_no_change BEFORE UPDATE OR DELETE ON {table} "
            "FOR EACH ROW EXECUTE FUNCTION ms_refuse_change()"
        )
        op.execute(
            f"CREATE TRIGGER {table}_no_truncate BEFORE TRUNCATE ON {table} "
            "FOR EACH STATEMENT EXECUTE FUNCTION ms_refuse_change()"
        )


def downgrade() -> None:
    dialect = op.get_bind().dialect.name
    if dialect == "sqlite":
        for name in (
            "case_alerts_no_update",
            "case_alerts_no_delete",
            "alert_supersessions_no_update",
            "alert_supersessions_no_delete",
            "case_events_no_update",
            "case_events_stamp",
            "case_events_seal",
            "cases_insert_guard",
            "cases_no_update",
            "cases_no_delete",
        ):
            op.execute(f"DROP TRIGGER IF EXISTS {name}")
        op.execute(
            "CREATE TRIGGER case_events_no_update BEFORE UPDATE ON case_events "
            "BEGIN SELECT RAISE(ABORT, 'case_events is append-only'); END"
        )
    else:
        for trigger, table in (
            ("case_events_stamp", "case_events"),
            ("case_events_project", "case_events"),
            ("cases_insert_guard", "cases"),
            ("cases_no_update", "cases"),
            ("cases_no_delete", "cases"),
            ("cases_no_truncate", "cases"),
            ("case_alerts_no_change", "case_alerts"),
            ("case_alerts_no_truncate", "case_alerts"),
            ("alert_supersessions_no_change", "alert_supersessions"),
            ("alert_supersessions_no_truncate", "alert_supersessions"),
        ):
            op.execute(f"DROP TRIGGER IF EXISTS {trigger} ON {table}")
        op.execute(
            "ALTER TABLE case_events ALTER COLUMN event_id "
            "SET DEFAULT nextval(pg_get_serial_sequence('case_events', 'event_id'))"
        )
        for fn in (
            "ms_case_event_stamp()",
            "ms_case_event_project()",
            "ms_cases_insert_guard()",
            "ms_cases_update_guard()",
            "ms_refuse_change()",
            "ms_event_part(text)",
        ):
            op.execute(f"DROP FUNCTION IF EXISTS {fn}")
    op.drop_table("alert_supersessions")
    op.drop_index("ix_alerts_superseded_by", "alerts")
    with op.batch_alter_table("alerts") as batch:
        batch.drop_column("superseded_by")
    with op.batch_alter_table("cases") as batch:
        batch.drop_column("last_event_id")
    if dialect == "postgresql":
        op.execute("ALTER TABLE case_events DISABLE TRIGGER case_events_no_change")
    with op.batch_alter_table("case_events") as batch:
        batch.drop_column("db_user")
        batch.drop_column("hash")
        batch.drop_column("prev_hash")
    if dialect == "postgresql":
        op.execute("ALTER TABLE case_events ENABLE TRIGGER case_events_no_change")
