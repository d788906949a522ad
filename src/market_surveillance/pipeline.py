"""Orchestration: canonical tables → rules (+ ML) → alerts, with a per-rule run summary."""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import ibis.expr.types as ir
import pyarrow as pa

from market_surveillance.alerts import ALERT_SCHEMA
from market_surveillance.io.canonical import OpenedSource
from market_surveillance.rules import intermediates
from market_surveillance.rules.base import Rule
from market_surveillance.rules.config import build_rules, load_config
from market_surveillance.schema import DataProfile, InputError, Limits, date_window


@dataclass
class RuleRun:
    rule_id: str
    name: str
    typology: str
    status: str  # ran | skipped
    alerts: int = 0
    seconds: float = 0.0
    reason: str = ""


@dataclass
class DetectResult:
    alerts: pa.Table
    runs: list[RuleRun] = field(default_factory=list)
    #: every account's anomaly score when the ML rule ran (see ml.rule.score_accounts)
    ml_scores: Any = None
    #: per input table: rows read, accepted and quarantined (adapters fill it)
    input_counts: dict[str, dict[str, int]] = field(default_factory=dict)
    #: the rules that ran, with the params they ran with (what the store records as rule_versions)
    rules: list[Rule] = field(default_factory=list)
    #: seconds spent materialising each shared intermediate (once per run, before the first rule)
    intermediates_s: dict[str, float] = field(default_factory=dict)

    def summary_rows(self) -> list[dict[str, Any]]:
        return [r.__dict__.copy() for r in self.runs]


def run_rules(
    tables: Mapping[str, ir.Table],
    profile: DataProfile,
    rules: list[Rule],
    *,
    on_rule: Callable[[Rule], None] | None = None,
) -> DetectResult:
    """Run each rule that can run on the data; rules that cannot are recorded as skipped with why.

    The shared intermediates the runnable rules read (:mod:`market_surveillance.rules.intermediates`) are
    materialised once, before the first rule, and released after the last.
    """
    results: list[pa.Table] = []
    runs: list[RuleRun] = []
    ran: list[Rule] = []
    result_scores = None
    reasons = {id(rule): rule.skip_reason(profile) for rule in rules}
    runnable = [rule for rule in rules if reasons[id(rule)] is None]
    shared: dict[str, ir.Table] = {}
    shared_s: dict[str, float] = {}
    try:
        for name in intermediates.needed(runnable, tables):
            start = time.perf_counter()
            shared.update(intermediates.materialize(tables, [name]))
            shared_s[name] = time.perf_counter() - start
        with_shared = {**tables, **shared}
        for rule in rules:
            if on_rule is not None:
                on_rule(rule)
            reason = reasons[id(rule)]
            run = RuleRun(
                rule.rule_id, rule.name, str(rule.typology), "skipped" if reason else "ran", reason=reason or ""
            )
            if reason is None:
                start = time.perf_counter()
                out = rule.execute(with_shared)
                run.seconds = time.perf_counter() - start
                run.alerts = out.alerts.num_rows
                results.append(out.alerts)
                if "ml_scores" in out.side:
                    result_scores = out.side["ml_scores"]
                ran.append(rule)
            runs.append(run)
    finally:
        intermediates.release(shared)
    alerts = pa.concat_tables(results) if results else ALERT_SCHEMA.empty_table()
    return DetectResult(alerts, runs, ml_scores=result_scores, rules=ran, intermediates_s=shared_s)


def open_input(
    data: str | Path,
    *,
    fmt: str = "canonical",
    date: str | None = None,
    quarantine_dir: str | Path | None = None,
    engine: str = "duckdb",
    spark_master: str | None = None,
    limits: Limits | None = None,
) -> OpenedSource:
    """Open and validate a data source (every path runs the one validation engine of :mod:`schema`)."""
    if engine not in ("duckdb", "spark"):
        raise InputError(f"unknown engine {engine!r}: use duckdb or spark")
    data = Path(data)
    if not data.exists():
        raise InputError(f"{data}: no such file or folder")
    if engine == "spark":
        if fmt != "canonical":
            raise InputError("--engine spark reads canonical folders; import other formats first (`import`)")
        if quarantine_dir is not None:
            raise InputError("--quarantine needs --engine duckdb (bad rows are set aside by DuckDB)")
        from market_surveillance.io.canonical import open_dir_spark, spark_backend

        return open_dir_spark(data, backend=spark_backend(spark_master), limits=limits)
    if fmt == "canonical":
        from market_surveillance.io.canonical import open_canonical

        return open_canonical(data, quarantine_dir=quarantine_dir, limits=limits)
    from market_surveillance.io.adapters import open_source

    return open_source(data, fmt, date=date, quarantine_dir=quarantine_dir, limits=limits)


#: default limit on the share of quarantined rows per table above which a run fails
MAX_QUARANTINED_SHARE = 0.01


def check_input(
    counts: Mapping[str, Mapping[str, int]],
    *,
    max_quarantined_share: float = MAX_QUARANTINED_SHARE,
    allow_empty: bool = False,
) -> None:
    """Refuse an input that is empty (unless ``allow_empty``) or whose quarantined share of any table
    passes ``max_quarantined_share``: alerts on what is left would look complete and not be."""
    for name, c in counts.items():
        n_in, n_q = c.get("rows_in", 0), c.get("quarantined", 0)
        if n_in and n_q / n_in > max_quarantined_share:
            raise InputError(
                f"{name}: {n_q:,} of {n_in:,} rows quarantined ({100 * n_q / n_in:.1f} %), above the "
                f"{100 * max_quarantined_share:g} % limit (--max-quarantined)"
            )
    if counts and not allow_empty:
        kept = sum(
            counts.get(t, {}).get("accepted", counts.get(t, {}).get("rows_out", 0))
            for t in ("trades", "orders")
        )
        if kept == 0:
            read = ", ".join(f"{k} {c['rows_in']:,} rows in" for k, c in counts.items() if "rows_in" in c)
            raise InputError(
                f"empty input: no trades or order events accepted ({read}); --allow-empty to run anyway"
            )


def detect_source(
    data: str | Path,
    config_path: str | Path | None = None,
    *,
    fmt: str = "canonical",
    date: str | None = None,
    quarantine_dir: str | Path | None = None,
    engine: str | None = None,
    spark_master: str | None = None,
    on_rule: Callable[[Rule], None] | None = None,
    limits: Limits | None = None,
    max_quarantined_share: float = MAX_QUARANTINED_SHARE,
    allow_empty: bool = False,
    on_input: Callable[[dict[str, dict[str, int]]], None] | None = None,
    since: dt.date | None = None,
    until: dt.date | None = None,
    db_schema: str = "public",
    table_prefix: str = "",
) -> DetectResult:
    """Open (and validate) a data source and run every configured rule.

    ``since``/``until`` (UTC dates, inclusive) select the partitions of date-partitioned canonical tables
    (``trades/date=YYYY-MM-DD/*.parquet``); other partitions are never read. ``data`` may be a PostgreSQL
    URL holding the canonical tables (in ``db_schema``, names prefixed by ``table_prefix``), see
    :mod:`market_surveillance.io.database`; the window is then applied by the server.

    ``fmt="canonical"`` reads a canonical data folder; other formats go through the adapters in
    :mod:`market_surveillance.io`. ``engine`` is ``duckdb`` (default, or ``$MS_ENGINE``) or ``spark``.
    The input's row counts go to ``on_input`` before :func:`check_input` may refuse it, so a refused run
    still shows what was read.
    """
    import os

    engine = engine or os.environ.get("MS_ENGINE", "duckdb")
    rules = build_rules(load_config(config_path), source=str(config_path or "defaults"))
    from market_surveillance.io.database import is_database_url, stream_to_folder

    if is_database_url(data):
        if fmt != "canonical":
            raise InputError("a database URL holds canonical tables: leave --format at canonical")
        data = stream_to_folder(str(data), schema=db_schema, prefix=table_prefix, since=since, until=until)
    with date_window(since, until):
        src = open_input(
            data,
            fmt=fmt,
            date=date,
            quarantine_dir=quarantine_dir,
            engine=engine,
            spark_master=spark_master,
            limits=limits,
        )
    if on_input is not None:
        on_input(src.counts)
    check_input(src.counts, max_quarantined_share=max_quarantined_share, allow_empty=allow_empty)
    result = run_rules(src.tables, src.profile, rules, on_rule=on_rule)
    result.input_counts = src.counts
    return result
