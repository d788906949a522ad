"""The monitoring notebook executes headless, top to bottom, against a fresh small run folder."""

from __future__ import annotations

import os
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

NOTEBOOK = Path(__file__).resolve().parents[1] / "notebooks" / "surveillance_dashboard.ipynb"
PLOTLY = "application/vnd.plotly.v1+json"


def build_run(out: Path, *, seed: int = 3, trades: int = 3000) -> str:
    """A small run folder like the demo's: tables, alerts.parquet, the store (and ML scores when available)."""
    from market_surveillance.pipeline import detect_source, write_alerts
    from market_surveillance.simulate import generate_to_dir

    generate_to_dir(out, seed=seed, trades=trades)
    result = detect_source(out)
    write_alerts(result.alerts, out / "alerts.parquet")
    db_url = f"sqlite:///{out / 'alerts.sqlite'}"
    try:
        from market_surveillance.store import record_detection
    except ImportError:  # store not available: the notebook falls back to alerts.parquet
        pass
    else:
        record_detection(
            db_url, result, data_source=str(out), config_path=None, csv_snapshot=out / "alerts.csv"
        )
    try:
        from market_surveillance.io.canonical import open_dir
        from market_surveillance.ml import score_accounts, write_scores
    except ImportError:
        pass
    else:
        _, tables, _ = open_dir(out, validate=False)
        write_scores(score_accounts(tables), out)
    return db_url


@pytest.fixture(scope="module")
def executed(tmp_path_factory: pytest.TempPathFactory) -> tuple[nbformat.NotebookNode, Path]:
    run = tmp_path_factory.mktemp("run")
    db_url = build_run(run)
    nb = nbformat.read(NOTEBOOK, as_version=4)
    env = {"MS_DATA_DIR": str(run), "MS_DB_URL": db_url}
    old = {k: os.environ.get(k) for k in env}
    os.environ.update(env)  # the kernel inherits the environment: the first cell reads these
    try:
        NotebookClient(
            nb, timeout=180, kernel_name="python3", resources={"metadata": {"path": str(run)}}
        ).execute()
    finally:
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
    return nb, run


def _figures(nb: nbformat.NotebookNode) -> dict[str, list[str]]:
    """Title → trace names of every plotly figure the notebook displayed."""
    out = {}
    for cell in nb.cells:
        for o in cell.get("outputs", []):
            fig = o.get("data", {}).get(PLOTLY)
            if fig:
                title = fig["layout"].get("title", {}).get("text", "")
                out[title] = [t.get("name") for t in fig["data"]]
    return out


def test_dashboard_notebook_fresh_run_executes_without_errors(executed):
    nb, _ = executed
    errors = [o for c in nb.cells for o in c.get("outputs", []) if o.get("output_type") == "error"]
    assert errors == []


def test_dashboard_notebook_fresh_run_shows_three_plots_for_an_alert_with_evidence(executed):
    figs = _figures(executed[0])
    assert sum(t.startswith("Alerts per 1h") for t in figs) == 3
    price = next(names for t, names in figs.items() if t.startswith("Price by venue"))
    volume = next(names for t, names in figs.items() if t.startswith("Aggressor volume"))
    book = next(names for t, names in figs.items() if t.startswith("Order-book imbalance"))
    # the picked alert has evidence trades, and they are highlighted
    assert "evidence trades" in price and len(price) >= 2
    assert volume[:2] == ["buy aggressor", "sell aggressor"] and "evidence trades" in volume
    assert any(n.startswith("imbalance ") for n in book)


def test_dashboard_notebook_fresh_run_shows_ml_scores_and_triage_widget(executed):
    nb, _ = executed
    figs = _figures(nb)
    ml = next(names for t, names in figs.items() if t.startswith("ML anomaly scores"))
    assert ml[0] == "all accounts"
    widgets = [
        o
        for c in nb.cells
        for o in c.get("outputs", [])
        if "application/vnd.jupyter.widget-view+json" in o.get("data", {})
    ]
    assert widgets, "the triage widget was not displayed"


def test_dashboard_notebook_fresh_run_reads_the_configured_folder(executed):
    nb, run = executed
    first = "".join(o.get("text", "") for o in nb.cells[1].outputs)
    assert str(run) in first
