"""`market-surveillance cases verify` and `market-surveillance store init`: the audit trail's checks and set-up."""

from __future__ import annotations

from typing import Annotated

import typer

from market_surveillance.store.cli import DbOpt, _fail, cases_app, console
from market_surveillance.store.errors import StoreError

store_app = typer.Typer(help="Create or upgrade a store and its database roles.", no_args_is_help=True)


@cases_app.command("verify")
def cases_verify(db: DbOpt = None) -> None:
    """Check every case's hash chain, each case against its events, and the database protection.

    Exit 0 when all is intact; 1 naming the first broken link of each broken chain.
    """
    import sqlalchemy as sa

    from market_surveillance.store.core import Store

    try:
        # no protection check and no migration: verify must be able to look at a tampered store as it is
        store = Store.open(db, migrate_schema=False, create=False, check=False)
    except StoreError as exc:
        _fail(str(exc))
    try:
        report = store.verify()
    except sa.exc.DBAPIError as exc:
        _fail(f"cannot verify {store.url}: {str(exc.orig).strip().splitlines()[0]}")
    finally:
        store.dispose()
    for problem in report.protection:
        console.print(f"[red]PROTECTION[/red] {problem}")
    for brk in report.breaks:
        console.print(f"[red]BROKEN[/red] {brk}")
    for problem in report.alerts:
        console.print(f"[red]BROKEN[/red] {problem}")
    if report.ok:
        console.print(
            f"audit trail intact: {report.cases} case(s), {report.events} event(s), every chain verified"
        )
        return
    console.print(
        f"[red]audit trail NOT intact[/red]: {len(report.breaks)} broken chain(s) of {report.cases} case(s), "
        f"{len(report.protection)} protection problem(s), {len(report.alerts)} alert(s) hidden without audit"
    )
    raise typer.Exit(1)


@store_app.command("init")
def store_init(
    db: DbOpt = None,
    owner: Annotated[
        str | None,
        typer.Option(
            help="PostgreSQL: role that owns the schema and runs migrations (created NOLOGIN if missing)"
        ),
    ] = None,
    app_role: Annotated[
        str | None,
        typer.Option(
            help="PostgreSQL: role the application connects as, granted SELECT/INSERT only on the audit tables"
        ),
    ] = None,
) -> None:
    """Create or upgrade the store; on PostgreSQL, with --owner and --app-role, set up the two roles.

    Run it as a database administrator. Afterwards point the application (`--db`, $MS_STORE_URL) at the
    app role; it cannot alter, disable or bypass the audit triggers.
    """
    from market_surveillance.store import audit
    from market_surveillance.store.core import DEFAULT_URL, Store, _make_engine, migrate

    if (owner is None) != (app_role is None):
        _fail("--owner and --app-role go together")
    if owner is None:
        try:
            with Store.open(db) as store:
                user = store.session_user()
                url = store.url
        except StoreError as exc:
            _fail(str(exc))
        console.print(f"store ready at {url}; audit protection in place")
        if user is not None:
            console.print(
                f"[yellow]note:[/yellow] {user} owns the tables, so it could switch the audit triggers off; "
                "for a team, run `store init --owner OWNER --app-role APP` and connect as APP"
            )
        return
    import os

    import sqlalchemy as sa

    engine = _make_engine(db or os.environ.get("MS_STORE_URL") or DEFAULT_URL)
    try:
        done = audit.setup_roles(engine, owner, app_role or "", migrate)
        audit.check_protection(engine)
    except StoreError as exc:
        _fail(str(exc))
    except sa.exc.DBAPIError as exc:
        _fail(f"store init failed: {str(exc.orig).strip().splitlines()[0]}")
    finally:
        engine.dispose()
    for line in done:
        console.print(line)
    console.print(f"connect the application as {app_role}, e.g. postgresql+psycopg://{app_role}@HOST/DB")
