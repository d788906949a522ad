"""`market-surveillance alerts ...` and `market-surveillance cases ...`: triage from the command line.

Unknown ids, refused transitions and bad arguments print one line and exit with code 2.
"""

from __future__ import annotations

import getpass
import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Annotated, NoReturn, TypeVar

import typer
from rich.console import Console
from rich.table import Table

from market_surveillance.store.errors import StoreError

if TYPE_CHECKING:  # imported when a command runs: keeps `market-surveillance --help` fast
    import pyarrow as pa

    from market_surveillance.store.core import Case, Store

console = Console()
alerts_app = typer.Typer(help="Stored alerts and detection runs.", no_args_is_help=True)
cases_app = typer.Typer(
    help="Cases: open, assign, comment, move through the workflow, close.", no_args_is_help=True
)

_R = TypeVar("_R")

DbOpt = Annotated[
    str | None,
    typer.Option(
        "--db",
        envvar="MS_STORE_URL",
        help="store URL: sqlite:///PATH or postgresql+psycopg://... (default sqlite:///data/alerts.sqlite)",
    ),
]
ActorOpt = Annotated[str | None, typer.Option(help="who is acting, for the audit trail (default: $USER)")]
CommentOpt = Annotated[str | None, typer.Option(help="why (kept in the audit trail)")]


def _fail(msg: str) -> NoReturn:
    console.print(f"[red]error:[/red] {msg}")
    raise typer.Exit(2)


def _actor(actor: str | None) -> str:
    if actor:
        return actor
    if os.environ.get("USER"):
        return os.environ["USER"]
    try:
        return getpass.getuser()
    except Exception:  # no $USER and no passwd entry (some containers)
        return "unknown"


@contextmanager
def _store(db: str | None) -> Iterator[Store]:
    import sqlalchemy as sa

    from market_surveillance.store.core import Store

    try:
        store = Store.open(db)
    except (StoreError, sa.exc.ArgumentError, sa.exc.OperationalError) as exc:
        _fail(f"cannot open store {db or '(default)'}: {str(exc).splitlines()[0]}")
    try:
        yield store
    finally:
        store.dispose()


def _do(db: str | None, fn: Callable[[Store], _R]) -> _R:
    with _store(db) as store:
        try:
            return fn(store)
        except (StoreError, ValueError) as exc:
            _fail(str(exc))


def _table(*columns: str, title: str | None = None) -> Table:
    """A Rich table whose id columns are never truncated (analysts copy them into the next command)."""
    table = Table(title=title)
    for col in columns:
        if col.endswith("_id"):
            table.add_column(col, no_wrap=True, min_width=len(col))
        else:
            table.add_column(col)
    return table


def _ts(x: object) -> str:
    return "" if x is None else f"{x:%Y-%m-%d %H:%M:%S}"


def _short(items: list[str], n: int = 3) -> str:
    return ", ".join(items[:n]) + (f" +{len(items) - n}" if len(items) > n else "")


# -- alerts --------------------------------------------------------------------------------------
@alerts_app.command("list")
def alerts_list(
    db: DbOpt = None,
    rule: Annotated[str | None, typer.Option(help="rule id (MS001) or name (self_trade)")] = None,
    asset: Annotated[str | None, typer.Option(help="asset, e.g. BTC-USD")] = None,
    since: Annotated[
        str | None, typer.Option(help="window starts at/after this ISO date or time (UTC)")
    ] = None,
    status: Annotated[
        str | None, typer.Option(help="new (in no case) or a case status, e.g. investigating")
    ] = None,
    limit: Annotated[int, typer.Option(help="rows to show (0 = all)")] = 50,
) -> None:
    """List stored alerts, oldest window first."""
    t = _do(db, lambda s: s.alerts(rule=rule, asset=asset, since=since, status=status))
    shown = t if limit <= 0 else t.slice(0, limit)
    table = _table(
        "alert_id",
        "rule",
        "asset",
        "venue",
        "accounts",
        "window start",
        "detected at",
        "delay s",
        "score",
        "value",
        "threshold",
        "cases",
    )
    for r in shown.to_pylist():
        det = r["detected_at"]  # NULL for alerts stored before migration 0002
        delay = "" if det is None else f"{(det - r['window_start']).total_seconds():.0f}"
        table.add_row(
            r["alert_id"],
            r["rule_name"],
            r["asset"] or "",
            r["venue"] or "",
            _short(r["accounts"]),
            _ts(r["window_start"]),
            "" if det is None else _ts(det),
            delay,
            f"{r['score']:.3g}",
            f"{r['value']:.4g}",
            f"{r['threshold']:.4g}",
            _short(r["case_ids"], 2),
        )
    console.print(table)
    console.print(
        f"{t.num_rows} alert(s)" + (f", first {shown.num_rows} shown" if shown.num_rows < t.num_rows else "")
    )


@alerts_app.command("runs")
def alerts_runs(db: DbOpt = None) -> None:
    """List detection runs, newest first."""
    runs = _do(db, lambda s: s.runs())
    table = _table(
        "run_id", "started", "finished", "status", "alerts", "rules ran/skipped", "config", "data source"
    )
    for r in runs:
        ran = sum(1 for x in r.rule_runs if x.get("status") == "ran")
        table.add_row(
            r.run_id,
            _ts(r.started),
            _ts(r.finished),
            r.status + (f" ({r.error[:60]})" if r.error else ""),
            str(r.alerts_written),
            f"{ran}/{len(r.rule_runs) - ran}",
            r.config_hash[:12],
            r.data_source,
        )
    console.print(table)


# -- cases ---------------------------------------------------------------------------------------
@cases_app.command("open")
def cases_open(
    alert_ids: Annotated[list[str], typer.Argument(help="alert ids to put in the case")],
    title: Annotated[str, typer.Option(help="short description of the suspicion")],
    db: DbOpt = None,
    actor: ActorOpt = None,
    assignee: Annotated[str | None, typer.Option(help="analyst to assign")] = None,
    priority: Annotated[str, typer.Option(help="low | medium | high | critical")] = "medium",
    comment: CommentOpt = None,
) -> None:
    """Open a case on one or more alerts; prints the new case id."""
    case_id = _do(
        db,
        lambda s: s.open_case(
            title, alert_ids, _actor(actor), assignee=assignee, priority=priority, comment=comment
        ),
    )
    console.print(f"opened case [bold]{case_id}[/bold] with {len(set(alert_ids))} alert(s)")


@cases_app.command("list")
def cases_list(
    db: DbOpt = None,
    status: Annotated[str | None, typer.Option(help="only cases in this status")] = None,
    assignee: Annotated[str | None, typer.Option(help="only cases assigned to this analyst")] = None,
) -> None:
    """List cases, most recently updated first."""
    cases = _do(db, lambda s: s.cases(status=status, assignee=assignee))
    table = _table("case_id", "status", "priority", "assignee", "alerts", "updated", "title")
    for c in cases:
        table.add_row(
            c.case_id, c.status, c.priority, c.assignee or "", str(len(c.alert_ids)), _ts(c.updated), c.title
        )
    console.print(table)


@cases_app.command("assign")
def cases_assign(
    case_id: str, assignee: str, db: DbOpt = None, actor: ActorOpt = None, comment: CommentOpt = None
) -> None:
    """Assign a case to an analyst."""
    _do(db, lambda s: s.assign(case_id, assignee, _actor(actor), comment))
    console.print(f"case {case_id} assigned to {assignee}")


@cases_app.command("comment")
def cases_comment(case_id: str, text: str, db: DbOpt = None, actor: ActorOpt = None) -> None:
    """Add a note to a case's audit trail."""
    _do(db, lambda s: s.comment(case_id, text, _actor(actor)))
    console.print(f"comment added to case {case_id}")


@cases_app.command("status")
def cases_status(
    case_id: str,
    status: Annotated[str, typer.Argument(help="investigating | escalated | open | ...")],
    db: DbOpt = None,
    actor: ActorOpt = None,
    comment: CommentOpt = None,
) -> None:
    """Move a case along the workflow (e.g. open → investigating → escalated)."""
    _do(db, lambda s: s.set_status(case_id, status, _actor(actor), comment))
    console.print(f"case {case_id} is now {status}")


@cases_app.command("close")
def cases_close(
    case_id: str,
    resolution: Annotated[str, typer.Argument(help="false_positive | reported")],
    comment: Annotated[str, typer.Option(help="why the case is closed (required)")],
    db: DbOpt = None,
    actor: ActorOpt = None,
) -> None:
    """Close a case as a false positive or as reported to the regulator."""
    _do(db, lambda s: s.close(case_id, resolution, _actor(actor), comment))
    console.print(f"case {case_id} closed ({resolution})")


@cases_app.command("show")
def cases_show(case_id: str, db: DbOpt = None) -> None:
    """A case and its alerts."""

    def read(s: Store) -> tuple[Case, pa.Table]:
        case = s.case(case_id)
        return case, s.alerts(alert_ids=list(case.alert_ids))

    case, alerts = _do(db, read)
    head = Table.grid(padding=(0, 2))
    for name in ("case_id", "title", "status", "priority", "assignee", "created", "updated"):
        value = getattr(case, name)
        head.add_row(
            f"[bold]{name}[/bold]", _ts(value) if name in ("created", "updated") else str(value or "")
        )
    console.print(head)
    table = _table("alert_id", "rule", "asset", "accounts", "window start", "score", title="alerts")
    for r in alerts.to_pylist():
        table.add_row(
            r["alert_id"],
            r["rule_name"],
            r["asset"] or "",
            _short(r["accounts"]),
            _ts(r["window_start"]),
            f"{r['score']:.3g}",
        )
    console.print(table)


@cases_app.command("history")
def cases_history(case_id: str, db: DbOpt = None) -> None:
    """A case's audit trail, oldest first."""
    events = _do(db, lambda s: s.history(case_id))
    table = _table(
        "#", "at", "actor", "action", "field", "old", "new", "comment", title=f"history of {case_id}"
    )
    for e in events:
        table.add_row(
            str(e.event_id),
            _ts(e.at),
            e.actor,
            e.action,
            e.field or "",
            e.old or "",
            e.new or "",
            e.comment or "",
        )
    console.print(table)
