"""Suspicious transaction and order report (STOR) of a case, as JSON, HTML or PDF.

The sections follow the template annexed to Commission Delegated Regulation (EU) 2016/957 (MAR Art. 16)
and its crypto-asset counterpart, Commission Delegated Regulation (EU) 2025/885 (MiCA Art. 92):

1. identity of the entity and person submitting the report (from a TOML file, never hard-coded);
2. the transactions and orders: instrument (crypto-asset, its DTI where configured), venue, times, prices,
   quantities, accounts;
3. the nature of the suspicion: suspected behaviour (EU MAR Annex I names) and the reasons, per alert;
4. the persons whose orders or transactions are suspected (accounts, their profile as the data holds it);
5. additional information: the analyst's own analysis (case comments), verdicts, the case's audit trail;
6. documentation attached: evidence tables and charts.

Every field of the template is either filled or ``NA`` with the reason it cannot be (e.g. the venue's KYC
data is not in the surveillance store). The document is built only from the store — case, alerts, audit
trail and the evidence rows frozen into the store (``--data`` freezes them the first time) — and dated by the
case's last change, never by the clock: the same store gives the same bytes, and every generation is
recorded in the case's audit trail (``report`` events, which the report itself leaves out).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import html
import json
import math
import os
import tomllib
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from market_surveillance import __version__
from market_surveillance.store import tables as db
from market_surveillance.store.errors import StoreError

REPORT_FORMATS = ("json", "html", "pdf")
TEMPLATES = {
    "MiCA": "Commission Delegated Regulation (EU) 2025/885, Annex (STOR, Regulation (EU) 2023/1114 Art. 92)",
    "MAR": "Commission Delegated Regulation (EU) 2016/957, Annex (STOR, Regulation (EU) No 596/2014 Art. 16)",
}
#: case events that do not change what a report says (generating one must not change the next one)
_NOT_CONTENT = frozenset({"report"})
_KYC_NA = "identity data (name, date of birth, national id, address) is held in the venue's client records, not in the surveillance store"


class EntityConfigError(StoreError):
    """The submitting entity's TOML file is missing, unreadable or lacks a required field."""


def na(reason: str) -> dict[str, str]:
    """A template field that cannot be filled, with why (the template asks for NA rather than a blank)."""
    return {"value": "NA", "reason": reason}


# -- submitting entity ----------------------------------------------------------------------------
#: (key, label, required) of the TOML file's [entity] and [person] tables
ENTITY_FIELDS = (
    ("name", "Name of the reporting entity (legal form, LEI)", True),
    ("legal_form", "Legal form", False),
    ("lei", "Legal Entity Identifier (ISO 17442)", False),
    ("address", "Address of the reporting entity", False),
    ("acting_capacity", "Acting capacity with respect to the orders/transactions", False),
    ("trading_activity", "Type of trading activity and of instruments traded", False),
    ("relationship", "Relationship with the person in respect of which the STOR is submitted", False),
)
PERSON_FIELDS = (
    ("name", "Name of the natural person submitting the STOR", True),
    ("position", "Position within the reporting entity", False),
    ("email", "Professional e-mail address (contact for additional information)", False),
    ("phone", "Telephone number", False),
)


def load_entity(path: str | Path | None) -> dict[str, Any]:
    """The submitting entity from TOML (``regime``, ``competent_authority``, ``[entity]``, ``[person]``,
    optional ``[contact]`` and ``[assets."BASE-QUOTE"]`` with ``name``/``dti``/``type``)."""
    if path is None:
        raise EntityConfigError(
            "the submitting entity is needed: --entity FILE.toml or $MS_STOR_ENTITY (see docs/store.md)"
        )
    p = Path(path)
    try:
        cfg = tomllib.loads(p.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise EntityConfigError(f"{p}: no such entity file") from None
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise EntityConfigError(f"{p}: cannot read the entity file: {exc}") from None
    regime = str(cfg.get("regime", "MiCA"))
    if regime not in TEMPLATES:
        raise EntityConfigError(f"{p}: regime {regime!r}: use one of {', '.join(TEMPLATES)}")
    for table, fields in (("entity", ENTITY_FIELDS), ("person", PERSON_FIELDS)):
        section = cfg.get(table)
        if not isinstance(section, dict):
            raise EntityConfigError(f"{p}: missing [{table}] table")
        for key, _label, required in fields:
            if required and not str(section.get(key, "")).strip():
                raise EntityConfigError(f'{p}: [{table}] needs {key} = "..."')
    return {**cfg, "regime": regime, "source": p.name}


def _fields(
    section: Mapping[str, Any], fields: Sequence[tuple[str, str, bool]], where: str
) -> list[dict[str, Any]]:
    out = []
    for key, label, _required in fields:
        value = str(section.get(key, "")).strip()
        out.append(
            {"field": key, "label": label, **({"value": value} if value else na(f"not set in {where}"))}
        )
    return out


# -- evidence frozen into the store ------------------------------------------------------------------
def _jsonable(v: Any) -> Any:
    if isinstance(v, dt.datetime):
        v = v if v.tzinfo else v.replace(tzinfo=dt.UTC)
        return v.astimezone(dt.UTC).isoformat()
    if isinstance(v, float) and not math.isfinite(v):
        return None
    if isinstance(v, list | tuple):
        return [_jsonable(x) for x in v]
    return v


def attach_evidence(store: Any, case_id: str, data_dir: str | Path, actor: str) -> dict[str, int]:
    """Copy the case's evidence rows (its alerts' trades, every event of their orders, their accounts) from a
    canonical data folder into the store, once; return rows added per kind (audited as ``evidence``)."""
    from market_surveillance.io.canonical import open_dir

    case = store.case(case_id)
    alerts = store.alerts(alert_ids=list(case.alert_ids)).to_pylist()
    wanted = {
        "trade": ("trades", "trade_id", sorted({x for a in alerts for x in a["evidence_trade_ids"]})),
        "order_event": ("orders", "order_id", sorted({x for a in alerts for x in a["evidence_order_ids"]})),
        "account": ("accounts", "account_id", sorted({x for a in alerts for x in a["accounts"]})),
    }
    key_of = {"trade": "trade_id", "order_event": "event_id", "account": "account_id"}
    try:
        backend, tables, _profile = open_dir(data_dir, validate=False)
    except Exception as exc:  # any unreadable folder is one line for the analyst
        raise StoreError(f"{data_dir}: cannot read the data folder: {str(exc).splitlines()[0]}") from None
    found: dict[str, list[dict[str, Any]]] = {}
    try:
        for kind, (table, column, ids) in wanted.items():
            if not ids or table not in tables:
                found[kind] = []
                continue
            t = tables[table]
            rows = t.filter(t[column].isin(ids)).drop(*[c for c in t.columns if c == "ts_us"]).to_pyarrow()
            found[kind] = [{k: _jsonable(v) for k, v in r.items()} for r in rows.to_pylist()]
    finally:
        backend.disconnect()

    def write(conn: Connection) -> dict[str, int]:
        store._locked_case(conn, case_id)
        ce = db.case_evidence
        have = {
            (k, key) for k, key in conn.execute(sa.select(ce.c.kind, ce.c.key).where(ce.c.case_id == case_id))
        }
        rows = [
            {
                "case_id": case_id,
                "kind": kind,
                "key": str(r[key_of[kind]]),
                "row": json.dumps(r, sort_keys=True),
            }
            for kind, rs in found.items()
            for r in rs
        ]
        new = {(r["kind"], r["key"]): r for r in rows if (r["kind"], r["key"]) not in have}
        added = {kind: sum(1 for k, _ in new if k == kind) for kind in wanted}
        if new:
            conn.execute(ce.insert(), [new[k] for k in sorted(new)])
            summary = ", ".join(f"{n} {kind}(s)" for kind, n in added.items())
            store._events(
                conn,
                case_id,
                actor,
                [
                    {
                        "action": "evidence",
                        "field": "evidence",
                        "new": summary,
                        "comment": f"frozen from {data_dir}",
                    }
                ],
            )
        return added

    return store._write(write)


def _evidence(conn: Connection, case_id: str) -> dict[str, list[dict[str, Any]]]:
    ce = db.case_evidence
    out: dict[str, list[dict[str, Any]]] = {k: [] for k in db.EVIDENCE_KINDS}
    for kind, row in conn.execute(
        sa.select(ce.c.kind, ce.c.row).where(ce.c.case_id == case_id).order_by(ce.c.kind, ce.c.key)
    ):
        out[kind].append(json.loads(row))
    for kind in ("trade", "order_event"):
        out[kind].sort(key=lambda r: (str(r.get("ts")), str(r.get("trade_id") or r.get("event_id"))))
    return out


# -- the document ----------------------------------------------------------------------------------------
def _iso(x: dt.datetime | None) -> str | None:
    return None if x is None else x.astimezone(dt.UTC).isoformat()


def build_report(store: Any, case_id: str, submitter: Mapping[str, Any]) -> dict[str, Any]:
    """The STOR as a JSON-ready dict, from the store alone (deterministic for a given store state)."""
    from market_surveillance.rules.registry import get_rule

    case = store.case(case_id)
    alerts = store.alerts(alert_ids=list(case.alert_ids)).to_pylist()
    events = [e for e in store.history(case_id) if e.action not in _NOT_CONTENT]
    evidence = store._read(lambda conn: _evidence(conn, case_id))
    as_of = max(e.at for e in events) if events else case.updated
    regime = submitter["regime"]
    where = f"entity file {submitter['source']}"

    contact = submitter.get("contact") or submitter["person"]
    section1 = {
        "date": as_of.date().isoformat(),
        "person": _fields(submitter["person"], PERSON_FIELDS, f"[person] of {where}"),
        "entity": _fields(submitter["entity"], ENTITY_FIELDS, f"[entity] of {where}"),
        "contact": _fields(contact, PERSON_FIELDS, f"[contact]/[person] of {where}"),
        "competent_authority": submitter.get("competent_authority")
        or na(f"competent_authority not set in {where}"),
    }

    asset_ref = submitter.get("assets", {}) or {}
    instruments = []
    for asset in sorted({a["asset"] for a in alerts if a["asset"]}):
        ref = asset_ref.get(asset, {})
        instruments.append(
            {
                "asset": asset,
                "full_name": ref.get("name") or na(f"no name for {asset} under [assets] in {where}"),
                "identifier": ref.get("dti")
                or ref.get("isin")
                or na(f"no DTI (ISO 24165) / identifier for {asset} under [assets] in {where}"),
                "type": ref.get("type") or na(f"no crypto-asset type for {asset} under [assets] in {where}"),
                "venues": sorted({a["venue"] for a in alerts if a["asset"] == asset and a["venue"]})
                or na("the alerts name no venue (market-wide rule); see the transactions"),
            }
        )
    trade_cols = ("trade_id", "ts", "venue", "asset", "price", "qty", "buyer_id", "seller_id", "aggressor")
    order_cols = (
        "event_id",
        "ts",
        "venue",
        "asset",
        "order_id",
        "account_id",
        "event",
        "side",
        "price",
        "qty",
    )
    n_trade_ids = len({x for a in alerts for x in a["evidence_trade_ids"]})
    n_order_ids = len({x for a in alerts for x in a["evidence_order_ids"]})
    not_frozen = (
        "the evidence rows were not frozen into the store: run `cases report ... --data DATA_DIR` once"
    )
    section2 = {
        "instruments": instruments or [na("the alerts name no instrument")],
        "transactions": [{c: r.get(c) for c in trade_cols} for r in evidence["trade"]]
        or (na(not_frozen) if n_trade_ids else na("the alerts cite no transactions (order-based suspicion)")),
        "orders": [{c: r.get(c) for c in order_cols} for r in evidence["order_event"]]
        or (na(not_frozen) if n_order_ids else na("the alerts cite no orders (transaction-based suspicion)")),
        "evidence_ids_cited": {"transactions": n_trade_ids, "orders": n_order_ids},
    }

    behaviours: dict[str, dict[str, Any]] = {}
    reasons = []
    for a in sorted(alerts, key=lambda x: (x["window_start"], x["alert_id"])):
        try:
            rule = get_rule(a["rule_id"])
            regulatory = rule.regulatory_name or a["typology"]
        except KeyError:  # a retired rule's alert
            regulatory = a["typology"]
        b = behaviours.setdefault(
            a["typology"], {"typology": a["typology"], "regulatory_name": regulatory, "alerts": 0}
        )
        b["alerts"] += 1
        reasons.append(
            {
                "alert_id": a["alert_id"],
                "rule": f"{a['rule_id']} {a['rule_name']}",
                "asset": a["asset"],
                "venue": a["venue"],
                "accounts": a["accounts"],
                "window_start": _iso(a["window_start"]),
                "window_end": _iso(a["window_end"]),
                "metric": a["metric"],
                "value": _jsonable(a["value"]),
                "threshold": _jsonable(a["threshold"]),
                "priority": a["priority"],
                "explanation": a["explanation"] or na("the rule gave no explanation"),
            }
        )
    section3 = {
        "suspected_behaviour": [behaviours[k] for k in sorted(behaviours)],
        "reasons_for_suspicion": reasons,
    }

    profiles = {r["account_id"]: r for r in evidence["account"]}
    persons = []
    for acc in sorted({x for a in alerts for x in a["accounts"]}):
        prof = profiles.get(acc)
        persons.append(
            {
                "account_id": acc,
                "identity": na(_KYC_NA),
                "profile": {k: v for k, v in sorted(prof.items()) if k != "account_id"}
                if prof
                else na(
                    not_frozen
                    if not any(evidence.values())
                    else f"{acc} has no row in the accounts table of the data folder the evidence came from"
                ),
                "alerts": sorted(a["alert_id"] for a in alerts if acc in a["accounts"]),
            }
        )
    section4 = persons or [na("the alerts name no account (market-wide suspicion)")]

    comments = [
        {"at": _iso(e.at), "analyst": e.actor, "text": e.comment}
        for e in events
        if e.action == "comment" and e.comment
    ]
    section5 = {
        "case": {
            "case_id": case.case_id,
            "title": case.title,
            "status": str(case.status),
            "priority": str(case.priority),
            "assignee": case.assignee or na("the case is not assigned"),
            "opened": _iso(case.created),
        },
        "analysis": comments or na("no analyst comment on the case: add one with `cases comment`"),
        "verdicts": [
            {"alert_id": a["alert_id"], "verdict": a["verdict"], "reason": a["verdict_reason"]}
            for a in sorted(alerts, key=lambda x: x["alert_id"])
            if a["verdict"]
        ]
        or na("the case is not closed yet: no alert verdicts"),
        "audit_trail": [
            {
                "event_id": e.event_id,
                "at": _iso(e.at),
                "actor": e.actor,
                "action": e.action,
                "field": e.field,
                "old": e.old,
                "new": e.new,
                "comment": e.comment,
            }
            for e in events
        ],
    }
    frozen_trades = {str(t.get("trade_id")) for t in evidence["trade"]}
    charts = [
        {"alert_id": a["alert_id"], "title": f"{a['asset']} evidence trade prices, alert {a['alert_id']}"}
        for a in sorted(alerts, key=lambda x: (x["window_start"], x["alert_id"]))
        if frozen_trades.intersection(a["evidence_trade_ids"])
    ]
    section6 = {
        "attachments": [
            f"evidence transactions: {len(evidence['trade'])} row(s)",
            f"evidence order events: {len(evidence['order_event'])} row(s)",
            f"account profiles: {len(evidence['account'])} row(s)",
        ],
        "charts": charts or na("no evidence trades frozen into the store to chart"),
    }
    return {
        "report": {
            "type": "STOR",
            "regime": regime,
            "template": TEMPLATES[regime],
            "case_id": case_id,
            "as_of": _iso(as_of),
            "generator": f"market-surveillance {__version__}",
        },
        "section_1_submitting_entity": section1,
        "section_2_transactions_and_orders": section2,
        "section_3_nature_of_suspicion": section3,
        "section_4_suspected_persons": section4,
        "section_5_additional_information": section5,
        "section_6_documentation_attached": section6,
        # chart input, dropped from the JSON output (the rows are in section 2 already)
        "_evidence_trades": evidence["trade"],
        "_alert_trades": {a["alert_id"]: list(a["evidence_trade_ids"]) for a in alerts},
    }


# -- rendering ------------------------------------------------------------------------------------------
def render_json(doc: Mapping[str, Any]) -> bytes:
    body = {k: v for k, v in doc.items() if not k.startswith("_")}
    return (json.dumps(body, indent=2, sort_keys=False, ensure_ascii=False) + "\n").encode("utf-8")


def _text(v: Any) -> str:
    if isinstance(v, dict) and v.get("value") == "NA" and "reason" in v:
        return f"NA ({v['reason']})"
    if isinstance(v, dict):
        return "; ".join(f"{k}: {_text(x)}" for k, x in v.items())
    if isinstance(v, list):
        return ", ".join(_text(x) for x in v)
    if v is None:
        return ""
    if isinstance(v, float):
        return f"{v:.10g}"
    return str(v)


def _chart_points(doc: Mapping[str, Any], alert_id: str) -> list[tuple[float, float]]:
    """(epoch seconds, price) of the alert's own evidence trades, in time order."""
    ids = set(doc["_alert_trades"].get(alert_id, ()))
    pts = []
    for t in doc["_evidence_trades"]:
        if str(t.get("trade_id")) in ids and t.get("price") is not None and t.get("ts"):
            pts.append((dt.datetime.fromisoformat(str(t["ts"])).timestamp(), float(t["price"])))
    return sorted(pts)


def _scaled(pts: Sequence[tuple[float, float]], w: float, h: float, pad: float) -> list[tuple[float, float]]:
    xs, ys = [p[0] for p in pts], [p[1] for p in pts]
    x0, x1, y0, y1 = min(xs), max(xs), min(ys), max(ys)
    sx = (w - 2 * pad) / (x1 - x0) if x1 > x0 else 0.0
    sy = (h - 2 * pad) / (y1 - y0) if y1 > y0 else 0.0
    return [(pad + (x - x0) * sx if sx else w / 2, h - pad - (y - y0) * sy if sy else h / 2) for x, y in pts]


def _svg_chart(pts: Sequence[tuple[float, float]], title: str) -> str:
    w, h, pad = 640.0, 220.0, 30.0
    xy = _scaled(pts, w, h, pad)
    line = " ".join(f"{x:.1f},{y:.1f}" for x, y in xy)
    dots = "".join(f'<circle cx="{x:.1f}" cy="{y:.1f}" r="2.5"/>' for x, y in xy)
    lo, hi = min(p[1] for p in pts), max(p[1] for p in pts)
    t0 = dt.datetime.fromtimestamp(pts[0][0], dt.UTC).strftime("%Y-%m-%d %H:%M:%S")
    t1 = dt.datetime.fromtimestamp(pts[-1][0], dt.UTC).strftime("%H:%M:%S")
    return (
        f'<figure><svg xmlns="http://www.w3.org/2000/svg" width="{w:.0f}" height="{h:.0f}" role="img" '
        f'aria-label="{html.escape(title)}"><rect width="100%" height="100%" fill="#fff" stroke="#999"/>'
        f'<polyline points="{line}" fill="none" stroke="#1f4e79" stroke-width="1.5"/><g fill="#c00">{dots}</g>'
        f'<text x="{pad}" y="15" font-size="11">high {hi:.8g}</text>'
        f'<text x="{pad}" y="{h - 8:.0f}" font-size="11">low {lo:.8g} · {t0} → {t1} UTC</text></svg>'
        f"<figcaption>{html.escape(title)} ({len(pts)} evidence trades)</figcaption></figure>"
    )


_CSS = (
    "body{font-family:sans-serif;max-width:1100px;margin:2em auto;color:#111}"
    "table{border-collapse:collapse;margin:.5em 0 1.5em;font-size:13px}"
    "th,td{border:1px solid #bbb;padding:3px 6px;text-align:left;vertical-align:top}"
    "th{background:#eef}.na{color:#a40}h2{border-bottom:2px solid #1f4e79;margin-top:2em}"
)


def _cell(v: Any) -> str:
    s = html.escape(_text(v))
    return f'<span class="na">{s}</span>' if isinstance(v, dict) and v.get("value") == "NA" else s


def _html_rows(rows: Sequence[Mapping[str, Any]] | Mapping[str, Any]) -> str:
    if isinstance(rows, dict):
        return f"<p>{_cell(rows)}</p>"
    if not rows:
        return "<p>none</p>"
    cols = list(rows[0].keys())
    head = "".join(f"<th>{html.escape(c)}</th>" for c in cols)
    body = "".join("<tr>" + "".join(f"<td>{_cell(r.get(c))}</td>" for c in cols) + "</tr>" for r in rows)
    return f"<table><tr>{head}</tr>{body}</table>"


def _html_fields(fields: Sequence[Mapping[str, Any]]) -> str:
    rows = "".join(
        f"<tr><th>{html.escape(f['label'])}</th><td>{_cell(f if f.get('value') == 'NA' else f['value'])}</td></tr>"
        for f in fields
    )
    return f"<table>{rows}</table>"


def render_html(doc: Mapping[str, Any]) -> bytes:
    r, s1 = doc["report"], doc["section_1_submitting_entity"]
    s2, s3 = doc["section_2_transactions_and_orders"], doc["section_3_nature_of_suspicion"]
    s4, s5 = doc["section_4_suspected_persons"], doc["section_5_additional_information"]
    s6 = doc["section_6_documentation_attached"]
    charts = ""
    if isinstance(s6["charts"], list):
        for c in s6["charts"]:
            pts = _chart_points(doc, c["alert_id"])
            if pts:
                charts += _svg_chart(pts, c["title"])
    parts = [
        "<!DOCTYPE html>",
        f'<html lang="en"><head><meta charset="utf-8"><title>STOR {html.escape(r["case_id"])}</title>'
        f"<style>{_CSS}</style></head><body>",
        f"<h1>Suspicious transaction and order report (STOR) — case {html.escape(r['case_id'])}</h1>",
        f"<p>Template: {html.escape(r['template'])}. As of {html.escape(r['as_of'])} (the case's last change). "
        f"Generated by {html.escape(r['generator'])}.</p>",
        "<h2>Section 1 — Identity of the entity/person submitting the STOR</h2>",
        f"<p>Date: {html.escape(s1['date'])}. Competent authority: {_cell(s1['competent_authority'])}</p>",
        "<h3>Natural person</h3>",
        _html_fields(s1["person"]),
        "<h3>Reporting entity</h3>",
        _html_fields(s1["entity"]),
        "<h3>Contact for additional requests for information</h3>",
        _html_fields(s1["contact"]),
        "<h2>Section 2 — Transactions and orders</h2>",
        "<h3>Instruments (crypto-assets)</h3>",
        _html_rows(s2["instruments"]),
        "<h3>Transactions</h3>",
        _html_rows(s2["transactions"]),
        "<h3>Orders</h3>",
        _html_rows(s2["orders"]),
        "<h2>Section 3 — Description of the nature of the suspicion</h2>",
        "<h3>Suspected behaviour</h3>",
        _html_rows(s3["suspected_behaviour"]),
        "<h3>Reasons for suspicion</h3>",
        _html_rows(s3["reasons_for_suspicion"]),
        "<h2>Section 4 — Identity of the persons whose orders/transactions are suspicious</h2>",
        _html_rows(s4),
        "<h2>Section 5 — Additional information</h2>",
        "<h3>Case</h3>",
        _html_rows([s5["case"]]),
        "<h3>Analyst's analysis</h3>",
        _html_rows(s5["analysis"]),
        "<h3>Verdicts</h3>",
        _html_rows(s5["verdicts"]),
        "<h3>Audit trail</h3>",
        _html_rows(s5["audit_trail"]),
        "<h2>Section 6 — Documentation attached</h2>",
        "<ul>" + "".join(f"<li>{html.escape(a)}</li>" for a in s6["attachments"]) + "</ul>",
        charts or f"<p>{_cell(s6['charts'])}</p>",
        "</body></html>",
    ]
    return ("\n".join(parts) + "\n").encode("utf-8")


_LATIN1_FALLBACK = str.maketrans(
    {
        "→": "->",
        "—": "-",
        "–": "-",
        "…": "...",
        "≥": ">=",
        "≤": "<=",
        "×": "x",
        "·": "-",
        "’": "'",
        "‘": "'",
        "“": '"',
        "”": '"',
    }
)


def _pdf_text(v: Any) -> str:
    """The PDF core fonts cover Latin-1 only: map common typography, replace the rest visibly."""
    return _text(v).translate(_LATIN1_FALLBACK).encode("latin-1", "replace").decode("latin-1")


def render_pdf(doc: Mapping[str, Any]) -> bytes:
    from fpdf import FPDF
    from fpdf.enums import XPos, YPos

    r = doc["report"]
    as_of = dt.datetime.fromisoformat(r["as_of"])
    pdf = FPDF(orientation="L", unit="mm", format="A4")
    # the creation date (and so the file id fpdf derives from it) is the case's last change: same store, same bytes
    pdf.set_creation_date(as_of)
    pdf.set_title(f"STOR {r['case_id']}")
    pdf.set_author(str(doc["section_1_submitting_entity"]["entity"][0].get("value", "")))
    pdf.set_creator(r["generator"])
    pdf.set_auto_page_break(auto=True, margin=12)
    pdf.add_page()
    width = pdf.w - pdf.l_margin - pdf.r_margin

    def heading(text: str, size: int = 13) -> None:
        pdf.set_font("Helvetica", "B", size)
        pdf.multi_cell(width, 7, _pdf_text(text), new_x=XPos.LMARGIN, new_y=YPos.NEXT)
        pdf.set_font("Helvetica", "", 8)

    def para(text: Any) -> None:
        pdf.set_font("Helvetica", "", 8)
        pdf.multi_cell(width, 4.5, _pdf_text(text), new_x=XPos.LMARGIN, new_y=YPos.NEXT)

    def table(rows: Any) -> None:
        if isinstance(rows, dict):
            para(rows)
            return
        if not rows:
            para("none")
            return
        cols = list(rows[0].keys())
        pdf.set_font("Helvetica", "", 7)
        with pdf.table(
            width=width, line_height=3.6, text_align="LEFT", first_row_as_headings=True, repeat_headings=1
        ) as t:
            head = t.row()
            for c in cols:
                head.cell(_pdf_text(c))
            for row in rows:
                rr = t.row()
                for c in cols:
                    rr.cell(_pdf_text(row.get(c)))
        pdf.ln(2)

    def fields(fs: Sequence[Mapping[str, Any]]) -> None:
        table([{"field": f["label"], "value": f if f.get("value") == "NA" else f["value"]} for f in fs])

    s1 = doc["section_1_submitting_entity"]
    heading(f"Suspicious transaction and order report (STOR) - case {r['case_id']}", 15)
    para(
        f"Template: {r['template']}. As of {r['as_of']} (the case's last change). Generated by {r['generator']}."
    )
    heading("Section 1 - Identity of the entity/person submitting the STOR")
    para(f"Date: {s1['date']}. Competent authority: {_text(s1['competent_authority'])}")
    fields(s1["person"])
    fields(s1["entity"])
    para("Contact for additional requests for information:")
    fields(s1["contact"])
    s2 = doc["section_2_transactions_and_orders"]
    heading("Section 2 - Transactions and orders")
    table(s2["instruments"])
    para("Transactions:")
    table(s2["transactions"])
    para("Orders:")
    table(s2["orders"])
    s3 = doc["section_3_nature_of_suspicion"]
    heading("Section 3 - Description of the nature of the suspicion")
    table(s3["suspected_behaviour"])
    table(s3["reasons_for_suspicion"])
    heading("Section 4 - Identity of the persons whose orders/transactions are suspicious")
    table(doc["section_4_suspected_persons"])
    s5 = doc["section_5_additional_information"]
    heading("Section 5 - Additional information")
    table([s5["case"]])
    para("Analyst's analysis:")
    table(s5["analysis"])
    para("Verdicts:")
    table(s5["verdicts"])
    para("Audit trail:")
    table(s5["audit_trail"])
    s6 = doc["section_6_documentation_attached"]
    heading("Section 6 - Documentation attached")
    for a in s6["attachments"]:
        para(f"- {a}")
    if isinstance(s6["charts"], dict):
        para(s6["charts"])
    else:
        for c in s6["charts"]:
            pts = _chart_points(doc, c["alert_id"])
            if not pts:
                continue
            if pdf.get_y() > pdf.h - 80:
                pdf.add_page()
            para(f"{c['title']} ({len(pts)} evidence trades)")
            x0, y0, w, h = pdf.l_margin, pdf.get_y(), 200.0, 60.0
            pdf.set_draw_color(150, 150, 150)
            pdf.rect(x0, y0, w, h)
            xy = [(x0 + x, y0 + y) for x, y in _scaled(pts, w, h, 6.0)]
            pdf.set_draw_color(31, 78, 121)
            if len(xy) > 1:
                pdf.polyline(xy)
            pdf.set_fill_color(200, 0, 0)
            for x, y in xy:
                pdf.circle(x, y, 0.7, style="F")
            pdf.set_y(y0 + h + 2)
            lo, hi = min(p[1] for p in pts), max(p[1] for p in pts)
            para(f"price range {lo:.8g} - {hi:.8g}")
    return bytes(pdf.output())


def write_report(
    store: Any,
    case_id: str,
    out: str | Path,
    fmt: str,
    *,
    submitter: Mapping[str, Any],
    actor: str,
    data_dir: str | Path | None = None,
) -> str:
    """Write the case's STOR to ``out`` and record a ``report`` event (format, sha256, file); return the sha256."""
    if fmt not in REPORT_FORMATS:
        raise ValueError(f"report format {fmt!r}: use one of {', '.join(REPORT_FORMATS)}")
    if data_dir is not None:
        attach_evidence(store, case_id, data_dir, actor)
    doc = build_report(store, case_id, submitter)
    data = {"json": render_json, "html": render_html, "pdf": render_pdf}[fmt](doc)
    digest = hashlib.sha256(data).hexdigest()
    out = Path(out)
    tmp = out.with_name(f".{out.name}.{os.getpid()}.tmp")
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        tmp.write_bytes(data)
        os.replace(tmp, out)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise StoreError(f"cannot write {out}: {exc.strerror or exc}") from None

    def audit(conn: Connection) -> None:
        store._locked_case(conn, case_id)
        store._events(
            conn,
            case_id,
            actor,
            [{"action": "report", "field": "report", "new": f"{fmt} sha256:{digest}", "comment": str(out)}],
        )

    try:
        store._write(audit)
    except Exception:
        out.unlink(missing_ok=True)  # an unaudited report must not be left behind
        raise
    return digest
