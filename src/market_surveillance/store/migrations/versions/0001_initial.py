"""Initial store schema: runs, alerts, cases, case_alerts, append-only case_events.

Revision ID: 0001
Revises:
Create Date: 2026-11-25
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

# Literal copies (not imports) of the value sets: a migration must keep meaning what it meant when written.
_RUN_STATUSES = ("running", "complete", "failed")
_CASE_STATUSES = ("open", "investigating", "escalated", "closed_false_positive", "closed_reported")
_PRIORITIES = ("low", "medium", "high", "critical")


def _in(column: str, values: tuple[str, ...]) -> str:
    return f"{column} IN ({', '.join(repr(v) for v in values)})"


def _ts() -> sa.DateTime:
    return sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "runs",
        sa.Column("run_id", sa.String(32), primary_key=True),
        sa.Column("started", _ts(), nullable=False),
        sa.Column("finished", _ts()),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("data_source", sa.Text(), nullable=False),
        sa.Column("config_hash", sa.String(64), nullable=False),
        sa.Column("rule_versions", sa.JSON(), nullable=False),
        sa.Column("rule_runs", sa.JSON(), nullable=False),
        sa.Column("input_counts", sa.JSON(), nullable=False),
        sa.Column("alerts_written", sa.Integer(), nullable=False),
        sa.Column("error", sa.Text()),
        sa.CheckConstraint(_in("status", _RUN_STATUSES), name="ck_runs_status"),
    )
    op.create_table(
        "alerts",
        sa.Column("alert_id", sa.String(64), primary_key=True),
        sa.Column("rule_id", sa.String(16), nullable=False),
        sa.Column("rule_name", sa.String(64), nullable=False),
        sa.Column("typology", sa.String(64), nullable=False),
        sa.Column("asset", sa.String(64)),
        sa.Column("venue", sa.String(64)),
        sa.Column("accounts", sa.Text(), nullable=False),
        sa.Column("window_start", _ts(), nullable=False),
        sa.Column("window_end", _ts(), nullable=False),
        sa.Column("score", sa.Double(), nullable=False),
        sa.Column("metric", sa.String(64), nullable=False),
        sa.Column("value", sa.Double()),  # NaN is stored as NULL (SQLite cannot hold NaN)
        sa.Column("threshold", sa.Double()),
        sa.Column("evidence_trade_ids", sa.Text(), nullable=False),
        sa.Column("evidence_order_ids", sa.Text(), nullable=False),
        sa.Column("explanation", sa.Text()),
        sa.Column(
            "run_id", sa.String(32), sa.ForeignKey("runs.run_id", name="fk_alerts_run"), nullable=False
        ),
        sa.Column(
            "last_run_id",
            sa.String(32),
            sa.ForeignKey("runs.run_id", name="fk_alerts_last_run"),
            nullable=False,
        ),
        sa.Column("first_seen", _ts(), nullable=False),
        sa.Column("last_seen", _ts(), nullable=False),
    )
    op.create_index("ix_alerts_rule_id", "alerts", ["rule_id"])
    op.create_index("ix_alerts_asset", "alerts", ["asset"])
    op.create_index("ix_alerts_window_start", "alerts", ["window_start"])
    op.create_table(
        "cases",
        sa.Column("case_id", sa.String(32), primary_key=True),
        sa.Column("title", sa.Text(), nullable=False),
        sa.Column("status", sa.String(32), nullable=False),
        sa.Column("assignee", sa.String(128)),
        sa.Column("priority", sa.String(16), nullable=False),
        sa.Column("created", _ts(), nullable=False),
        sa.Column("updated", _ts(), nullable=False),
        sa.CheckConstraint(_in("status", _CASE_STATUSES), name="ck_cases_status"),
        sa.CheckConstraint(_in("priority", _PRIORITIES), name="ck_cases_priority"),
    )
    op.create_table(
        "case_alerts",
        sa.Column(
            "case_id",
            sa.String(32),
            sa.ForeignKey("cases.case_id", name="fk_case_alerts_case"),
            primary_key=True,
        ),
        sa.Column(
            "alert_id",
            sa.String(64),
            sa.ForeignKey("alerts.alert_id", name="fk_case_alerts_alert"),
            primary_key=True,
        ),
        sa.Column("added", _ts(), nullable=False),
    )
    op.create_index("ix_case_alerts_alert_id", "case_alerts", ["alert_id"])
    op.create_table(
        "case_events",
        sa.Column("event_id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column(
            "case_id",
            sa.String(32),
            sa.ForeignKey("cases.case_id", name="fk_case_events_case"),
            nullable=False,
        ),
        sa.Column("at", _ts(), nullable=False),
        sa.Column("actor", sa.String(128), nullable=False),
        sa.Column("action", sa.String(32), nullable=False),
        sa.Column("field", sa.String(32)),
        sa.Column("old", sa.Text()),
        sa.Column("new", sa.Text()),
        sa.Column("comment", sa.Text()),
    )
    op.create_index("ix_case_events_case_id", "case_events", ["case_id"])
    _append_only_triggers()


def _append_only_triggers() -> None:
    """The audit trail refuses UPDATE and DELETE in the database itself, not only in the API."""
    dialect = op.get_bind().dialect.name
    if dialect == "sqlite":
        for verb in ("UPDATE", "DELETE"):
            op.execute(
                f"CREATE TRIGGER case_events_no_{verb.lower()} BEFORE {verb} ON case_events "
                "BEGIN SELECT RAISE(ABORT, 'case_events is append-only'); END"
            )
    elif dialect == "postgresql":
        op.execute(
            "CREATE FUNCTION case_events_append_only() RETURNS trigger LANGUAGE plpgsql AS $$ "
            "BEGIN RAISE EXCEPTION 'case_events is append-only (% refused)', TG_OP; END $$"
        )
        op.execute(
            "CREATE TRIGGER case_events_no_change BEFORE UPDATE OR DELETE ON case_events "
            "FOR EACH ROW EXECUTE FUNCTION case_events_append_only()"
        )
        op.execute(
            "CREATE TRIGGER case_events_no_truncate BEFORE TRUNCATE ON case_events "
            "FOR EACH STATEMENT EXECUTE FUNCTION case_events_append_only()"
        )
    else:  # pragma: no cover - the store supports exactly these two backends
        raise NotImplementedError(f"no append-only trigger for dialect {dialect!r}")


def downgrade() -> None:
    dialect = op.get_bind().dialect.name
    if dialect == "postgresql":
        op.execute("DROP TRIGGER IF EXISTS case_events_no_truncate ON case_events")
        op.execute("DROP TRIGGER IF EXISTS case_events_no_change ON case_events")
        op.execute("DROP FUNCTION IF EXISTS case_events_append_only()")
    for table in ("case_events", "case_alerts", "cases", "alerts", "runs"):
        op.drop_table(table)
