"""PostgreSQL owner / app roles (issue 17): `store init --owner --app-role`, then the application role can
work cases but cannot rewrite, erase or unprotect the audit trail. Against the real server; roles are
cluster-global, so every test makes its own uniquely named roles and drops them."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest
import sqlalchemy as sa
from typer.testing import CliRunner

from market_surveillance.cli import app
from market_surveillance.store import Store, StoreError

pytestmark = pytest.mark.postgres
runner = CliRunner()


@pytest.fixture
def roles(postgres_url: str) -> Iterator[tuple[str, str]]:
    tag = uuid.uuid4().hex[:10]
    owner, app_role = f"ms_owner_{tag}", f"ms_app_{tag}"
    yield owner, app_role
    engine = sa.create_engine(postgres_url)
    with engine.connect() as conn, conn.begin():
        for role in (app_role, owner):
            if conn.execute(sa.text("SELECT 1 FROM pg_roles WHERE rolname = :r"), {"r": role}).first():
                conn.exec_driver_sql(f'DROP OWNED BY "{role}" CASCADE')
                conn.exec_driver_sql(f'DROP ROLE "{role}"')
    engine.dispose()


def _as(url: str, user: str) -> str:
    return sa.engine.make_url(url).set(username=user).render_as_string(hide_password=False)


def _init(url: str, owner: str, app_role: str) -> str:
    result = runner.invoke(
        app, ["store", "init", "--db", url, "--owner", owner, "--app-role", app_role], env={"COLUMNS": "300"}
    )
    assert result.exit_code == 0, result.output
    return result.output


def _work(store: Store) -> str:
    case_id = store.open_case("wash ring", ["MS001-000001", "MS001-000002"], None, assignee="bob")
    store.set_status(case_id, "investigating", "bob")
    store.comment(case_id, "shared wallet", "bob")
    store.assign(case_id, "carol", None)
    return case_id


FORBIDDEN = [
    "UPDATE case_events SET comment = 'nothing found'",
    "DELETE FROM case_events",
    "TRUNCATE case_events",
    "ALTER TABLE case_events DISABLE TRIGGER ALL",
    "ALTER TABLE case_events DISABLE TRIGGER case_events_no_change",
    "DROP TRIGGER case_events_no_change ON case_events",
    "SET session_replication_role = replica",
    "UPDATE cases SET status = 'closed_false_positive'",
    "DELETE FROM cases",
    "TRUNCATE cases CASCADE",
    "ALTER TABLE cases DISABLE TRIGGER cases_no_update",
    "UPDATE case_alerts SET alert_id = 'MS001-000003'",
    "DROP TABLE case_events",
]


def test_roles_app_role_works_cases_but_cannot_touch_the_audit_trail(postgres_url, roles, make_alerts):
    owner, app_role = roles
    out = _init(postgres_url, owner, app_role)
    assert f"created role {app_role}" in out and "case_events: SELECT, INSERT only" in out
    app_url = _as(postgres_url, app_role)
    with Store.open(app_url) as store:
        store.record_run(make_alerts(6), data_source="d", config_hash="h")
        store.record_run(make_alerts(6), data_source="d", config_hash="h")  # upsert: UPDATE on alerts
        case_id = _work(store)
        events = store.history(case_id)
        # actor defaults to the session user; db_user is recorded whatever actor is claimed
        assert {e.db_user for e in events} == {app_role}
        assert events[0].actor == app_role and events[-1].actor == app_role
        assert store.case(case_id).assignee == "carol"
        for sql in FORBIDDEN:
            with store.engine.connect() as conn:
                with pytest.raises(sa.exc.DBAPIError) as err, conn.begin():
                    conn.exec_driver_sql(sql)
                assert err.value.orig.sqlstate == "42501", (sql, err.value.orig)  # insufficient privilege
        assert store.history(case_id) == events
        assert store.case(case_id).status == "investigating"
        assert store.verify().ok
        with store.engine.connect() as conn:  # the tables belong to the owner, not to the app
            owners = set(
                conn.execute(
                    sa.text("SELECT tableowner FROM pg_tables WHERE schemaname = current_schema()")
                ).scalars()
            )
        assert owners == {owner}
    result = runner.invoke(app, ["cases", "verify", "--db", app_url])
    assert result.exit_code == 0 and "intact" in result.output


def test_roles_init_takes_over_a_store_the_administrator_created(postgres_url, roles, make_alerts):
    owner, app_role = roles
    with Store.open(postgres_url) as store:  # the old way: the connecting role owns everything
        store.record_run(make_alerts(4), data_source="d", config_hash="h")
        case_id = _work(store)
    _init(postgres_url, owner, app_role)
    _init(postgres_url, owner, app_role)  # idempotent
    with Store.open(_as(postgres_url, app_role)) as store:
        store.close(case_id, "reported", None, comment="STOR filed")
        assert store.case(case_id).status == "closed_reported"
        assert store.verify().ok
        with store.engine.connect() as conn, pytest.raises(sa.exc.DBAPIError) as err, conn.begin():
            conn.exec_driver_sql("ALTER TABLE case_events DISABLE TRIGGER ALL")
        assert err.value.orig.sqlstate == "42501"


def test_roles_init_refuses_a_superuser_app_role(postgres_url, roles):
    owner, _ = roles
    result = runner.invoke(
        app, ["store", "init", "--db", postgres_url, "--owner", owner, "--app-role", "postgres"]
    )
    assert result.exit_code == 2
    assert "postgres is a superuser" in result.output


def test_roles_app_role_cannot_upgrade_an_old_schema(postgres_url, roles):
    owner, app_role = roles
    _init(postgres_url, owner, app_role)
    engine = sa.create_engine(postgres_url)
    with engine.connect() as conn, conn.begin():  # pretend the code is newer than the database
        conn.exec_driver_sql("UPDATE alembic_version SET version_num = '0002'")
    engine.dispose()
    with pytest.raises(StoreError, match="this role may not change it: run `market-surveillance store init`"):
        Store.open(_as(postgres_url, app_role))
