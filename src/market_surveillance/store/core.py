"""The alert and case store: detection runs, alerts, cases and their audit trail.

One schema on SQLite (default, single analyst) and PostgreSQL (a team), created and upgraded by the
Alembic migrations on :meth:`Store.open`. Every write is one transaction, retried when the database is
momentarily busy (SQLite lock, PostgreSQL serialisation failure or deadlock), so a detection run and
analysts updating cases can write at the same time without losing anything.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import json
import math
import os
import random
import secrets
import time
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any, TypeVar

import pyarrow as pa
import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from market_surveillance.alerts import ALERT_SCHEMA, LIST_COLUMNS
from market_surveillance.enums import CasePriority, CaseStatus
from market_surveillance.schema import TS
from market_surveillance.store import audit, triage
from market_surveillance.store import tables as db
from market_surveillance.store.errors import StoreError, TransitionError, UnknownIdError
from market_surveillance.store.supersede import mark_superseded
from market_surveillance.store.workflow import (
    CLOSED,
    DEFAULT_VERDICT,
    check_transition,
    parse_status,
    parse_verdict,
)

DEFAULT_URL = "sqlite:///data/alerts.sqlite"
MIGRATIONS = Path(__file__).parent / "migrations"
#: status filter value for alerts not (yet) attached to any case
NEW = "new"

#: alerts as read back from the store: the alert contract plus provenance and the cases holding them
STORED_ALERT_SCHEMA = pa.schema(
    [
        *ALERT_SCHEMA,
        pa.field("run_id", pa.string(), nullable=False),
        pa.field("last_run_id", pa.string(), nullable=False),
        pa.field("first_seen", TS, nullable=False),
        pa.field("last_seen", TS, nullable=False),
        pa.field("case_ids", pa.list_(pa.string())),
        # the run whose changed rule parameters retired the alert, or null (current)
        pa.field("superseded_by", pa.string()),
        # 0–100, comparable across rules (store/triage.py, docs/store.md); the queue sorts by it
        pa.field("priority", pa.int32(), nullable=False),
        # the mute that flagged the alert (kept out of the queue), or null
        pa.field("suppression_id", pa.string()),
        # the alert's newest verdict (true_positive / false_positive) and its reason code, or null
        pa.field("verdict", pa.string()),
        pa.field("verdict_reason", pa.string()),
    ]
)
#: columns of STORED_ALERT_SCHEMA computed at read time rather than stored in the alerts table
_DERIVED = ("case_ids", "priority", "verdict", "verdict_reason")
#: sort orders of :meth:`Store.alerts`
ORDERS = ("priority", "window")

_R = TypeVar("_R")
_PG_LOCK_KEY = 0x4D530004  # advisory lock serialising concurrent migrations on one PostgreSQL database
_SQLITE_BUSY_MS = 30_000


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def _db_now(conn: Connection) -> Any:
    """The database server's clock as an SQL expression (audit times never come from the client)."""
    if conn.dialect.name == "sqlite":
        return sa.literal_column(audit.SQLITE_NOW)
    return sa.func.clock_timestamp()


@dataclasses.dataclass(frozen=True)
class Case:
    case_id: str
    title: str
    status: CaseStatus
    assignee: str | None
    priority: CasePriority
    created: dt.datetime
    updated: dt.datetime
    alert_ids: tuple[str, ...]


@dataclasses.dataclass(frozen=True)
class CaseEvent:
    """One audit row: who did what to a case, when, the field changed (old → new) and why.

    ``at``, ``prev_hash``, ``hash`` and ``db_user`` (PostgreSQL session user) are set by the database.
    """

    event_id: int
    case_id: str
    at: dt.datetime
    actor: str
    action: str
    field: str | None
    old: str | None
    new: str | None
    comment: str | None
    prev_hash: str | None = None
    hash: str | None = None
    db_user: str | None = None


@dataclasses.dataclass(frozen=True)
class RunRecord:
    run_id: str
    started: dt.datetime
    finished: dt.datetime | None
    status: str
    data_source: str
    config_hash: str
    rule_versions: dict[str, Any]
    rule_runs: list[dict[str, Any]]
    input_counts: dict[str, Any]
    alerts_written: int
    error: str | None


# ---------------------------------------------------------------------------------------------
# Engine, connection setup and migrations
# ---------------------------------------------------------------------------------------------


def _make_engine(url: str, *, create: bool = True) -> Engine:
    try:
        u = sa.engine.make_url(url)
    except sa.exc.ArgumentError:
        raise StoreError(f"unsupported store URL {url!r}: use sqlite:///PATH or postgresql+psycopg://...") from None
    if u.get_backend_name() == "sqlite":
        if u.database and u.database != ":memory:" and not u.database.startswith("file:"):
            if not create and not Path(u.database).is_file():
                # a read-only command on a mistyped path must not leave an empty store (or folders) behind
                raise StoreError(f"no store at {u.database} (check --db / $MS_STORE_URL)")
            Path(u.database).parent.mkdir(parents=True, exist_ok=True)
        engine = sa.create_engine(u, connect_args={"timeout": _SQLITE_BUSY_MS / 1000})

        @sa.event.listens_for(engine, "connect")
        def _sqlite_connect(dbapi_conn: Any, _record: Any) -> None:
            # SQLAlchemy (not the sqlite3 module) issues BEGIN, so that writers can take the write lock
            # up front (BEGIN IMMEDIATE) instead of upgrading a read lock, which SQLite cannot wait for.
            dbapi_conn.isolation_level = None
            cur = dbapi_conn.cursor()
            cur.execute(f"PRAGMA busy_timeout = {_SQLITE_BUSY_MS}")
            cur.execute("PRAGMA journal_mode = WAL")
            cur.execute("PRAGMA foreign_keys = ON")
            cur.close()
            audit.register_sqlite_functions(dbapi_conn)

        @sa.event.listens_for(engine, "begin")
        def _sqlite_begin(conn: Connection) -> None:
            write = conn.get_execution_options().get("ms_write", False)
            conn.exec_driver_sql("BEGIN IMMEDIATE" if write else "BEGIN")

        return engine
    if u.get_backend_name() == "postgresql":
        return sa.create_engine(u, pool_pre_ping=True)
    raise StoreError(f"unsupported store URL {url!r}: use sqlite:///PATH or postgresql+psycopg://...")


def _transient(exc: sa.exc.DBAPIError) -> bool:
    """Errors worth retrying the whole transaction for: another writer held the lock or won a race."""
    if getattr(exc.orig, "sqlstate", None) in ("40001", "40P01"):  # serialization failure, deadlock
        return True
    msg = str(exc.orig).lower()
    return "database is locked" in msg or "database table is locked" in msg or "database is busy" in msg


def migrate(engine: Engine, *, role: str | None = None) -> None:
    """Bring the schema to the newest migration (idempotent; concurrent callers are serialised).

    ``role`` (PostgreSQL): run the migrations as that role (``SET LOCAL ROLE``), so that it owns what they
    create. A store already at the newest revision is left alone, so an application role without DDL
    rights can open it; one that needs upgrading says so in one line.
    """
    from alembic import command
    from alembic.config import Config
    from alembic.runtime.migration import MigrationContext
    from alembic.script import ScriptDirectory

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    head = ScriptDirectory.from_config(cfg).get_current_head()

    def current(conn: Connection) -> str | None:
        return MigrationContext.configure(conn).get_current_revision()

    if role is None and _run_tx(engine, current, write=False) == head:
        return

    def upgrade(conn: Connection) -> None:
        if conn.dialect.name == "postgresql":
            if role is not None:
                conn.exec_driver_sql(f"SET LOCAL ROLE {conn.dialect.identifier_preparer.quote(role)}")
            conn.execute(sa.select(sa.func.pg_advisory_xact_lock(_PG_LOCK_KEY)))
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, "head")

    try:
        _run_tx(engine, upgrade, write=True)
    except sa.exc.ProgrammingError as exc:
        if getattr(exc.orig, "sqlstate", None) != "42501":  # insufficient privilege
            raise
        raise StoreError(
            f"the store schema needs upgrading to {head} and this role may not change it: run "
            "`market-surveillance store init` as the database owner"
        ) from None


def _run_tx(engine: Engine, fn: Callable[[Connection], _R], *, write: bool, attempts: int = 8) -> _R:
    """Run ``fn`` in one transaction, retrying the whole transaction on transient contention."""
    for attempt in range(attempts):
        try:
            with engine.connect() as conn:
                if write:
                    conn.execution_options(ms_write=True)
                with conn.begin():
                    return fn(conn)
        except sa.exc.DBAPIError as exc:
            if attempt == attempts - 1 or not _transient(exc):
                raise
            time.sleep(min(2.0, 0.05 * 2**attempt) * random.uniform(0.5, 1.5))
    raise AssertionError("unreachable")  # pragma: no cover


# ---------------------------------------------------------------------------------------------
# Row conversions
# ---------------------------------------------------------------------------------------------


def _finite(x: float | None) -> float | None:
    return None if x is None or math.isnan(x) else float(x)


def _alert_rows(alerts: pa.Table) -> list[dict[str, Any]]:
    """Alerts as rows for the database (lists as JSON text), one per alert_id (the last one wins)."""
    missing = [name for name in ALERT_SCHEMA.names if name not in alerts.column_names]
    if missing:
        raise ValueError(f"alerts table lacks column(s) {missing} of ALERT_SCHEMA")
    rows: dict[str, dict[str, Any]] = {}
    # alerts are few (thousands per run): per-row Python is fine here and keeps the SQL parameterised
    for r in alerts.select(ALERT_SCHEMA.names).to_pylist():
        for col in LIST_COLUMNS:
            r[col] = json.dumps(list(r[col] or []))
        if r["score"] is None or not math.isfinite(r["score"]):
            # the score orders the queue: refuse rather than store an undefined one as 0.0
            raise ValueError(f"alert {r['alert_id']} ({r['rule_id']}): score is {r['score']}, not a finite number")
        r["value"], r["threshold"] = _finite(r["value"]), _finite(r["threshold"])
        rows[r["alert_id"]] = r
    # a fixed lock order: two runs upserting overlapping alerts on PostgreSQL cannot deadlock each other
    return [rows[k] for k in sorted(rows)]


def _case(row: Any, alert_ids: Iterable[str]) -> Case:
    return Case(
        case_id=row.case_id,
        title=row.title,
        status=CaseStatus(row.status),
        assignee=row.assignee,
        priority=CasePriority(row.priority),
        created=row.created,
        updated=row.updated,
        alert_ids=tuple(sorted(alert_ids)),
    )


def _parse_priority(value: str | CasePriority) -> CasePriority:
    try:
        return CasePriority(value)
    except ValueError:
        raise ValueError(
            f"unknown priority {value!r}: use one of {', '.join(p.value for p in CasePriority)}"
        ) from None


def _parse_since(since: dt.datetime | dt.date | str) -> dt.datetime:
    if isinstance(since, str):
        try:
            since = dt.datetime.fromisoformat(since)
        except ValueError:
            raise ValueError(
                f"since: {since!r} is not an ISO date or datetime (e.g. 2024-05-01T12:00)"
            ) from None
    if not isinstance(since, dt.datetime):
        since = dt.datetime(since.year, since.month, since.day)
    return since if since.tzinfo else since.replace(tzinfo=dt.UTC)  # naive means UTC, like the data


def _required(name: str, value: str | None) -> str:
    if value is None or not str(value).strip():
        raise ValueError(f"{name} must be a non-empty string")
    return str(value).strip()


# ---------------------------------------------------------------------------------------------
# The store
# ---------------------------------------------------------------------------------------------


class Store:
    """Alerts, detection runs and cases in one database.

    Open with :meth:`Store.open` (``None`` means ``sqlite:///data/alerts.sqlite``); use as a context
    manager or call :meth:`dispose`. Methods raise :class:`UnknownIdError` for ids the store does not hold,
    :class:`TransitionError` for changes the case workflow refuses and ``ValueError`` for bad arguments.
    """

    def __init__(self, engine: Engine):
        self.engine = engine
        #: test hook: called with the batch number after each batch of a run's alerts is written
        self._on_batch: Callable[[int], None] | None = None
        self._session_user: str | None = None

    @classmethod
    def open(
        cls, url: str | None = None, *, migrate_schema: bool = True, create: bool = True, check: bool = True
    ) -> Store:
        """Connect to ``url`` (default: ``sqlite:///data/alerts.sqlite``, folders created), migrate and check
        that the audit protection (triggers, SQLite foreign keys) is in place; raise :class:`StoreError`
        (one line) when the store cannot be reached or the protection is missing. ``check=False`` is for
        :meth:`verify`, which must be able to look at a tampered store.

        ``create=False`` (read-only commands) refuses a SQLite path that does not exist instead of creating
        an empty store there.
        """
        engine = _make_engine(url or os.environ.get("MS_STORE_URL") or DEFAULT_URL, create=create)
        try:
            if migrate_schema:
                migrate(engine)
            if check:
                # fail closed: a store whose triggers were dropped or disabled is not written to
                audit.check_protection(engine)
        except sa.exc.DBAPIError as exc:
            engine.dispose()
            # one line, no URL (the caller names the store): e.g. connection refused, unknown database
            raise StoreError((str(exc.orig).strip().splitlines() or [type(exc.orig).__name__])[0]) from None
        except BaseException:
            engine.dispose()
            raise
        return cls(engine)

    @property
    def url(self) -> str:
        return self.engine.url.render_as_string(hide_password=True)

    def dispose(self) -> None:
        """Release the connection pool (``close`` is the case action)."""
        self.engine.dispose()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.dispose()

    def session_user(self) -> str | None:
        """The database role this store is connected as (PostgreSQL), None on SQLite."""
        if self.engine.dialect.name != "postgresql":
            return None
        if self._session_user is None:
            self._session_user = audit.session_user(self.engine)
        return self._session_user

    def _actor(self, actor: str | None) -> str:
        """Who acts, for the audit trail: required and non-empty; on PostgreSQL None means the session user."""
        if actor is None:
            user = self.session_user()
            if user is None:
                raise ValueError(
                    "an actor is required (--actor NAME or $MS_ACTOR): a SQLite store has no database user to name"
                )
            return user
        return _required("actor", actor)

    def verify(self) -> audit.VerifyReport:
        """Check every case's hash chain, the cases against their events and the protection (never raises)."""
        return audit.verify(self.engine)

    def _write(self, fn: Callable[[Connection], _R]) -> _R:
        return _run_tx(self.engine, fn, write=True)

    def _read(self, fn: Callable[[Connection], _R]) -> _R:
        return _run_tx(self.engine, fn, write=False)

    # -- detection runs -----------------------------------------------------------------------
    def record_run(
        self,
        alerts: pa.Table,
        *,
        data_source: str,
        config_hash: str,
        rule_versions: Mapping[str, Any] | None = None,
        rule_runs: Sequence[Mapping[str, Any]] = (),
        input_counts: Mapping[str, Any] | None = None,
        batch_size: int = 1000,
    ) -> str:
        """Record one detection run and upsert its alerts, all in one transaction; return the run_id.

        An alert already in the store (same deterministic ``alert_id``) is updated in place: it keeps the
        ``run_id``/``first_seen`` of the run that first found it and gets this run as ``last_run_id``/
        ``last_seen``. If writing fails, nothing of the run's alerts is kept and the run is recorded as
        ``failed`` with the error; a process killed mid-write leaves no trace of the run at all.
        """
        rows = _alert_rows(alerts)
        run_id = uuid.uuid4().hex
        started = _now()
        meta = {
            "data_source": str(data_source),
            "config_hash": config_hash,
            "rule_versions": json.loads(json.dumps(dict(rule_versions or {}), default=str)),
            "rule_runs": json.loads(json.dumps([dict(r) for r in rule_runs], default=str)),
            "input_counts": json.loads(json.dumps(dict(input_counts or {}), default=str)),
        }

        def write(conn: Connection) -> None:
            now = _now()
            conn.execute(
                db.runs.insert().values(
                    run_id=run_id, started=started, status="running", alerts_written=0, **meta
                )
            )
            stmt = _insert(conn)(db.alerts)
            content = [c for c in ALERT_SCHEMA.names if c != "alert_id"]
            upsert = stmt.on_conflict_do_update(
                index_elements=["alert_id"],
                # found again: current again, even if an earlier parameter change had superseded it
                set_={
                    **{c: stmt.excluded[c] for c in content},
                    "last_run_id": run_id,
                    "last_seen": now,
                    "superseded_by": None,
                },
            )
            extra = {"run_id": run_id, "last_run_id": run_id, "first_seen": now, "last_seen": now}
            for n, i in enumerate(range(0, len(rows), batch_size)):
                batch = rows[i : i + batch_size]
                conn.execute(upsert, [{**r, **extra} for r in batch])
                triage.index_accounts(conn, batch, _insert(conn))
                if self._on_batch is not None:
                    self._on_batch(n)
            # alerts of this run that an active mute covers are kept but flagged out of the queue
            triage.flag_muted(conn, now, db.alerts.c.last_run_id == run_id)
            superseded = mark_superseded(
                conn,
                run_id=run_id,
                data_source=meta["data_source"],
                rule_versions=meta["rule_versions"],
                rule_runs=meta["rule_runs"],
                now=now,
            )
            done = {"status": "complete", "finished": _now(), "alerts_written": len(rows)}
            if superseded:  # each rule's run entry says how many of its earlier alerts it retired
                done["rule_runs"] = [
                    {**rr, "superseded": superseded.get(str(rr.get("rule_id")), 0)} for rr in meta["rule_runs"]
                ] or [{"rule_id": k, "superseded": v} for k, v in sorted(superseded.items())]
            conn.execute(db.runs.update().where(db.runs.c.run_id == run_id).values(**done))

        try:
            self._write(write)
        except Exception as exc:
            error = f"{type(exc).__name__}: {exc}"[:4000]
            # leave a visible trace for operators; the alerts themselves were rolled back
            with contextlib.suppress(Exception):  # the original error is the one worth raising
                self._write(
                    lambda conn: conn.execute(
                        db.runs.insert().values(
                            run_id=run_id,
                            started=started,
                            finished=_now(),
                            status="failed",
                            alerts_written=0,
                            error=error,
                            **meta,
                        )
                    )
                )
            raise
        return run_id

    def runs(self) -> list[RunRecord]:
        """Every recorded run, newest first."""
        rows = self._read(
            lambda c: c.execute(sa.select(db.runs).order_by(db.runs.c.started.desc(), db.runs.c.run_id)).all()
        )
        return [RunRecord(**row._asdict()) for row in rows]

    def run(self, run_id: str) -> RunRecord:
        row = self._read(lambda c: c.execute(sa.select(db.runs).where(db.runs.c.run_id == run_id)).first())
        if row is None:
            raise UnknownIdError(f"run {run_id} does not exist")
        return RunRecord(**row._asdict())

    # -- alerts -------------------------------------------------------------------------------
    def alerts(
        self,
        rule: str | None = None,
        asset: str | None = None,
        since: dt.datetime | dt.date | str | None = None,
        status: str | None = None,
        *,
        alert_ids: Sequence[str] | None = None,
        account: str | None = None,
        include_muted: bool = True,
        order: str = "window",
        superseded: bool | None = False,
    ) -> pa.Table:
        """Stored alerts in :data:`STORED_ALERT_SCHEMA`, oldest window first (``order="priority"``: highest
        priority first, then oldest window).

        ``rule`` matches the rule id or name; ``since`` keeps alerts whose window starts at or after it
        (naive means UTC); ``status`` is ``new`` (in no case) or a case status (in a case with that status);
        ``account`` keeps alerts naming that account; ``include_muted=False`` drops alerts a mute flagged.
        ``superseded``: False (default) hides alerts a parameter change superseded, True keeps only those,
        None keeps both; with ``alert_ids`` (e.g. a case's alerts) nothing is hidden.
        The triage queue is ``status="new", include_muted=False`` (see :meth:`queue`).
        """
        if order not in ORDERS:
            raise ValueError(f"unknown order {order!r}: use one of {', '.join(ORDERS)}")
        a, ca, c = db.alerts, db.case_alerts, db.cases
        prio, verdicts = triage.priority_subquery(), triage.latest_verdicts()
        stored = [n for n in STORED_ALERT_SCHEMA.names if n not in _DERIVED]
        # the filters go on a plain query of alert ids, reused for the case links below: repeating the
        # priority window functions inside that IN (...) would double the cost of every read
        f = sa.select(a.c.alert_id)
        if rule is not None:
            f = f.where(sa.or_(a.c.rule_id == rule, a.c.rule_name == rule))
        if asset is not None:
            f = f.where(a.c.asset == asset)
        if since is not None:
            f = f.where(a.c.window_start >= _parse_since(since))
        if status is not None:
            in_case = sa.select(ca.c.alert_id).where(ca.c.alert_id == a.c.alert_id)
            if status == NEW:
                f = f.where(~in_case.exists())
            else:
                st = parse_status(status)
                in_case = in_case.join(c, c.c.case_id == ca.c.case_id).where(c.c.status == st.value)
                f = f.where(in_case.exists())
        if alert_ids is not None:
            f = f.where(a.c.alert_id.in_(list(alert_ids)))
        if account is not None:
            aa = db.alert_accounts
            f = f.where(
                sa.select(aa.c.alert_id)
                .where(aa.c.alert_id == a.c.alert_id, aa.c.account_id == account)
                .exists()
            )
        if not include_muted:
            f = f.where(a.c.suppression_id.is_(None))
        if superseded is not None and alert_ids is None:
            f = f.where(a.c.superseded_by.isnot(None) if superseded else a.c.superseded_by.is_(None))
        q = (
            sa.select(
                *(a.c[n] for n in stored),
                prio.c.priority,
                verdicts.c.verdict,
                verdicts.c.reason.label("verdict_reason"),
            )
            .join(prio, prio.c.alert_id == a.c.alert_id)
            .outerjoin(verdicts, verdicts.c.alert_id == a.c.alert_id)
        )
        if f.whereclause is not None:
            q = q.where(f.whereclause)
        if order == "priority":
            q = q.order_by(prio.c.priority.desc(), a.c.window_start, a.c.alert_id)
        else:
            q = q.order_by(a.c.window_start, a.c.alert_id)

        def read(conn: Connection) -> tuple[list[Any], dict[str, list[str]]]:
            rows = conn.execute(q).all()
            links: dict[str, list[str]] = {}
            sub = f.scalar_subquery()
            for alert_id, case_id in conn.execute(
                sa.select(ca.c.alert_id, ca.c.case_id).where(ca.c.alert_id.in_(sub)).order_by(ca.c.case_id)
            ):
                links.setdefault(alert_id, []).append(case_id)
            return rows, links

        rows, links = self._read(read)
        names = [*stored, "priority", "verdict", "verdict_reason"]
        columns = dict(zip(names, zip(*rows, strict=True), strict=True)) if rows else {n: () for n in names}
        arrays: dict[str, Any] = {}
        for name in names:
            values = columns[name]
            if name in LIST_COLUMNS:
                # one decode of a JSON array of all rows' lists is ~5x faster than one call per row
                arrays[name] = json.loads("[" + ",".join(values) + "]")
            elif name in ("value", "threshold"):  # NULL in the database is a NaN in the contract
                arrays[name] = pa.array(values, pa.float64()).fill_null(math.nan)
            elif name == "priority":
                arrays[name] = [triage.round_priority(x) for x in values]
            else:
                arrays[name] = values
        arrays["case_ids"] = [links.get(x, []) for x in columns["alert_id"]]
        return pa.table({n: arrays[n] for n in STORED_ALERT_SCHEMA.names}, schema=STORED_ALERT_SCHEMA)

    def queue(self, **filters: Any) -> pa.Table:
        """The triage queue: alerts in no case and not muted, highest priority first."""
        return self.alerts(**({"status": NEW, "include_muted": False, "order": "priority"} | filters))

    def alert_count(self) -> int:
        return self._read(lambda c: c.execute(sa.select(sa.func.count()).select_from(db.alerts)).scalar_one())

    def write_snapshot(self, path: str | Path) -> Path:
        """Write every stored alert to CSV (lists joined with ``;``), replacing the file atomically."""
        import pyarrow.compute as pc
        import pyarrow.csv as pacsv

        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        t = self.alerts()
        for i, f in enumerate(t.schema):
            if pa.types.is_list(f.type):
                t = t.set_column(i, f.name, pc.binary_join(t[f.name], ";"))
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        pacsv.write_csv(t, tmp)
        os.replace(tmp, path)  # readers never see a half-written snapshot
        return path

    # -- cases --------------------------------------------------------------------------------
    def _missing_alerts(self, conn: Connection, alert_ids: Sequence[str]) -> list[str]:
        found: set[str] = set()
        for i in range(0, len(alert_ids), 500):
            chunk = list(alert_ids[i : i + 500])
            found.update(
                conn.execute(sa.select(db.alerts.c.alert_id).where(db.alerts.c.alert_id.in_(chunk))).scalars()
            )
        return [x for x in alert_ids if x not in found]

    def _events(
        self, conn: Connection, case_id: str, actor: str, events: Iterable[Mapping[str, Any]]
    ) -> None:
        """Append events to the case's audit trail: the one way a case changes.

        The database stamps each row (its own clock, the hash chain, on PostgreSQL the session user) and
        applies ``field`` = status / assignee / priority to the ``cases`` row, which refuses any other change.
        """
        rows = [
            {"case_id": case_id, "actor": actor, "field": None, "old": None, "new": None, "comment": None}
            | {k: v for k, v in dict(e).items() if k not in ("at", "prev_hash", "hash", "db_user")}
            for e in events
        ]
        if rows:
            conn.execute(db.case_events.insert().values(at=_db_now(conn)), rows)

    def _locked_case(self, conn: Connection, case_id: str) -> Any:
        # PostgreSQL: the per-case advisory lock the event trigger also takes serialises concurrent changes
        # to one case (it needs no UPDATE right on cases, unlike FOR UPDATE); SQLite: BEGIN IMMEDIATE does
        if conn.dialect.name == "postgresql":
            conn.execute(
                sa.select(sa.func.pg_advisory_xact_lock(sa.func.hashtextextended("ms-case:" + case_id, 0)))
            )
        row = conn.execute(sa.select(db.cases).where(db.cases.c.case_id == case_id)).first()
        if row is None:
            raise UnknownIdError(f"case {case_id} does not exist")
        return row

    def open_case(
        self,
        title: str,
        alert_ids: Sequence[str],
        actor: str | None,
        *,
        assignee: str | None = None,
        priority: str | CasePriority = CasePriority.MEDIUM,
        comment: str | None = None,
    ) -> str:
        """Open a case on some alerts (all must exist) and return its ``case_id``."""
        title, actor = _required("title", title), self._actor(actor)
        prio = _parse_priority(priority)
        ids = list(dict.fromkeys(alert_ids))

        def write(conn: Connection) -> str:
            missing = self._missing_alerts(conn, ids)
            if missing:
                raise UnknownIdError(f"alert(s) {', '.join(missing)} do not exist")
            now = _now()
            case_id = f"C-{now:%Y%m%d}-{secrets.token_hex(5)}"
            # created open and unassigned, dated by the database; the events below set the rest
            conn.execute(
                db.cases.insert().values(
                    case_id=case_id,
                    title=title,
                    status=CaseStatus.OPEN.value,
                    assignee=None,
                    priority=prio.value,
                    created=_db_now(conn),
                    updated=_db_now(conn),
                )
            )
            if ids:
                conn.execute(
                    db.case_alerts.insert().values(added=_db_now(conn)),
                    [{"case_id": case_id, "alert_id": x} for x in ids],
                )
            events: list[dict[str, Any]] = [
                {
                    "action": "open",
                    "field": "status",
                    "new": CaseStatus.OPEN.value,
                    "comment": comment or title,
                },
                {"action": "priority", "field": "priority", "new": prio.value},
            ]
            if ids:
                events.append({"action": "add_alerts", "field": "alerts", "new": ",".join(ids)})
            if assignee:
                events.append({"action": "assign", "field": "assignee", "new": assignee})
            self._events(conn, case_id, actor, events)
            return case_id

        return self._write(write)

    def add_alerts(
        self, case_id: str, alert_ids: Sequence[str], actor: str | None, comment: str | None = None
    ) -> None:
        """Attach more alerts to an open (not closed) case; alerts already attached are ignored."""
        actor = self._actor(actor)

        def write(conn: Connection) -> None:
            row = self._locked_case(conn, case_id)
            if CaseStatus(row.status) in CLOSED:
                raise TransitionError(f"case {case_id} is {row.status}; reopen it before adding alerts")
            missing = self._missing_alerts(conn, list(alert_ids))
            if missing:
                raise UnknownIdError(f"alert(s) {', '.join(missing)} do not exist")
            have = set(
                conn.execute(
                    sa.select(db.case_alerts.c.alert_id).where(db.case_alerts.c.case_id == case_id)
                ).scalars()
            )
            new = [x for x in dict.fromkeys(alert_ids) if x not in have]
            if not new:
                return
            conn.execute(
                db.case_alerts.insert().values(added=_db_now(conn)),
                [{"case_id": case_id, "alert_id": x} for x in new],
            )
            self._events(
                conn,
                case_id,
                actor,
                [{"action": "add_alerts", "field": "alerts", "new": ",".join(new), "comment": comment}],
            )

        self._write(write)

    def assign(self, case_id: str, assignee: str, actor: str | None, comment: str | None = None) -> None:
        """Give the case to ``assignee`` (a closed case must be reopened first)."""
        assignee, actor = _required("assignee", assignee), self._actor(actor)

        def write(conn: Connection) -> None:
            row = self._locked_case(conn, case_id)
            if CaseStatus(row.status) in CLOSED:
                raise TransitionError(f"case {case_id} is {row.status}; reopen it before reassigning")
            if row.assignee == assignee:
                return
            event = {
                "action": "assign",
                "field": "assignee",
                "old": row.assignee,
                "new": assignee,
                "comment": comment,
            }
            self._events(conn, case_id, actor, [event])

        self._write(write)

    def set_priority(
        self, case_id: str, priority: str | CasePriority, actor: str | None, comment: str | None = None
    ) -> None:
        prio, actor = _parse_priority(priority), self._actor(actor)

        def write(conn: Connection) -> None:
            row = self._locked_case(conn, case_id)
            if row.priority == prio.value:
                return
            event = {
                "action": "priority",
                "field": "priority",
                "old": row.priority,
                "new": prio.value,
                "comment": comment,
            }
            self._events(conn, case_id, actor, [event])

        self._write(write)

    def comment(self, case_id: str, text: str, actor: str | None) -> None:
        """Add a note to the case's audit trail (allowed in every status, closed included)."""
        text, actor = _required("comment", text), self._actor(actor)

        def write(conn: Connection) -> None:
            self._locked_case(conn, case_id)
            self._events(conn, case_id, actor, [{"action": "comment", "comment": text}])

        self._write(write)

    def set_status(
        self,
        case_id: str,
        status: str | CaseStatus,
        actor: str | None,
        comment: str | None = None,
        *,
        reason: str | None = None,
        verdicts: Mapping[str, tuple[str, str | None]] | None = None,
    ) -> None:
        """Move the case along the workflow (:data:`workflow.TRANSITIONS`); closing needs a comment.

        Closing records a verdict for every alert of the case: by default ``true_positive`` when closed as
        reported (reason ``reason`` or ``stor_filed``) and ``false_positive`` when closed as a false positive
        (``reason`` then required, one of :data:`workflow.VERDICT_REASONS`). ``verdicts`` overrides single
        alerts: ``{alert_id: (verdict, reason)}``, e.g. one alert of a reported case that was noise.
        """
        actor = self._actor(actor)
        target = parse_status(str(status))
        if target in CLOSED and not (comment and comment.strip()):
            raise ValueError(f"closing case {case_id} as {target.value} needs a comment saying why")
        if target not in CLOSED and (reason or verdicts):
            raise ValueError(f"verdicts are recorded when a case closes, not when it goes to {target.value}")
        overrides = {k: parse_verdict(v, r) for k, (v, r) in (verdicts or {}).items()}
        default = None
        if target in CLOSED:
            verdict = DEFAULT_VERDICT[target]
            default_reason = reason or ("stor_filed" if target == CaseStatus.CLOSED_REPORTED else None)
            try:
                default = parse_verdict(verdict.value, default_reason)
            except ValueError as exc:
                raise ValueError(f"closing case {case_id} as {target.value}: {exc}") from None

        def write(conn: Connection) -> None:
            row = self._locked_case(conn, case_id)
            new = check_transition(case_id, row.status, target)
            events: list[dict[str, Any]] = []
            if default is not None:
                alert_ids = set(
                    conn.execute(
                        sa.select(db.case_alerts.c.alert_id).where(db.case_alerts.c.case_id == case_id)
                    ).scalars()
                )
                strangers = sorted(set(overrides) - alert_ids)
                if strangers:
                    raise ValueError(f"verdict for alert(s) {', '.join(strangers)} not in case {case_id}")
                chosen = {x: (v.value, r.value) for x, (v, r) in ({x: default for x in alert_ids} | overrides).items()}
                if chosen:
                    triage.record_verdicts(conn, case_id, chosen, actor=actor, now=_now())
                    events.append(
                        {"action": "verdicts", "field": "verdicts", "new": triage.verdict_summary(chosen)}
                    )
            action = "close" if new in CLOSED else "reopen" if row.status in CLOSED else "status"
            events.append(
                {"action": action, "field": "status", "old": row.status, "new": new.value, "comment": comment}
            )
            self._events(conn, case_id, actor, events)

        self._write(write)

    def close(
        self,
        case_id: str,
        resolution: str | CaseStatus,
        actor: str | None,
        comment: str,
        *,
        reason: str | None = None,
        verdicts: Mapping[str, tuple[str, str | None]] | None = None,
    ) -> None:
        """Close as ``false_positive`` or ``reported`` (or the full ``closed_...`` status) with a comment;
        ``reason``/``verdicts`` as in :meth:`set_status` (a false positive needs a reason code)."""
        res = str(resolution)
        res = res if res.startswith("closed_") else f"closed_{res}"
        if res not in {s.value for s in CLOSED}:
            raise ValueError(f"unknown resolution {resolution!r}: use false_positive or reported")
        self.set_status(case_id, res, actor, comment, reason=reason, verdicts=verdicts)

    def case(self, case_id: str) -> Case:
        def read(conn: Connection) -> Case:
            row = conn.execute(sa.select(db.cases).where(db.cases.c.case_id == case_id)).first()
            if row is None:
                raise UnknownIdError(f"case {case_id} does not exist")
            ids = conn.execute(
                sa.select(db.case_alerts.c.alert_id).where(db.case_alerts.c.case_id == case_id)
            ).scalars()
            return _case(row, ids)

        return self._read(read)

    def cases(self, status: str | None = None, assignee: str | None = None) -> list[Case]:
        """Cases, most recently updated first, optionally filtered by status and assignee."""
        q = sa.select(db.cases)
        if status is not None:
            q = q.where(db.cases.c.status == parse_status(status).value)
        if assignee is not None:
            q = q.where(db.cases.c.assignee == assignee)
        q = q.order_by(db.cases.c.updated.desc(), db.cases.c.case_id)

        def read(conn: Connection) -> list[Case]:
            rows = conn.execute(q).all()
            links: dict[str, list[str]] = {}
            for case_id, alert_id in conn.execute(
                sa.select(db.case_alerts.c.case_id, db.case_alerts.c.alert_id)
            ):
                links.setdefault(case_id, []).append(alert_id)
            return [_case(r, links.get(r.case_id, [])) for r in rows]

        return self._read(read)

    def history(self, case_id: str) -> list[CaseEvent]:
        """The case's audit trail, oldest first."""

        def read(conn: Connection) -> list[CaseEvent]:
            if (
                conn.execute(sa.select(db.cases.c.case_id).where(db.cases.c.case_id == case_id)).first()
                is None
            ):
                raise UnknownIdError(f"case {case_id} does not exist")
            rows = conn.execute(
                sa.select(db.case_events)
                .where(db.case_events.c.case_id == case_id)
                .order_by(db.case_events.c.event_id)
            ).all()
            return [CaseEvent(**r._asdict()) for r in rows]

        return self._read(read)

    # -- mutes, verdicts, statistics ------------------------------------------------------------
    def mute(
        self,
        rule: str,
        *,
        asset: str | None = None,
        account: str | None = None,
        owner: str,
        reason: str,
        expires: dt.datetime | dt.date | str,
        actor: str | None,
    ) -> tuple[str, int]:
        """Mute ``rule`` on one asset or one account until ``expires``; return the mute id and how many
        stored alerts (outside any case) it flagged now. Later runs flag the alerts it covers as they come.

        Muted alerts stay stored with ``suppression_id`` set and leave the queue; the mute and its lifting
        are audited in ``suppression_events``.
        """
        owner, reason, actor = _required("owner", owner), _required("reason", reason), self._actor(actor)
        until = _parse_since(expires)
        return self._write(
            lambda conn: triage.mute(
                conn,
                rule=rule,
                asset=asset,
                account=account,
                owner=owner,
                reason=reason,
                expires=until,
                actor=actor,
                now=_now(),
            )
        )

    def unmute(self, suppression_id: str, actor: str | None, reason: str) -> int:
        """Lift a mute before it expires; return how many alerts went back into the queue."""
        actor, reason = self._actor(actor), _required("reason", reason)
        return self._write(
            lambda conn: triage.unmute(conn, suppression_id, actor=actor, reason=reason, now=_now())
        )

    def suppressions(self) -> list[triage.Suppression]:
        """Every mute, newest first, with whether it was lifted and how many alerts it holds flagged."""
        return self._read(triage.suppressions)

    def mute_history(self) -> list[triage.MuteEvent]:
        """The audit trail of mutes (``mute`` / ``unmute`` events), oldest first."""
        return self._read(triage.mute_history)

    def verdicts(self, case_id: str | None = None) -> list[dict[str, Any]]:
        """Every verdict row (oldest first), optionally of one case."""
        v = db.alert_verdicts
        q = sa.select(v).order_by(v.c.verdict_id)
        if case_id is not None:
            q = q.where(v.c.case_id == case_id)
        return [r._asdict() for r in self._read(lambda c: c.execute(q).all())]

    def alert_stats(self, since: dt.datetime | dt.date | str | None = None) -> list[triage.RuleStats]:
        """Per rule: alerts, muted, in cases, verdicts, false-positive rate, median hours to close."""
        start = None if since is None else _parse_since(since)
        return self._read(lambda conn: triage.rule_stats(conn, start))


def _insert(conn: Connection) -> Callable[[sa.Table], Any]:
    """The dialect's INSERT construct (both offer ON CONFLICT DO UPDATE with the same API)."""
    if conn.dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert
    else:
        from sqlalchemy.dialects.sqlite import insert
    return insert
