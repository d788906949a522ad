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
from market_surveillance.store import tables as db
from market_surveillance.store.errors import StoreError, TransitionError, UnknownIdError
from market_surveillance.store.workflow import CLOSED, check_transition, parse_status

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
    ]
)

_R = TypeVar("_R")
_PG_LOCK_KEY = 0x4D530004  # advisory lock serialising concurrent migrations on one PostgreSQL database
_SQLITE_BUSY_MS = 30_000


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


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
    """One audit row: who did what to a case, when, the field changed (old → new) and why."""

    event_id: int
    case_id: str
    at: dt.datetime
    actor: str
    action: str
    field: str | None
    old: str | None
    new: str | None
    comment: str | None


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


def _make_engine(url: str) -> Engine:
    u = sa.engine.make_url(url)
    if u.get_backend_name() == "sqlite":
        if u.database and u.database != ":memory:" and not u.database.startswith("file:"):
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


def migrate(engine: Engine) -> None:
    """Bring the schema to the newest migration (idempotent; concurrent callers are serialised)."""
    from alembic import command
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))

    def upgrade(conn: Connection) -> None:
        if conn.dialect.name == "postgresql":
            conn.execute(sa.select(sa.func.pg_advisory_xact_lock(_PG_LOCK_KEY)))
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, "head")

    _run_tx(engine, upgrade, write=True)


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
        r["score"] = _finite(r["score"]) or 0.0
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

    @classmethod
    def open(cls, url: str | None = None, *, migrate_schema: bool = True) -> Store:
        """Connect to ``url`` (default: ``sqlite:///data/alerts.sqlite``, folders created) and migrate."""
        engine = _make_engine(url or os.environ.get("MS_STORE_URL") or DEFAULT_URL)
        if migrate_schema:
            migrate(engine)
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
                set_={**{c: stmt.excluded[c] for c in content}, "last_run_id": run_id, "last_seen": now},
            )
            extra = {"run_id": run_id, "last_run_id": run_id, "first_seen": now, "last_seen": now}
            for n, i in enumerate(range(0, len(rows), batch_size)):
                conn.execute(upsert, [{**r, **extra} for r in rows[i : i + batch_size]])
                if self._on_batch is not None:
                    self._on_batch(n)
            conn.execute(
                db.runs.update()
                .where(db.runs.c.run_id == run_id)
                .values(status="complete", finished=_now(), alerts_written=len(rows))
            )

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
    ) -> pa.Table:
        """Stored alerts in :data:`STORED_ALERT_SCHEMA`, ordered by window start.

        ``rule`` matches the rule id or name; ``since`` keeps alerts whose window starts at or after it
        (naive means UTC); ``status`` is ``new`` (in no case) or a case status (in a case with that status).
        """
        a, ca, c = db.alerts, db.case_alerts, db.cases
        q = sa.select(*(a.c[n] for n in STORED_ALERT_SCHEMA.names if n != "case_ids"))
        if rule is not None:
            q = q.where(sa.or_(a.c.rule_id == rule, a.c.rule_name == rule))
        if asset is not None:
            q = q.where(a.c.asset == asset)
        if since is not None:
            q = q.where(a.c.window_start >= _parse_since(since))
        if status is not None:
            in_case = sa.select(ca.c.alert_id).where(ca.c.alert_id == a.c.alert_id)
            if status == NEW:
                q = q.where(~in_case.exists())
            else:
                st = parse_status(status)
                in_case = in_case.join(c, c.c.case_id == ca.c.case_id).where(c.c.status == st.value)
                q = q.where(in_case.exists())
        if alert_ids is not None:
            q = q.where(a.c.alert_id.in_(list(alert_ids)))
        q = q.order_by(a.c.window_start, a.c.alert_id)

        def read(conn: Connection) -> tuple[list[Any], dict[str, list[str]]]:
            rows = conn.execute(q).all()
            links: dict[str, list[str]] = {}
            sub = q.with_only_columns(a.c.alert_id).order_by(None).scalar_subquery()
            for alert_id, case_id in conn.execute(
                sa.select(ca.c.alert_id, ca.c.case_id).where(ca.c.alert_id.in_(sub)).order_by(ca.c.case_id)
            ):
                links.setdefault(alert_id, []).append(case_id)
            return rows, links

        rows, links = self._read(read)
        names = [n for n in STORED_ALERT_SCHEMA.names if n != "case_ids"]
        columns = dict(zip(names, zip(*rows, strict=True), strict=True)) if rows else {n: () for n in names}
        arrays: dict[str, Any] = {}
        for name in names:
            values = columns[name]
            if name in LIST_COLUMNS:
                # one decode of a JSON array of all rows' lists is ~5x faster than one call per row
                arrays[name] = json.loads("[" + ",".join(values) + "]")
            elif name in ("value", "threshold"):  # NULL in the database is a NaN in the contract
                arrays[name] = pa.array(values, pa.float64()).fill_null(math.nan)
            else:
                arrays[name] = values
        arrays["case_ids"] = [links.get(x, []) for x in columns["alert_id"]]
        return pa.table(arrays, schema=STORED_ALERT_SCHEMA)

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
        now = _now()
        rows = [
            {
                "case_id": case_id,
                "at": now,
                "actor": actor,
                "field": None,
                "old": None,
                "new": None,
                "comment": None,
            }
            | dict(e)
            for e in events
        ]
        if rows:
            conn.execute(db.case_events.insert(), rows)
            conn.execute(db.cases.update().where(db.cases.c.case_id == case_id).values(updated=now))

    def _locked_case(self, conn: Connection, case_id: str) -> Any:
        # FOR UPDATE on PostgreSQL serialises concurrent changes to one case (SQLite: BEGIN IMMEDIATE does)
        row = conn.execute(sa.select(db.cases).where(db.cases.c.case_id == case_id).with_for_update()).first()
        if row is None:
            raise UnknownIdError(f"case {case_id} does not exist")
        return row

    def open_case(
        self,
        title: str,
        alert_ids: Sequence[str],
        actor: str,
        *,
        assignee: str | None = None,
        priority: str | CasePriority = CasePriority.MEDIUM,
        comment: str | None = None,
    ) -> str:
        """Open a case on some alerts (all must exist) and return its ``case_id``."""
        title, actor = _required("title", title), _required("actor", actor)
        prio = _parse_priority(priority)
        ids = list(dict.fromkeys(alert_ids))

        def write(conn: Connection) -> str:
            missing = self._missing_alerts(conn, ids)
            if missing:
                raise UnknownIdError(f"alert(s) {', '.join(missing)} do not exist")
            now = _now()
            case_id = f"C-{now:%Y%m%d}-{secrets.token_hex(5)}"
            conn.execute(
                db.cases.insert().values(
                    case_id=case_id,
                    title=title,
                    status=CaseStatus.OPEN.value,
                    assignee=assignee,
                    priority=prio.value,
                    created=now,
                    updated=now,
                )
            )
            if ids:
                conn.execute(
                    db.case_alerts.insert(), [{"case_id": case_id, "alert_id": x, "added": now} for x in ids]
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
        self, case_id: str, alert_ids: Sequence[str], actor: str, comment: str | None = None
    ) -> None:
        """Attach more alerts to an open (not closed) case; alerts already attached are ignored."""
        actor = _required("actor", actor)

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
            now = _now()
            conn.execute(
                db.case_alerts.insert(), [{"case_id": case_id, "alert_id": x, "added": now} for x in new]
            )
            self._events(
                conn,
                case_id,
                actor,
                [{"action": "add_alerts", "field": "alerts", "new": ",".join(new), "comment": comment}],
            )

        self._write(write)

    def assign(self, case_id: str, assignee: str, actor: str, comment: str | None = None) -> None:
        """Give the case to ``assignee`` (a closed case must be reopened first)."""
        assignee, actor = _required("assignee", assignee), _required("actor", actor)

        def write(conn: Connection) -> None:
            row = self._locked_case(conn, case_id)
            if CaseStatus(row.status) in CLOSED:
                raise TransitionError(f"case {case_id} is {row.status}; reopen it before reassigning")
            if row.assignee == assignee:
                return
            conn.execute(db.cases.update().where(db.cases.c.case_id == case_id).values(assignee=assignee))
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
        self, case_id: str, priority: str | CasePriority, actor: str, comment: str | None = None
    ) -> None:
        prio, actor = _parse_priority(priority), _required("actor", actor)

        def write(conn: Connection) -> None:
            row = self._locked_case(conn, case_id)
            if row.priority == prio.value:
                return
            conn.execute(db.cases.update().where(db.cases.c.case_id == case_id).values(priority=prio.value))
            event = {
                "action": "priority",
                "field": "priority",
                "old": row.priority,
                "new": prio.value,
                "comment": comment,
            }
            self._events(conn, case_id, actor, [event])

        self._write(write)

    def comment(self, case_id: str, text: str, actor: str) -> None:
        """Add a note to the case's audit trail (allowed in every status, closed included)."""
        text, actor = _required("comment", text), _required("actor", actor)

        def write(conn: Connection) -> None:
            self._locked_case(conn, case_id)
            self._events(conn, case_id, actor, [{"action": "comment", "comment": text}])

        self._write(write)

    def set_status(
        self, case_id: str, status: str | CaseStatus, actor: str, comment: str | None = None
    ) -> None:
        """Move the case along the workflow (:data:`workflow.TRANSITIONS`); closing needs a comment."""
        actor = _required("actor", actor)
        target = parse_status(str(status))
        if target in CLOSED and not (comment and comment.strip()):
            raise ValueError(f"closing case {case_id} as {target.value} needs a comment saying why")

        def write(conn: Connection) -> None:
            row = self._locked_case(conn, case_id)
            new = check_transition(case_id, row.status, target)
            conn.execute(db.cases.update().where(db.cases.c.case_id == case_id).values(status=new.value))
            action = "close" if new in CLOSED else "reopen" if row.status in CLOSED else "status"
            event = {
                "action": action,
                "field": "status",
                "old": row.status,
                "new": new.value,
                "comment": comment,
            }
            self._events(conn, case_id, actor, [event])

        self._write(write)

    def close(self, case_id: str, resolution: str | CaseStatus, actor: str, comment: str) -> None:
        """Close as ``false_positive`` or ``reported`` (or the full ``closed_...`` status) with a reason."""
        res = str(resolution)
        res = res if res.startswith("closed_") else f"closed_{res}"
        if res not in {s.value for s in CLOSED}:
            raise ValueError(f"unknown resolution {resolution!r}: use false_positive or reported")
        self.set_status(case_id, res, actor, comment)

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


def _insert(conn: Connection) -> Callable[[sa.Table], Any]:
    """The dialect's INSERT construct (both offer ON CONFLICT DO UPDATE with the same API)."""
    if conn.dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert
    else:
        from sqlalchemy.dialects.sqlite import insert
    return insert
