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
    sa.Index("ix_alerts_rule_id", "rule_id"),
    sa.Index("ix_alerts_asset", "asset"),
    sa.Index("ix_alerts_window_start", "window_start"),
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
    sa.Index("ix_case_events_case_id", "case_id"),
)
