"""Store tables (SQLAlchemy Core), the same on SQLite and PostgreSQL.

This metadata is what queries are written against. The schema itself is created and evolved only by the
Alembic migrations in ``migrations/versions``; ``tests/test_store_schema.py`` checks that the two agree.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Dialect

from market_surveillance.enums import CasePriority, CaseStatus

RUN_STATUSES = ("running", "complete", "failed")


class UTCDateTime(sa.types.TypeDecorator[dt.datetime]):
    """Timezone-aware UTC datetimes on both backends.

    PostgreSQL stores ``timestamptz``; SQLite has no timezone type, so values are stored as naive UTC text
    (which also sorts and compares correctly) and come back tagged as UTC.
    """

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: dt.datetime | None, dialect: Dialect) -> dt.datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError(f"naive datetime {value!r}: the store only accepts timezone-aware datetimes")
        value = value.astimezone(dt.UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: Any, dialect: Dialect) -> dt.datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=dt.UTC)
        return value.astimezone(dt.UTC)


def _in(column: str, values: tuple[str, ...]) -> str:
    return f"{column} IN ({', '.join(repr(v) for v in values)})"


metadata = sa.MetaData()

runs = sa.Table(
    "runs",
    metadata,
    sa.Column("run_id", sa.String(32), primary_key=True),
    sa.Column("started", UTCDateTime(), nullable=False),
    sa.Column("finished", UTCDateTime()),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("data_source", sa.Text(), nullable=False),
    sa.Column("config_hash", sa.String(64), nullable=False),
    sa.Column("rule_versions", sa.JSON(), nullable=False),
    sa.Column("rule_runs", sa.JSON(), nullable=False),
    sa.Column("input_counts", sa.JSON(), nullable=False),
    sa.Column("alerts_written", sa.Integer(), nullable=False),
    sa.Column("error", sa.Text()),
    sa.CheckConstraint(_in("status", RUN_STATUSES), name="ck_runs_status"),
)

alerts = sa.Table(
    "alerts",
    metadata,
    sa.Column("alert_id", sa.String(64), primary_key=True),
    sa.Column("rule_id", sa.String(16), nullable=False),
    sa.Column("rule_name", sa.String(64), nullable=False),
    sa.Column("typology", sa.String(64), nullable=False),
    sa.Column("asset", sa.String(64)),
    sa.Column("venue", sa.String(64)),
    sa.Column("accounts", sa.Text(), nullable=False),  # JSON list of strings
    sa.Column("window_start", UTCDateTime(), nullable=False),
    sa.Column("window_end", UTCDateTime(), nullable=False),
    sa.Column("detected_at", UTCDateTime()),  # NULL only for rows written before migration 0002
    sa.Column("score", sa.Double(), nullable=False),
    sa.Column("metric", sa.String(64), nullable=False),
    sa.Column("value", sa.Double()),  # NaN is stored as NULL (SQLite cannot hold NaN)
    sa.Column("threshold", sa.Double()),
    sa.Column("evidence_trade_ids", sa.Text(), nullable=False),  # JSON list of strings
    sa.Column("evidence_order_ids", sa.Text(), nullable=False),  # JSON list of strings
    sa.Column("explanation", sa.Text()),
    sa.Column("run_id", sa.String(32), sa.ForeignKey("runs.run_id", name="fk_alerts_run"), nullable=False),
    sa.Column(
        "last_run_id", sa.String(32), sa.ForeignKey("runs.run_id", name="fk_alerts_last_run"), nullable=False
    ),
    sa.Column("first_seen", UTCDateTime(), nullable=False),
    sa.Column("last_seen", UTCDateTime(), nullable=False),
    # set when a mute matched the alert: still stored, flagged, kept out of the queue (migration 0004)
    sa.Column(
        "suppression_id",
        sa.String(32),
        sa.ForeignKey("suppressions.suppression_id", name="fk_alerts_suppression"),
    ),
    # the run whose changed rule parameters no longer produce this alert (migration 0003); NULL: current
    sa.Column("superseded_by", sa.String(32)),
    sa.Index("ix_alerts_rule_id", "rule_id"),
    sa.Index("ix_alerts_asset", "asset"),
    sa.Index("ix_alerts_window_start", "window_start"),
    sa.Index("ix_alerts_superseded_by", "superseded_by"),
)

cases = sa.Table(
    "cases",
    metadata,
    sa.Column("case_id", sa.String(32), primary_key=True),
    sa.Column("title", sa.Text(), nullable=False),
    sa.Column("status", sa.String(32), nullable=False),
    sa.Column("assignee", sa.String(128)),
    sa.Column("priority", sa.String(16), nullable=False),
    sa.Column("created", UTCDateTime(), nullable=False),
    sa.Column("updated", UTCDateTime(), nullable=False),
    # the row is a projection of its events: the newest event applied (maintained by a trigger, 0003)
    sa.Column("last_event_id", sa.Integer()),
    sa.CheckConstraint(_in("status", tuple(CaseStatus)), name="ck_cases_status"),
    sa.CheckConstraint(_in("priority", tuple(CasePriority)), name="ck_cases_priority"),
)

case_alerts = sa.Table(
    "case_alerts",
    metadata,
    sa.Column(
        "case_id", sa.String(32), sa.ForeignKey("cases.case_id", name="fk_case_alerts_case"), primary_key=True
    ),
    sa.Column(
        "alert_id",
        sa.String(64),
        sa.ForeignKey("alerts.alert_id", name="fk_case_alerts_alert"),
        primary_key=True,
    ),
    sa.Column("added", UTCDateTime(), nullable=False),
    sa.Index("ix_case_alerts_alert_id", "alert_id"),
)

case_events = sa.Table(
    "case_events",
    metadata,
    sa.Column("event_id", sa.Integer(), primary_key=True, autoincrement=True),
    sa.Column(
        "case_id", sa.String(32), sa.ForeignKey("cases.case_id", name="fk_case_events_case"), nullable=False
    ),
    sa.Column("at", UTCDateTime(), nullable=False),
    sa.Column("actor", sa.String(128), nullable=False),
    sa.Column("action", sa.String(32), nullable=False),
    sa.Column("field", sa.String(32)),
    sa.Column("old", sa.Text()),
    sa.Column("new", sa.Text()),
    sa.Column("comment", sa.Text()),
    # set by the database on insert (migration 0003): one hash chain per case, PostgreSQL session user
    sa.Column("prev_hash", sa.String(64)),
    sa.Column("hash", sa.String(64)),
    sa.Column("db_user", sa.String(128)),
    sa.Index("ix_case_events_case_id", "case_id"),
)

#: why alerts were superseded: one row per alert each time a run with changed rule parameters drops it
alert_supersessions = sa.Table(
    "alert_supersessions",
    metadata,
    sa.Column("supersession_id", sa.Integer(), primary_key=True, autoincrement=True),
    sa.Column(
        "alert_id",
        sa.String(64),
        sa.ForeignKey("alerts.alert_id", name="fk_alert_supersessions_alert"),
        nullable=False,
    ),
    sa.Column(
        "run_id", sa.String(32), sa.ForeignKey("runs.run_id", name="fk_alert_supersessions_run"), nullable=False
    ),
    sa.Column("previous_run_id", sa.String(32), nullable=False),
    sa.Column("rule_id", sa.String(16), nullable=False),
    sa.Column("at", UTCDateTime(), nullable=False),
    sa.Column("reason", sa.Text(), nullable=False),
    sa.Index("ix_alert_supersessions_alert_id", "alert_id"),
)

VERDICTS = ("true_positive", "false_positive")
EVIDENCE_KINDS = ("trade", "order_event", "account")
MUTE_ACTIONS = ("mute", "unmute")

#: which accounts each alert names (one row per pair): priorities and account views join on it
alert_accounts = sa.Table(
    "alert_accounts",
    metadata,
    sa.Column(
        "alert_id",
        sa.String(64),
        sa.ForeignKey("alerts.alert_id", name="fk_alert_accounts_alert"),
        primary_key=True,
    ),
    sa.Column("account_id", sa.String(128), primary_key=True),
    sa.Index("ix_alert_accounts_account_id", "account_id"),
)

#: mutes of a (rule, asset) or (rule, account) pair; rows never change, lifting is an ``unmute`` event
suppressions = sa.Table(
    "suppressions",
    metadata,
    sa.Column("suppression_id", sa.String(32), primary_key=True),
    sa.Column("rule", sa.String(64), nullable=False),
    sa.Column("asset", sa.String(64)),
    sa.Column("account_id", sa.String(128)),
    sa.Column("owner", sa.String(128), nullable=False),
    sa.Column("reason", sa.Text(), nullable=False),
    sa.Column("created", UTCDateTime(), nullable=False),
    sa.Column("created_by", sa.String(128), nullable=False),
    sa.Column("expires", UTCDateTime(), nullable=False),
    sa.CheckConstraint(
        "(asset IS NULL AND account_id IS NOT NULL) OR (asset IS NOT NULL AND account_id IS NULL)",
        name="ck_suppressions_one_scope",
    ),
)

suppression_events = sa.Table(
    "suppression_events",
    metadata,
    sa.Column("event_id", sa.Integer(), primary_key=True, autoincrement=True),
    sa.Column(
        "suppression_id",
        sa.String(32),
        sa.ForeignKey("suppressions.suppression_id", name="fk_suppression_events_suppression"),
        nullable=False,
    ),
    sa.Column("at", UTCDateTime(), nullable=False),
    sa.Column("actor", sa.String(128), nullable=False),
    sa.Column("action", sa.String(16), nullable=False),
    sa.Column("detail", sa.Text(), nullable=False),
    sa.Column("alerts_flagged", sa.Integer(), nullable=False),
    sa.CheckConstraint(_in("action", MUTE_ACTIONS), name="ck_suppression_events_action"),
    sa.Index("ix_suppression_events_suppression_id", "suppression_id"),
)

#: one row per alert each time a case holding it is closed; the newest row is the alert's verdict
alert_verdicts = sa.Table(
    "alert_verdicts",
    metadata,
    sa.Column("verdict_id", sa.Integer(), primary_key=True, autoincrement=True),
    sa.Column(
        "case_id", sa.String(32), sa.ForeignKey("cases.case_id", name="fk_alert_verdicts_case"), nullable=False
    ),
    sa.Column(
        "alert_id", sa.String(64), sa.ForeignKey("alerts.alert_id", name="fk_alert_verdicts_alert"), nullable=False
    ),
    sa.Column("verdict", sa.String(16), nullable=False),
    sa.Column("reason", sa.String(64), nullable=False),
    sa.Column("actor", sa.String(128), nullable=False),
    sa.Column("at", UTCDateTime(), nullable=False),
    sa.CheckConstraint(_in("verdict", VERDICTS), name="ck_alert_verdicts_verdict"),
    sa.Index("ix_alert_verdicts_alert_id", "alert_id"),
)

#: source rows (trades, order events, accounts) frozen into the store for a case's report
case_evidence = sa.Table(
    "case_evidence",
    metadata,
    sa.Column(
        "case_id", sa.String(32), sa.ForeignKey("cases.case_id", name="fk_case_evidence_case"), primary_key=True
    ),
    sa.Column("kind", sa.String(16), primary_key=True),
    sa.Column("key", sa.String(128), primary_key=True),
    sa.Column("row", sa.Text(), nullable=False),
    sa.CheckConstraint(_in("kind", EVIDENCE_KINDS), name="ck_case_evidence_kind"),
)
