"""`detect --data postgresql+psycopg://...`: canonical tables in a PostgreSQL schema, same alerts as from files.

Runs against the real PostgreSQL server (fresh database per test, dropped after: ``postgres_url`` fixture).
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import psycopg
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from market_surveillance.io.database import display_source, is_database_url, stream_to_folder
from market_surveillance.pipeline import detect_source
from market_surveillance.schema import TABLES, InputError, conform
from market_surveillance.testing import mini_dataset

pytestmark = pytest.mark.postgres

_PG = {"timestamp": "TIMESTAMPTZ", "double": "DOUBLE PRECISION", "int64": "BIGINT"}


def _conninfo(url: str) -> str:
    from market_surveillance.io.database import _conninfo

    return _conninfo(url)


def load_tables(url: str, data: dict[str, pa.Table], schema: str = "public", prefix: str = "") -> None:
    """Create the canonical tables in PostgreSQL and COPY the rows in (labels, a list table, left out)."""
    with psycopg.connect(_conninfo(url), autocommit=True) as conn:
        conn.execute(f'CREATE SCHEMA IF NOT EXISTS "{schema}"')
        for name, tab in data.items():
            if name not in TABLES or name == "labels":
                continue
            tab = conform(name, tab)
            cols = ", ".join(
                f'"{f.name}" {next((v for k, v in _PG.items() if str(f.type).startswith(k)), "TEXT")}'
                for f in tab.schema
            )
            rel = f'"{schema}"."{prefix}{name}"'
            conn.execute(f"CREATE TABLE {rel} ({cols})")
            sink = pa.BufferOutputStream()
            pacsv.write_csv(tab, sink, pacsv.WriteOptions(include_header=False))
            with conn.cursor().copy(f"COPY {rel} FROM STDIN WITH (FORMAT csv)") as copy:
                copy.write(sink.getvalue().to_pybytes())


def _files(tmp_path: Path, data: dict[str, pa.Table]) -> Path:
    folder = tmp_path / "files"
    folder.mkdir()
    for name, tab in data.items():
        if name in TABLES and name != "labels":
            pq.write_table(conform(name, tab), folder / f"{name}.parquet")
    return folder


def _ids(res) -> list[tuple[str, str]]:  # type: ignore[no-untyped-def]
    return sorted(zip(res.alerts["rule_id"].to_pylist(), res.alerts["alert_id"].to_pylist(), strict=True))


def test_database_url_recognised_and_password_hidden():
    assert is_database_url("postgresql+psycopg://u:secret@h/db") and not is_database_url("data/")
    assert "secret" not in display_source("postgresql+psycopg://u:secret@h/db")


def test_database_same_alerts_as_files_with_schema_and_prefix(tmp_path, postgres_url):
    data = mini_dataset()
    load_tables(postgres_url, data, schema="surv", prefix="ms_")
    from_files = detect_source(_files(tmp_path, data))
    from_db = detect_source(postgres_url, db_schema="surv", table_prefix="ms_")
    assert from_files.alerts.num_rows > 0
    assert _ids(from_db) == _ids(from_files)
    assert [(r.rule_id, r.status) for r in from_db.runs] == [(r.rule_id, r.status) for r in from_files.runs]


def test_database_missing_trades_table_one_line_error(postgres_url):
    with pytest.raises(InputError, match=r"no table public\.trades"):
        stream_to_folder(postgres_url)


def test_database_window_pushed_to_server(tmp_path, postgres_url):
    data = mini_dataset()
    load_tables(postgres_url, data)
    folder = stream_to_folder(postgres_url, since=dt.date(2024, 3, 2), folder=tmp_path)
    # every mini trade is on 2024-03-01: a window starting the day after keeps the header only
    assert (folder / "trades.csv").read_text().count("\n") == 1
    assert (folder / "accounts.csv").read_text().count("\n") == data["accounts"].num_rows + 1


@pytest.mark.slow
def test_database_demo_data_same_alerts_as_files_cli(tmp_path, postgres_url):
    """The demo's synthetic exchange (seed 1, small) loaded into PostgreSQL: same alerts as the files."""
    from market_surveillance.cli import app
    from market_surveillance.simulate import simulate

    data = simulate(1, scale="small")
    load_tables(postgres_url, data)
    files = _files(tmp_path, data)
    out_f, out_d = tmp_path / "f.parquet", tmp_path / "d.parquet"
    r1 = CliRunner().invoke(app, ["detect", "--data", str(files), "--out", str(out_f)])
    r2 = CliRunner().invoke(app, ["detect", "--data", postgres_url, "--out", str(out_d)])
    assert r1.exit_code == 0 and r2.exit_code == 0, r1.output + r2.output
    a, b = pq.read_table(out_f), pq.read_table(out_d)
    assert a.num_rows > 0 and sorted(a["alert_id"].to_pylist()) == sorted(b["alert_id"].to_pylist())
