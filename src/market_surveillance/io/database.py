"""Canonical tables kept in a PostgreSQL database: ``detect --data postgresql+psycopg://...``.

Where an exchange keeps its data, the canonical tables (same names and columns as the files, see
``docs/schema.md``) may live in a database schema, optionally with a table-name prefix
(``--db-schema surveillance --table-prefix ms_`` reads ``surveillance.ms_trades``, ...).

How the tables reach the rules: each table is streamed by PostgreSQL's ``COPY (SELECT ...) TO STDOUT``
in chunks into a temporary CSV folder (never held whole in Python memory), with the ``--since/--until``
window pushed into the query, and read from there exactly like a canonical folder (same validation, same
lazy DuckDB scan). The rules are not pushed into PostgreSQL: run through Ibis' PostgreSQL backend they fail
to compile (boolean sums, array flattening, epoch timestamps: measured on the demo data, 18 of 18 rules).
DuckDB's postgres scanner would scan the tables in place, but DuckDB fetches that extension from the
internet on first use, which these machines cannot; see docs/real-data.md.
"""

from __future__ import annotations

import atexit
import datetime as dt
import shutil
import tempfile
from pathlib import Path

from market_surveillance.schema import DETECT_TABLES, TABLES, InputError

SCHEMES = ("postgresql://", "postgresql+psycopg://", "postgres://")


def is_database_url(data: str | Path) -> bool:
    return str(data).startswith(SCHEMES)


def display_source(data: str | Path) -> str:
    """``data`` as it may be shown or stored: a database URL without its password."""
    return _safe(str(data)) if is_database_url(data) else str(data)


def _conninfo(url: str) -> str:
    from sqlalchemy.engine import make_url

    u = make_url(url)
    parts = {
        "host": u.host or "127.0.0.1",
        "port": u.port or 5432,
        "user": u.username or "postgres",
        "dbname": u.database or "postgres",
    }
    if u.password:
        parts["password"] = u.password
    return " ".join(f"{k}={v}" for k, v in parts.items())


def _ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def present_tables(url: str, schema: str = "public", prefix: str = "") -> dict[str, str]:
    """Canonical table name → quoted ``schema.table`` for the canonical tables found in the database."""
    import psycopg

    try:
        with psycopg.connect(_conninfo(url), connect_timeout=10) as conn:
            rows = conn.execute(
                "SELECT table_name FROM information_schema.tables WHERE table_schema = %s", (schema,)
            ).fetchall()
    except psycopg.Error as exc:
        raise InputError(f"{_safe(url)}: cannot read the database ({str(exc).strip().splitlines()[0]})") from exc
    names = {r[0] for r in rows}
    found = {t: f"{_ident(schema)}.{_ident(prefix + t)}" for t in DETECT_TABLES if prefix + t in names}
    if "trades" not in found:
        raise InputError(f"{_safe(url)}: no table {schema}.{prefix}trades (the canonical trades table)")
    return found


def _safe(url: str) -> str:
    """The URL without its password, for messages."""
    from sqlalchemy.engine import make_url

    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:  # an unparseable URL: show only its scheme
        return url.split("://", 1)[0] + "://…"


def _window_sql(name: str, since: dt.date | None, until: dt.date | None) -> str:
    if name not in ("trades", "orders", "book"):
        return ""
    cond = []
    if since is not None:
        cond.append(f"ts >= TIMESTAMPTZ '{since.isoformat()} 00:00:00+00'")
    if until is not None:
        cond.append(f"ts < TIMESTAMPTZ '{(until + dt.timedelta(days=1)).isoformat()} 00:00:00+00'")
    return (" WHERE " + " AND ".join(cond)) if cond else ""


def stream_to_folder(
    url: str,
    *,
    schema: str = "public",
    prefix: str = "",
    since: dt.date | None = None,
    until: dt.date | None = None,
    folder: Path | None = None,
) -> Path:
    """Copy the canonical tables out of PostgreSQL into ``folder`` (a temporary one by default) as CSV.

    Rows stream from the server in chunks (``COPY ... TO STDOUT``); only the canonical columns present are
    copied, timestamps in UTC ISO form; ``since``/``until`` filter ``ts`` on the server.
    """
    import psycopg

    tables = present_tables(url, schema, prefix)
    if folder is None:
        folder = Path(tempfile.mkdtemp(prefix="ms-db-"))
        atexit.register(shutil.rmtree, folder, ignore_errors=True)
    with psycopg.connect(_conninfo(url), connect_timeout=10) as conn:
        conn.execute("SET TIME ZONE 'UTC'")
        conn.execute("SET extra_float_digits = 3")  # doubles round-trip exactly through text
        for name, rel in tables.items():
            cols = [
                r[0]
                for r in conn.execute(
                    "SELECT column_name FROM information_schema.columns WHERE table_schema = %s "
                    "AND table_name = %s ORDER BY ordinal_position",
                    (schema, prefix + name),
                ).fetchall()
            ]
            wanted = [c.name for c in TABLES[name].all_columns if c.name in cols]
            select = ", ".join(_ident(c) for c in wanted)
            sql = f"COPY (SELECT {select} FROM {rel}{_window_sql(name, since, until)}) TO STDOUT WITH (FORMAT csv, HEADER)"
            with (folder / f"{name}.csv").open("wb") as out, conn.cursor().copy(sql) as copy:
                for chunk in copy:
                    out.write(chunk)
    return folder

