"""Command line: `market-surveillance generate | rules | detect | evaluate | ...`."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, NoReturn

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

app = typer.Typer(
    help="Crypto market surveillance: simulate, detect, evaluate, triage.", no_args_is_help=True
)
console = Console()


err_console = Console(stderr=True)


def _fail(msg: str) -> NoReturn:
    # one line on stderr, never wrapped, markup-free (file names may hold [brackets]), so scripts and people
    # both read it
    text = " ".join(line.strip() for line in str(msg).splitlines() if line.strip())
    err_console.print(f"[red]error:[/red] {escape(text)}", soft_wrap=True, highlight=False)
    raise typer.Exit(2)


def _error_line(exc: BaseException) -> str:
    """One line for any error reaching the command line (``MS_DEBUG=1`` re-raises for the traceback)."""
    import os

    if os.environ.get("MS_DEBUG"):
        raise exc
    from market_surveillance.rules.config import ConfigError
    from market_surveillance.schema import InputError, SchemaError, one_line

    if isinstance(exc, SchemaError):
        first = exc.problems[0].message() if exc.problems else str(exc)
        more = len(exc.problems) - 1
        return first + (
            f" (+{more} more problem(s): {'; '.join(p.message() for p in exc.problems[1:4])})" if more else ""
        )
    if isinstance(exc, InputError | ConfigError | ValueError):
        return one_line(exc)
    if isinstance(exc, OSError):
        return f"{exc.filename or ''}: {exc.strerror or one_line(exc)}".lstrip(": ")
    name = type(exc).__name__
    if type(exc).__module__.startswith(("duckdb", "_duckdb", "pyspark", "py4j")):
        return f"engine error ({name}): {one_line(exc)}"
    return f"unexpected {name}: {one_line(exc)} (MS_DEBUG=1 shows the traceback)"


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
    world: Annotated[
        str, typer.Option(help="reference (fixed 5-asset universe) | random (liquidity tiers drawn from the seed)")
    ] = "reference",
    clean: Annotated[bool, typer.Option("--clean", help="no manipulation scenarios (false-alert measurement)")] = False,
) -> None:
    """Generate a synthetic exchange with labelled manipulation scenarios."""
    from market_surveillance.simulate import generate_to_dir

    try:
        summary = generate_to_dir(
            out, seed=seed, scale=scale, trades=trades, csv=csv, progress=True, world=world, inject=not clean
        )
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
    wide: Annotated[bool, typer.Option("--wide", help="parameters on one line per rule")] = False,
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
    from rich import box

    # ids and names are never cut (they are typed into --rule and configs); parameters fold, one per line
    table = Table(title="surveillance rules", box=box.SIMPLE_HEAD, padding=(0, 1), pad_edge=False)
    table.add_column("id", no_wrap=True, min_width=5)
    table.add_column("name", no_wrap=True)
    table.add_column("typology", overflow="fold", min_width=8)
    table.add_column("params", overflow="fold", min_width=12)
    sep = ", " if wide else "\n"
    for r in rules:
        params = sep.join(f"{k}={v}" for k, v in r.params.as_dict().items())
        if r.asset_params:
            params += sep + "per asset: " + ", ".join(sorted(r.asset_params))
        table.add_row(r.rule_id, r.name, str(r.typology), params)
    console.print(table)


def _print_runs(result) -> None:  # type: ignore[no-untyped-def]
    table = Table("id", "rule", "status", "alerts", "seconds", "note", title="detection summary")
    for r in result.runs:
        table.add_row(r.rule_id, r.name, r.status, str(r.alerts), f"{r.seconds:.2f}", r.reason)
    console.print(table)


def _shown_url(url: str) -> str:
    """A store URL fit for the terminal: the password masked."""
    import sqlalchemy as sa

    try:
        return sa.engine.make_url(url).render_as_string(hide_password=True)
    except sa.exc.ArgumentError:
        return url


def _print_counts(counts: dict[str, dict[str, int]]) -> None:
    """Rows in / accepted / quarantined (and duplicates, sorted, skipped) per input table."""
    if not counts:
        return
    table = Table("table", "rows in", "accepted", "quarantined", "other", title="input")
    for name, c in counts.items():
        other = ", ".join(
            f"{k.replace('_', ' ')} {v:,}"
            for k, v in c.items()
            if k not in ("rows_in", "accepted", "quarantined") and v and k != "skipped"
        )
        if c.get("out_of_order"):
            other += " (sorted by time)"
        table.add_row(
            name,
            f"{c.get('rows_in', c.get('rows_out', 0)):,}",
            f"{c.get('accepted', c.get('rows_out', 0)):,}",
            f"{c.get('quarantined', 0):,}",
            other,
        )
    console.print(table)


def _limits(ts_min: str | None, ts_max: str | None):  # type: ignore[no-untyped-def]
    import datetime as dt

    from market_surveillance.schema import Limits

    def parse(text: str, opt: str) -> dt.datetime:
        try:
            t = dt.datetime.fromisoformat(text)
        except ValueError:
            _fail(f"{opt} must be an ISO date or time (e.g. 2015-01-01), got {text!r}")
        return t if t.tzinfo else t.replace(tzinfo=dt.UTC)

    kw = {}
    if ts_min:
        kw["ts_min"] = parse(ts_min, "--ts-min")
    if ts_max:
        kw["ts_max"] = parse(ts_max, "--ts-max")
    return Limits(**kw)


@app.command()
def detect(
    data: Annotated[
        str,
        typer.Option(
            help="canonical data folder, a source file/folder with --format, or a database URL "
            "(postgresql+psycopg://user@host/db) holding the canonical tables"
        ),
    ],
    db_schema: Annotated[
        str, typer.Option(help="database URL: schema holding the canonical tables")
    ] = "public",
    table_prefix: Annotated[
        str, typer.Option(help="database URL: prefix of the canonical table names (e.g. ms_)")
    ] = "",
    out: Annotated[
        Path | None, typer.Option(help="alerts file to write (.parquet or .csv); none unless given")
    ] = None,
    config: Annotated[Path | None, typer.Option(help="TOML file overriding rule params")] = None,
    fmt: Annotated[
        str, typer.Option("--format", help="canonical | ccxt | tardis | lobster | binance")
    ] = "canonical",
    date: Annotated[
        str | None, typer.Option(help="trading date YYYY-MM-DD (lobster; default: from the file name)")
    ] = None,
    orderbook: Annotated[
        Path | None,
        typer.Option(help="lobster: LOBSTER's orderbook file; check our book against it, write book features"),
    ] = None,
    since: Annotated[
        str | None, typer.Option(help="first UTC date YYYY-MM-DD of date-partitioned tables to read")
    ] = None,
    until: Annotated[
        str | None, typer.Option(help="last UTC date YYYY-MM-DD of date-partitioned tables to read")
    ] = None,
    quarantine: Annotated[
        Path | None, typer.Option(help="write bad input rows to this folder instead of failing")
    ] = None,
    max_quarantined: Annotated[
        float,
        typer.Option(help="fail when more than this percentage of a table's rows is quarantined"),
    ] = 1.0,
    allow_empty: Annotated[bool, typer.Option("--allow-empty", help="run on an input without rows")] = False,
    ts_min: Annotated[
        str | None, typer.Option(help="earliest plausible timestamp (default 2009-01-01)")
    ] = None,
    ts_max: Annotated[
        str | None, typer.Option(help="latest plausible timestamp (default now + 1 day)")
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
    from market_surveillance.io.database import display_source, is_database_url
    from market_surveillance.pipeline import detect_source
    from market_surveillance.rules.registry import all_rules

    if not is_database_url(data) and not Path(data).exists():
        _fail(f"{data}: no such file or folder")
    if db is not None:
        # reach, migrate and check the store first: a bad URL must not cost a whole detection run
        from market_surveillance.store import Store, StoreError

        try:
            Store.open(db).dispose()
        except StoreError as exc:
            _fail(f"cannot open store {_shown_url(db)}: {exc}")
    if not 0 <= max_quarantined <= 100:
        _fail(f"--max-quarantined is a percentage in [0, 100], got {max_quarantined}")
    limits = _limits(ts_min, ts_max)
    if memory_limit:
        import os

        from market_surveillance.io.canonical import MEMORY_LIMIT_ENV

        os.environ[MEMORY_LIMIT_ENV] = memory_limit
    if orderbook is not None:
        _check_lobster_book(Path(data), orderbook, fmt, date, out)
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

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
                limits=limits,
                max_quarantined_share=max_quarantined / 100,
                allow_empty=allow_empty,
                on_input=_print_counts,
                since=_day(since, "--since"),
                until=_day(until, "--until"),
                db_schema=db_schema,
                table_prefix=table_prefix,
            )
        except Exception as exc:
            prog.stop()
            _fail(_error_line(exc))
    _print_runs(result)
    if out is not None:
        try:
            write_alerts(result.alerts, out)
        except Exception as exc:
            _fail(_error_line(exc))
        console.print(f"{result.alerts.num_rows} alerts written to {out}")
    elif db is None:
        console.print(f"{result.alerts.num_rows} alerts found; nothing written (give --out FILE and/or --db URL)")
    if result.ml_scores is not None and out is not None:
        from market_surveillance.ml.rule import write_scores

        csv_path, _ = write_scores(result.ml_scores, out.parent)
        console.print(f"{len(result.ml_scores)} account scores written to {csv_path} (+ .parquet)")
    if db is not None:
        from market_surveillance.store import StoreError, record_detection

        try:
            run_id = record_detection(db, result, data_source=display_source(data), config_path=config)
        except (StoreError, ValueError) as exc:
            _fail(f"run not recorded in {_shown_url(db)}: {str(exc).strip().splitlines()[0]}")
        console.print(f"run {run_id} recorded in {_shown_url(db)}")


def _day(text: str | None, option: str):  # type: ignore[no-untyped-def]
    import datetime as dt

    if text is None:
        return None
    try:
        return dt.date.fromisoformat(text)
    except ValueError:
        _fail(f"{option} must be a date YYYY-MM-DD, got {text!r}")


def _check_lobster_book(data: Path, orderbook: Path, fmt: str, date: str | None, out: Path | None) -> None:
    """Print `book check: N compared, M mismatches`; with --out, write LOBSTER's book features beside the
    alerts (nothing goes into the current directory unless asked)."""
    import pyarrow.parquet as pq

    from market_surveillance.io.lobster_book import check_book, orderbook_features
    from market_surveillance.schema import SchemaError

    if fmt != "lobster":
        _fail("--orderbook goes with --format lobster (a LOBSTER orderbook file)")
    try:
        result = check_book(data, orderbook, date=date)
        feats = orderbook_features(data, orderbook, date=date)
    except (SchemaError, ValueError) as exc:
        _fail(str(exc))
    console.print(result.line(), highlight=False)
    if result.seeded_levels:
        console.print(
            f"  ({result.seeded_levels} price levels of orders resting from before the file, seen only in "
            "the orderbook's first row, were seeded)",
            highlight=False,
        )
    if out is None:
        return
    out.parent.mkdir(parents=True, exist_ok=True)
    path = out.parent / "lobster_book.parquet"
    pq.write_table(feats, path)
    console.print(f"{feats.num_rows:,} book states (best bid/ask, depth, imbalance) written to {path}")


@app.command()
def watch(
    data: Annotated[Path, typer.Option(help="file or folder to replay, or the folder to tail with --follow")],
    fmt: Annotated[
        str, typer.Option("--format", help="canonical | ccxt | tardis | lobster | binance (as detect)")
    ] = "canonical",
    date: Annotated[str | None, typer.Option(help="trading date YYYY-MM-DD (lobster)")] = None,
    speed: Annotated[str, typer.Option(help="max (as fast as possible) or N× real time, e.g. 60")] = "max",
    step: Annotated[str, typer.Option(help="micro-batch step in event time, e.g. 5s, 500ms, 1m")] = "5s",
    out: Annotated[Path | None, typer.Option(help="alerts file (Parquet, or .csv), rewritten as decided")] = None,
    db: Annotated[str | None, typer.Option(help="store URL (alerts + watermark; a restart resumes)")] = None,
    config: Annotated[Path | None, typer.Option(help="TOML file overriding params")] = None,
    follow: Annotated[bool, typer.Option("--follow", help="live: keep tailing the folder for new parts")] = False,
    idle_timeout: Annotated[
        float | None, typer.Option(help="with --follow: stop after this many seconds without a new part")
    ] = None,
) -> None:
    """Online surveillance: replay or tail a source in micro-batches; alerts decided as the data arrives."""
    from market_surveillance.online import parse_duration
    from market_surveillance.online import watch as run_watch
    from market_surveillance.rules.config import ConfigError, build_rules, load_config
    from market_surveillance.schema import SchemaError

    if not data.exists():
        _fail(f"{data}: no such file or folder")
    if out is None and db is None:
        _fail("give --out and/or --db: decided alerts must go somewhere")
    try:
        parse_duration(step)
        spd = None if speed == "max" else float(speed)
        if spd is not None and not spd > 0:
            raise ValueError
    except ValueError as exc:
        _fail(str(exc) if str(exc) else f"--speed {speed!r}: use max or a positive number")
    try:
        rules = build_rules(load_config(config), source=str(config or "defaults"))
    except ConfigError as exc:
        _fail(str(exc))

    def on_batch(stats, changed) -> None:  # type: ignore[no-untyped-def]
        import datetime as dt

        for r in changed:
            delay = (r["detected_at"] - r["window_start"]).total_seconds()
            console.print(
                f"{dt.datetime.fromtimestamp(stats.now_us / 1e6, dt.UTC):%Y-%m-%d %H:%M:%S} "
                f"{r['rule_id']} {r['rule_name']} {r['asset'] or '-'} {','.join(r['accounts'] or [])} "
                f"decided {r['detected_at']:%H:%M:%S} ({delay:.0f} s after start) value={r['value']:.4g}"
            )

    try:
        result = run_watch(
            data, rules, fmt=fmt, date=date, step=step, speed=spd, follow=follow,
            idle_timeout_s=idle_timeout, out=out, db=db, config_path=config, on_batch=on_batch,
        )
    except (SchemaError, ValueError) as exc:
        _fail(str(exc))
    lat = sorted(b.seconds for b in result.batches)
    p99 = lat[min(len(lat) - 1, int(0.99 * len(lat)))] if lat else 0.0
    resumed = ""
    if result.resumed_from is not None:
        import datetime as dt

        resumed = f", resumed after {dt.datetime.fromtimestamp(result.resumed_from / 1e6, dt.UTC):%Y-%m-%d %H:%M:%S}"
    console.print(
        f"{result.stopped}: {result.events:,} events in {len(result.batches)} micro-batches{resumed}, "
        f"{len(result.alerts)} alerts, p99 batch {p99:.2f} s, late events {result.late_events}"
        + (f", {len(result.rejected_parts)} part(s) rejected" if result.rejected_parts else "")
    )


@app.command()
def evaluate(
    data: Annotated[Path, typer.Option(help="canonical data folder holding labels")],
    alerts: Annotated[Path, typer.Option(help="alerts file written by detect")],
    as_json: Annotated[bool, typer.Option("--json", help="print the scorecard as JSON")] = False,
) -> None:
    """Score alerts against the labelled scenarios: recall per typology, precision per rule."""
    from market_surveillance.evaluate import score_files

    if not data.is_dir():
        _fail(f"{data}: no such data folder")
    if not alerts.is_file():
        _fail(f"{alerts}: no such alerts file (write one with `detect --out`)")
    try:
        card = score_files(data, alerts)
    except Exception as exc:  # no labels, unreadable or foreign alerts file, ...: one line
        _fail(_error_line(exc))
    if as_json:
        typer.echo(json.dumps(card.to_dict(), indent=2))
        return
    card.print(console)


from market_surveillance.store.cli import alerts_app, cases_app  # noqa: E402

app.add_typer(alerts_app, name="alerts")
app.add_typer(cases_app, name="cases")

from market_surveillance.store.cli_audit import store_app  # noqa: E402  (also adds `cases verify`)

app.add_typer(store_app, name="store")


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
    fmt: Annotated[str, typer.Argument(help="ccxt | tardis | lobster | binance | canonical")],
    src: Annotated[Path, typer.Argument(help="source file or folder")],
    out: Annotated[Path, typer.Option(help="canonical folder to write (<table>.parquet)")],
    date: Annotated[
        str | None, typer.Option(help="trading date YYYY-MM-DD (lobster; default: from the file name)")
    ] = None,
    venue: Annotated[
        str | None, typer.Option(help="venue code (default: binance/ccxt, NASDAQ/lobster)")
    ] = None,
    quarantine: Annotated[
        Path | None, typer.Option(help="write bad input rows to this folder instead of failing")
    ] = None,
) -> None:
    """Convert exchange exports / public market data into a canonical folder, validating every row."""
    from market_surveillance.io.adapters import import_source

    try:
        counts = import_source(src, fmt, out, date=date, venue=venue, quarantine_dir=quarantine)
    except Exception as exc:
        _fail(_error_line(exc))
    table = Table("table", "counts", title=f"imported {src} into {out}")
    for name, c in counts.items():
        table.add_row(name, ", ".join(f"{k}={v:,}" for k, v in c.items()))
    console.print(table)


if __name__ == "__main__":
    app()
