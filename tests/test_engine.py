"""`detect --engine spark` end to end through the CLI, and clear errors for a bad engine (issue 8)."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from market_surveillance.alerts import read_alerts
from market_surveillance.cli import app
from market_surveillance.pipeline import detect_source
from market_surveillance.testing import mini_dataset


@pytest.fixture(scope="module")
def folder(tmp_path_factory) -> Path:
    """The mini dataset as a canonical Parquet folder (it holds one self-trade, so alerts are not empty)."""
    out = tmp_path_factory.mktemp("mini")
    for name, tab in mini_dataset().items():
        pq.write_table(tab, out / f"{name}.parquet")
    return out


@pytest.fixture(scope="module")
def spark_available() -> None:
    if os.environ.get("CI"):
        import pyspark  # noqa: F401  (CI installs the spark extra: a missing pyspark must fail there)
    else:
        pytest.importorskip("pyspark", reason="optional extra: pip install market-surveillance[spark]")
    if shutil.which("java") is None:
        pytest.fail("--engine spark needs Java (17) on PATH")


def _rows(path: Path) -> list[dict]:
    """Alerts sorted by id with floats to 9 significant digits (engines sum in different orders)."""
    rows = read_alerts(path).to_pylist()
    for r in rows:
        for col in ("value", "score", "threshold"):
            r[col] = float(f"{r[col]:.9g}")
    return sorted(rows, key=lambda r: r["alert_id"])


@pytest.mark.spark
def test_cli_detect_engine_spark_same_alerts_as_duckdb(spark_available, folder: Path, tmp_path: Path):
    runner = CliRunner()
    duck_out, spark_out = tmp_path / "duck.parquet", tmp_path / "spark.parquet"
    res = runner.invoke(app, ["detect", "--data", str(folder), "--out", str(duck_out), "--engine", "duckdb"])
    assert res.exit_code == 0, res.output
    res = runner.invoke(
        app,
        ["detect", "--data", str(folder), "--out", str(spark_out), "--engine", "spark"],
        env={"MS_SPARK_MASTER": "local[2]", "MS_SPARK_SHUFFLE_PARTITIONS": "2"},
    )
    assert res.exit_code == 0, res.output
    duck, spark = _rows(duck_out), _rows(spark_out)
    # the folder's self-trade: the comparison is not vacuous
    assert any(r["rule_id"] == "MS001" for r in duck)
    assert spark == duck


def test_cli_detect_unknown_engine_fails_with_clear_message(folder: Path, tmp_path: Path):
    res = CliRunner().invoke(
        app, ["detect", "--data", str(folder), "--out", str(tmp_path / "a.parquet"), "--engine", "postgres"]
    )
    assert res.exit_code == 2
    assert "unknown engine 'postgres'" in res.output
    assert "duckdb or spark" in res.output
    assert not (tmp_path / "a.parquet").exists()


def test_cli_detect_engine_from_env_is_used(folder: Path, tmp_path: Path):
    # MS_ENGINE is read when --engine is absent: a bad value there must be refused by name
    res = CliRunner().invoke(
        app,
        ["detect", "--data", str(folder), "--out", str(tmp_path / "a.parquet")],
        env={"MS_ENGINE": "bogus"},
    )
    assert res.exit_code == 2
    assert "unknown engine 'bogus'" in res.output


def test_detect_source_engine_spark_with_other_format_is_refused(folder: Path):
    with pytest.raises(ValueError, match="--engine spark reads canonical folders"):
        detect_source(folder, fmt="ccxt", engine="spark")


def test_detect_source_unknown_engine_raises_before_reading(tmp_path: Path):
    with pytest.raises(ValueError, match="unknown engine 'sqlite'"):
        detect_source(tmp_path / "missing", engine="sqlite")


def test_duckdb_memory_limit_from_environment_applied_and_bad_value_refused(monkeypatch):
    from market_surveillance.io.adapters import _connect
    from market_surveillance.io.canonical import MEMORY_LIMIT_ENV, duckdb_backend

    monkeypatch.setenv(MEMORY_LIMIT_ENV, "512MiB")
    be = duckdb_backend()
    limit = be.raw_sql("SELECT current_setting('memory_limit')").fetchone()[0]
    assert limit.replace(" ", "") in ("512.0MiB", "536.8MB", "512MiB")
    # imports read their sources under the same cap
    limit = _connect().execute("SELECT current_setting('memory_limit')").fetchone()[0]
    assert limit.replace(" ", "") in ("512.0MiB", "536.8MB", "512MiB")
    monkeypatch.setenv(MEMORY_LIMIT_ENV, "1GB; DROP TABLE x")
    with pytest.raises(ValueError, match="expected a size such as 6GB"):
        duckdb_backend()
