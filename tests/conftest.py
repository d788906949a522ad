"""Shared fixtures.

PostgreSQL: ``MS_TEST_POSTGRES_URL`` (default ``postgresql+psycopg://postgres@127.0.0.1:5432/test``) names a
server the tests may create databases on. If none answers there, the session starts a throwaway server
(``initdb`` + ``pg_ctl`` from ``/usr/lib/postgresql/*/bin``, trust auth, free port, temporary folder) and
stops it at the end. If that is impossible too, PostgreSQL tests *fail* with the reason: they are never
skipped silently. Each test gets its own freshly created database, dropped afterwards.
"""

from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
import tempfile
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    import pyarrow as pa

DEFAULT_POSTGRES_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/test"


def _conninfo(url: str, database: str | None = None) -> dict[str, object]:
    from sqlalchemy.engine import make_url

    u = make_url(url)
    info: dict[str, object] = {
        "host": u.host or "127.0.0.1",
        "port": u.port or 5432,
        "user": u.username or "postgres",
        "dbname": database or u.database or "postgres",
        "connect_timeout": 3,
    }
    if u.password:
        info["password"] = u.password
    return info


def _pg_error(url: str) -> str | None:
    """None if a PostgreSQL server answers at ``url``, else why not."""
    import psycopg

    try:
        with psycopg.connect(**_conninfo(url)) as conn:  # type: ignore[arg-type]
            conn.execute("SELECT 1")
    except psycopg.Error as exc:
        return str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _start_throwaway_server(reason: str) -> tuple[str, list[str], Path]:
    """Start a private PostgreSQL server; return its URL, the pg_ctl stop command and its folder."""
    found = sorted(
        glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=lambda p: int(Path(p).parts[-3].split(".")[0])
    )
    initdb = found[-1] if found else shutil.which("initdb")
    if initdb is None:
        pytest.fail(
            f"no PostgreSQL server at $MS_TEST_POSTGRES_URL ({reason}) and no initdb to start one: "
            "install the Debian `postgresql` package or point MS_TEST_POSTGRES_URL at a server",
            pytrace=False,
        )
    bindir = Path(initdb).parent
    root = Path(tempfile.mkdtemp(prefix="ms-pg-"))
    data, log, port = root / "data", root / "server.log", _free_port()
    as_user: list[str] = []
    if os.geteuid() == 0:  # initdb refuses to run as root: run the server as the packaged postgres user
        as_user = ["runuser", "-u", "postgres", "--"]
    pg_ctl = [*as_user, str(bindir / "pg_ctl"), "-D", str(data)]
    try:
        if as_user:
            shutil.chown(root, "postgres", "postgres")
        subprocess.run(
            [
                *as_user,
                str(initdb),
                "-D",
                str(data),
                "-A",
                "trust",
                "-U",
                "postgres",
                "-E",
                "UTF8",
                "--no-sync",
            ],
            check=True,
            capture_output=True,
            text=True,
        )
        opts = f"-p {port} -k {root} -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=50"
        subprocess.run(
            [*pg_ctl, "-l", str(log), "-w", "-t", "60", "-o", opts, "start"],
            check=True,
            capture_output=True,
            text=True,
        )
    except (subprocess.CalledProcessError, OSError, LookupError) as exc:
        detail = getattr(exc, "stderr", "") or ""
        if log.exists():
            detail += log.read_text()[-2000:]
        pytest.fail(
            f"no PostgreSQL server at $MS_TEST_POSTGRES_URL ({reason}) and starting one with {bindir} "
            f"failed: {exc}\n{detail}",
            pytrace=False,
        )
    return (
        f"postgresql+psycopg://postgres@127.0.0.1:{port}/postgres",
        [*pg_ctl, "-m", "immediate", "stop"],
        root,
    )


@pytest.fixture(scope="session")
def postgres_server_url() -> Iterator[str]:
    """URL of a PostgreSQL server for the whole session (the configured one, or a throwaway one)."""
    url = os.environ.get("MS_TEST_POSTGRES_URL", DEFAULT_POSTGRES_URL)
    reason = _pg_error(url)
    if reason is None:
        yield url
        return
    url, stop, root = _start_throwaway_server(reason)
    try:
        yield url
    finally:
        subprocess.run(stop, check=False, capture_output=True)
        shutil.rmtree(root, ignore_errors=True)


@contextmanager
def _fresh_database(server_url: str) -> Iterator[str]:
    import psycopg
    from sqlalchemy.engine import make_url

    name = f"ms_test_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(**_conninfo(server_url), autocommit=True) as conn:  # type: ignore[arg-type]
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield make_url(server_url).set(database=name).render_as_string(hide_password=False)
    finally:
        with psycopg.connect(**_conninfo(server_url), autocommit=True) as conn:  # type: ignore[arg-type]
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def postgres_url(postgres_server_url: str) -> Iterator[str]:
    """A freshly created, empty database on the test server (dropped after the test)."""
    with _fresh_database(postgres_server_url) as url:
        yield url


@pytest.fixture(scope="module")
def module_postgres_url(postgres_server_url: str) -> Iterator[str]:
    """Like :func:`postgres_url`, shared by one test module (for tests that only add independent rows)."""
    with _fresh_database(postgres_server_url) as url:
        yield url


_BACKENDS = ["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)]


@pytest.fixture(params=_BACKENDS)
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A store URL on each backend: a SQLite file in tmp_path, then a fresh PostgreSQL database."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'alerts.sqlite'}"
    return str(request.getfixturevalue("postgres_url"))


@pytest.fixture(scope="module", params=_BACKENDS)
def module_store_url(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> str:
    """:func:`store_url` shared by one test module."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path_factory.mktemp('store') / 'alerts.sqlite'}"
    return str(request.getfixturevalue("module_postgres_url"))


def fake_alerts(n: int, start: int = 0, *, rule_id: str = "MS001", rule_name: str = "self_trade") -> pa.Table:
    """``n`` alerts in ``alerts.ALERT_SCHEMA`` with deterministic ids ``<rule_id>-<i>`` for i in
    ``[start, start + n)``: alternating assets, one-minute windows, list columns filled."""
    import datetime as dt

    import pyarrow as pa

    from market_surveillance.alerts import ALERT_SCHEMA

    idx = range(start, start + n)
    t0 = dt.datetime(2024, 1, 1, tzinfo=dt.UTC)
    return pa.table(
        {
            "alert_id": [f"{rule_id}-{i:06d}" for i in idx],
            "rule_id": [rule_id] * n,
            "rule_name": [rule_name] * n,
            "typology": ["wash_trading"] * n,
            "asset": ["BTC-USD" if i % 2 else "ETH-USD" for i in idx],
            "venue": ["alpha"] * n,
            "accounts": [[f"acc{i % 7}", f"acc{(i + 1) % 7}"] for i in idx],
            "window_start": [t0 + dt.timedelta(minutes=i) for i in idx],
            "window_end": [t0 + dt.timedelta(minutes=i + 1) for i in idx],
            "detected_at": [t0 + dt.timedelta(minutes=i + 1) for i in idx],
            "score": [float(i % 10) for i in idx],
            "metric": ["self_trade_notional"] * n,
            "value": [float(i) for i in idx],
            "threshold": [1.0] * n,
            "evidence_trade_ids": [[f"T{i}", f"T{i + 1}"] for i in idx],
            "evidence_order_ids": [[] for _ in idx],
            "explanation": [f"alert {i}" for i in idx],
        },
        schema=ALERT_SCHEMA,
    )


@pytest.fixture(scope="session")
def make_alerts() -> Callable[..., pa.Table]:
    """:func:`fake_alerts`, as a fixture (test modules do not import conftest)."""
    return fake_alerts


@pytest.fixture(scope="session")
def demo_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One run of the demo pipeline (seed 7, small scale), shared by tests that read its outputs."""
    from market_surveillance.demo import run_demo

    out = tmp_path_factory.mktemp("demo") / "data"
    run_demo(out)
    return out
