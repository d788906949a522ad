"""Orchestration: canonical tables → rules (+ ML) → alerts, with a per-rule run summary."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import ibis.expr.types as ir
import pyarrow as pa

from market_surveillance.alerts import ALERT_SCHEMA
from market_surveillance.rules.base import Rule
from market_surveillance.rules.config import build_rules, load_config
from market_surveillance.schema import DataProfile


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

    def summary_rows(self) -> list[dict[str, Any]]:
        return [r.__dict__.copy() for r in self.runs]


def run_rules(
    tables: Mapping[str, ir.Table],
    profile: DataProfile,
    rules: list[Rule],
    *,
    on_rule: Callable[[Rule], None] | None = None,
) -> DetectResult:
    """Run each rule that can run on the data; rules that cannot are recorded as skipped with why."""
    results: list[pa.Table] = []
    runs: list[RuleRun] = []
    ran: list[Rule] = []
    result_scores = None
    for rule in rules:
        if on_rule is not None:
            on_rule(rule)
        reason = rule.skip_reason(profile)
        run = RuleRun(
            rule.rule_id, rule.name, str(rule.typology), "skipped" if reason else "ran", reason=reason or ""
        )
        if reason is None:
            start = time.perf_counter()
            out = rule.execute(tables)
            run.seconds = time.perf_counter() - start
            run.alerts = out.alerts.num_rows
            results.append(out.alerts)
            if "ml_scores" in out.side:
                result_scores = out.side["ml_scores"]
            ran.append(rule)
        runs.append(run)
    alerts = pa.concat_tables(results) if results else ALERT_SCHEMA.empty_table()
    return DetectResult(alerts, runs, ml_scores=result_scores, rules=ran)


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
) -> DetectResult:
    """Open (and validate) a data source and run every configured rule.

    ``fmt="canonical"`` reads a canonical data folder; other formats go through the adapters in
    :mod:`market_surveillance.io`. ``engine`` is ``duckdb`` (default, or ``$MS_ENGINE``) or ``spark``.
    """
    import os

    engine = engine or os.environ.get("MS_ENGINE", "duckdb")
    if engine not in ("duckdb", "spark"):
        raise ValueError(f"unknown engine {engine!r}: use duckdb or spark")
    rules = build_rules(load_config(config_path), source=str(config_path or "defaults"))
    if engine == "spark":
        if fmt != "canonical":
            raise ValueError("--engine spark reads canonical folders; import other formats first (`import`)")
        from market_surveillance.io.canonical import open_dir_spark, spark_backend

        _, tables, profile = open_dir_spark(data, backend=spark_backend(spark_master))
        result = run_rules(tables, profile, rules, on_rule=on_rule)
    elif fmt == "canonical" and quarantine_dir is None:
        from market_surveillance.io.canonical import open_dir

        _, tables, profile = open_dir(data)
        result = run_rules(tables, profile, rules, on_rule=on_rule)
    else:
        from market_surveillance.io.adapters import open_source

        src = open_source(Path(data), fmt, date=date, quarantine_dir=quarantine_dir)
        result = run_rules(src.tables, src.profile, rules, on_rule=on_rule)
        result.input_counts = src.counts
    return result
