"""Superseded alerts: a re-run with changed rule parameters retires what the old parameters found.

When a run over a data source uses different parameters for a rule than the run that last produced some
of that rule's stored alerts over the same data source, and this run does not find them again, those
alerts are marked ``superseded_by`` = this run. They stay stored (cases may hold them) and each marking is
logged in the append-only ``alert_supersessions`` table with the parameter change as the reason. An alert
found again later (parameters changed back) becomes current again through the run's upsert.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Mapping, Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from market_surveillance.store import tables as db

_CHUNK = 500


def _describe(rule_id: str, before: Mapping[str, Any], after: Mapping[str, Any]) -> str:
    """One line naming what changed, e.g. ``MS004 parameters changed: params.min_trades 3 → 5``."""
    changes: list[str] = []
    for part in sorted(set(before) | set(after)):
        old, new = before.get(part), after.get(part)
        if old == new:
            continue
        if isinstance(old, Mapping) and isinstance(new, Mapping):
            for key in sorted(set(old) | set(new), key=str):
                if old.get(key) != new.get(key):
                    changes.append(f"{part}.{key} {json.dumps(old.get(key))} → {json.dumps(new.get(key))}")
        else:
            changes.append(f"{part} {json.dumps(old)} → {json.dumps(new)}")
    return (f"{rule_id} parameters changed: " + ", ".join(changes))[:2000]


def mark_superseded(
    conn: Connection,
    *,
    run_id: str,
    data_source: str,
    rule_versions: Mapping[str, Any],
    rule_runs: Sequence[Mapping[str, Any]],
    now: dt.datetime,
) -> dict[str, int]:
    """Mark the alerts this run supersedes (see the module docstring); return ``{rule_id: count}``.

    Only rules that ran in this run count (a skipped rule says nothing about its old alerts), and only
    runs that recorded their rule versions can be compared.
    """
    ran = (
        {str(r["rule_id"]) for r in rule_runs if r.get("status") == "ran"}
        if rule_runs
        else set(rule_versions)
    )
    rules = sorted(ran & set(rule_versions))
    if not rules:
        return {}
    a, r = db.alerts, db.runs
    candidates = conn.execute(
        sa.select(a.c.alert_id, a.c.rule_id, a.c.last_run_id)
        .join(r, r.c.run_id == a.c.last_run_id)
        .where(
            r.c.data_source == data_source,
            a.c.last_run_id != run_id,
            a.c.superseded_by.is_(None),
            a.c.rule_id.in_(rules),
        )
        .order_by(a.c.alert_id)
    ).all()
    if not candidates:
        return {}
    prior = {c.last_run_id for c in candidates}
    versions = dict(
        conn.execute(sa.select(r.c.run_id, r.c.rule_versions).where(r.c.run_id.in_(sorted(prior)))).all()
    )
    rows: list[dict[str, Any]] = []
    for c in candidates:
        before = (versions.get(c.last_run_id) or {}).get(c.rule_id)
        after = rule_versions[c.rule_id]
        if before is None or before == after:
            continue  # unknown or unchanged parameters: not this module's business
        rows.append(
            {
                "alert_id": c.alert_id,
                "run_id": run_id,
                "previous_run_id": c.last_run_id,
                "rule_id": c.rule_id,
                "at": now,
                "reason": _describe(c.rule_id, before, after),
            }
        )
    counts: dict[str, int] = {}
    for i in range(0, len(rows), _CHUNK):
        chunk = rows[i : i + _CHUNK]
        conn.execute(db.alert_supersessions.insert(), chunk)
        conn.execute(
            a.update().where(a.c.alert_id.in_([x["alert_id"] for x in chunk])).values(superseded_by=run_id)
        )
        for x in chunk:
            counts[x["rule_id"]] = counts.get(x["rule_id"], 0) + 1
    return counts
