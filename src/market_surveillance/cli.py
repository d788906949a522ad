"""Command line: `market-surveillance generate | rules | detect | evaluate | ...`."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

app = typer.Typer(
    help="Crypto market surveillance: simulate, detect, evaluate, triage.", no_args_is_help=True
)
console = Console()


def _fail(msg: str) -> None:
    console.print(f"[red]error:[/red] {msg}")
    raise typer.Exit(2)


@app.command()
def generate(
    out: Annotated[Path, typer.Option(help="folder to write the tables to")],
    seed: Annotated[int, typer.Option(help="master seed")] = 1,
    scale: Annotated[str, typer.Option(help="small | medium | large")] = "small",
    trades: Annotated[
        int | None, typer.Option(help="approximate number of background trades (overrides --scale)")
    ] = None,
    csv: Annotated[
        bool | None, typer.Option("--csv/--no-csv", help="also write CSV (default: on at small scale)")
    ] = None,
) -> None:
    """Generate a synthetic exchange with labelled manipulation scenarios."""
    from market_surveillance.simulate import generate_to_dir

    try:
        summary = generate_to_dir(out, seed=seed, scale=scale, trades=trades, csv=csv, progress=True)
    except ValueError as exc:
        _fail(str(exc))
    table = Table("table", "rows", title=f"generated into {out}")
    for name, n in summary.items():
        table.add_row(name, f"{n:,}")
    console.print(table)


@app.command("rules")
def list_rules(
    config: Annotated[Path | None, typer.Option(help="TOML file overriding params")] = None,
    markdown: Annotated[
        bool, typer.Option("--markdown", help="print the rules reference (docs/rules.md)")
    ] = False,
) -> None:
    """List registered rules with their typology and parameters."""
    from market_surveillance.rules.config import ConfigError, build_rules, load_config

    if markdown:
        from market_surveillance.rules.docs import registry_markdown

        typer.echo(registry_markdown(), nl=False)
        return

    try:
        rules = build_rules(load_config(config), source=str(config or "defaults"))
    except ConfigError as exc:
        _fail(str(exc))
    table = Table("id", "name", "typology", "params", title="surveillance rules")
    for r in rules:
        params = ", ".join(f"{k}={v}" for k, v in r.params.as_dict().items())
        if r.asset_params:
            params += "; per asset: " + ", ".join(sorted(r.asset_params))
        table.add_row(r.rule_id, r.name, str(r.typology), params)
    console.print(table)


def _print_runs(result) -> None:  # type: ignore[no-untyped-def]
    table = Table("id", "rule", "status", "alerts", "seconds", "note", title="detection summary")
    for r in result.runs:
        table.add_row(r.rule_id, r.name, r.status, str(r.alerts), f"{r.seconds:.2f}", r.reason)
    console.print(table)


@app.command()
def detect(
    data: Annotated[Path, typer.Option(help="canonical data folder, or a source file/folder with --format")],
    out: Annotated[Path, typer.Option(help="alerts file (.parquet or .csv)")] = Path("alerts.parquet"),
    config: Annotated[Path | None, typer.Option(help="TOML file overriding rule params")] = None,
    fmt: Annotated[str, typer.Option("--format", help="canonical | ccxt | tardis | lobster")] = "canonical",
    date: Annotated[str | None, typer.Option(help="trading date YYYY-MM-DD (lobster)")] = None,
    quarantine: Annotated[
        Path | None, typer.Option(help="write bad input rows to this folder instead of failing")
    ] = None,
    db: Annotated[
        str | None, typer.Option(help="store URL (sqlite:///... or postgresql+psycopg://...)")
    ] = None,
    engine: Annotated[
        str | None, typer.Option(help="duckdb (default) | spark; default from $MS_ENGINE", envvar="MS_ENGINE")
    ] = None,
    spark_master: Annotated[str | None, typer.Option(help="Spark master URL (default local[2])")] = None,
    memory_limit: Annotated[
        str | None,
        typer.Option(
            help="cap DuckDB's memory, e.g. 6GB (default: DuckDB's 80 % of RAM)",
            envvar="MS_DUCKDB_MEMORY_LIMIT",
        ),
    ] = None,
) -> None:
    """Run every rule on the data and write the alerts (and, with --db, record the run in the store)."""
    from market_surveillance.alerts import write_alerts
    from market_surveillance.pipeline import detect_source
    from market_surveillance.rules.config import ConfigError
    from market_surveillance.rules.registry import all_rules
    from market_surveillance.schema import SchemaError

    if not data.exists():
        _fail(f"{data}: no such file or folder")
    if memory_limit:
        import os

        from market_surveillance.io.canonical import MEMORY_LIMIT_ENV

        os.environ[MEMORY_LIMIT_ENV] = memory_limit
    with Progress(
        TextColumn("{task.description}"), BarColumn(), TimeElapsedColumn(), console=console
    ) as prog:
        task = prog.add_task("detect", total=len(all_rules()))

        def on_rule(rule) -> None:  # type: ignore[no-untyped-def]
            prog.update(task, description=f"rule {rule.name}", advance=1)

        try:
            result = detect_source(
                data,
                config,
                fmt=fmt,
                date=date,
                quarantine_dir=quarantine,
                engine=engine,
                spark_master=spark_master,
                on_rule=on_rule,
            )
        except (SchemaError, ConfigError, ValueError) as exc:
            _fail(str(exc))
    write_alerts(result.alerts, out)
    _print_runs(result)
    console.print(f"{result.alerts.num_rows} alerts written to {out}")
    if result.ml_scores is not None:
        from market_surveillance.ml.rule import write_scores

        csv_path, _ = write_scores(result.ml_scores, out.parent)
        console.print(f"{len(result.ml_scores)} account scores written to {csv_path} (+ .parquet)")
    if db is not None:
        from market_surveillance.store import record_detection

        run_id = record_detection(db, result, data_source=str(data), config_path=config)
        console.print(f"run {run_id} recorded in {db}")


@app.command()
def evaluate(
    data: Annotated[Path, typer.Option(help="canonical data folder holding labels")],
    alerts: Annotated[Path, typer.Option(help="alerts file written by detect")],
    as_json: Annotated[bool, typer.Option("--json", help="print the scorecard as JSON")] = False,
) -> None:
    """Score alerts against the labelled scenarios: recall per typology, precision per rule."""
    from market_surveillance.evaluate import score_files

    card = score_files(data, alerts)
    if as_json:
        typer.echo(json.dumps(card.to_dict(), indent=2))
        return
    card.print(console)


from market_surveillance.store.cli import alerts_app, cases_app  # noqa: E402

app.add_typer(alerts_app, name="alerts")
app.add_typer(cases_app, name="cases")


@alerts_app.command("report")
def alerts_report(
    alert_id: Annotated[str, typer.Argument(help="alert id (or a unique prefix, as the queue shows it)")],
    out: Annotated[Path, typer.Option(help="HTML file to write")],
    data: Annotated[
        Path,
        typer.Option(envvar="MS_DATA_DIR", help="run folder with the canonical tables (make demo: data/)"),
    ] = Path("data"),
    db: Annotated[
        str | None,
        typer.Option(
            "--db", envvar="MS_STORE_URL", help="store URL (default sqlite:///<data>/alerts.sqlite)"
        ),
    ] = None,
) -> None:
    """Write one alert as a self-contained HTML page: charts, evidence, book replay, accounts, cases."""
    from market_surveillance.dashboard.report import write_alert_report

    url = db or f"sqlite:///{data / 'alerts.sqlite'}"
    if not data.is_dir():
        _fail(f"run folder {data} does not exist (give --data, or run `make demo` first)")
    if url.startswith("sqlite:///") and not Path(url[len("sqlite:///") :]).exists():
        _fail(f"store {url} does not exist (give --db)")
    try:
        path = write_alert_report(alert_id, out, data, url)
    except (KeyError, FileNotFoundError) as exc:
        _fail(str(exc.args[0]) if exc.args else str(exc))
    console.print(f"wrote {path}", highlight=False)


@app.command("import")
def import_(
    fmt: Annotated[str, typer.Argument(help="ccxt | tardis | lobster | canonical")],
    src: Annotated[Path, typer.Argument(help="source file or folder")],
    out: Annotated[Path, typer.Option(help="canonical folder to write (<table>.parquet)")],
    date: Annotated[str | None, typer.Option(help="trading date YYYY-MM-DD (lobster)")] = None,
    venue: Annotated[
        str | None, typer.Option(help="venue code (default: binance/ccxt, NASDAQ/lobster)")
    ] = None,
    quarantine: Annotated[
        Path | None, typer.Option(help="write bad input rows to this folder instead of failing")
    ] = None,
) -> None:
    """Convert exchange exports / public market data into a canonical folder, validating every row."""
    from market_surveillance.io.adapters import import_source
    from market_surveillance.schema import SchemaError

    try:
        counts = import_source(src, fmt, out, date=date, venue=venue, quarantine_dir=quarantine)
    except (SchemaError, ValueError) as exc:
        _fail(str(exc))
    table = Table("table", "counts", title=f"imported {src} into {out}")
    for name, c in counts.items():
        table.add_row(name, ", ".join(f"{k}={v:,}" for k, v in c.items()))
    console.print(table)


if __name__ == "__main__":
    app()
