"""A ``watch`` session in the store: one run row per session, alerts and watermark committed together.

Each micro-batch that decided something upserts its alerts (new ones, and episodes that went on, under
their first id) and moves the session's watermark — the event time every decision has been taken up to —
in one transaction, so a process killed at any point leaves the store at a batch boundary. A restarted
``watch`` on the same source resumes from the newest watermark of that source's sessions.
"""

from __future__ import annotations

import datetime as dt
import json
import uuid
from collections.abc import Mapping
from typing import Any

import pyarrow as pa
import sqlalchemy as sa
from sqlalchemy.engine import Connection

from market_surveillance.alerts import ALERT_SCHEMA
from market_surveillance.store import tables as db
from market_surveillance.store import triage
from market_surveillance.store.core import Store, _alert_rows, _insert, _now

WATCH_KEY = "watch"  # the runs.input_counts entry holding a session's watermark and event counts


def start_watch(store: Store, data_source: str, *, config_hash: str, rule_versions: Mapping[str, Any]) -> str:
    """Open a session (a run with status ``running``); returns its run_id."""
    run_id = uuid.uuid4().hex
    meta = json.loads(json.dumps(dict(rule_versions), default=str))

    def write(conn: Connection) -> None:
        conn.execute(
            db.runs.insert().values(
                run_id=run_id,
                started=_now(),
                status="running",
                data_source=data_source,
                config_hash=config_hash,
                rule_versions=meta,
                rule_runs=[],
                input_counts={WATCH_KEY: {"watermark_us": None, "batches": 0}},
                alerts_written=0,
            )
        )

    store._write(write)
    return run_id


def record_batch(store: Store, run_id: str, alerts: pa.Table, watermark_us: int) -> None:
    """Upsert a batch's alerts and move the session's watermark, in one transaction."""
    rows = _alert_rows(alerts) if alerts.num_rows else []

    def write(conn: Connection) -> None:
        now = _now()
        if rows:
            stmt = _insert(conn)(db.alerts)
            content = [c for c in ALERT_SCHEMA.names if c != "alert_id"]
            upsert = stmt.on_conflict_do_update(
                index_elements=["alert_id"],
                set_={**{c: stmt.excluded[c] for c in content}, "last_run_id": run_id, "last_seen": now},
            )
            extra = {"run_id": run_id, "last_run_id": run_id, "first_seen": now, "last_seen": now}
            conn.execute(upsert, [{**r, **extra} for r in rows])
            # as record_run: the account search index, and active mutes applied to what was just decided
            triage.index_accounts(conn, rows, _insert(conn))
            triage.flag_muted(conn, now, db.alerts.c.alert_id.in_([r["alert_id"] for r in rows]))
        run = conn.execute(
            sa.select(db.runs.c.input_counts, db.runs.c.alerts_written).where(db.runs.c.run_id == run_id)
        ).one()
        counts = dict(run.input_counts or {})
        w = dict(counts.get(WATCH_KEY) or {})
        w["watermark_us"] = int(watermark_us)
        w["watermark"] = dt.datetime.fromtimestamp(watermark_us / 1e6, dt.UTC).isoformat()
        w["batches"] = int(w.get("batches") or 0) + 1
        counts[WATCH_KEY] = w
        conn.execute(
            db.runs.update()
            .where(db.runs.c.run_id == run_id)
            .values(input_counts=counts, alerts_written=run.alerts_written + len(rows))
        )

    store._write(write)


def finish_watch(store: Store, run_id: str, stopped: str) -> None:
    """Close the session: ``complete`` (end of data, Ctrl-C, idle) or ``failed`` with why."""
    status = "complete" if stopped in ("end of data", "interrupted", "idle") else "failed"
    store._write(
        lambda conn: conn.execute(
            db.runs.update()
            .where(db.runs.c.run_id == run_id)
            .values(status=status, finished=_now(), error=None if status == "complete" else stopped[:4000])
        )
    )


def resume_point(
    store: Store, data_source: str, *, exclude_run: str | None = None
) -> tuple[pa.Table, int | None]:
    """The alerts earlier sessions on ``data_source`` raised and the newest watermark they reached."""

    def read(conn: Connection) -> tuple[list[str], int | None]:
        rows = conn.execute(
            sa.select(db.runs.c.run_id, db.runs.c.input_counts).where(db.runs.c.data_source == data_source)
        ).all()
        ids, wm = [], None
        for run_id, counts in rows:
            if run_id == exclude_run:
                continue
            ids.append(run_id)
            w = (counts or {}).get(WATCH_KEY) or {}
            if w.get("watermark_us") is not None:
                wm = max(wm or w["watermark_us"], w["watermark_us"])
        return ids, wm

    run_ids, wm = store._read(read)
    if not run_ids:
        return ALERT_SCHEMA.empty_table(), None
    a = db.alerts
    ids = store._read(
        lambda c: [r[0] for r in c.execute(sa.select(a.c.alert_id).where(a.c.run_id.in_(run_ids))).all()]
    )
    if not ids:
        return ALERT_SCHEMA.empty_table(), wm
    stored = store.alerts(alert_ids=ids)
    return stored.select(ALERT_SCHEMA.names).cast(ALERT_SCHEMA), wm
