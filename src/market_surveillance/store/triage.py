"""Triage helpers of the store: comparable priorities, mutes (suppressions), verdicts and their statistics.

Everything here runs inside a transaction opened by :class:`~market_surveillance.store.core.Store`; the
functions take the open connection.

Priority (0–100, comparable across rules; see docs/store.md):

* ``80 × p``, where ``p`` is the alert's mid-rank score percentile among every stored alert of the same rule
  (``(alerts scoring lower + ½ × alerts scoring the same) / alerts of the rule``): a rule's raw score unit
  (notional, z-score, anomaly score) no longer matters, only how unusual the alert is for that rule;
* ``+5`` if an account of the alert also appears in alerts of one other rule, ``+10`` for two or more
  (independent rules pointing at the same account corroborate each other);
* ``+10`` if an account of the alert is in a case closed as reported, ``+5`` if it is in an open case
  (``open``, ``investigating``, ``escalated``); cases closed as false positives add nothing.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import secrets
import statistics
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from market_surveillance.enums import CaseStatus, Verdict
from market_surveillance.store import tables as db
from market_surveillance.store.errors import UnknownIdError

PERCENTILE_WEIGHT = 80.0
CORROBORATION_POINTS = 5.0  # per other rule naming the same account, at most two rules counted
REPORTED_CASE_POINTS = 10.0
OPEN_CASE_POINTS = 5.0
_OPEN_STATUSES = (CaseStatus.OPEN.value, CaseStatus.INVESTIGATING.value, CaseStatus.ESCALATED.value)


def priority_subquery() -> sa.Subquery:
    """``(alert_id, priority)`` for every stored alert, ``priority`` a float in [0, 100]."""
    a, aa, ca, c = db.alerts, db.alert_accounts, db.case_alerts, db.cases
    n_rule = sa.func.count().over(partition_by=a.c.rule_id)
    below = sa.func.rank().over(partition_by=a.c.rule_id, order_by=a.c.score) - 1
    ties = sa.func.count().over(partition_by=[a.c.rule_id, a.c.score])
    pct = sa.select(a.c.alert_id, ((sa.cast(below, sa.Float) + 0.5 * ties) / n_rule).label("pct")).subquery(
        "pct"
    )

    # distinct (account, rule) pairs are few: joining alerts to them avoids an alerts × alerts self-join
    acct_rules = (
        sa.select(aa.c.account_id, a.c.rule_id)
        .join(a, a.c.alert_id == aa.c.alert_id)
        .distinct()
        .subquery("acct_rules")
    )
    aa2, a2 = aa.alias("aa2"), a.alias("a2")
    other_rules = (
        sa.select(aa2.c.alert_id, sa.func.count(sa.distinct(acct_rules.c.rule_id)).label("n"))
        .select_from(aa2)
        .join(a2, a2.c.alert_id == aa2.c.alert_id)
        .join(acct_rules, acct_rules.c.account_id == aa2.c.account_id)
        .where(acct_rules.c.rule_id != a2.c.rule_id)
        .group_by(aa2.c.alert_id)
        .subquery("other_rules")
    )
    weight = sa.case(
        (c.c.status == CaseStatus.CLOSED_REPORTED.value, REPORTED_CASE_POINTS),
        (c.c.status.in_(_OPEN_STATUSES), OPEN_CASE_POINTS),
        else_=0.0,
    )
    aa3 = aa.alias("aa3")
    acct_cases = (
        sa.select(aa3.c.account_id, sa.func.max(weight).label("w"))
        .select_from(ca)
        .join(c, c.c.case_id == ca.c.case_id)
        .join(aa3, aa3.c.alert_id == ca.c.alert_id)
        .group_by(aa3.c.account_id)
        .subquery("acct_cases")
    )
    aa4 = aa.alias("aa4")
    alert_cases = (
        sa.select(aa4.c.alert_id, sa.func.max(acct_cases.c.w).label("w"))
        .join(acct_cases, acct_cases.c.account_id == aa4.c.account_id)
        .group_by(aa4.c.alert_id)
        .subquery("alert_cases")
    )
    corroboration = sa.case(
        (other_rules.c.n >= 2, 2 * CORROBORATION_POINTS),
        (other_rules.c.n == 1, CORROBORATION_POINTS),
        else_=0.0,
    )
    priority = PERCENTILE_WEIGHT * pct.c.pct + corroboration + sa.func.coalesce(alert_cases.c.w, 0.0)
    return (
        sa.select(pct.c.alert_id, priority.label("priority"))
        .select_from(pct)
        .outerjoin(other_rules, other_rules.c.alert_id == pct.c.alert_id)
        .outerjoin(alert_cases, alert_cases.c.alert_id == pct.c.alert_id)
        .subquery("prio")
    )


def latest_verdicts() -> sa.Subquery:
    """``(alert_id, verdict, reason)``: each alert's newest verdict."""
    v = db.alert_verdicts
    newest = sa.select(sa.func.max(v.c.verdict_id).label("vid")).group_by(v.c.alert_id).subquery("newest")
    return (
        sa.select(v.c.alert_id, v.c.verdict, v.c.reason)
        .join(newest, newest.c.vid == v.c.verdict_id)
        .subquery("verdicts")
    )


def round_priority(x: float | None) -> int:
    """Half-up rounding, clamped to 0..100 (the SQL float is only ever used for ordering)."""
    if x is None:
        return 0
    return max(0, min(100, int(x + 0.5)))


# -- accounts index ------------------------------------------------------------------------------
def index_accounts(conn: Connection, rows: Sequence[Mapping[str, Any]], insert: Any) -> None:
    """Add ``(alert_id, account_id)`` pairs for alert rows whose ``accounts`` is JSON text."""
    pairs = [
        {"alert_id": r["alert_id"], "account_id": acc}
        for r in rows
        for acc in dict.fromkeys(json.loads(r["accounts"]))
    ]
    stmt = insert(db.alert_accounts).on_conflict_do_nothing(index_elements=["alert_id", "account_id"])
    for i in range(0, len(pairs), 5000):
        conn.execute(stmt, pairs[i : i + 5000])


# -- suppressions ----------------------------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class Suppression:
    suppression_id: str
    rule: str
    asset: str | None
    account_id: str | None
    owner: str
    reason: str
    created: dt.datetime
    created_by: str
    expires: dt.datetime
    lifted: dt.datetime | None  # when an ``unmute`` event ended it early
    alerts_flagged: int

    def active(self, now: dt.datetime) -> bool:
        return self.lifted is None and self.created <= now < self.expires


def _unmuted() -> sa.Exists:
    e, s = db.suppression_events, db.suppressions
    return (
        sa.select(e.c.event_id)
        .where(e.c.suppression_id == s.c.suppression_id, e.c.action == "unmute")
        .exists()
    )


def _matches(alerts: sa.Table, s: sa.Table) -> sa.ColumnElement[bool]:
    """The mute ``s`` covers the alert row: same rule (id or name) and same asset or a named account."""
    aa = db.alert_accounts
    named = (
        sa.select(aa.c.alert_id)
        .where(aa.c.alert_id == alerts.c.alert_id, aa.c.account_id == s.c.account_id)
        .correlate_except(aa)  # the alert row is two levels up (UPDATE → mute subquery → here)
        .exists()
    )
    return sa.and_(
        sa.or_(s.c.rule == alerts.c.rule_id, s.c.rule == alerts.c.rule_name),
        sa.or_(s.c.asset == alerts.c.asset, named),
    )


def _not_in_case(alerts: sa.Table) -> sa.ColumnElement[bool]:
    ca = db.case_alerts
    return ~sa.select(ca.c.alert_id).where(ca.c.alert_id == alerts.c.alert_id).exists()


def flag_muted(conn: Connection, now: dt.datetime, where: sa.ColumnElement[bool] | None = None) -> int:
    """Flag unflagged alerts outside any case that an active mute covers (``where`` narrows the alerts)."""
    a, s = db.alerts, db.suppressions
    first_mute = (
        sa.select(s.c.suppression_id)
        .where(_matches(a, s), s.c.created <= now, s.c.expires > now, ~_unmuted())
        .order_by(s.c.created, s.c.suppression_id)
        .limit(1)
        .scalar_subquery()
    )
    cond = sa.and_(a.c.suppression_id.is_(None), _not_in_case(a), first_mute.is_not(None))
    if where is not None:
        cond = sa.and_(cond, where)
    return conn.execute(a.update().where(cond).values(suppression_id=first_mute)).rowcount or 0


def mute(
    conn: Connection,
    *,
    rule: str,
    asset: str | None,
    account: str | None,
    owner: str,
    reason: str,
    expires: dt.datetime,
    actor: str,
    now: dt.datetime,
) -> tuple[str, int]:
    """Create a mute, audit it and flag the alerts it covers now; return its id and the alerts flagged."""
    from market_surveillance.rules.registry import get_rule

    try:
        rule_cls = get_rule(rule)
    except (KeyError, ValueError, LookupError):
        rule_cls = None
    if rule_cls is None:
        raise ValueError(
            f"unknown rule {rule!r}: use a rule id (MS001) or name (see `market-surveillance rules`)"
        )
    if (asset is None) == (account is None):
        raise ValueError(
            "a mute covers a rule on exactly one asset or one account: give --asset or --account"
        )
    if expires <= now:
        raise ValueError(f"expiry {expires:%Y-%m-%d %H:%M} UTC is not in the future")
    sid = f"M-{now:%Y%m%d}-{secrets.token_hex(4)}"
    conn.execute(
        db.suppressions.insert().values(
            suppression_id=sid,
            rule=rule_cls.rule_id,
            asset=asset,
            account_id=account,
            owner=owner,
            reason=reason,
            created=now,
            created_by=actor,
            expires=expires,
        )
    )
    # the new mute must be visible to flag_muted, whose check is "created <= now": same timestamp, fine
    flagged = flag_muted(conn, now)
    scope = f"asset={asset}" if asset is not None else f"account={account}"
    detail = f"rule={rule_cls.rule_id} {scope} owner={owner} expires={expires.isoformat()} reason={reason}"
    conn.execute(
        db.suppression_events.insert().values(
            suppression_id=sid, at=now, actor=actor, action="mute", detail=detail, alerts_flagged=flagged
        )
    )
    return sid, flagged


def unmute(conn: Connection, suppression_id: str, *, actor: str, reason: str, now: dt.datetime) -> int:
    """Lift a mute early; alerts it flagged that are still outside any case go back to the queue."""
    s = db.suppressions
    if (
        conn.execute(sa.select(s.c.suppression_id).where(s.c.suppression_id == suppression_id)).first()
        is None
    ):
        raise UnknownIdError(f"mute {suppression_id} does not exist")
    done = conn.execute(
        sa.select(db.suppression_events.c.event_id).where(
            db.suppression_events.c.suppression_id == suppression_id,
            db.suppression_events.c.action == "unmute",
        )
    ).first()
    if done is not None:
        raise ValueError(f"mute {suppression_id} was already lifted")
    a = db.alerts
    restored = (
        conn.execute(
            a.update()
            .where(a.c.suppression_id == suppression_id, _not_in_case(a))
            .values(suppression_id=None)
        ).rowcount
        or 0
    )
    conn.execute(
        db.suppression_events.insert().values(
            suppression_id=suppression_id,
            at=now,
            actor=actor,
            action="unmute",
            detail=f"reason={reason}; {restored} alert(s) back in the queue",
            alerts_flagged=-restored,
        )
    )
    return restored


def suppressions(conn: Connection) -> list[Suppression]:
    s, e = db.suppressions, db.suppression_events
    lifted = {
        sid: at
        for sid, at in conn.execute(sa.select(e.c.suppression_id, e.c.at).where(e.c.action == "unmute"))
    }
    counts = dict(
        conn.execute(
            sa.select(db.alerts.c.suppression_id, sa.func.count())
            .where(db.alerts.c.suppression_id.is_not(None))
            .group_by(db.alerts.c.suppression_id)
        ).all()
    )
    rows = conn.execute(sa.select(s).order_by(s.c.created.desc(), s.c.suppression_id)).all()
    return [
        Suppression(
            **r._asdict(),
            lifted=lifted.get(r.suppression_id),
            alerts_flagged=int(counts.get(r.suppression_id, 0)),
        )
        for r in rows
    ]


@dataclasses.dataclass(frozen=True)
class MuteEvent:
    event_id: int
    suppression_id: str
    at: dt.datetime
    actor: str
    action: str
    detail: str
    alerts_flagged: int


def mute_history(conn: Connection) -> list[MuteEvent]:
    e = db.suppression_events
    return [MuteEvent(**r._asdict()) for r in conn.execute(sa.select(e).order_by(e.c.event_id)).all()]


# -- verdicts ---------------------------------------------------------------------------------------
def record_verdicts(
    conn: Connection,
    case_id: str,
    verdicts: Mapping[str, tuple[str, str]],
    *,
    actor: str,
    now: dt.datetime,
) -> None:
    """Append one verdict row per alert of a case being closed."""
    conn.execute(
        db.alert_verdicts.insert(),
        [
            {"case_id": case_id, "alert_id": alert_id, "verdict": v, "reason": r, "actor": actor, "at": now}
            for alert_id, (v, r) in sorted(verdicts.items())
        ],
    )


@dataclasses.dataclass(frozen=True)
class RuleStats:
    """One line of ``alerts stats``: how a rule's alerts fared with the analysts."""

    rule_id: str
    rule_name: str
    alerts: int
    muted: int
    in_cases: int
    true_positives: int
    false_positives: int
    median_hours_to_close: float | None  # from first stored to the verdict, over alerts with a verdict
    top_fp_reason: str | None

    @property
    def verdicts(self) -> int:
        return self.true_positives + self.false_positives

    @property
    def fp_rate(self) -> float | None:
        return self.false_positives / self.verdicts if self.verdicts else None


def rule_stats(conn: Connection, since: dt.datetime | None) -> list[RuleStats]:
    """Per rule: alerts (window starting at/after ``since``), mutes, cases, newest verdicts, time to close."""
    a, ca, v = db.alerts, db.case_alerts, latest_verdicts()
    vt = db.alert_verdicts
    in_case = sa.select(ca.c.alert_id).where(ca.c.alert_id == a.c.alert_id).exists()
    # time to close: the alert's first verdict (when its first case closed) minus when it was first stored
    first_verdict = (
        sa.select(vt.c.alert_id, sa.func.min(vt.c.at).label("closed")).group_by(vt.c.alert_id).subquery("fv")
    )
    q = (
        sa.select(
            a.c.rule_id,
            a.c.rule_name,
            a.c.suppression_id,
            in_case.label("in_case"),
            v.c.verdict,
            v.c.reason,
            a.c.first_seen,
            first_verdict.c.closed,
        )
        .outerjoin(v, v.c.alert_id == a.c.alert_id)
        .outerjoin(first_verdict, first_verdict.c.alert_id == a.c.alert_id)
    )
    if since is not None:
        q = q.where(a.c.window_start >= since)
    per: dict[str, dict[str, Any]] = {}
    # one pass over (few) alert summaries; rules are few, so the grouping is cheap in Python
    for r in conn.execute(q):
        d = per.setdefault(
            r.rule_id,
            {"name": r.rule_name, "n": 0, "muted": 0, "cases": 0, "tp": 0, "fp": 0, "h": [], "why": {}},
        )
        d["n"] += 1
        d["muted"] += r.suppression_id is not None
        d["cases"] += bool(r.in_case)
        if r.verdict == Verdict.TRUE_POSITIVE.value:
            d["tp"] += 1
        elif r.verdict == Verdict.FALSE_POSITIVE.value:
            d["fp"] += 1
            d["why"][r.reason] = d["why"].get(r.reason, 0) + 1
        if r.closed is not None:
            closed, seen = _utc(r.closed), _utc(r.first_seen)
            d["h"].append(max(0.0, (closed - seen).total_seconds() / 3600))
    return [
        RuleStats(
            rule_id=rid,
            rule_name=d["name"],
            alerts=d["n"],
            muted=d["muted"],
            in_cases=d["cases"],
            true_positives=d["tp"],
            false_positives=d["fp"],
            median_hours_to_close=statistics.median(d["h"]) if d["h"] else None,
            top_fp_reason=max(sorted(d["why"]), key=d["why"].get) if d["why"] else None,
        )
        for rid, d in sorted(per.items())
    ]


def _utc(x: dt.datetime) -> dt.datetime:
    return x.replace(tzinfo=dt.UTC) if x.tzinfo is None else x


def verdict_summary(verdicts: Mapping[str, tuple[str, str]]) -> str:
    """Audit text for a set of verdicts: ``alert=verdict:reason`` pairs, sorted."""
    return ", ".join(f"{k}={v}:{r}" for k, (v, r) in sorted(verdicts.items()))


def chunks(items: Iterable[str], n: int = 500) -> Iterable[list[str]]:
    buf: list[str] = []
    for x in items:
        buf.append(x)
        if len(buf) == n:
            yield buf
            buf = []
    if buf:
        yield buf
