"""The alert contract every layer shares: schema, deterministic ids, finalisation, alert files.

Rules produce alerts in :data:`ALERT_SCHEMA`; the store, the dashboard, evaluation and the adapters
read them. It lives here, not in ``rules``, so those layers do not import the rules package.
"""

from __future__ import annotations

import hashlib
import math
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import pyarrow as pa

from market_surveillance.schema import TS

ALERT_SCHEMA = pa.schema(
    [
        pa.field("alert_id", pa.string(), nullable=False),
        pa.field("rule_id", pa.string(), nullable=False),
        pa.field("rule_name", pa.string(), nullable=False),
        pa.field("typology", pa.string(), nullable=False),
        pa.field("asset", pa.string()),
        pa.field("venue", pa.string()),
        pa.field("accounts", pa.list_(pa.string())),
        pa.field("window_start", TS, nullable=False),
        pa.field("window_end", TS, nullable=False),
        # event time of the data when the alert was first decidable: the rule's decision on the data up to
        # that moment (an episode that goes on keeps it while its window_end grows); never before window_start
        pa.field("detected_at", TS, nullable=False),
        pa.field("score", pa.float64(), nullable=False),
        pa.field("metric", pa.string(), nullable=False),
        pa.field("value", pa.float64(), nullable=False),
        pa.field("threshold", pa.float64(), nullable=False),
        pa.field("evidence_trade_ids", pa.list_(pa.string())),
        pa.field("evidence_order_ids", pa.list_(pa.string())),
        pa.field("explanation", pa.string()),
    ]
)

#: Columns a rule's ``candidates`` expression must return. ``detected_at`` is optional (timestamp or int64
#: microseconds since epoch): the event time of the episode's first decision; without it, window_end.
CANDIDATE_COLUMNS = (
    "asset",
    "venue",
    "accounts",
    "window_start",
    "window_end",
    "value",
    "score",
    "evidence_trade_ids",
    "evidence_order_ids",
)

#: List columns, written to CSV joined with ';'.
LIST_COLUMNS = ("accounts", "evidence_trade_ids", "evidence_order_ids")

MAX_EVIDENCE = 200  # ids kept per alert; the window bounds locate the rest


class AlertSource(Protocol):
    """What :func:`finalize_alerts` needs to know of the rule that produced the rows."""

    rule_id: str
    name: str
    typology: Any
    metric: str


def alert_id(
    rule_id: str, asset: str | None, venue: str | None, accounts: list[str], start: Any, end: Any = None
) -> str:
    """Deterministic id: hash of rule, entity (asset, venue, accounts) and the episode's start.

    ``end`` is not part of the identity: an episode that goes on (a later micro-batch of an online run, a
    longer file) keeps its id and is updated in place instead of being raised again.
    """
    key = "|".join([rule_id, asset or "", venue or "", ",".join(sorted(accounts or [])), str(start)])
    return hashlib.sha1(key.encode()).hexdigest()[:20]


def _str_list(col: pa.ChunkedArray | pa.Array, n: int) -> pa.Array:
    if col.null_count == len(col):
        return pa.array([[] for _ in range(n)], type=pa.list_(pa.string()))
    vals = col.to_pylist()
    return pa.array(
        [sorted({str(v) for v in (x or []) if v is not None})[:MAX_EVIDENCE] for x in vals],
        type=pa.list_(pa.string()),
    )


def finalize_alerts(rule: AlertSource, raw: pa.Table) -> pa.Table:
    """Turn a candidates result into sorted, deduplicated alerts with ids (alerts are few: Python is fine)."""
    import pyarrow.compute as pc

    n = raw.num_rows
    if n == 0:
        return ALERT_SCHEMA.empty_table()
    accounts = _str_list(raw["accounts"], n)
    trades = _str_list(raw["evidence_trade_ids"], n)
    orders = _str_list(raw["evidence_order_ids"], n)
    ws = raw["window_start"].cast(TS)
    we = raw["window_end"].cast(TS)
    if "detected_at" in raw.column_names:
        d = raw["detected_at"]
        # compared as int64 microseconds (Arrow has no element-wise max over zoned timestamps)
        d_us = d.cast(pa.int64()) if pa.types.is_integer(d.type) else d.cast(TS).cast(pa.int64())
        we_us, ws_us = we.cast(pa.int64()), ws.cast(pa.int64())
        # the first decision of an episode cannot precede the episode's own start
        det = pc.max_element_wise(pc.fill_null(d_us, we_us), ws_us).cast(TS)
    else:
        det = we
    assets = raw["asset"].cast(pa.string()).to_pylist()
    venues = raw["venue"].cast(pa.string()).to_pylist()
    acc_py = accounts.to_pylist()
    ws_py, we_py = ws.to_pylist(), we.to_pylist()
    ids = [
        alert_id(rule.rule_id, a, v, ac, s, e)
        for a, v, ac, s, e in zip(assets, venues, acc_py, ws_py, we_py, strict=True)
    ]
    score = raw["score"].cast(pa.float64()).fill_null(math.nan).to_numpy(zero_copy_only=False)
    bad = ~np.isfinite(score)
    if bad.any():
        # a score orders the analyst's queue: an undefined one is a rule bug, never a silent 0.0
        i = int(np.argmax(bad))
        raise ValueError(
            f"rule {rule.rule_id} ({rule.name}) produced {int(bad.sum())} alert(s) whose score is not a finite "
            f"number, e.g. {score[i]} for asset {assets[i]!r} window {ws_py[i]}"
        )
    out = pa.Table.from_arrays(
        [
            pa.array(ids, pa.string()),
            pa.array([rule.rule_id] * n, pa.string()),
            pa.array([rule.name] * n, pa.string()),
            pa.array([str(rule.typology)] * n, pa.string()),
            pa.array(assets, pa.string()),
            pa.array(venues, pa.string()),
            accounts,
            ws,
            we,
            det,
            pa.array(score, pa.float64()),
            pa.array([rule.metric] * n, pa.string()),
            raw["value"].cast(pa.float64()),
            raw["threshold"].cast(pa.float64()),
            trades,
            orders,
            raw["explanation"].cast(pa.string()),
        ],
        schema=ALERT_SCHEMA,
    )
    out = _merge_same_id(out) if len(set(ids)) < n else out
    return out.sort_by([("window_start", "ascending"), ("alert_id", "ascending")])


def _merge_same_id(out: pa.Table) -> pa.Table:
    """One alert per id: an episode reached twice (overlapping candidates, two runs of hits whose evidence
    windows start at the same print) is one alert spanning both, whatever order the engine returned the
    rows in: latest end, earliest decision, largest value and score, the union of the evidence."""
    rows = sorted(out.to_pylist(), key=lambda r: (r["alert_id"], r["window_end"], r["value"]))
    merged: dict[str, dict[str, Any]] = {}
    for r in rows:
        m = merged.setdefault(r["alert_id"], r)
        if m is r:
            continue
        m["window_end"] = max(m["window_end"], r["window_end"])
        m["detected_at"] = min(m["detected_at"], r["detected_at"])
        m["value"], m["score"] = max(m["value"], r["value"]), max(m["score"], r["score"])
        for col in ("evidence_trade_ids", "evidence_order_ids", "accounts"):
            m[col] = sorted(set(m[col]) | set(r[col]))[:MAX_EVIDENCE]
        m["explanation"] = m["explanation"] or r["explanation"]
    return pa.Table.from_pylist(list(merged.values()), schema=ALERT_SCHEMA)


def write_alerts(alerts: pa.Table, out: str | Path) -> Path:
    """Write alerts to Parquet, or CSV when the path ends in .csv (lists joined with ';')."""
    import pyarrow.compute as pc
    import pyarrow.csv as pacsv
    import pyarrow.parquet as pq

    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    if out.suffix == ".csv":
        flat = alerts
        for col in LIST_COLUMNS:
            idx = flat.schema.get_field_index(col)
            flat = flat.set_column(idx, col, pc.binary_join(flat[col], ";"))
        pacsv.write_csv(flat, out)
    else:
        pq.write_table(alerts, out)
    return out


def read_alerts(path: str | Path) -> pa.Table:
    """Alerts written by :func:`write_alerts` (Parquet or CSV) back in :data:`ALERT_SCHEMA`.

    Files written before ``detected_at`` existed get it from ``window_end``.
    """
    import pyarrow.compute as pc
    import pyarrow.csv as pacsv
    import pyarrow.parquet as pq

    path = Path(path)
    if path.suffix == ".csv":
        t = pacsv.read_csv(path)
        for col in LIST_COLUMNS:
            idx = t.schema.get_field_index(col)
            s = pc.fill_null(t[col].cast(pa.string()), "")
            parts = pc.split_pattern(s, ";")
            parts = pa.array([[x for x in v if x] for v in parts.to_pylist()], pa.list_(pa.string()))
            t = t.set_column(idx, col, parts)
    else:
        t = pq.read_table(path)
    if "detected_at" not in t.column_names:
        t = t.append_column("detected_at", t["window_end"])
    return t.select(ALERT_SCHEMA.names).cast(ALERT_SCHEMA)
