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


def test_dashboard_notebook_fresh_run_drills_down_an_alert_with_evidence(executed):
    figs = _figures(executed[0])
    assert sum(t.startswith("Alerts per 1h") for t in figs) == 3
    drill = next(names for t, names in figs.items() if t.startswith("Alert "))
    # price by venue, aggressor volume and book imbalance on one time axis; the picked alert has evidence
    assert "evidence trades" in drill and {"buy aggressor", "sell aggressor"} <= set(drill)
    assert any(n.startswith("imbalance ") for n in drill)
    replay = next(names for t, names in figs.items() if t.startswith("Order-book replay"))
    assert replay == ["bids", "asks", "evidence orders"]
    text = "".join(
        o.get("data", {}).get("text/html", "") for c in executed[0].cells for o in c.get("outputs", [])
    )
    assert "evidence trades" in text and "counterparties" in text


def test_dashboard_notebook_html_export_keeps_every_chart_offline(executed):
    """`jupyter nbconvert --to html` of the executed notebook: every plotly figure is in the page, and
    plotly.js is embedded (no CDN), so the page works when mailed or archived with a case."""
    from nbconvert import HTMLExporter

    nb, _ = executed
    n_figs = sum(PLOTLY in o.get("data", {}) for c in nb.cells for o in c.get("outputs", []))
    assert n_figs >= 6
    page, _ = HTMLExporter().from_notebook_node(nb)
    assert page.count('class="plotly-graph-div"') == n_figs
    assert "window.Plotly = Plotly" in page  # the library itself, inline
    assert 'src="https://cdn.plot.ly' not in page


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
