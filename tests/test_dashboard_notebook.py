"""The monitoring notebook executes headless, top to bottom, against a fresh demo run (issue 6 acceptance)."""

from __future__ import annotations

import os
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

NOTEBOOK = Path(__file__).resolve().parents[1] / "notebooks" / "surveillance_dashboard.ipynb"
PLOTLY = "application/vnd.plotly.v1+json"


@pytest.fixture(scope="module")
def executed(demo_dir: Path) -> tuple[nbformat.NotebookNode, Path]:
    """The notebook executed on the shared fresh demo run (seed 7, ``--scale small``; see conftest)."""
    nb = nbformat.read(NOTEBOOK, as_version=4)
    env = {"MS_DATA_DIR": str(demo_dir), "MS_DB_URL": f"sqlite:///{demo_dir / 'alerts.sqlite'}"}
    old = {k: os.environ.get(k) for k in env}
    os.environ.update(env)  # the kernel inherits the environment: the first cell reads these
    try:
        client = NotebookClient(
            nb, timeout=300, kernel_name="python3", resources={"metadata": {"path": str(demo_dir)}}
        )
        client.execute()
    finally:
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
    return nb, demo_dir


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
