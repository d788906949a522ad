"""Triage: account index for priorities, per-alert verdicts, suppressions (mutes), frozen case evidence.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-29
"""

from __future__ import annotations

import json

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

# Literal copies (not imports) of the value sets: a migration must keep meaning what it meant when written.
_VERDICTS = ("true_positive", "false_positive")
_EVIDENCE_KINDS = ("trade", "order_event", "account")
_MUTE_ACTIONS = ("mute", "unmute")


def _in(column: str, values: tuple[str, ...]) -> str:
    return f"{column} IN ({', '.join(repr(v) for v in values)})"


def _ts() -> sa.DateTime:
    return sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "alert_accounts",
        sa.Column(
            "alert_id",
            sa.String(64),
            sa.ForeignKey("alerts.alert_id", name="fk_alert_accounts_alert"),
            primary_key=True,
        ),
        sa.Column("account_id", sa.String(128), primary_key=True),
    )
    op.create_index("ix_alert_accounts_account_id", "alert_accounts", ["account_id"])
    bind = op.get_bind()
    rows = [
        {"alert_id": alert_id, "account_id": acc}
        for alert_id, accounts in bind.execute(sa.text("SELECT alert_id, accounts FROM alerts"))
        for acc in dict.fromkeys(json.loads(accounts or "[]"))
    ]
    if rows:
        bind.execute(
            sa.text("INSERT INTO alert_accounts (alert_id, account_id) VALUES (:alert_id, :account_id)"), rows
        )

    op.create_table(
        "suppressions",
        sa.Column("suppression_id", sa.String(32), primary_key=True),
        sa.Column("rule", sa.String(64), nullable=False),
        sa.Column("asset", sa.String(64)),
        sa.Column("account_id", sa.String(128)),
        sa.Column("owner", sa.String(128), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("created", _ts(), nullable=False),
        sa.Column("created_by", sa.String(128), nullable=False),
        sa.Column("expires", _ts(), nullable=False),
        sa.CheckConstraint(
            "(asset IS NULL AND account_id IS NOT NULL) OR (asset IS NOT NULL AND account_id IS NULL)",
            name="ck_suppressions_one_scope",
        ),
    )
    op.create_table(
        "suppression_events",
        sa.Column("event_id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column(
            "suppression_id",
            sa.String(32),
            sa.ForeignKey("suppressions.suppression_id", name="fk_suppression_events_suppression"),
            nullable=False,
        ),
        sa.Column("at", _ts(), nullable=False),
        sa.Column("actor", sa.String(128), nullable=False),
        sa.Column("action", sa.String(16), nullable=False),
        sa.Column("detail", sa.Text(), nullable=False),
        sa.Column("alerts_flagged", sa.Integer(), nullable=False),
        sa.CheckConstraint(_in("action", _MUTE_ACTIONS), name="ck_suppression_events_action"),
    )
    op.create_index("ix_suppression_events_suppression_id", "suppression_events", ["suppression_id"])
    with op.batch_alter_table("alerts") as batch:
        batch.add_column(
            sa.Column(
                "suppression_id",
                sa.String(32),
                sa.ForeignKey("suppressions.suppression_id", name="fk_alerts_suppression"),
            )
        )

    op.create_table(
        "alert_verdicts",
        sa.Column("verdict_id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column(
            "case_id",
            sa.String(32),
            sa.ForeignKey("cases.case_id", name="fk_alert_verdicts_case"),
            nullable=False,
        ),
        sa.Column(
            "alert_id",
            sa.String(64),
            sa.ForeignKey("alerts.alert_id", name="fk_alert_verdicts_alert"),
            nullable=False,
        ),
        sa.Column("verdict", sa.String(16), nullable=False),
        sa.Column("reason", sa.String(64), nullable=False),
        sa.Column("actor", sa.String(128), nullable=False),
        sa.Column("at", _ts(), nullable=False),
        sa.CheckConstraint(_in("verdict", _VERDICTS), name="ck_alert_verdicts_verdict"),
    )
    op.create_index("ix_alert_verdicts_alert_id", "alert_verdicts", ["alert_id"])

    op.create_table(
        "case_evidence",
        sa.Column(
            "case_id",
            sa.String(32),
            sa.ForeignKey("cases.case_id", name="fk_case_evidence_case"),
            primary_key=True,
        ),
        sa.Column("kind", sa.String(16), primary_key=True),
        sa.Column("key", sa.String(128), primary_key=True),
        sa.Column("row", sa.Text(), nullable=False),  # the source row as canonical JSON
        sa.CheckConstraint(_in("kind", _EVIDENCE_KINDS), name="ck_case_evidence_kind"),
    )
    _append_only(("suppressions", "suppression_events", "alert_verdicts", "case_evidence"))


def _append_only(tables: tuple[str, ...]) -> None:
    """Audit rows (mutes and their lifting, verdicts, frozen evidence) refuse UPDATE and DELETE in the database itself."""
    dialect = op.get_bind().dialect.name
    for table in tables:
        if dialect == "sqlite":
            for verb in ("UPDATE", "DELETE"):
                op.execute(
                    f"CREATE TRIGGER {table}_no_{verb.lower()} BEFORE {verb} ON {table} "
                    f"BEGIN SELECT RAISE(ABORT, '{table} is append-only'); END"
                )
        elif dialect == "postgresql":
            op.execute(
                f"CREATE FUNCTION {table}_append_only() RETURNS trigger LANGUAGE plpgsql AS $$ "
                f"BEGIN RAISE EXCEPTION '{table} is append-only (% refused)', TG_OP; END $$"
            )
            op.execute(
                f"CREATE TRIGGER {table}_no_change BEFORE UPDATE OR DELETE ON {table} "
                f"FOR EACH ROW EXECUTE FUNCTION {table}_append_only()"
            )
            op.execute(
                f"CREATE TRIGGER {table}_no_truncate BEFORE TRUNCATE ON {table} "
                f"FOR EACH STATEMENT EXECUTE FUNCTION {table}_append_only()"
            )
        else:  # pragma: no cover - the store supports exactly these two backends
            raise NotImplementedError(f"no append-only trigger for dialect {dialect!r}")


def downgrade() -> None:
    dialect = op.get_bind().dialect.name
    with op.batch_alter_table("alerts") as batch:
        batch.drop_column("suppression_id")
    for table in ("case_evidence", "alert_verdicts", "suppression_events", "suppressions"):
        if dialect == "postgresql":
            op.execute(f"DROP TRIGGER IF EXISTS {table}_no_truncate ON {table}")
            op.execute(f"DROP TRIGGER IF EXISTS {table}_no_change ON {table}")
            op.execute(f"DROP FUNCTION IF EXISTS {table}_append_only()")
        op.drop_table(table)
    op.drop_index("ix_alert_accounts_account_id", "alert_accounts")
    op.drop_table("alert_accounts")
