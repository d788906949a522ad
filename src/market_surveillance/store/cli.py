"""`market-surveillance alerts ...` and `market-surveillance cases ...`: triage from the command line.

Unknown ids, refused transitions and bad arguments print one line on stderr and exit with code 2. Tables
fit an 80-column terminal (columns fold instead of being cut); ``--wide`` adds the less used columns.
Read-only commands never create a store: a mistyped ``--db`` is an error, not an empty database.
"""

from __future__ import annotations

import datetime as dt
import os
import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, NoReturn, TypeVar

import typer
from rich import box
from rich.console import Console
from rich.table import Table

from market_surveillance.store.errors import StoreError

if TYPE_CHECKING:  # imported when a command runs: keeps `market-surveillance --help` fast
    import pyarrow as pa

    from market_surveillance.store.core import Case, Store

console = Console()
err_console = Console(stderr=True)
alerts_app = typer.Typer(
    help="Stored alerts: the priority queue, runs, statistics, mutes.", no_args_is_help=True
)
cases_app = typer.Typer(
    help="Cases: open, assign, comment, move through the workflow, close, report.", no_args_is_help=True
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
ActorOpt = Annotated[
    str | None,
    typer.Option(
        envvar="MS_ACTOR",
        help="who is acting, for the audit trail (required on SQLite; PostgreSQL default: the database user)",
    ),
]
CommentOpt = Annotated[str | None, typer.Option(help="why (kept in the audit trail)")]
WideOpt = Annotated[bool, typer.Option("--wide", help="show every column (needs a wide terminal)")]


def _fail(msg: str) -> NoReturn:
    # soft_wrap: the message stays one line whatever the terminal width
    err_console.print(f"[red]error:[/red] {msg}", soft_wrap=True, highlight=False, markup=True)
    raise typer.Exit(2)


def _say(msg: str) -> None:
    """A sentence for the person at the terminal (stderr), so stdout stays machine-readable."""
    err_console.print(msg, soft_wrap=True, highlight=False)


def _actor(actor: str | None) -> str | None:
    # never a silent $USER: the audit trail names whoever was given, or (PostgreSQL only, None) the
    # database session user; the store refuses None on SQLite with one line
    if actor is not None and not actor.strip():
        _fail("--actor must not be empty")
    return actor


@contextmanager
def _store(db: str | None, *, write: bool) -> Iterator[Store]:
    import sqlalchemy as sa

    from market_surveillance.store.core import Store

    try:
        store = Store.open(db, create=write)
    except (StoreError, sa.exc.ArgumentError, sa.exc.OperationalError) as exc:
        _fail(f"cannot open store {db or '(default)'}: {str(exc).strip().splitlines()[0]}")
    try:
        yield store
    finally:
        store.dispose()


def _do(db: str | None, fn: Callable[[Store], _R], *, write: bool = True) -> _R:
    with _store(db, write=write) as store:
        try:
            return fn(store)
        except (StoreError, ValueError, OSError) as exc:
            _fail(str(exc).strip().splitlines()[0])


def _table(*columns: str, title: str | None = None) -> Table:
    """A compact table: id columns are never cut or folded (analysts copy them into the next command);
    every other column folds onto more lines rather than being cut to an ellipsis."""
    table = Table(title=title, box=box.SIMPLE_HEAD, padding=(0, 0), pad_edge=False, show_edge=False)
    for col in columns:
        if col.endswith("_id") or col in _WHOLE:
            table.add_column(col, no_wrap=True, min_width=len(col))
        else:
            table.add_column(col, overflow="fold", min_width=min(len(col), 8))
    return table


#: columns whose values are typed back into commands or read as one token: never folded
_WHOLE = frozenset({"rule", "status", "start UTC", "at"})


def _ts(x: object, seconds: bool = True) -> str:
    if x is None:
        return ""
    return f"{x:%Y-%m-%d %H:%M:%S}" if seconds else f"{x:%Y-%m-%d %H:%M}"


def _short(items: list[str], n: int = 3, sep: str = ", ") -> str:
    return sep.join(items[:n]) + (f"{sep}+{len(items) - n}" if len(items) > n else "")


def _num(x: float) -> str:
    return "" if x != x else f"{x:.4g}"  # NaN → blank


def _duration(hours: float | None) -> str:
    if hours is None:
        return ""
    if hours < 1:
        return f"{hours * 60:.0f} min"
    return f"{hours:.1f} h" if hours < 48 else f"{hours / 24:.1f} d"


# -- alerts --------------------------------------------------------------------------------------
@alerts_app.command("list")
def alerts_list(
    db: DbOpt = None,
    rule: Annotated[str | None, typer.Option(help="rule id (MS001) or name (self_trade)")] = None,
    asset: Annotated[str | None, typer.Option(help="asset, e.g. BTC-USD")] = None,
    account: Annotated[str | None, typer.Option(help="alerts naming this account")] = None,
    since: Annotated[
        str | None, typer.Option(help="window starts at/after this ISO date or time (UTC)")
    ] = None,
    status: Annotated[
        str | None,
        typer.Option(help="new (in no case) or a case status: open, investigating, escalated, reported, ..."),
    ] = None,
    muted: Annotated[
        bool, typer.Option("--muted", help="include alerts a mute keeps out of the queue")
    ] = False,
    by_window: Annotated[
        bool, typer.Option("--by-window", help="oldest window first instead of highest priority first")
    ] = False,
    superseded: Annotated[
        bool, typer.Option("--superseded", help="only alerts that a rule parameter change superseded")
    ] = False,
    all_alerts: Annotated[
        bool, typer.Option("--all", help="current and superseded alerts (muted ones still need --muted)")
    ] = False,
    wide: WideOpt = False,
    limit: Annotated[int, typer.Option(help="rows to show (0 = all)")] = 50,
) -> None:
    """The alert queue: highest priority (0–100, comparable across rules) first; muted alerts hidden."""
    import pyarrow.compute as pc

    order = "window" if by_window else "priority"
    t = _do(
        db,
        lambda s: s.alerts(
            rule=rule,
            asset=asset,
            since=since,
            status=status,
            account=account,
            order=order,
            superseded=None if all_alerts else superseded,
        ),
        write=False,
    )
    is_muted = pc.is_valid(t["suppression_id"])
    n_muted = int(pc.sum(is_muted).as_py() or 0)
    if not muted:
        t = t.filter(pc.invert(is_muted))
    shown = t if limit <= 0 else t.slice(0, limit)
    cols = ["alert_id", "prio", "rule", "asset", "accounts", "start UTC", "delay s"]
    if wide:
        cols += ["venue", "detected UTC", "score", "value", "threshold", "cases", "verdict", "mute_id", "superseded_by"]
    table = _table(*cols)
    for r in shown.to_pylist():
        det = r["detected_at"]  # NULL for alerts stored before migration 0002
        delay = "" if det is None else f"{(det - r['window_start']).total_seconds():.0f}"
        row = [
            r["alert_id"],
            str(r["priority"]),
            r["rule_name"],
            r["asset"] or "",
            _short(r["accounts"], 2, "\n"),  # one account a line: ids are never split
            _ts(r["window_start"]).replace(" ", "\n"),  # date over time keeps the column narrow
            delay,
        ]
        if wide:
            row += [
                r["venue"] or "",
                "" if det is None else _ts(det),
                f"{r['score']:.3g}",
                _num(r["value"]),
                _num(r["threshold"]),
                _short(r["case_ids"], 2),
                r["verdict"] or "",
                r["suppression_id"] or "",
                r["superseded_by"] or "",
            ]
        table.add_row(*row)
    console.print(table)
    tail = f", first {shown.num_rows} shown" if shown.num_rows < t.num_rows else ""
    if n_muted and not muted:
        tail += f"; {n_muted} muted alert(s) hidden (--muted shows them)"
    console.print(f"{t.num_rows} alert(s){tail}", soft_wrap=True)


@alerts_app.command("runs")
def alerts_runs(db: DbOpt = None, wide: WideOpt = False) -> None:
    """List detection runs, newest first."""
    runs = _do(db, lambda s: s.runs(), write=False)
    cols = ["run_id", "started", "status", "alerts", "rules ran/skipped"]
    if wide:
        cols += ["finished", "config", "data source"]
    table = _table(*cols)
    for r in runs:
        ran = sum(1 for x in r.rule_runs if x.get("status") == "ran")
        row = [
            r.run_id,
            _ts(r.started, seconds=False),
            r.status + (f" ({r.error[:60]})" if r.error else ""),
            str(r.alerts_written),
            f"{ran}/{len(r.rule_runs) - ran}",
        ]
        if wide:
            row += [_ts(r.finished), r.config_hash[:12], r.data_source]
        table.add_row(*row)
    console.print(table)


@alerts_app.command("stats")
def alerts_stats(
    db: DbOpt = None,
    since: Annotated[
        str | None, typer.Option(help="only alerts whose window starts at/after this ISO date or time (UTC)")
    ] = None,
    wide: WideOpt = False,
) -> None:
    """Per rule: alerts, muted, verdicts, false-positive rate and median time to close (noisy rules first)."""
    stats = _do(db, lambda s: s.alert_stats(since), write=False)
    cols = ["rule", "alerts", "muted", "verdicts", "TP", "FP", "FP rate", "to close"]
    if wide:
        cols += ["in cases", "top FP reason"]
    table = _table(*cols, title="alert outcomes per rule" + (f" since {since}" if since else ""))
    # rules with a known false-positive rate first, noisiest on top: that is where tuning pays
    for r in sorted(stats, key=lambda x: (x.fp_rate is None, -(x.fp_rate or 0), x.rule_id)):
        row = [
            r.rule_name,
            str(r.alerts),
            str(r.muted),
            str(r.verdicts),
            str(r.true_positives),
            str(r.false_positives),
            "" if r.fp_rate is None else f"{r.fp_rate:.0%}",
            _duration(r.median_hours_to_close),
        ]
        if wide:
            row += [str(r.in_cases), r.top_fp_reason or ""]
        table.add_row(*row)
    console.print(table)
    if not stats:
        console.print("no alerts" + (f" with a window starting at/after {since}" if since else ""))


_FOR = re.compile(r"^\s*(\d+)\s*([hdw])\s*$")


def _expiry(expires: str | None, for_: str | None) -> dt.datetime | str:
    if (expires is None) == (for_ is None):
        _fail("give the mute's expiry: --expires 2024-06-30 or --for 30d (h, d or w)")
    if for_ is not None:
        m = _FOR.match(for_)
        if m is None:
            _fail(f"--for {for_!r}: use a count and a unit, e.g. 12h, 30d or 2w")
        n, unit = int(m.group(1)), m.group(2)
        hours = n * {"h": 1, "d": 24, "w": 168}[unit]
        return dt.datetime.now(dt.UTC) + dt.timedelta(hours=hours)
    assert expires is not None
    return expires


@alerts_app.command("mute")
def alerts_mute(
    rule: Annotated[str, typer.Argument(help="rule id (MS001) or name (self_trade)")],
    owner: Annotated[str, typer.Option(help="who answers for this mute")],
    reason: Annotated[str, typer.Option(help="why this pattern is benign (audited)")],
    asset: Annotated[str | None, typer.Option(help="mute the rule on this asset ...")] = None,
    account: Annotated[str | None, typer.Option(help="... or on this account")] = None,
    expires: Annotated[str | None, typer.Option(help="ISO date/time (UTC) the mute ends")] = None,
    for_: Annotated[str | None, typer.Option("--for", help="or a duration: 12h, 30d, 2w")] = None,
    db: DbOpt = None,
    actor: ActorOpt = None,
) -> None:
    """Mute a rule on one asset or account until an expiry; prints the mute id. Muted alerts stay stored,
    flagged, out of the queue."""
    until = _expiry(expires, for_)
    mute_id, flagged = _do(
        db,
        lambda s: s.mute(
            rule, asset=asset, account=account, owner=owner, reason=reason, expires=until, actor=_actor(actor)
        ),
    )
    typer.echo(mute_id)
    _say(f"muted {rule} on {asset or account}: {flagged} stored alert(s) flagged; later runs are flagged too")


@alerts_app.command("unmute")
def alerts_unmute(
    mute_id: Annotated[str, typer.Argument(help="id printed by `alerts mute` (see `alerts mutes`)")],
    reason: Annotated[str, typer.Option(help="why the mute ends early (audited)")],
    db: DbOpt = None,
    actor: ActorOpt = None,
) -> None:
    """Lift a mute before its expiry; the alerts it flagged (outside cases) go back into the queue."""
    restored = _do(db, lambda s: s.unmute(mute_id, _actor(actor), reason))
    _say(f"mute {mute_id} lifted: {restored} alert(s) back in the queue")


@alerts_app.command("mutes")
def alerts_mutes(
    db: DbOpt = None,
    history: Annotated[bool, typer.Option("--history", help="the mute audit trail instead")] = False,
    wide: WideOpt = False,
) -> None:
    """Mutes with their owner, expiry and state (active, expired, lifted)."""
    if history:
        events = _do(db, lambda s: s.mute_history(), write=False)
        table = _table("#", "at", "actor", "action", "mute_id", "detail")
        for e in events:
            table.add_row(str(e.event_id), _ts(e.at), e.actor, e.action, e.suppression_id, e.detail)
        console.print(table)
        return
    mutes = _do(db, lambda s: s.suppressions(), write=False)
    now = dt.datetime.now(dt.UTC)
    cols = ["mute_id", "rule", "on", "owner", "expires", "state", "alerts"]
    if wide:
        cols += ["reason", "created", "by"]
    table = _table(*cols)
    for m in mutes:
        state = "lifted" if m.lifted else "active" if m.active(now) else "expired"
        row = [
            m.suppression_id,
            m.rule,
            m.asset or m.account_id or "",
            m.owner,
            _ts(m.expires, seconds=False),
            state,
            str(m.alerts_flagged),
        ]
        if wide:
            row += [m.reason, _ts(m.created), m.created_by]
        table.add_row(*row)
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
    """Open a case on one or more alerts; prints the bare case id (CID=$(market-surveillance cases open ...))."""
    case_id = _do(
        db,
        lambda s: s.open_case(
            title, alert_ids, _actor(actor), assignee=assignee, priority=priority, comment=comment
        ),
    )
    typer.echo(case_id)
    _say(f"opened case {case_id} with {len(set(alert_ids))} alert(s)")


@cases_app.command("list")
def cases_list(
    db: DbOpt = None,
    status: Annotated[
        str | None, typer.Option(help="only cases in this status (open, investigating, reported, ...)")
    ] = None,
    assignee: Annotated[str | None, typer.Option(help="only cases assigned to this analyst")] = None,
    wide: WideOpt = False,
) -> None:
    """List cases, most recently updated first."""
    cases = _do(db, lambda s: s.cases(status=status, assignee=assignee), write=False)
    cols = ["case_id", "status", "assignee", "alerts", "title"]
    if wide:
        cols += ["priority", "updated"]
    table = _table(*cols)
    for c in cases:
        row = [c.case_id, c.status, c.assignee or "", str(len(c.alert_ids)), c.title]
        if wide:
            row += [c.priority, _ts(c.updated)]
        table.add_row(*row)
    console.print(table)


@cases_app.command("assign")
def cases_assign(
    case_id: str, assignee: str, db: DbOpt = None, actor: ActorOpt = None, comment: CommentOpt = None
) -> None:
    """Assign a case to an analyst."""
    _do(db, lambda s: s.assign(case_id, assignee, _actor(actor), comment))
    _say(f"case {case_id} assigned to {assignee}")


@cases_app.command("comment")
def cases_comment(case_id: str, text: str, db: DbOpt = None, actor: ActorOpt = None) -> None:
    """Add a note to a case's audit trail (the STOR report quotes these as the analyst's analysis)."""
    _do(db, lambda s: s.comment(case_id, text, _actor(actor)))
    _say(f"comment added to case {case_id}")


@cases_app.command("status")
def cases_status(
    case_id: str,
    status: Annotated[
        str, typer.Argument(help="open | investigating | escalated (close with `cases close`)")
    ],
    db: DbOpt = None,
    actor: ActorOpt = None,
    comment: CommentOpt = None,
) -> None:
    """Move a case along the workflow (e.g. open → investigating → escalated)."""
    from market_surveillance.store.workflow import CLOSED, parse_status

    try:
        target = parse_status(status)
    except ValueError as exc:
        _fail(str(exc))
    if target in CLOSED:
        _fail(f"close a case with `cases close {case_id} {status} --comment ... [--reason CODE]`")
    _do(db, lambda s: s.set_status(case_id, target, _actor(actor), comment))
    _say(f"case {case_id} is now {target.value}")


def _verdict_overrides(items: list[str]) -> dict[str, tuple[str, str | None]]:
    out: dict[str, tuple[str, str | None]] = {}
    for item in items:
        m = re.fullmatch(r"([^=\s]+)=([a-z_]+)(?::([a-z_]+))?", item.strip())
        if m is None:
            _fail(f"--verdict {item!r}: use ALERT_ID=tp:REASON or ALERT_ID=fp:REASON")
        out[m.group(1)] = (m.group(2), m.group(3))
    return out


@cases_app.command("close")
def cases_close(
    case_id: str,
    resolution: Annotated[str, typer.Argument(help="reported | false_positive (or closed_reported | ...)")],
    comment: Annotated[str, typer.Option(help="why the case is closed (required)")],
    reason: Annotated[
        str | None,
        typer.Option(
            help="reason code of the alerts' verdict; required for false_positive: legitimate_market_making,"
            " hedging_or_arbitrage, known_benign_pattern, data_quality, threshold_too_sensitive,"
            " duplicate_alert, other (reported: stor_filed by default, or confirmed_internal)"
        ),
    ] = None,
    verdict: Annotated[
        list[str] | None,
        typer.Option(
            help="per-alert verdict overriding the case's: ALERT_ID=fp:REASON or ALERT_ID=tp:REASON"
        ),
    ] = None,
    db: DbOpt = None,
    actor: ActorOpt = None,
) -> None:
    """Close a case as reported or false positive, recording a verdict for each of its alerts."""
    overrides = _verdict_overrides(verdict or [])
    _do(db, lambda s: s.close(case_id, resolution, _actor(actor), comment, reason=reason, verdicts=overrides))
    _say(f"case {case_id} closed ({resolution})")


@cases_app.command("show")
def cases_show(case_id: str, db: DbOpt = None) -> None:
    """A case and its alerts."""

    def read(s: Store) -> tuple[Case, pa.Table]:
        case = s.case(case_id)
        return case, s.alerts(alert_ids=list(case.alert_ids), order="priority")

    case, alerts = _do(db, read, write=False)
    head = Table.grid(padding=(0, 2))
    for name in ("case_id", "title", "status", "priority", "assignee", "created", "updated"):
        value = getattr(case, name)
        head.add_row(
            f"[bold]{name}[/bold]", _ts(value) if name in ("created", "updated") else str(value or "")
        )
    console.print(head)
    table = _table("alert_id", "prio", "rule", "asset", "accounts", "verdict", title="alerts")
    for r in alerts.to_pylist():
        table.add_row(
            r["alert_id"],
            str(r["priority"]),
            r["rule_name"],
            r["asset"] or "",
            _short(r["accounts"], 2),
            (r["verdict"] or "") + (f" ({r['verdict_reason']})" if r["verdict_reason"] else ""),
        )
    console.print(table)


@cases_app.command("history")
def cases_history(case_id: str, db: DbOpt = None) -> None:
    """A case's audit trail, oldest first."""
    events = _do(db, lambda s: s.history(case_id), write=False)
    table = _table("#", "at", "actor", "action", "change", "comment", title=f"history of {case_id}")
    for e in events:
        change = f"{e.field}: {e.old or '∅'} → {e.new}" if e.field else ""
        table.add_row(str(e.event_id), _ts(e.at), e.actor, e.action, change, e.comment or "")
    console.print(table)


@cases_app.command("report")
def cases_report(
    case_id: str,
    out: Annotated[Path, typer.Option(help="file to write (.json, .html or .pdf)")],
    fmt: Annotated[
        str | None, typer.Option("--format", help="json | html | pdf (default: from --out's suffix)")
    ] = None,
    entity: Annotated[
        Path | None,
        typer.Option(
            help="TOML with the submitting entity and person ([entity], [person]); default $MS_STOR_ENTITY"
        ),
    ] = None,
    data: Annotated[
        Path | None,
        typer.Option(
            help="canonical data folder: freeze the case's evidence rows (trades, orders, accounts) into the"
            " store first, so the report lists them"
        ),
    ] = None,
    db: DbOpt = None,
    actor: ActorOpt = None,
) -> None:
    """Write the case as a suspicious transaction and order report (STOR, EU MAR Art. 16 / MiCA Art. 92)."""
    from market_surveillance.store.report import REPORT_FORMATS, EntityConfigError, load_entity, write_report

    kind = (fmt or out.suffix.lstrip(".")).lower()
    if kind not in REPORT_FORMATS:
        _fail(f"report format {kind or '(none)'!r}: use --format {' | '.join(REPORT_FORMATS)}")
    try:
        submitter = load_entity(entity or os.environ.get("MS_STOR_ENTITY"))
    except EntityConfigError as exc:
        _fail(str(exc))
    if data is not None and not data.is_dir():
        _fail(f"{data}: no such data folder")
    digest = _do(
        db,
        lambda s: write_report(
            s, case_id, out, kind, submitter=submitter, actor=_actor(actor), data_dir=data
        ),
        write=True,
    )
    _say(f"STOR for case {case_id} written to {out} ({kind}, sha256 {digest[:16]}…)")
