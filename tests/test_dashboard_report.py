"""`market-surveillance alerts report ALERT_ID --out FILE.html`: one alert as a self-contained page."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from market_surveillance.cli import app
from market_surveillance.store import Store


@pytest.fixture(scope="module")
def run_copy(demo_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("report") / "data"
    shutil.copytree(demo_dir, d)
    return d


def _spoofing_alert(store: Store) -> dict:
    alerts = store.alerts(rule="spoofing").to_pylist()
    return next(a for a in alerts if a["evidence_order_ids"])


def test_alerts_report_writes_self_contained_page_with_charts_evidence_and_case(run_copy, tmp_path):
    url = f"sqlite:///{run_copy / 'alerts.sqlite'}"
    store = Store.open(url)
    try:
        alert = _spoofing_alert(store)
        case_id = store.open_case("spoof on BTC", [alert["alert_id"]], "carol", comment="wall pulled")
    finally:
        store.dispose()
    out = tmp_path / "pages" / "alert.html"
    res = CliRunner().invoke(
        app,
        ["alerts", "report", alert["alert_id"][:10], "--out", str(out), "--data", str(run_copy), "--db", url],
    )
    assert res.exit_code == 0, res.output
    page = out.read_text()
    # interactive charts with plotly.js inline: drill-down and book replay at least, nothing fetched
    assert page.count('class="plotly-graph-div"') >= 2
    assert "plotly.js v" in page  # the library itself, inline in <head>
    assert "<script src=" not in page
    assert "Order-book replay" in page
    for oid in alert["evidence_order_ids"][:3]:
        assert oid in page
    assert case_id in page and "wall pulled" in page and "carol" in page
    text = re.sub(
        r"<script.*?</script>", "", page, flags=re.S
    )  # plotly.js itself says NaN, the tables must not
    assert "NaN" not in text and "None" not in text


def test_alerts_report_unknown_alert_is_one_line_error_and_no_file(run_copy, tmp_path):
    out = tmp_path / "x.html"
    url = f"sqlite:///{run_copy / 'alerts.sqlite'}"
    res = CliRunner().invoke(
        app, ["alerts", "report", "nope", "--out", str(out), "--data", str(run_copy), "--db", url]
    )
    assert res.exit_code == 2
    assert "alert nope not found" in res.output and "Traceback" not in res.output
    assert not out.exists()


def test_alerts_report_missing_store_is_refused_and_not_created(run_copy, tmp_path):
    db = tmp_path / "missing" / "alerts.sqlite"
    res = CliRunner().invoke(
        app,
        [
            "alerts",
            "report",
            "x",
            "--out",
            str(tmp_path / "x.html"),
            "--data",
            str(run_copy),
            "--db",
            f"sqlite:///{db}",
        ],
    )
    assert res.exit_code == 2 and "does not exist" in res.output
    assert not db.parent.exists()
